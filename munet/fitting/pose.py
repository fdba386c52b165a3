"""The fit's pose parameterisation (smpl24) and the pose priors: joint limits, hinges, a small-angle prior.

* Root: ``R_root = R_init @ exp(delta)``; a fixed initial rotation times a small correction, well
  conditioned even for people facing away (|angle| near pi).
* Knees and elbows: one hinge angle each about ``munet.body.limits.hinge_axes`` (positive flexes),
  kept in ``HINGE_JOINTS``'s range by a penalty.
* Every other joint: axis-angle in the world-aligned joint frame, kept inside ``euler_limits_deg``
  (XYZ Euler, R = Rz Ry Rx) by a squared-excess penalty.
* The three are packed into one vector (``pack_pose``, ``POSE_SIZE``) for the least-squares solver; the
  priors come as residual vectors (``limit_residuals``, ``prior_residuals``). The small-angle prior pulls
  towards a relaxed standing pose (``RELAXED_POSE``), hard for limbs the photo does not show.
"""

from __future__ import annotations

import math

import torch

from munet.body.limits import HINGE_JOINT_INDEX, HINGE_JOINT_NAMES, HINGE_JOINTS, euler_limits_deg, hinge_axes
from munet.body.skeleton import SMPL24_INDEX, SMPL24_JOINTS
from munet.geometry.rotations import axis_angle_to_matrix, matrix_to_euler_xyz

HINGES = HINGE_JOINT_NAMES
HINGE_INDEX = list(HINGE_JOINT_INDEX)  # a list: a tuple would index a tensor's dimensions
FREE_JOINTS = [j for j in range(1, 24) if SMPL24_JOINTS[j] not in HINGES]

# Small-angle prior weight per joint (1 / radian^2 scale): stiff where people rarely move (collars, hands,
# toes), loose for hips and shoulders.
PRIOR_WEIGHT = {
    "pelvis": 0.0, "left_hip": 0.05, "right_hip": 0.05, "spine1": 0.5, "spine2": 0.8, "spine3": 0.8,
    "left_ankle": 0.5, "right_ankle": 0.5, "left_foot": 4.0, "right_foot": 4.0, "neck": 0.5, "head": 0.3,
    "left_collar": 3.0, "right_collar": 3.0, "left_shoulder": 0.05, "right_shoulder": 0.05,
    "left_wrist": 1.0, "right_wrist": 1.0, "left_hand": 4.0, "right_hand": 4.0,
    "left_knee": 0.0, "right_knee": 0.0, "left_elbow": 0.0, "right_elbow": 0.0,
}  # fmt: skip


POSE_SIZE = 3 + 3 * len(FREE_JOINTS) + len(HINGES)
"""Packed pose vector: root correction (3), free joints' axis-angle (19 x 3), hinge angles (4)."""


class PoseLimits:
    """The limit and prior constants as tensors of one dtype."""

    def __init__(self, dtype: torch.dtype):
        limits = torch.deg2rad(torch.from_numpy(euler_limits_deg()).to(dtype))[FREE_JOINTS]  # (19, 3, 2)
        self.euler_low, self.euler_high = limits[..., 0], limits[..., 1]
        hinge_range = torch.deg2rad(torch.tensor([HINGE_JOINTS[n] for n in HINGES], dtype=dtype))
        self.hinge_low, self.hinge_high = hinge_range[:, 0], hinge_range[:, 1]
        self.prior_sqrt = torch.tensor([PRIOR_WEIGHT[SMPL24_JOINTS[j]] for j in FREE_JOINTS], dtype=dtype).sqrt()
        self.hinge_prior_sqrt = torch.full((len(HINGES),), 0.3, dtype=dtype).sqrt()  # used for unseen hinges only


def pack_pose(root_delta: torch.Tensor, local: torch.Tensor, hinge: torch.Tensor) -> torch.Tensor:
    """(B, 3), (B, 24, 3) full-size axis-angle (root and hinge rows ignored), (B, 4) -> (B, POSE_SIZE)."""
    return torch.cat([root_delta, local[:, FREE_JOINTS].flatten(1), hinge], 1)


def unpack_pose(pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, POSE_SIZE) -> root correction (B, 3), free joints' axis-angle (B, 19, 3), hinge angles (B, 4)."""
    n_free = 3 * len(FREE_JOINTS)
    return pose[:, :3], pose[:, 3 : 3 + n_free].reshape(-1, len(FREE_JOINTS), 3), pose[:, 3 + n_free :]


