"""The pose representation of the data engine: per-joint Euler angles plus four hinge angles.

A pose is, per ``smpl24`` joint, XYZ Euler angles in degrees of the local rotation in the
world-aligned joint frame (``R = Rz @ Ry @ Rx``, the convention of ``munet.body.limits``), plus four
hinge angles (order ``HINGES``) about the hinge axes of ``munet.body.limits``. This module holds the
joint and hinge ranges the engine samples in, the ``PoseBatch`` container, pose specs (name -> angles)
and the conversion to local rotation matrices and axis-angle (the wire format).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from munet.body.limits import HINGE_JOINT_INDEX, HINGE_JOINT_NAMES, euler_limits_deg, hinge_axes
from munet.body.skeleton import SMPL24_INDEX, SMPL24_JOINTS
from munet.geometry.rotations import axis_angle_to_matrix, euler_xyz_to_matrix, matrix_to_axis_angle, matrix_to_euler_xyz

J = SMPL24_INDEX  # joint name -> index (short: the pose tables use it a lot)
NUM_JOINTS = len(SMPL24_JOINTS)
HINGES = HINGE_JOINT_NAMES  # knees and elbows, the order of every hinge array here
HINGE_INDEX = HINGE_JOINT_INDEX
# flexion from Anny's rest pose, degrees: knee rests ~10 deg bent, elbow ~43 deg bent
HINGE_RANGES_DEG = np.array([[-6.0, 140.0], [-6.0, 140.0], [-38.0, 100.0], [-38.0, 100.0]], np.float32)
# left/right swap of joints and hinges (a mirror image of a pose)
MIRROR_JOINTS = tuple(
    J[n.replace("left_", "RIGHT_").replace("right_", "left_").replace("RIGHT_", "right_")] for n in SMPL24_JOINTS
)
MIRROR_HINGES = (1, 0, 3, 2)
# the joints an arm gesture sets (collars down to the hands)
ARM_JOINTS = tuple(J[n] for n in SMPL24_JOINTS if any(k in n for k in ("collar", "shoulder", "elbow", "wrist", "hand")))
# hinge angles of a spec that does not name them: knees slightly bent, elbows relaxed (nearly straight)
DEFAULT_HINGE_DEG = (2.0, 2.0, -28.0, -28.0)


def joint_limits_deg() -> np.ndarray:
    """(24, 3, 2) Euler limits used by the data engine: ``munet.body.limits`` widened where real photos
    need more: arms overhead (shoulder Y to -135), a wider hip abduction and flexion (splits, kicks,
    cross-legged), shoulder twist (hands behind the back / head)."""
    limits = euler_limits_deg().copy()
    for side, s in (("left", 1.0), ("right", -1.0)):
        shoulder = limits[J[f"{side}_shoulder"]]
        if s > 0:
            shoulder[1] = (-135.0, 40.0)
        else:
            shoulder[1] = (-40.0, 135.0)
        shoulder[0] = (-150.0, 60.0)
        shoulder[2] = (-90.0, 90.0)
        hip = limits[J[f"{side}_hip"]]
        hip[0] = (-130.0, 35.0)
        hip[1] = (-60.0, 20.0) if s > 0 else (-20.0, 60.0)
        hip[2] = (-50.0, 50.0)
    return limits


LIMITS_DEG = joint_limits_deg()


@dataclasses.dataclass
class PoseBatch:
    """euler_deg: (N, 24, 3) float32 XYZ Euler angles (hinge joints zero); hinge_deg: (N, 4) float32,
    order ``HINGES``; root_translation is not part of a pose (the engine puts the feet on the floor)."""

    euler_deg: np.ndarray
    hinge_deg: np.ndarray

    def __len__(self) -> int:
        return self.euler_deg.shape[0]

    def mirrored(self) -> "PoseBatch":
        """Left/right mirror image (reflection x -> -x): swap sides, negate Y and Z angles."""
        euler = self.euler_deg[:, MIRROR_JOINTS].copy()
        euler[..., 1:] *= -1
        return PoseBatch(euler, self.hinge_deg[:, MIRROR_HINGES].copy())

    def clamped(self) -> "PoseBatch":
        euler = np.clip(self.euler_deg, LIMITS_DEG[None, ..., 0], LIMITS_DEG[None, ..., 1])
        euler[:, list(HINGE_INDEX)] = 0.0
        hinge = np.clip(self.hinge_deg, HINGE_RANGES_DEG[:, 0], HINGE_RANGES_DEG[:, 1])
        return PoseBatch(euler.astype(np.float32), hinge.astype(np.float32))

    @staticmethod
    def concat(parts: list["PoseBatch"]) -> "PoseBatch":
        return PoseBatch(np.concatenate([p.euler_deg for p in parts]), np.concatenate([p.hinge_deg for p in parts]))

    def take(self, index) -> "PoseBatch":
        return PoseBatch(self.euler_deg[index], self.hinge_deg[index])


def spec_to_arrays(spec: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A pose spec {joint name: (3,) Euler degrees, or hinge name: degrees} -> (24, 3) Euler degrees,
    (4,) hinge degrees (``DEFAULT_HINGE_DEG`` where the spec is silent), (24,) bool 'joint set by the spec'."""
    euler = np.zeros((NUM_JOINTS, 3), np.float32)
    hinge = np.array(DEFAULT_HINGE_DEG, np.float32)
    given = np.zeros(NUM_JOINTS, bool)
    for name, value in spec.items():
        if name in HINGES:
            hinge[HINGES.index(name)] = value
        else:
            euler[J[name]] = value
        given[J[name]] = True
    return euler, hinge, given


