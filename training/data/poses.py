"""Poses that look like people in photos: a key-pose library, variation within joint limits, all yaws.

Representation (``PoseBatch``): per ``smpl24`` joint, XYZ Euler angles in degrees of the local rotation
in the world-aligned joint frame (``R = Rz @ Ry @ Rx``, the convention of ``munet.body.limits``), plus
four hinge angles (left/right knee, left/right elbow) about the hinge axes of ``munet.body.limits``.
Reading the angles (person faces -Y, left is +X, Z up):

* X (lateral axis): a limb hanging down swings backwards for +X (hip flexion is negative X); the spine
  and the root bend forwards for +X.
* Y (front-back axis): the left arm is lowered for +Y and raised for -Y (right arm: mirrored); the left
  leg moves inwards for +Y. Z (vertical axis): twist; for an arm held out sideways, -Z (left) swings
  it forwards.
* Hinges measure flexion from Anny's rest pose. Anny rests in an A-pose with the elbows already bent by
  ~43 degrees and the knees by ~10, so a straight arm is a *negative* elbow angle here (see
  ``HINGE_RANGES_DEG``; ``munet.body.limits.HINGE_JOINTS`` allows 0..145, which can never straighten
  the arm and can fold it through itself).

Key poses are authored in ``KEY_POSES``: direct angles, plus optional inverse-kinematics targets for
poses defined by contact (hands on hips, arms crossed, hands on knees), solved once on the average
skeleton by projected gradient descent within the limits. The sampler combines a lower-body key pose
with an arm gesture, blends neighbours of the same family, mirrors left/right, adds per-joint noise,
clamps to the limits, turns the person to any yaw with a modest pitch/roll, and rejects
self-intersecting results with a capsule test (``capsule_intersections``).
"""

from __future__ import annotations

import dataclasses
import functools
import os

import numpy as np
import torch

from munet.body.limits import euler_limits_deg, euler_to_matrix
from munet.body.lbs import forward_kinematics, matrix_to_axis_angle
from munet.body.skeleton import SMPL24_JOINTS, SMPL24_PARENTS

J = {name: i for i, name in enumerate(SMPL24_JOINTS)}
NUM_JOINTS = len(SMPL24_JOINTS)
HINGES = ("left_knee", "right_knee", "left_elbow", "right_elbow")
HINGE_INDEX = tuple(J[n] for n in HINGES)
# flexion from Anny's rest pose, degrees: knee rests ~10 deg bent, elbow ~43 deg bent
HINGE_RANGES_DEG = np.array([[-6.0, 140.0], [-6.0, 140.0], [-38.0, 100.0], [-38.0, 100.0]], np.float32)
# left/right swap of joints and hinges (a mirror image of a pose)
MIRROR_JOINTS = tuple(
    J[n.replace("left_", "RIGHT_").replace("right_", "left_").replace("RIGHT_", "right_")] for n in SMPL24_JOINTS
)
MIRROR_HINGES = (1, 0, 3, 2)


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


def hinge_axes_batch(rest_joints: torch.Tensor) -> torch.Tensor:
    """(B, 4, 3) unit hinge axes (order ``HINGES``) from rest joints (B, 24, 3): knees about +X, elbows
    about upper-arm x forward (the convention of ``munet.body.limits.hinge_axes``)."""
    batch = rest_joints.shape[0]
    forward = rest_joints.new_tensor([0.0, -1.0, 0.0]).expand(batch, 3)
    axes = []
    for name in HINGES:
        side = name.split("_")[0]
        if name.endswith("knee"):
            axes.append(rest_joints.new_tensor([1.0, 0.0, 0.0]).expand(batch, 3))
        else:
            upper = rest_joints[:, J[f"{side}_elbow"]] - rest_joints[:, J[f"{side}_shoulder"]]
            axis = torch.linalg.cross(upper, forward, dim=-1)
            axes.append(axis / axis.norm(dim=-1, keepdim=True))
    return torch.stack(axes, 1)


def local_rotations(euler_deg: torch.Tensor, hinge_deg: torch.Tensor, rest_joints: torch.Tensor) -> torch.Tensor:
    """(B, 24, 3) Euler degrees + (B, 4) hinge degrees -> (B, 24, 3, 3) local rotation matrices."""
    rotations = euler_to_matrix(torch.deg2rad(euler_deg))
    axes = hinge_axes_batch(rest_joints)  # (B, 4, 3)
    from munet.body.lbs import axis_angle_to_matrix

    hinge_rot = axis_angle_to_matrix(axes * torch.deg2rad(hinge_deg)[..., None])  # (B, 4, 3, 3)
    rotations = rotations.clone()
    rotations[:, list(HINGE_INDEX)] = hinge_rot
    return rotations


def to_axis_angle(poses: PoseBatch, rest_joints: torch.Tensor) -> torch.Tensor:
    """A ``PoseBatch`` on given rest skeletons (B, 24, 3) -> (B, 24, 3) axis-angle (the wire format)."""
    euler = torch.from_numpy(poses.euler_deg).to(rest_joints.dtype)
    hinge = torch.from_numpy(poses.hinge_deg).to(rest_joints.dtype)
    return matrix_to_axis_angle(local_rotations(euler, hinge, rest_joints))


# ------------------------------------------------------------------------------------------------
# The key-pose library. Angles for the LEFT side unless a pose gives both; ``sym`` copies left to
# right mirrored. Hinges: knee / elbow flexion from rest (elbow -30 ~ a relaxed straight arm).
# ------------------------------------------------------------------------------------------------

ARMS_RELAXED = {"left_shoulder": (-4, 38, 0), "right_shoulder": (-4, -38, 0), "left_elbow": -28, "right_elbow": -28}


def _arms(left: tuple, right: tuple | None = None, elbows: tuple = (-28, -28), wrists: tuple | None = None) -> dict:
    """Arm angles: shoulder Euler for the left arm and (optionally) the right arm given in LEFT-side
    terms (mirrored here), elbow flexions (left, right)."""
    right = left if right is None else right
    spec = {
        "left_shoulder": tuple(left),
        "right_shoulder": (right[0], -right[1], -right[2]),
        "left_elbow": elbows[0],
        "right_elbow": elbows[1],
    }
    if wrists is not None:
        spec["left_wrist"] = tuple(wrists[0])
        spec["right_wrist"] = (wrists[1][0], -wrists[1][1], -wrists[1][2])
    return spec