def compose_rotations(root_init: torch.Tensor, pose: torch.Tensor, rest_joints: torch.Tensor) -> torch.Tensor:
    """Local rotations (N, 24, 3, 3) from a fixed root rotation (N, 3, 3), packed poses (N, POSE_SIZE) and
    rest joints (N, 24, 3) (for the elbow hinge axes)."""
    root_delta, free, hinge = unpack_pose(pose)
    parts: list[torch.Tensor | None] = [None] * 24
    parts[0] = root_init @ axis_angle_to_matrix(root_delta)
    free_rot = axis_angle_to_matrix(free)  # (N, 19, 3, 3)
    for k, j in enumerate(FREE_JOINTS):
        parts[j] = free_rot[:, k]
    hinge_rot = axis_angle_to_matrix(hinge[..., None] * hinge_axes(rest_joints))  # (N, 4, 3, 3)
    for k, j in enumerate(HINGE_INDEX):
        parts[j] = hinge_rot[:, k]
    return torch.stack(parts, 1)


def limit_residuals(rotations: torch.Tensor, pose: torch.Tensor, limits: PoseLimits) -> torch.Tensor:
    """(N, 19 * 3 + 4) radians beyond the Euler limits and the hinge ranges (0 inside)."""
    euler = matrix_to_euler_xyz(rotations[:, FREE_JOINTS])
    excess = torch.relu(euler - limits.euler_high) - torch.relu(limits.euler_low - euler)
    hinge = unpack_pose(pose)[2]
    hinge_excess = torch.relu(hinge - limits.hinge_high) - torch.relu(limits.hinge_low - hinge)
    return torch.cat([excess.flatten(1), hinge_excess], 1)


# A relaxed standing pose (arms hanging ~15 deg off the body instead of the rest pose's ~45): what unseen
# limbs are held at. Axis-angle in world-aligned joint frames; +Y rotation lowers the left arm (+X towards
# -Z), -Y the right one. Elbows stay at the rest pose's bend (Anny's rest forearms already point ~40 deg
# forwards, and the hinge range starts there).
RELAXED_POSE = {"left_shoulder": (0.0, 0.5, 0.0), "right_shoulder": (0.0, -0.5, 0.0)}
RELAXED_HINGES: dict[str, float] = {}
UNSEEN_PRIOR_SCALE = 25.0
"""How much more the prior holds joints whose limbs the photo does not show."""


def prior_target(dtype: torch.dtype) -> torch.Tensor:
    """(POSE_SIZE,) the packed relaxed standing pose (root correction and unlisted joints zero)."""
    local = torch.zeros(1, 24, 3, dtype=dtype)
    for name, value in RELAXED_POSE.items():
        local[0, SMPL24_INDEX[name]] = torch.tensor(value, dtype=dtype)
    hinge = torch.tensor([[RELAXED_HINGES.get(n, 0.0) for n in HINGES]], dtype=dtype)
    return pack_pose(torch.zeros(1, 3, dtype=dtype), local, hinge)[0]


def prior_residuals(pose: torch.Tensor, limits: PoseLimits, joint_scale: torch.Tensor | None = None,
                    target: torch.Tensor | None = None) -> torch.Tensor:
    """Small-angle prior: (N, 19 * 3 + 4) sqrt(weight) x (pose - target) of the free joints and hinges.

    joint_scale: optional (24,) per-joint multiplier of the weight (``UNSEEN_PRIOR_SCALE`` for unseen
    limbs); target: optional (POSE_SIZE,) pose the prior pulls towards (default: the rest pose). Hinges
    carry no prior weight unless scaled (their range and the data hold them).
    """
    goal = torch.zeros_like(pose[0]) if target is None else target
    _, free, hinge = unpack_pose(pose - goal)
    free_w = limits.prior_sqrt[None, :]
    hinge_w = torch.zeros(1, len(HINGES), dtype=pose.dtype)
    if joint_scale is not None:
        free_w = free_w * joint_scale[FREE_JOINTS].sqrt()
        hinge_w = (limits.hinge_prior_sqrt * (joint_scale[HINGE_INDEX] - 1.0).clamp_min(0.0).sqrt())[None]
    return torch.cat([(free * free_w[..., None]).flatten(1), hinge * hinge_w], 1)


def root_rotation(root_init: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
    """(N, 3, 3) the root's rotation."""
    return root_init @ axis_angle_to_matrix(unpack_pose(pose)[0])


def hinge_init_from_degrees(batch: int, degrees: float = 5.0, dtype=torch.float32) -> torch.Tensor:
    """(B, 4) a slight flexion, so the hinge gradient starts off the range's edge."""
    return torch.full((batch, 4), math.radians(degrees), dtype=dtype)