def local_rotations(euler_deg: torch.Tensor, hinge_deg: torch.Tensor, rest_joints: torch.Tensor) -> torch.Tensor:
    """(B, 24, 3) Euler degrees + (B, 4) hinge degrees on rest skeletons (B, 24, 3) metres -> (B, 24, 3, 3)
    local rotation matrices (the hinge joints' Euler angles are ignored)."""
    rotations = euler_xyz_to_matrix(torch.deg2rad(euler_deg))
    hinge_rot = axis_angle_to_matrix(hinge_axes(rest_joints) * torch.deg2rad(hinge_deg)[..., None])  # (B, 4, 3, 3)
    rotations = rotations.clone()
    rotations[:, list(HINGE_INDEX)] = hinge_rot
    return rotations


def to_axis_angle(poses: PoseBatch, rest_joints: torch.Tensor) -> torch.Tensor:
    """A ``PoseBatch`` on given rest skeletons (B, 24, 3) -> (B, 24, 3) axis-angle (the wire format)."""
    euler = torch.from_numpy(poses.euler_deg).to(rest_joints.dtype)
    hinge = torch.from_numpy(poses.hinge_deg).to(rest_joints.dtype)
    return matrix_to_axis_angle(local_rotations(euler, hinge, rest_joints))


def compose_yaw(root_euler_deg: np.ndarray, yaw_deg: np.ndarray) -> np.ndarray:
    """Apply a world yaw on top of root rotations: R = Rz(yaw) @ R_root. root_euler_deg: (N, 3) XYZ
    Euler degrees; yaw_deg: (N,). Returns (N, 3) float32 XYZ Euler degrees (computed in float64)."""
    rotation = euler_xyz_to_matrix(torch.deg2rad(torch.from_numpy(root_euler_deg).double()))
    yaw = torch.deg2rad(torch.from_numpy(yaw_deg).double())
    zero = torch.zeros_like(yaw)
    rz = euler_xyz_to_matrix(torch.stack([zero, zero, yaw], -1))
    return torch.rad2deg(matrix_to_euler_xyz(rz @ rotation, eps=0.0)).numpy().astype(np.float32)
