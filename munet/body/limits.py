"""Anatomical joint limits for ``smpl24`` and a sampler of plausible random poses.

Limits are per-joint ranges of XYZ Euler angles (degrees) of the local rotation in the world-aligned
joint frame (see ``munet.reconstruction``): X is the lateral axis (for a limb hanging down, +X swings
it backwards; for the spine, +X bends forward), Y the front-back axis (sideways tilt), Z the vertical
axis (twist). Knees and elbows are hinges: one angle about an axis derived from the rest skeleton.
Used by the pose prior of the fitting and by the synthetic data engine.
"""

from __future__ import annotations

import numpy as np
import torch

from munet.body.lbs import axis_angle_to_matrix
from munet.body.skeleton import SMPL24_JOINTS

_SYMMETRIC = {
    "pelvis": ((-180, 180), (-180, 180), (-180, 180)),
    "spine1": ((-15, 35), (-15, 15), (-20, 20)),
    "spine2": ((-10, 25), (-12, 12), (-15, 15)),
    "spine3": ((-10, 20), (-10, 10), (-15, 15)),
    "neck": ((-30, 40), (-20, 20), (-40, 40)),
    "head": ((-25, 25), (-15, 15), (-30, 30)),
}
# left side; the right side mirrors Y and Z (x -> -x reflection)
_LEFT = {
    "hip": ((-125, 30), (-50, 15), (-40, 40)),
    "ankle": ((-40, 30), (-20, 20), (-20, 20)),
    "foot": ((-30, 30), (-5, 5), (-5, 5)),
    "collar": ((-10, 10), (-12, 8), (-15, 15)),
    "shoulder": ((-95, 45), (-100, 40), (-70, 70)),
    "wrist": ((-50, 50), (-30, 30), (-70, 70)),
    "hand": ((-25, 25), (-10, 10), (-10, 10)),
}
# Anny's rest pose already bends the elbows ~43 degrees forward: -40 straightens the arm.
HINGE_JOINTS = {"left_knee": (0.0, 150.0), "right_knee": (0.0, 150.0), "left_elbow": (-40.0, 145.0), "right_elbow": (-40.0, 145.0)}


def euler_limits_deg() -> np.ndarray:
    """(24, 3, 2) float32 [min, max] XYZ Euler limits in degrees; hinges are zero here (see hinge_axes)."""
    limits = np.zeros((len(SMPL24_JOINTS), 3, 2), np.float32)
    for j, name in enumerate(SMPL24_JOINTS):
        if name in _SYMMETRIC:
            limits[j] = _SYMMETRIC[name]
        elif name in HINGE_JOINTS:
            continue
        else:
            side, part = name.split("_", 1)
            box = np.array(_LEFT[part], np.float32)
            if side == "right":
                box[1:] = -box[1:, ::-1]
            limits[j] = box
    return limits


def hinge_axes(rest_joints_m: torch.Tensor) -> dict[str, torch.Tensor]:
    """Unit hinge axes (3,) for knees and elbows from a rest skeleton (24, 3).

    Positive rotation about the axis flexes the joint: the shank swings backwards (+Y), the forearm
    forwards (-Y).
    """
    index = {n: i for i, n in enumerate(SMPL24_JOINTS)}
    forward = rest_joints_m.new_tensor([0.0, -1.0, 0.0])
    axes = {}
    for side in ("left", "right"):
        upper = rest_joints_m[index[f"{side}_elbow"]] - rest_joints_m[index[f"{side}_shoulder"]]
        axis = torch.linalg.cross(upper / upper.norm(), forward)
        axes[f"{side}_elbow"] = axis / axis.norm()
        axes[f"{side}_knee"] = rest_joints_m.new_tensor([1.0, 0.0, 0.0])
    return axes


def euler_to_matrix(euler_rad: torch.Tensor) -> torch.Tensor:
    """(..., 3) XYZ Euler angles (R = Rz @ Ry @ Rx) -> (..., 3, 3)."""
    x, y, z = euler_rad.unbind(-1)
    eye = torch.zeros(euler_rad.shape[:-1] + (3,), dtype=euler_rad.dtype, device=euler_rad.device)
    rx = axis_angle_to_matrix(torch.stack([x, eye[..., 1], eye[..., 2]], -1))
    ry = axis_angle_to_matrix(torch.stack([eye[..., 0], y, eye[..., 2]], -1))
    rz = axis_angle_to_matrix(torch.stack([eye[..., 0], eye[..., 1], z], -1))
    return rz @ ry @ rx


def sample_plausible_poses(
    batch: int, rest_joints_m: torch.Tensor, generator: torch.Generator | None = None, spread: float = 0.35,
    root_yaw: bool = True,
) -> torch.Tensor:
    """(batch, 24, 3) axis-angle poses within the joint limits: each angle a truncated normal around
    the range's midpoint-clipped zero with std ``spread`` x range; hinges uniform in their range; the
    root gets a random yaw (if ``root_yaw``) and a small pitch/roll. For benchmarks and tests; the
    data engine has a richer pose library."""
    from munet.body.lbs import matrix_to_axis_angle

    limits = torch.from_numpy(euler_limits_deg()).to(rest_joints_m.dtype)
    low, high = torch.deg2rad(limits[..., 0]), torch.deg2rad(limits[..., 1])
    noise = torch.randn(batch, 24, 3, generator=generator, dtype=rest_joints_m.dtype)
    euler = torch.clamp(noise * spread * (high - low), low, high)
    euler[:, 0] = torch.deg2rad(torch.tensor([10.0, 5.0, 0.0], dtype=euler.dtype)) * torch.randn(batch, 3, generator=generator, dtype=euler.dtype)
    if root_yaw:
        euler[:, 0, 2] = (torch.rand(batch, generator=generator, dtype=euler.dtype) * 2 - 1) * torch.pi
    pose = matrix_to_axis_angle(euler_to_matrix(euler))
    for name, axis in hinge_axes(rest_joints_m).items():
        lo, hi = HINGE_JOINTS[name]
        angle = torch.deg2rad(lo + (hi - lo) * torch.rand(batch, generator=generator, dtype=pose.dtype) ** 2)
        pose[:, SMPL24_JOINTS.index(name)] = angle[:, None] * axis
    return pose
