"""Rotations, in one place: axis-angle, rotation matrices and XYZ Euler angles (torch, batched).

Conventions: rotation matrices act on column vectors (``p' = R @ p``); axis-angle is (..., 3) radians,
the unit axis times the angle (right-hand rule); XYZ Euler angles are (..., 3) radians ``(x, y, z)``
with ``R = Rz(z) @ Ry(y) @ Rx(x)`` (extrinsic X, then Y, then Z). Joint frames are world-aligned in
the rest pose (``munet.reconstruction``), so a joint's X is the body's lateral axis, Y front-back and Z
vertical.
"""

from __future__ import annotations

import numpy as np
import torch


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula. (..., 3) radians -> (..., 3, 3). Smooth at zero (no NaN gradient)."""
    angle_sq = (axis_angle * axis_angle).sum(-1, keepdim=True)
    angle = torch.sqrt(angle_sq + 1e-12)
    # sin(a)/a and (1-cos(a))/a^2 with Taylor fallbacks near zero
    small = angle_sq < 1e-8
    sin_over = torch.where(small, 1.0 - angle_sq / 6.0, torch.sin(angle) / angle)
    one_minus_cos_over = torch.where(small, 0.5 - angle_sq / 24.0, (1.0 - torch.cos(angle)) / (angle_sq + 1e-30))
    x, y, z = axis_angle.unbind(-1)
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(axis_angle.shape[:-1] + (3, 3))
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device).expand_as(skew)
    return eye + sin_over[..., None] * skew + one_minus_cos_over[..., None] * (skew @ skew)


def matrix_to_axis_angle(rotation: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation matrices -> (..., 3) axis-angle, radians (via quaternions, stable near pi)."""
    import roma

    return roma.rotmat_to_rotvec(rotation)


def axis_angle_to_matrix_np(axis_angle: np.ndarray) -> np.ndarray:
    """Numpy twin of ``axis_angle_to_matrix``: (..., 3) radians -> (..., 3, 3) float64."""
    from scipy.spatial.transform import Rotation

    axis_angle = np.asarray(axis_angle, np.float64)
    flat = Rotation.from_rotvec(axis_angle.reshape(-1, 3)).as_matrix()
    return flat.reshape(axis_angle.shape[:-1] + (3, 3))


def euler_xyz_to_matrix(euler_rad: torch.Tensor) -> torch.Tensor:
    """(..., 3) XYZ Euler angles, radians -> (..., 3, 3) with R = Rz @ Ry @ Rx."""
    x, y, z = euler_rad.unbind(-1)
    zero = torch.zeros_like(x)
    rx = axis_angle_to_matrix(torch.stack([x, zero, zero], -1))
    ry = axis_angle_to_matrix(torch.stack([zero, y, zero], -1))
    rz = axis_angle_to_matrix(torch.stack([zero, zero, z], -1))
    return rz @ ry @ rx


def matrix_to_euler_xyz(rotation: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(..., 3, 3) with R = Rz @ Ry @ Rx -> (..., 3) angles (x, y, z) in radians; inverse of
    ``euler_xyz_to_matrix`` for |y| < pi/2.

    eps: sin(y) is clamped to [-1 + eps, 1 - eps] so asin's gradient stays finite at gimbal lock (the
    default, for fitting); pass 0 for the exact angle when no gradient is needed.
    """
    sy = (-rotation[..., 2, 0]).clamp(-1 + eps, 1 - eps)
    y = torch.asin(sy)
    x = torch.atan2(rotation[..., 2, 1], rotation[..., 2, 2])
    z = torch.atan2(rotation[..., 1, 0], rotation[..., 0, 0])
    return torch.stack([x, y, z], -1)
