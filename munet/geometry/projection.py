"""Projections, in one place: the pinhole camera of photos and the network's weak perspective.

Camera frame = OpenCV's (x right, y down, z forward, metres); pixels follow ``munet.reconstruction``
(x right, y down, (0, 0) the top-left corner of the top-left pixel). ``K`` is the usual intrinsics
matrix ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]`` (the skew ``s`` is ignored: always 0 here).
"""

from __future__ import annotations

import numpy as np
import torch

MIN_DEPTH_M = 1e-6
"""Depths are clamped to at least this before dividing, so points at or behind the camera stay finite."""


def project_pinhole(points_cam, K, min_depth: float = MIN_DEPTH_M):
    """Pinhole projection of camera-frame points to pixels.

    points_cam: (..., N, 3) metres, OpenCV camera frame; K: (..., 3, 3) intrinsics, broadcast against
    the points' leading dimensions (e.g. (3, 3) for all, or (B, 3, 3) per batch item).
    Returns (..., N, 2) pixels, ``u = fx x / z + cx``, ``v = fy y / z + cy`` with z clamped to
    ``min_depth``. Torch in -> torch out (differentiable); numpy in -> numpy out.
    """
    if torch.is_tensor(points_cam):
        if not torch.is_tensor(K):
            K = torch.as_tensor(K, dtype=points_cam.dtype, device=points_cam.device)
        z = points_cam[..., 2:].clamp(min=min_depth)
        focal = torch.stack([K[..., 0, 0], K[..., 1, 1]], -1)[..., None, :]  # (..., 1, 2)
        centre = K[..., :2, 2][..., None, :]
        return points_cam[..., :2] / z * focal + centre
    points_cam, K = np.asarray(points_cam), np.asarray(K)
    z = np.maximum(points_cam[..., 2:], min_depth)
    focal = np.stack([K[..., 0, 0], K[..., 1, 1]], -1)[..., None, :]
    centre = K[..., :2, 2][..., None, :]
    return points_cam[..., :2] / z * focal + centre


def project_weak_perspective(points: torch.Tensor, camera: torch.Tensor) -> torch.Tensor:
    """The network's weak-perspective camera (``munet.network.model``).

    points: (B, N, 3) root-relative, canonical camera frame (OpenCV axes, metres); camera: (B, 3)
    ``(s, tx, ty)``. Returns (B, N, 2) normalised crop coordinates ``s * X[:2] + (tx, ty)`` ([-1, 1] over
    the crop, grid_sample convention with align_corners=False).
    """
    return camera[:, None, :1] * points[..., :2] + camera[:, None, 1:]
