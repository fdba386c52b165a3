"""The fitting's camera: a level-roll pinhole above a ground plane, and its conversions.

World frame = Blender's (``munet.reconstruction``): Z up, the ground is z = 0. The camera sits at
``(0, 0, height_m)`` looking along +Y, tilted down by ``pitch_rad`` (positive looks down), with no
roll; the body's own yaw and position are free, so this loses no generality except roll. Camera
frame = OpenCV's (x right, y down, z forward).

With ``pitch = 0`` the world axes are MediaPipe's camera-aligned Blender frame (X image right, Y away
from the camera, Z up), which is how the world keypoints initialise the fit.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from munet.geometry.projection import project_pinhole

DEFAULT_FOCAL_PER_DIAGONAL = 1.2
"""Focal length in pixels per pixel of image diagonal when EXIF has none (~52 mm full-frame equivalent,
a typical portrait/standard lens; DESIGN.md §7: the 2D fit barely depends on it). The fit then estimates
the focal length around it (``FOCAL_LOG_SIGMA``)."""
FOCAL_LOG_SIGMA = 0.35
"""Prior spread of log(focal / default) when the focal length is estimated (about x0.7 .. x1.4)."""
EXIF_FOCAL_LOG_SIGMA = 0.02
"""When EXIF gives the focal length it is (nearly) held."""


def focal_px(width: int, height: int, exif_focal_px: float | None) -> tuple[float, str]:
    """The focal length in pixels and where it came from (``"exif"`` or ``"default"``)."""
    if exif_focal_px is not None and math.isfinite(exif_focal_px) and exif_focal_px > 0:
        return float(exif_focal_px), "exif"
    return DEFAULT_FOCAL_PER_DIAGONAL * math.hypot(width, height), "default"


def world_to_camera_rotation(pitch_rad: torch.Tensor) -> torch.Tensor:
    """(B,) pitch -> (B, 3, 3) rotation taking world (Blender) vectors to the OpenCV camera frame.

    Rows are the camera axes in world coordinates: x = (1, 0, 0), y (down) = (0, -sin p, -cos p),
    z (forward) = (0, cos p, -sin p).
    """
    s, c = torch.sin(pitch_rad), torch.cos(pitch_rad)
    zero, one = torch.zeros_like(s), torch.ones_like(s)
    rows = [one, zero, zero, zero, -s, -c, zero, c, -s]
    return torch.stack(rows, -1).reshape(pitch_rad.shape + (3, 3))


def intrinsics(focal: float | torch.Tensor, principal: tuple[float, float], like: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) pinhole intrinsics from a focal length in pixels (a number or (B,)) and the principal point
    (cx, cy) in pixels; batch size, dtype and device from ``like`` (B, ...). Differentiable in ``focal``."""
    batch = like.shape[0]
    f = focal if torch.is_tensor(focal) else like.new_full((batch,), float(focal))
    zero, one = torch.zeros_like(f), torch.ones_like(f)
    cx, cy = zero + principal[0], zero + principal[1]
    return torch.stack([f, zero, cx, zero, f, cy, zero, zero, one], -1).reshape(batch, 3, 3)


def project(points_m: torch.Tensor, pitch_rad: torch.Tensor, height_m: torch.Tensor, focal: float | torch.Tensor,
            principal: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Project world points (B, N, 3) through the camera of each batch item.

    pitch_rad, height_m: (B,); focal: pixels, a number or (B,). Returns pixels (B, N, 2) and camera depth
    (B, N) in metres (``project_pinhole`` with depths clamped to 1 mm).
    """
    rotation = world_to_camera_rotation(pitch_rad)
    centre = torch.stack([torch.zeros_like(height_m), torch.zeros_like(height_m), height_m], -1)
    cam = torch.einsum("bij,bnj->bni", rotation, points_m - centre[:, None])
    uv = project_pinhole(cam, intrinsics(focal, principal, cam), min_depth=1e-3)
    return uv, cam[..., 2]


def camera_extrinsics(pitch_rad: float, height_m: float) -> tuple[np.ndarray, np.ndarray]:
    """(R_world_to_cam (3, 3), t_world_to_cam_m (3,)) float64 for ``munet.reconstruction.Camera``."""
    rotation = world_to_camera_rotation(torch.tensor([pitch_rad], dtype=torch.float64))[0].numpy()
    centre = np.array([0.0, 0.0, height_m])
    return rotation, -rotation @ centre