def _legs(left_hip: tuple, right_hip: tuple | None = None, knees: tuple = (0, 0), ankles: tuple | None = None) -> dict:
    """Leg angles, right given in LEFT-side terms (mirrored here)."""
    right_hip = left_hip if right_hip is None else right_hip
    spec = {
        "left_hip": tuple(left_hip),
        "right_hip": (right_hip[0], -right_hip[1], -right_hip[2]),
        "left_knee": knees[0],
        "right_knee": knees[1],
    }
    if ankles is not None:
        spec["left_ankle"] = tuple(ankles[0])
        spec["right_ankle"] = (ankles[1][0], -ankles[1][1], -ankles[1][2])
    return spec


STAND_LEGS = _legs((0, 3, 0), knees=(2, 2))

# Lower-body key poses: name -> (family, spec). Families group poses that may be blended together and
# decide which arm gestures fit.
LOWER_POSES: dict[str, tuple[str, dict]] = {
    "stand": ("stand", {**STAND_LEGS}),
    "stand_wide": ("stand", _legs((0, -6, 8), knees=(3, 3))),
    "contrapposto": ("stand", {"pelvis": (0, 4, 0), **_legs((0, 6, 0), (-12, -2, 10), knees=(0, 22)), "spine1": (0, -4, 0), "spine2": (0, -3, 0)}),
    "stand_cross_ankles": ("stand", _legs((-4, 9, -5), (4, 12, 8), knees=(6, 10))),
    "lean_back_foot": ("stand", {"pelvis": (-3, 0, 0), **_legs((-3, 2, 5), (-25, 4, 0), knees=(2, 45)), "spine1": (-5, 0, 0)}),
    "step_forward": ("stand", _legs((-22, 3, 0), (12, 3, 0), knees=(8, 14))),
    "lunge": ("lunge", {"pelvis": (4, 0, 0), **_legs((-85, 2, 0), (22, -2, 0), knees=(88, 40), ankles=((10, 0, 0), (-25, 0, 0))), "spine1": (-4, 0, 0)}),
    "lunge_deep": ("lunge", {**_legs((-95, 2, 0), (10, -2, 0), knees=(100, 85), ankles=((15, 0, 0), (-20, 0, 0)))}),
    "lunge_side": ("lunge", {**_legs((-20, -38, 10), (-5, -18, -10), knees=(85, 2))}),
    "sit_chair": ("sit", {**_legs((-88, 2, 0), knees=(90, 90)), "spine1": (6, 0, 0)}),
    "sit_chair_crossed_knees": ("sit", {**_legs((-95, 14, -8), (-80, 0, 5), knees=(85, 92)), "spine1": (4, 0, 0)}),
    "sit_chair_legs_forward": ("sit", {"pelvis": (-8, 0, 0), **_legs((-78, 2, 0), knees=(45, 55), ankles=((15, 0, 0), (15, 0, 0))), "spine1": (10, 0, 0)}),
    "sit_chair_one_leg_back": ("sit", {**_legs((-90, 2, 0), (-75, 4, 0), knees=(80, 120))}),
    "sit_floor_cross_legged": ("sit_floor", {**_legs((-75, -60, 40), knees=(130, 130)), "spine1": (10, 0, 0)}),
    "sit_floor_knees_up": ("sit_floor", {"pelvis": (-15, 0, 0), **_legs((-95, -6, 0), knees=(110, 110)), "spine1": (20, 0, 0), "spine2": (10, 0, 0)}),
    "sit_floor_legs_out": ("sit_floor", {"pelvis": (-10, 0, 0), **_legs((-80, -5, 0), knees=(8, 12)), "spine1": (14, 0, 0)}),
    "kneel": ("kneel", {"pelvis": (0, 0, 0), **_legs((-5, 2, 0), knees=(90, 90), ankles=((25, 0, 0), (25, 0, 0))), "spine1": (-3, 0, 0)}),
    "kneel_one_knee": ("kneel", {**_legs((-85, 2, 0), (0, 2, 0), knees=(95, 90), ankles=((10, 0, 0), (25, 0, 0)))}),
    "kneel_sit_heels": ("kneel", {"pelvis": (-5, 0, 0), **_legs((-45, 2, 0), knees=(138, 138), ankles=((25, 0, 0), (25, 0, 0))), "spine1": (8, 0, 0)}),
    "crouch": ("crouch", {"pelvis": (25, 0, 0), **_legs((-115, -12, 8), knees=(135, 135), ankles=((20, 0, 0), (20, 0, 0))), "spine1": (15, 0, 0), "spine2": (10, 0, 0)}),
    "squat_half": ("crouch", {"pelvis": (25, 0, 0), **_legs((-85, -10, 6), knees=(90, 90), ankles=((-15, 0, 0), (-15, 0, 0))), "spine1": (10, 0, 0)}),
    "bend_over": ("bend", {"pelvis": (45, 0, 0), **_legs((-45, 2, 0), knees=(8, 8)), "spine1": (20, 0, 0), "spine2": (10, 0, 0), "spine3": (5, 0, 0), "neck": (-25, 0, 0)}),
    "bend_knees": ("bend", {"pelvis": (40, 0, 0), **_legs((-70, -5, 0), knees=(65, 65), ankles=((-15, 0, 0), (-15, 0, 0))), "spine1": (20, 0, 0), "spine2": (10, 0, 0), "neck": (-20, 0, 0)}),
    "jump": ("jump", {**_legs((-45, 2, 0), knees=(75, 80), ankles=((25, 0, 0), (25, 0, 0)))}),
    "jump_star": ("jump", {**_legs((0, -30, 0), knees=(5, 5), ankles=((20, 0, 0), (20, 0, 0)))}),
    "kick": ("sport", {"pelvis": (-8, 0, 0), **_legs((-85, 5, 0), (8, 4, 0), knees=(15, 10), ankles=((20, 0, 0), (0, 0, 0))), "spine1": (-5, 0, 0)}),
    "knee_raise": ("sport", {**_legs((-95, 2, 0), (0, 3, 0), knees=(110, 3), ankles=((20, 0, 0), (0, 0, 0)))}),
    "stand_one_leg_back": ("sport", {**_legs((5, 3, 0), (0, 3, 0), knees=(95, 3))}),
    "warrior": ("lunge", {**_legs((-70, -25, 25), (20, -20, -30), knees=(80, 2)), "spine1": (-3, 0, 0)}),
    "dance_leg_lift": ("dance", {"pelvis": (0, 6, 0), **_legs((-40, -10, 10), (0, 6, 0), knees=(70, 5)), "spine1": (0, -6, 0), "spine2": (0, -6, 0)}),
    "dance_sway": ("dance", {"pelvis": (0, -8, 10), **_legs((0, 10, 0), (-20, -4, 0), knees=(5, 30)), "spine1": (0, 8, -8), "spine2": (0, 6, -5)}),
    "dance_step": ("dance", {"pelvis": (0, 0, -15), **_legs((15, -14, 0), (-35, 6, 0), knees=(40, 20)), "spine2": (0, 0, 12)}),
}

