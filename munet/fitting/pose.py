"""The fit's pose parameterisation (smpl24) and the pose priors: joint limits, hinges, a small-angle prior.

* Root: ``R_root = R_init @ exp(delta)``; a fixed initial rotation times a small correction, well
  conditioned even for people facing away (|angle| near pi).
* Knees and elbows: one hinge angle each about ``munet.body.limits.hinge_axes`` (positive flexes),
  kept in ``HINGE_JOINTS``'s range by a penalty.
* Every other joint: axis-angle in the world-aligned joint frame, kept inside ``euler_limits_deg``
  (XYZ Euler, R = Rz Ry Rx) by a squared-excess penalty.
"""

from __future__ import annotations

import math

import torch

from munet.body.lbs import axis_angle_to_matrix
from munet.body.limits import HINGE_JOINTS, euler_limits_deg
from munet.body.skeleton import SMPL24_JOINTS

JOINT = {name: i for i, name in enumerate(SMPL24_JOINTS)}
HINGES = ("left_knee", "right_knee", "left_elbow", "right_elbow")
HINGE_INDEX = [JOINT[n] for n in HINGES]
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


def hinge_axes_batched(rest_joints: torch.Tensor) -> torch.Tensor:
    """(B, 24, 3) rest joints -> (B, 4, 3) unit hinge axes in ``HINGES`` order (same rule as
    ``munet.body.limits.hinge_axes``: knees about +X, elbows about upper-arm x forward)."""
    batch = rest_joints.shape[0]
    forward = rest_joints.new_tensor([0.0, -1.0, 0.0]).expand(batch, 3)
    axes = []
    for name in HINGES:
        side, part = name.split("_")
        if part == "knee":
            axes.append(rest_joints.new_tensor([1.0, 0.0, 0.0]).expand(batch, 3))
            continue
        upper = rest_joints[:, JOINT[f"{side}_elbow"]] - rest_joints[:, JOINT[f"{side}_shoulder"]]
        axis = torch.linalg.cross(upper / upper.norm(dim=-1, keepdim=True), forward, dim=-1)
        axes.append(axis / axis.norm(dim=-1, keepdim=True))
    return torch.stack(axes, 1)


def matrix_to_euler_xyz(rotation: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) with R = Rz @ Ry @ Rx -> (..., 3) angles (x, y, z) in radians."""
    sy = (-rotation[..., 2, 0]).clamp(-1 + 1e-6, 1 - 1e-6)
    y = torch.asin(sy)
    x = torch.atan2(rotation[..., 2, 1], rotation[..., 2, 2])
    z = torch.atan2(rotation[..., 1, 0], rotation[..., 0, 0])
    return torch.stack([x, y, z], -1)


class PoseParameters(torch.nn.Module):
    """Batched smpl24 pose in the fit's parameterisation (see the module docstring).

    root_init: (B, 3, 3) fixed root rotation; local_init: (B, 24, 3) axis-angle initial pose (root and
    hinge rows ignored); hinge_init: (B, 4) radians.
    """

    def __init__(self, root_init: torch.Tensor, local_init: torch.Tensor, hinge_init: torch.Tensor):
        super().__init__()
        batch = root_init.shape[0]
        self.register_buffer("root_init", root_init.detach().clone())
        self.root_delta = torch.nn.Parameter(root_init.new_zeros(batch, 3))
        self.local = torch.nn.Parameter(local_init.detach().clone())
        self.hinge = torch.nn.Parameter(hinge_init.detach().clone())
        free = torch.zeros(24, dtype=torch.bool)
        free[FREE_JOINTS] = True
        self.register_buffer("free_mask", free)
        limits = torch.deg2rad(torch.from_numpy(euler_limits_deg()))
        self.register_buffer("euler_low", limits[..., 0].to(root_init.dtype))
        self.register_buffer("euler_high", limits[..., 1].to(root_init.dtype))
        hinge_range = torch.deg2rad(torch.tensor([HINGE_JOINTS[n] for n in HINGES], dtype=root_init.dtype))
        self.register_buffer("hinge_low", hinge_range[:, 0])
        self.register_buffer("hinge_high", hinge_range[:, 1])
        self.register_buffer("prior_weight", torch.tensor([PRIOR_WEIGHT[n] for n in SMPL24_JOINTS], dtype=root_init.dtype))

    @property
    def batch(self) -> int:
        return self.root_init.shape[0]

    def rotations(self, rest_joints: torch.Tensor) -> torch.Tensor:
        """(B, 24, 3, 3) local rotations for rest joints (B, 24, 3)."""
        local = axis_angle_to_matrix(self.local)  # (B, 24, 3, 3)
        root = self.root_init @ axis_angle_to_matrix(self.root_delta)
        hinge = axis_angle_to_matrix(self.hinge[..., None] * hinge_axes_batched(rest_joints))  # (B, 4, 3, 3)
        parts = list(local.unbind(1))
        parts[0] = root
        for k, j in enumerate(HINGE_INDEX):
            parts[j] = hinge[:, k]
        return torch.stack(parts, 1)

    def limit_penalty(self, rotations: torch.Tensor) -> torch.Tensor:
        """(B,) sum of squared excess (radians^2) beyond the Euler limits and the hinge ranges."""
        euler = matrix_to_euler_xyz(rotations[:, self.free_mask])
        low, high = self.euler_low[self.free_mask], self.euler_high[self.free_mask]
        excess = torch.relu(euler - high) + torch.relu(low - euler)
        hinge_excess = torch.relu(self.hinge - self.hinge_high) + torch.relu(self.hinge_low - self.hinge)
        return (excess**2).sum((1, 2)) + (hinge_excess**2).sum(1)

    def prior(self) -> torch.Tensor:
        """(B,) weighted squared axis-angle magnitude of the free joints (radians^2)."""
        magnitude = (self.local**2).sum(-1) * self.free_mask
        return (magnitude * self.prior_weight).sum(1)

    def select(self, index: int) -> "PoseParameters":
        """A batch-of-one copy of item ``index`` (current values become the new initial values)."""
        with torch.no_grad():
            root = self.root_init[index : index + 1] @ axis_angle_to_matrix(self.root_delta[index : index + 1])
            return PoseParameters(root, self.local[index : index + 1], self.hinge[index : index + 1])


def hinge_init_from_degrees(batch: int, degrees: float = 5.0, dtype=torch.float32) -> torch.Tensor:
    """(B, 4) a slight flexion, so the hinge gradient starts off the range's edge."""
    return torch.full((batch, 4), math.radians(degrees), dtype=dtype)
