"""Shaded renders of meshes for previews and the optional normal-map input (uses ``raster.rasterize``)."""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
import torch

from munet.geometry.raster import rasterize


def face_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(B, V, 3) vertices, (F, 3) faces -> (B, F, 3) unit face normals (counter-clockwise = outside)."""
    tri = vertices[:, faces]  # (B, F, 3, 3)
    n = torch.linalg.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0], dim=-1)
    return n / n.norm(dim=-1, keepdim=True).clamp(min=1e-12)


_INCIDENCE: dict[tuple, torch.Tensor] = {}


def _incidence(faces: torch.Tensor, num_vertices: int, dtype: torch.dtype) -> torch.Tensor:
    """(V, F) sparse CSR matrix: 1 where the vertex is a corner of the face (cached per face list)."""
    key = (hashlib.blake2b(faces.numpy().tobytes(), digest_size=8).digest(), num_vertices, dtype)
    if key not in _INCIDENCE:
        rows = faces.reshape(-1)
        cols = torch.arange(faces.shape[0]).repeat_interleave(3)
        with warnings.catch_warnings():  # "sparse CSR support is in beta": it is fine for a matmul
            warnings.simplefilter("ignore", UserWarning)
            coo = torch.sparse_coo_tensor(
                torch.stack([rows, cols]), torch.ones(rows.numel(), dtype=dtype), (num_vertices, faces.shape[0]),
                check_invariants=True,
            )
            _INCIDENCE[key] = coo.coalesce().to_sparse_csr()
    return _INCIDENCE[key]


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(B, V, 3) vertices -> (B, V, 3) unit vertex normals (area-weighted face normals)."""
    batch, num_vertices = vertices.shape[:2]
    v0, v1, v2 = vertices[:, faces[:, 0]], vertices[:, faces[:, 1]], vertices[:, faces[:, 2]]
    n = torch.linalg.cross(v1 - v0, v2 - v0, dim=-1)  # (B, F, 3), twice the area
    summed = _incidence(faces, num_vertices, n.dtype) @ n.permute(1, 0, 2).reshape(faces.shape[0], batch * 3)
    out = summed.reshape(num_vertices, batch, 3).permute(1, 0, 2)
    return out / out.norm(dim=-1, keepdim=True).clamp(min=1e-12)


def project(points_cam: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """(B, V, 3) OpenCV camera-frame points, (B, 3, 3) intrinsics -> (B, V, 2) pixels."""
    z = points_cam[..., 2:].clamp(min=1e-6)
    uv = points_cam[..., :2] / z
    return uv * torch.stack([K[:, 0, 0], K[:, 1, 1]], -1)[:, None] + torch.stack([K[:, 0, 2], K[:, 1, 2]], -1)[:, None]


def normal_images(points_cam: torch.Tensor, faces: torch.Tensor, K: torch.Tensor, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Camera-space normal maps of meshes in the OpenCV camera frame.

    points_cam: (B, V, 3) metres; K: (B, 3, 3) intrinsics of the ``size`` x ``size`` raster.
    Returns normals (B, size, size, 3) float32 (camera frame, zero where empty) and mask (B, size, size)
    bool. Normals are oriented towards the camera.
    """
    px = project(points_cam, K)
    raster = rasterize(px, faces, (size, size), depth=points_cam[..., 2], want_face_id=True)
    normals = face_normals(points_cam, faces)  # (B, F, 3)
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
