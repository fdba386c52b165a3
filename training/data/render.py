"""Shaded renders of meshes for previews and the optional normal-map input (``munet.geometry``'s
projection, normals and rasteriser)."""

from __future__ import annotations

import numpy as np
import torch

from munet.geometry.mesh import face_normals_torch
from munet.geometry.projection import project_pinhole
from munet.geometry.raster import rasterize


def normal_images(points_cam: torch.Tensor, faces: torch.Tensor, K: torch.Tensor, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Camera-space normal maps of meshes in the OpenCV camera frame.

    points_cam: (B, V, 3) metres; K: (B, 3, 3) intrinsics of the ``size`` x ``size`` raster.
    Returns normals (B, size, size, 3) float32 (camera frame, zero where empty) and mask (B, size, size)
    bool. Normals are oriented towards the camera.
    """
    px = project_pinhole(points_cam, K)
    raster = rasterize(px, faces, (size, size), depth=points_cam[..., 2], want_face_id=True)
    normals = face_normals_torch(points_cam, faces)  # (B, F, 3)
    batch = points_cam.shape[0]
    face_id = raster.face_id.reshape(batch, -1)
    valid = face_id >= 0
    gathered = torch.gather(normals, 1, face_id.clamp(min=0)[..., None].expand(-1, -1, 3))
    # orient towards the camera (the camera looks along +z: a visible face has n_z < 0)
    gathered = torch.where(gathered[..., 2:] > 0, -gathered, gathered)
    gathered = gathered * valid[..., None]
    return gathered.reshape(batch, size, size, 3).numpy(), raster.mask.numpy()


def shade(normals: np.ndarray, mask: np.ndarray, color=(0.85, 0.8, 0.75), background: float = 1.0) -> np.ndarray:
    """Lambert shading of (..., H, W, 3) camera-frame normals -> (..., H, W, 3) uint8 RGB."""
    light = np.array([-0.4, -0.5, -0.77])
    light /= np.linalg.norm(light)
    lambert = np.clip(normals @ light, 0.0, 1.0)[..., None]
    rgb = (0.25 + 0.75 * lambert) * np.asarray(color)
    rgb = np.where(mask[..., None], rgb, background)
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)