# Arm gestures: name -> (which lower families they suit, spec, ik targets or None). IK targets:
# joint -> (reference joint, offset in metres in the body frame of the average rest skeleton,
# weight); solved on the standing skeleton, so they suit upright poses.
ARM_GESTURES: dict[str, tuple[tuple[str, ...], dict, dict | None]] = {
    "relaxed": (("*",), {**ARMS_RELAXED}, None),
    "relaxed_bent": (("*",), _arms((-12, 36, 0), elbows=(0, 5)), None),
    "slightly_out": (("*",), _arms((0, 20, 0), (5, 28, 0), elbows=(-15, -10)), None),
    "hands_on_hips": (("stand", "lunge", "dance"), {}, {
        "left_wrist": ("pelvis", (0.2, 0.0, 0.1), 1.0), "right_wrist": ("pelvis", (-0.2, 0.0, 0.1), 1.0),
        "left_elbow": ("spine3", (0.3, 0.08, -0.15), 0.3), "right_elbow": ("spine3", (-0.3, 0.08, -0.15), 0.3)}),
    "one_hand_on_hip": (("stand", "lunge", "dance", "sit"), {"right_shoulder": (-4, -38, 0), "right_elbow": -25}, {
        "left_wrist": ("pelvis", (0.2, 0.0, 0.1), 1.0), "left_elbow": ("spine3", (0.3, 0.08, -0.15), 0.3)}),
    "arms_crossed": (("stand", "sit", "lunge"), {}, {
        "left_wrist": ("spine3", (-0.1, -0.22, -0.13), 1.0), "right_wrist": ("spine3", (0.08, -0.17, -0.1), 1.0),
        "left_elbow": ("spine3", (0.2, -0.1, -0.22), 0.4), "right_elbow": ("spine3", (-0.2, -0.08, -0.22), 0.4)}),
    "hands_clasped_front": (("stand", "sit", "kneel"), {}, {
        "left_wrist": ("pelvis", (0.04, -0.18, -0.05), 1.0), "right_wrist": ("pelvis", (-0.04, -0.18, -0.05), 1.0)}),
    "hands_behind_back": (("stand",), {}, {
        "left_wrist": ("pelvis", (0.05, 0.2, 0.05), 1.0), "right_wrist": ("pelvis", (-0.05, 0.2, 0.05), 1.0)}),
    "hands_in_pockets": (("stand", "lunge"), {}, {
        "left_wrist": ("pelvis", (0.18, -0.08, -0.08), 1.0), "right_wrist": ("pelvis", (-0.18, -0.08, -0.08), 1.0)}),
    "phone_at_ear": (("stand", "sit", "walk"), {"right_shoulder": (-4, -38, 0), "right_elbow": -20}, {
        "left_wrist": ("head", (0.1, -0.02, 0.0), 1.0), "left_elbow": ("spine3", (0.2, -0.1, -0.1), 0.3)}),
    "phone_in_front": (("stand", "sit", "walk"), {}, {
        "left_wrist": ("spine3", (0.05, -0.32, 0.0), 1.0), "right_wrist": ("spine3", (-0.05, -0.32, 0.0), 1.0)}),
    "wave": (("stand", "walk", "sit", "kneel", "lunge"), {"right_shoulder": (-4, -38, 0), "right_elbow": -28}, {
        "left_wrist": ("left_shoulder", (0.3, -0.08, 0.3), 1.0), "left_elbow": ("left_shoulder", (0.27, -0.02, -0.02), 0.5)}),
    "point_forward": (("stand", "walk", "lunge"), {**_arms((-85, 30, 0), (-4, 38, 0), elbows=(-30, -28))}, None),
    "point_side": (("stand", "lunge"), {**_arms((0, -40, 0), (-4, 38, 0), elbows=(-32, -25))}, None),
    "arms_up": (("stand", "jump", "dance", "kneel"), {**_arms((-20, -120, 0), elbows=(-25, -25))}, None),
    "arms_up_v": (("stand", "jump", "dance", "lunge"), {**_arms((0, -105, 0), elbows=(-30, -30))}, None),
    "t_pose": (("stand", "lunge", "jump", "sport"), {**_arms((0, -45, 0), elbows=(-35, -35))}, None),
    "arms_forward": (("stand", "crouch", "jump", "sport", "bend"), {**_arms((-80, 32, 5), elbows=(-30, -30))}, None),
    "hands_on_head": (("stand", "sit", "kneel"), {}, {
        "left_wrist": ("head", (0.06, 0.0, 0.15), 1.0), "right_wrist": ("head", (-0.06, 0.0, 0.15), 1.0),
        "left_elbow": ("head", (0.3, -0.03, 0.0), 0.4), "right_elbow": ("head", (-0.3, -0.03, 0.0), 0.4)}),
    "hand_on_chin": (("stand", "sit"), {"right_shoulder": (-4, -38, 0), "right_elbow": -25}, {
        "left_wrist": ("head", (0.0, -0.13, -0.1), 1.0), "left_elbow": ("spine3", (0.15, -0.22, -0.12), 0.4)}),
    "boxing_guard": (("stand", "lunge", "sport"), {}, {
        "left_wrist": ("spine3", (0.1, -0.3, 0.2), 1.0), "right_wrist": ("spine3", (-0.08, -0.26, 0.14), 1.0),
        "left_elbow": ("spine3", (0.2, -0.12, -0.1), 0.4), "right_elbow": ("spine3", (-0.2, -0.1, -0.12), 0.4)}),
    "throw": (("stand", "lunge", "sport"), {"right_shoulder": (-60, -20, 0), "right_elbow": -10}, {
        "left_wrist": ("left_shoulder", (0.12, 0.22, 0.25), 1.0), "left_elbow": ("left_shoulder", (0.27, 0.05, 0.0), 0.5)}),
    "selfie": (("stand", "walk", "sit"), {**_arms((-70, -20, -10), (-4, 38, 0), elbows=(-30, -28))}, None),
    "hands_on_knees": (("crouch", "bend", "sit", "sit_floor"), {}, {
        "left_wrist": ("left_knee", (0.0, -0.09, 0.05), 1.0), "right_wrist": ("right_knee", (0.0, -0.09, 0.05), 1.0)}),
    "hands_on_thighs": (("sit", "kneel"), {}, {
        "left_wrist": ("left_hip", (0.0, -0.11, -0.25), 1.0), "right_wrist": ("right_hip", (0.0, -0.11, -0.25), 1.0)}),
    "arms_around_knees": (("sit_floor",), {}, {
        "left_wrist": ("left_knee", (-0.06, -0.1, -0.12), 1.0), "right_wrist": ("right_knee", (0.06, -0.1, -0.12), 1.0)}),
    "lean_back_hands": (("sit_floor",), {**_arms((45, 10, 0), elbows=(-30, -30))}, None),
    "dance_arms": (("dance", "stand", "jump"), {**_arms((-30, -90, -20), (20, -30, 30), elbows=(60, 40))}, None),
    "dance_arms_2": (("dance", "stand"), {**_arms((-60, -50, 0), (10, 10, 0), elbows=(90, 80))}, None),
}

# relative weights of arm gestures among those that suit a pose (default 1)
GESTURE_WEIGHTS = {"relaxed": 6.0, "relaxed_bent": 5.0, "slightly_out": 3.0}

# how often each lower-body family is drawn (photos: mostly standing and walking)
FAMILY_WEIGHTS = {
    "stand": 0.30, "walk": 0.14, "run": 0.07, "sit": 0.10, "sit_floor": 0.04, "kneel": 0.04, "crouch": 0.05,
    "bend": 0.04, "lunge": 0.06, "jump": 0.04, "sport": 0.05, "dance": 0.07,
}  # fmt: skip


def gait_pose(phase: np.ndarray, run: np.ndarray, amplitude: np.ndarray) -> dict[str, np.ndarray]:
    """A walk or run cycle, analytically: angles (N,) per joint for phases in [0, 2 pi).

    phase 0: left leg forward (heel strike). run: (N,) bool. amplitude: (N,) scale in ~[0.7, 1.3].
    """
    s, c = np.sin(phase), np.cos(phase)
    hip_amp = np.where(run, 38.0, 22.0) * amplitude
    knee_swing = np.where(run, 95.0, 55.0) * amplitude
    knee_stance = np.where(run, 30.0, 8.0)
    arm_amp = np.where(run, 40.0, 18.0) * amplitude
    out: dict[str, np.ndarray] = {}
    left_hip = -hip_amp * c + np.where(run, -10.0, 0.0)  # forward at phase 0
    right_hip = hip_amp * c + np.where(run, -10.0, 0.0)
    # knee flexes in swing (leg moving forward): left swings during phase in (pi, 2 pi)
    left_knee = knee_stance + knee_swing * np.clip(-s, 0, None) ** 1.5
    right_knee = knee_stance + knee_swing * np.clip(s, 0, None) ** 1.5
    out["left_hip"] = np.stack([left_hip, np.full_like(s, 2.0), np.zeros_like(s)], -1)
    out["right_hip"] = np.stack([right_hip, np.full_like(s, -2.0), np.zeros_like(s)], -1)
    out["left_knee"], out["right_knee"] = left_knee, right_knee
    out["left_ankle"] = np.stack([8.0 * s, np.zeros_like(s), np.zeros_like(s)], -1)
    out["right_ankle"] = np.stack([-8.0 * s, np.zeros_like(s), np.zeros_like(s)], -1)
    # arms swing opposite to the legs; elbows bend more when running
    out["left_shoulder"] = np.stack([arm_amp * c - 4.0, np.full_like(s, 36.0), np.zeros_like(s)], -1)
    out["right_shoulder"] = np.stack([-arm_amp * c - 4.0, np.full_like(s, -36.0), np.zeros_like(s)], -1)
    elbow = np.where(run, 50.0, -18.0)
    out["left_elbow"] = elbow + np.where(run, 20.0, 12.0) * np.clip(-c, 0, None)
    out["right_elbow"] = elbow + np.where(run, 20.0, 12.0) * np.clip(c, 0, None)
    lean = np.where(run, 10.0, 2.0)
    out["pelvis"] = np.stack([lean, np.zeros_like(s), 5.0 * c * amplitude], -1)
    out["spine2"] = np.stack([np.zeros_like(s), np.zeros_like(s), -6.0 * c * amplitude], -1)
    return out


def _spec_to_arrays(spec: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A pose spec -> (24, 3) Euler degrees, (4,) hinge degrees, (24,) bool 'joint set by the spec'."""
    euler = np.zeros((NUM_JOINTS, 3), np.float32)
    hinge = np.zeros(4, np.float32)
    hinge[:2] = 2.0
    hinge[2:] = -28.0
    given = np.zeros(NUM_JOINTS, bool)
    for name, value in spec.items():
        if name in HINGES:
            hinge[HINGES.index(name)] = value
        else:
            euler[J[name]] = value
        given[J[name]] = True
    return euler, hinge, given


@functools.lru_cache(maxsize=1)
def average_rest_joints() -> torch.Tensor:
    """(1, 24, 3) float64 rest joints of the average Anny adult (what key poses are authored on).

    A fixed copy (the default phenotype, metres) so the library does not need to build Anny."""
    joints = [
        (0.0, -0.011, 0.87), (0.102, -0.008, 0.858), (-0.102, -0.008, 0.858), (0.0, 0.022, 0.937),
        (0.135, -0.04, 0.469), (-0.135, -0.04, 0.469), (0.0, 0.008, 1.081), (0.177, -0.004, 0.071),
        (-0.177, -0.004, 0.071), (0.0, 0.032, 1.213), (0.188, -0.136, 0.025), (-0.188, -0.136, 0.025),
        (0.0, -0.008, 1.379), (0.022, -0.026, 1.312), (-0.022, -0.026, 1.312), (0.0, -0.042, 1.476),
        (0.162, -0.017, 1.287), (-0.162, -0.017, 1.287), (0.329, -0.021, 1.098), (-0.329, -0.021, 1.098),
        (0.446, -0.179, 0.983), (-0.446, -0.179, 0.983), (0.488, -0.247, 0.93), (-0.488, -0.247, 0.93),
    ]  # fmt: skip
    return torch.tensor(joints, dtype=torch.float64)[None]


IK_JOINTS = ("left_wrist", "right_wrist", "left_elbow", "right_elbow")
ARM_CHAIN = frozenset(("left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
                       "left_hand", "right_hand"))


def _solve_arm_ik(base: list[tuple[np.ndarray, np.ndarray]], specs: list[dict], targets: list[dict],
                  iterations: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Solve the arm joints (collars, shoulders, elbow hinges) of gestures for their IK targets on the
    average skeleton posed by a lower-body key pose, within the limits, all at once (projected Adam).

    base: per problem, the lower pose's (24, 3) Euler degrees and (4,) hinges. specs: per problem, the
    gesture's fixed angles. targets: per problem, {joint in IK_JOINTS: (reference joint, offset (3,)
    metres in the reference joint's posed frame -- spine3's for arm joints --, weight)}.
    Returns (P, 24, 3) Euler degrees and (P, 4) hinges of the whole pose.
    """
    count = len(specs)
    rest = average_rest_joints().expand(count, -1, -1)
    euler = np.zeros((count, NUM_JOINTS, 3), np.float32)
    hinge = np.zeros((count, 4), np.float32)
    refs = np.zeros((count, len(IK_JOINTS)), np.int64)
    frames = np.zeros((count, len(IK_JOINTS)), np.int64)
    offsets = torch.zeros(count, len(IK_JOINTS), 3, dtype=torch.float64)
    weight = torch.zeros(count, len(IK_JOINTS), dtype=torch.float64)
    for g, ((lower_euler, lower_hinge), spec, target) in enumerate(zip(base, specs, targets)):
        # start from relaxed arms so the solver finds the natural elbow-down branch
        arm_euler, arm_hinge, _ = _spec_to_arrays({**ARMS_RELAXED, **spec})
        euler[g], hinge[g] = lower_euler, lower_hinge
        euler[g, list(ARM_JOINTS)] = arm_euler[list(ARM_JOINTS)]
        hinge[g, 2:] = arm_hinge[2:]
        for joint, (ref, offset, w) in target.items():
            k = IK_JOINTS.index(joint)
            refs[g, k] = J[ref]
            frames[g, k] = J["spine3"] if ref in ARM_CHAIN else J[ref]
            offsets[g, k] = torch.tensor(offset, dtype=torch.float64)
            weight[g, k] = w
    free = [J[n] for n in ("left_collar", "right_collar", "left_shoulder", "right_shoulder")]
    euler_t = torch.from_numpy(euler).double()
    hinge_t = torch.from_numpy(hinge).double()
    variables = torch.cat([euler_t[:, free].reshape(count, -1), hinge_t[:, 2:]], 1).clone().requires_grad_(True)
    low = torch.cat([torch.from_numpy(LIMITS_DEG[free, :, 0]).double().reshape(-1), torch.from_numpy(HINGE_RANGES_DEG[2:, 0]).double()])
    high = torch.cat([torch.from_numpy(LIMITS_DEG[free, :, 1]).double().reshape(-1), torch.from_numpy(HINGE_RANGES_DEG[2:, 1]).double()])
    ik_index = [J[n] for n in IK_JOINTS]
    rows = torch.arange(count)[:, None]
    refs_t, frames_t = torch.from_numpy(refs), torch.from_numpy(frames)

    def assemble(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e = euler_t.clone()
        e[:, free] = v[:, :12].reshape(count, 4, 3)
        h = hinge_t.clone()
        h[:, 2:] = v[:, 12:]
        return e, h

    # Adam by hand (torch.optim imports torch._dynamo, ~3 s)
    first, second = torch.zeros_like(variables), torch.zeros_like(variables)
    beta1, beta2, lr = 0.9, 0.999, 2.0
    for step in range(1, iterations + 1):
        e, h = assemble(variables)
        rotations, joints = forward_kinematics(local_rotations(e, h, rest), rest, SMPL24_PARENTS)
        goal = joints[rows, refs_t] + torch.einsum("pkij,pkj->pki", rotations[rows, frames_t], offsets)
        loss = (weight * ((joints[:, ik_index] - goal) ** 2).sum(-1)).sum() * 1e4
        loss = loss + 1e-3 * (variables[:, :6] ** 2).sum()  # the collars move little
        (grad,) = torch.autograd.grad(loss, variables)
        with torch.no_grad():
            first.mul_(beta1).add_(grad, alpha=1 - beta1)
            second.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            update = (first / (1 - beta1**step)) / ((second / (1 - beta2**step)).sqrt() + 1e-8)
            variables.sub_(lr * update)
            variables.copy_(torch.maximum(torch.minimum(variables, high), low))
    e, h = assemble(variables.detach())
    return e.numpy().astype(np.float32), h.numpy().astype(np.float32)


@dataclasses.dataclass(frozen=True)
class PoseLibrary:
    """Key poses as arrays.

    lower_names / lower_family: (L,) names and families of the lower-body key poses (plus "gait", the
    upright skeleton gestures are solved on for walking and running); lower_euler (L, 24, 3),
    lower_hinge (L, 4).
    arm_names: (A,) gestures; arm_families: per gesture, the lower families it suits ("*" = all).
    arm_euler (L, A, 24, 3), arm_hinge (L, A, 4): the gesture's arm angles solved on each lower pose
    (only the arm joints are meaningful; NaN where the gesture does not suit the pose).
    """

    lower_names: tuple[str, ...]
    lower_family: tuple[str, ...]
    lower_euler: np.ndarray
    lower_hinge: np.ndarray
    arm_names: tuple[str, ...]
    arm_families: tuple[tuple[str, ...], ...]
    arm_euler: np.ndarray
    arm_hinge: np.ndarray

    def fits(self, lower: int, arm: int) -> bool:
        return not np.isnan(self.arm_hinge[lower, arm, 2])


ARM_JOINTS = tuple(J[n] for n in SMPL24_JOINTS if any(k in n for k in ("collar", "shoulder", "elbow", "wrist", "hand")))


def _suits(families: tuple[str, ...], family: str) -> bool:
    if family == "gait":
        return "*" in families or "walk" in families
    return "*" in families or family in families


def _library_hash() -> str:
    from munet.paths import content_hash

    return content_hash(
        "pose-library-v1", repr(LOWER_POSES), repr(ARM_GESTURES), repr(ARMS_RELAXED), repr(STAND_LEGS),
        LIMITS_DEG.tobytes(), HINGE_RANGES_DEG.tobytes(), average_rest_joints().numpy().tobytes(),
    )  # fmt: skip


@functools.lru_cache(maxsize=1)
def pose_library() -> PoseLibrary:
    """The key-pose arrays, cached under ``munet.paths.cache_dir()`` by a hash of the definitions
    (building solves every IK gesture on every lower pose it suits, ~5 s single-threaded)."""
    from munet.paths import cache_dir

    path = cache_dir() / f"pose_library-{_library_hash()}.npz"
    if path.exists():
        data = np.load(path)
        lower = {**LOWER_POSES, "gait": ("gait", dict(STAND_LEGS))}
        return PoseLibrary(
            tuple(lower), tuple(f for f, _ in lower.values()), data["lower_euler"], data["lower_hinge"],
            tuple(ARM_GESTURES), tuple(f for f, _, _ in ARM_GESTURES.values()), data["arm_euler"], data["arm_hinge"],
        )  # fmt: skip
    library = _build_library()
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, lower_euler=library.lower_euler, lower_hinge=library.lower_hinge, arm_euler=library.arm_euler,
             arm_hinge=library.arm_hinge)
    tmp.replace(path)
    return library


def _build_library() -> PoseLibrary:
    lower = {**LOWER_POSES, "gait": ("gait", dict(STAND_LEGS))}
    lower_names = tuple(lower)
    lower_family = tuple(family for family, _ in lower.values())
    arrays = [_spec_to_arrays(spec)[:2] for _, spec in lower.values()]
    lower_euler = np.stack([a[0] for a in arrays])
    lower_hinge = np.stack([a[1] for a in arrays])
    arm_names = tuple(ARM_GESTURES)
    arm_families = tuple(families for families, _, _ in ARM_GESTURES.values())
    arm_euler = np.full((len(lower_names), len(arm_names), NUM_JOINTS, 3), np.nan, np.float32)
    arm_hinge = np.full((len(lower_names), len(arm_names), 4), np.nan, np.float32)
    problems = []
    for l, family in enumerate(lower_family):
        for a, (families, spec, targets) in enumerate(ARM_GESTURES.values()):
            if not _suits(families, family):
                continue
            if targets:
                problems.append((l, a))
            else:
                arm_euler[l, a], arm_hinge[l, a], _ = _spec_to_arrays({**ARMS_RELAXED, **spec})
    if problems:
        gestures = list(ARM_GESTURES.values())
        euler, hinge = _solve_arm_ik(
            [arrays[l] for l, _ in problems], [gestures[a][1] for _, a in problems], [gestures[a][2] for _, a in problems]
        )
        for k, (l, a) in enumerate(problems):
            arm_euler[l, a], arm_hinge[l, a] = euler[k], hinge[k]
    return PoseLibrary(lower_names, lower_family, lower_euler, lower_hinge, arm_names, arm_families, arm_euler, arm_hinge)


# per-joint noise std in degrees (X, Y, Z) and per hinge
_NOISE_DEG = {
    "pelvis": (3, 3, 0), "spine1": (4, 3, 4), "spine2": (3, 2, 3), "spine3": (3, 2, 3), "neck": (8, 6, 12),
    "head": (8, 6, 12), "collar": (3, 3, 3), "shoulder": (9, 9, 9), "wrist": (15, 10, 15), "hand": (8, 4, 4),
    "hip": (5, 3, 5), "ankle": (6, 4, 4), "foot": (4, 1, 1),
}  # fmt: skip
NOISE_DEG = np.array(
    [_NOISE_DEG.get(n, _NOISE_DEG.get(n.split("_", 1)[-1], (0, 0, 0))) for n in SMPL24_JOINTS], np.float32
)
HINGE_NOISE_DEG = np.array([5.0, 5.0, 10.0, 10.0], np.float32)


@dataclasses.dataclass
class PoseDraw:
    """What the sampler drew, for the record: key pose names (N,), arm gesture names (N,), family (N,)."""

    lower: list[str]
    arms: list[str]
    family: list[str]


def sample_poses(
    rng: np.random.Generator, count: int, noise_scale: float = 1.0, yaw_range_deg: float = 180.0,
    pitch_std_deg: float = 4.0, family_weights: dict[str, float] | None = None,
) -> tuple[PoseBatch, PoseDraw]:
    """Draw ``count`` poses (no intersection test; see ``capsule_intersections``).

    The root gets a yaw uniform in +-``yaw_range_deg`` (0 = facing -Y) on top of the key pose's own
    pitch and roll, plus a small random pitch/roll.
    """
    library = pose_library()
    weights = dict(FAMILY_WEIGHTS if family_weights is None else family_weights)
    families = list(weights)
    p = np.array([weights[f] for f in families], np.float64)
    p /= p.sum()
    euler = np.zeros((count, NUM_JOINTS, 3), np.float32)
    hinge = np.zeros((count, 4), np.float32)
    draw = PoseDraw([], [], [])
    arm_noise = np.ones(count, np.float32)  # contact gestures (IK-solved) get less arm noise
    for i in range(count):
        family = families[rng.choice(len(families), p=p)]
        if family in ("walk", "run"):
            gait = gait_pose(rng.uniform(0, 2 * np.pi, 1), np.array([family == "run"]), rng.uniform(0.7, 1.3, 1))
            e, h, _ = _spec_to_arrays({**STAND_LEGS, **ARMS_RELAXED})
            for name, value in gait.items():
                if name in HINGES:
                    h[HINGES.index(name)] = value[0]
                else:
                    e[J[name]] = value[0]
            lower_name = family
            k = library.lower_names.index("gait")
        else:
            members = [k for k, f in enumerate(library.lower_family) if f == family]
            k = members[rng.integers(len(members))]
            e, h = library.lower_euler[k].copy(), library.lower_hinge[k].copy()
            if len(members) > 1 and rng.random() < 0.3:  # blend towards a neighbour of the same family
                other = members[rng.integers(len(members))]
                alpha = rng.uniform(0.0, 0.5)
                e = (1 - alpha) * e + alpha * library.lower_euler[other]
                h = (1 - alpha) * h + alpha * library.lower_hinge[other]
            lower_name = library.lower_names[k]
        # arms: walking/running keep their swing most of the time; otherwise a gesture that fits
        arm_name = "gait"
        if family not in ("walk", "run") or rng.random() < 0.3:
            fits = [a for a in range(len(library.arm_names)) if library.fits(k, a)]
            # photos mostly show relaxed arms; every other gesture is equally likely
            fits_weights = np.array([GESTURE_WEIGHTS.get(library.arm_names[a], 1.0) for a in fits])
            a = fits[rng.choice(len(fits), p=fits_weights / fits_weights.sum())]
            arm_name = library.arm_names[a]
            if ARM_GESTURES[arm_name][2]:
                arm_noise[i] = 0.4
            e[list(ARM_JOINTS)] = library.arm_euler[k, a][list(ARM_JOINTS)]
            h[2:] = library.arm_hinge[k, a][2:]
        euler[i], hinge[i] = e, h
        draw.lower.append(lower_name)
        draw.arms.append(arm_name)
        draw.family.append(family)

    poses = PoseBatch(euler, hinge)
    flip = rng.random(count) < 0.5
    mirrored = poses.mirrored()
    poses = PoseBatch(np.where(flip[:, None, None], mirrored.euler_deg, poses.euler_deg),
                      np.where(flip[:, None], mirrored.hinge_deg, poses.hinge_deg))
    noise = rng.standard_normal((count, NUM_JOINTS, 3)).astype(np.float32) * NOISE_DEG * noise_scale
    noise[:, list(ARM_JOINTS)] *= arm_noise[:, None, None]
    hinge_noise = rng.standard_normal((count, 4)).astype(np.float32) * HINGE_NOISE_DEG * noise_scale
    hinge_noise[:, 2:] *= arm_noise[:, None]
    poses = PoseBatch(poses.euler_deg + noise, poses.hinge_deg + hinge_noise).clamped()
    # root: any yaw, modest pitch and roll on top of the key pose's own lean
    root = poses.euler_deg[:, 0]
    root[:, 0] += rng.normal(0.0, pitch_std_deg, count)
    root[:, 1] += rng.normal(0.0, pitch_std_deg * 0.6, count)
    yaw = rng.uniform(-yaw_range_deg, yaw_range_deg, count)
    poses.euler_deg[:, 0] = _compose_yaw(root, yaw)
    return poses, draw


def _compose_yaw(root_euler_deg: np.ndarray, yaw_deg: np.ndarray) -> np.ndarray:
    """Apply a world yaw on top of root rotations: R = Rz(yaw) @ R_root, returned as XYZ Euler (N, 3)."""
    rotation = euler_to_matrix(torch.deg2rad(torch.from_numpy(root_euler_deg).double()))
    yaw = torch.deg2rad(torch.from_numpy(yaw_deg).double())
    zero = torch.zeros_like(yaw)
    rz = euler_to_matrix(torch.stack([zero, zero, yaw], -1))
    return matrix_to_euler_deg(rz @ rotation).astype(np.float32)


def matrix_to_euler_deg(rotation: torch.Tensor) -> np.ndarray:
    """(..., 3, 3) -> (..., 3) XYZ Euler degrees with R = Rz @ Ry @ Rx (inverse of ``euler_to_matrix``)."""
    r = rotation.detach().double()
    y = torch.asin((-r[..., 2, 0]).clamp(-1.0, 1.0))
    x = torch.atan2(r[..., 2, 1], r[..., 2, 2])
    z = torch.atan2(r[..., 1, 0], r[..., 0, 0])
    return torch.rad2deg(torch.stack([x, y, z], -1)).numpy()


# ------------------------------------------------------------------------------------------------
# Self-intersection: capsules around bones, tested between parts that are not neighbours.
# ------------------------------------------------------------------------------------------------

# (name, start joint, end joint or None for the vertex-derived end); torso pieces are fat capsules
SEGMENTS = (
    ("pelvis", "pelvis", "spine1"), ("belly", "spine1", "spine2"), ("chest", "spine2", "spine3"),
    ("head", "neck", "head"),
    ("l_thigh", "left_hip", "left_knee"), ("r_thigh", "right_hip", "right_knee"),
    ("l_shin", "left_knee", "left_ankle"), ("r_shin", "right_knee", "right_ankle"),
    ("l_foot", "left_ankle", "left_foot"), ("r_foot", "right_ankle", "right_foot"),
    ("l_upper", "left_shoulder", "left_elbow"), ("r_upper", "right_shoulder", "right_elbow"),
    ("l_fore", "left_elbow", "left_wrist"), ("r_fore", "right_elbow", "right_wrist"),
    ("l_hand", "left_wrist", "left_hand"), ("r_hand", "right_wrist", "right_hand"),
)  # fmt: skip
SEGMENT_NAMES = tuple(s[0] for s in SEGMENTS)
# pairs allowed to touch or overlap (neighbours along the chain, and parts that meet at the hips/shoulders)
_ADJACENT = {
    ("pelvis", "belly"), ("belly", "chest"), ("chest", "head"), ("pelvis", "chest"), ("belly", "head"), ("pelvis", "l_thigh"), ("pelvis", "r_thigh"),
    ("l_thigh", "l_shin"), ("r_thigh", "r_shin"), ("l_shin", "l_foot"), ("r_shin", "r_foot"),
    ("chest", "l_upper"), ("chest", "r_upper"), ("l_upper", "l_fore"), ("r_upper", "r_fore"),
    ("l_fore", "l_hand"), ("r_fore", "r_hand"), ("belly", "l_thigh"), ("belly", "r_thigh"),
    ("l_thigh", "r_thigh"), ("l_hand", "r_hand"), ("head", "l_upper"), ("head", "r_upper"), ("belly", "l_upper"), ("belly", "r_upper"),
}  # fmt: skip
SEGMENT_PAIRS = tuple(
    (a, b) for a in range(len(SEGMENTS)) for b in range(a + 1, len(SEGMENTS))
    if (SEGMENT_NAMES[a], SEGMENT_NAMES[b]) not in _ADJACENT and (SEGMENT_NAMES[b], SEGMENT_NAMES[a]) not in _ADJACENT
)  # fmt: skip
SEGMENT_JOINTS = np.array([(J[s[1]], J[s[2]]) for s in SEGMENTS])


TORSO_SEGMENTS = ("pelvis", "belly", "chest")


def capsule_radii(rest_vertices: torch.Tensor, rest_joints: torch.Tensor, dense_weights: torch.Tensor,
                  quantile: float = 0.25, torso_quantile: float = 0.1) -> torch.Tensor:
    """(B, S) capsule radius per segment: a quantile of the distances from the vertices that the
    segment's start joint dominates (weight > 0.6) to the bone segment, in the rest pose (metres). The
    torso gets a low quantile, which keeps its capsules inside it (it is wider than it is deep)."""
    radii = []
    start = rest_joints[:, SEGMENT_JOINTS[:, 0]]  # (B, S, 3)
    end = rest_joints[:, SEGMENT_JOINTS[:, 1]]
    for s, (name, joint, _) in enumerate(SEGMENTS):
        members = torch.nonzero(dense_weights[:, J[joint]] > 0.6).squeeze(1)
        points = rest_vertices[:, members]  # (B, M, 3)
        d = _point_segment_distance(points, start[:, s, None], end[:, s, None])
        radii.append(torch.quantile(d, torso_quantile if name in TORSO_SEGMENTS else quantile, dim=1))
    return torch.stack(radii, 1)


def _point_segment_distance(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    ab = b - a
    t = (((p - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp(min=1e-12)).clamp(0.0, 1.0)
    return (p - (a + t[..., None] * ab)).norm(dim=-1)


def segment_distances(a0: torch.Tensor, a1: torch.Tensor, b0: torch.Tensor, b1: torch.Tensor) -> torch.Tensor:
    """Closest distance between segments [a0, a1] and [b0, b1], all (..., 3) -> (...,)."""
    d1, d2, r = a1 - a0, b1 - b0, a0 - b0
    a = (d1 * d1).sum(-1).clamp(min=1e-12)
    e = (d2 * d2).sum(-1).clamp(min=1e-12)
    f = (d2 * r).sum(-1)
    c = (d1 * r).sum(-1)
    b = (d1 * d2).sum(-1)
    denom = (a * e - b * b).clamp(min=1e-12)
    s = ((b * f - c * e) / denom).clamp(0.0, 1.0)
    t = (b * s + f) / e
    t_clamped = t.clamp(0.0, 1.0)
    s = torch.where(t != t_clamped, ((b * t_clamped - c) / a).clamp(0.0, 1.0), s)
    closest_a = a0 + s[..., None] * d1
    closest_b = b0 + t_clamped[..., None] * d2
    return (closest_a - closest_b).norm(dim=-1)


HAND_SEGMENTS = ("l_hand", "r_hand")


def capsule_intersections(posed_joints: torch.Tensor, radii: torch.Tensor, tolerance: float = 0.4,
                          hand_tolerance: float = 1.0) -> torch.Tensor:
    """(B,) bool: some non-neighbouring capsules overlap by more than ``tolerance`` x the thinner
    radius (soft tissue gives way: touching and light pressing are allowed); a hand may press in up to
    ``hand_tolerance`` x its radius (hands rest on, grip and tuck under other parts).

    posed_joints: (B, 24, 3) metres; radii: (B, S) from ``capsule_radii``.
    """
    pairs = torch.tensor(SEGMENT_PAIRS)
    seg = torch.from_numpy(SEGMENT_JOINTS)
    a0 = posed_joints[:, seg[pairs[:, 0], 0]]
    a1 = posed_joints[:, seg[pairs[:, 0], 1]]
    b0 = posed_joints[:, seg[pairs[:, 1], 0]]
    b1 = posed_joints[:, seg[pairs[:, 1], 1]]
    distance = segment_distances(a0, a1, b0, b1)  # (B, P)
    ra, rb = radii[:, pairs[:, 0]], radii[:, pairs[:, 1]]
    overlap = ra + rb - distance
    hand = torch.tensor([SEGMENT_NAMES[a] in HAND_SEGMENTS or SEGMENT_NAMES[b] in HAND_SEGMENTS for a, b in SEGMENT_PAIRS])
    allowed = torch.where(hand, hand_tolerance, tolerance) * torch.minimum(ra, rb)
    return (overlap > allowed).any(1)
