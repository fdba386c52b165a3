"""The pose sampler: a lower-body key pose (or a walk/run cycle) with an arm gesture that suits it,
blended towards a neighbour of the same family, mirrored, jittered per joint, clamped to the limits and
turned to any yaw. Every random choice comes from the caller's generator, in a fixed order: the data
engine's samples (and the held-out test set) are a function of the seed."""

from __future__ import annotations

import dataclasses

import numpy as np

from munet.body.skeleton import SMPL24_JOINTS
from training.data.poses.arm_gestures import ARM_GESTURES, ARMS_RELAXED, GESTURE_WEIGHTS
from training.data.poses.gait import gait_pose
from training.data.poses.library import PoseLibrary, pose_library
from training.data.poses.lower_poses import FAMILY_WEIGHTS, STAND_LEGS
from training.data.poses.representation import (
    ARM_JOINTS, HINGES, NUM_JOINTS, J, PoseBatch, compose_yaw, spec_to_arrays,
)  # fmt: skip

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
GAIT_FAMILIES = ("walk", "run")
CONTACT_ARM_NOISE = 0.4  # contact gestures (IK-solved) get less arm noise, so the hands stay near their targets


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
    arm_noise = np.ones(count, np.float32)
    for i in range(count):
        family = families[rng.choice(len(families), p=p)]
        e, h, lower_name, k = _draw_lower(rng, library, family)
        arm_name = _draw_arms(rng, library, family, k, e, h)
        if arm_name != "gait" and ARM_GESTURES[arm_name][2]:
            arm_noise[i] = CONTACT_ARM_NOISE
        euler[i], hinge[i] = e, h
        draw.lower.append(lower_name)
        draw.arms.append(arm_name)
        draw.family.append(family)
    poses = _mirror_and_jitter(rng, PoseBatch(euler, hinge), arm_noise, noise_scale)
    _turn_root(rng, poses, yaw_range_deg, pitch_std_deg)
    return poses, draw


def _draw_lower(rng: np.random.Generator, library: PoseLibrary, family: str) -> tuple[np.ndarray, np.ndarray, str, int]:
    """The lower body of one pose: a gait cycle (relaxed arms) for walk/run, else a key pose of the family,
    blended towards a neighbour 30 % of the time. Returns (24, 3) Euler and (4,) hinge degrees, the lower
    pose's name and its library row (the row arm gestures are looked up in)."""
    if family in GAIT_FAMILIES:
        gait = gait_pose(rng.uniform(0, 2 * np.pi, 1), np.array([family == "run"]), rng.uniform(0.7, 1.3, 1))
        e, h, _ = spec_to_arrays({**STAND_LEGS, **ARMS_RELAXED})
        for name, value in gait.items():
            if name in HINGES:
                h[HINGES.index(name)] = value[0]
            else:
                e[J[name]] = value[0]
        return e, h, family, library.lower_names.index("gait")
    members = [k for k, f in enumerate(library.lower_family) if f == family]
    k = members[rng.integers(len(members))]
    e, h = library.lower_euler[k].copy(), library.lower_hinge[k].copy()
    if len(members) > 1 and rng.random() < 0.3:  # blend towards a neighbour of the same family
        other = members[rng.integers(len(members))]
        alpha = rng.uniform(0.0, 0.5)
        e = (1 - alpha) * e + alpha * library.lower_euler[other]
        h = (1 - alpha) * h + alpha * library.lower_hinge[other]
    return e, h, library.lower_names[k], k


def _draw_arms(rng: np.random.Generator, library: PoseLibrary, family: str, k: int, e: np.ndarray, h: np.ndarray) -> str:
    """Arms for lower pose row ``k``, written into ``e`` (24, 3) and ``h`` (4,) in place: walking and
    running keep their swing 70 % of the time ("gait"); otherwise a gesture that suits the pose, relaxed
    arms favoured (``GESTURE_WEIGHTS``). Returns the gesture's name."""
    if family in GAIT_FAMILIES and rng.random() >= 0.3:
        return "gait"
    fits = [a for a in range(len(library.arm_names)) if library.fits(k, a)]
    fits_weights = np.array([GESTURE_WEIGHTS.get(library.arm_names[a], 1.0) for a in fits])
    a = fits[rng.choice(len(fits), p=fits_weights / fits_weights.sum())]
    e[list(ARM_JOINTS)] = library.arm_euler[k, a][list(ARM_JOINTS)]
    h[2:] = library.arm_hinge[k, a][2:]
    return library.arm_names[a]


def _mirror_and_jitter(rng: np.random.Generator, poses: PoseBatch, arm_noise: np.ndarray, noise_scale: float) -> PoseBatch:
    """Mirror half the poses left/right, add per-joint Gaussian noise (arm joints scaled by ``arm_noise``
    (N,)), clamp to the limits."""
    count = len(poses)
    flip = rng.random(count) < 0.5
    mirrored = poses.mirrored()
    poses = PoseBatch(np.where(flip[:, None, None], mirrored.euler_deg, poses.euler_deg),
                      np.where(flip[:, None], mirrored.hinge_deg, poses.hinge_deg))
    noise = rng.standard_normal((count, NUM_JOINTS, 3)).astype(np.float32) * NOISE_DEG * noise_scale
    noise[:, list(ARM_JOINTS)] *= arm_noise[:, None, None]
    hinge_noise = rng.standard_normal((count, 4)).astype(np.float32) * HINGE_NOISE_DEG * noise_scale
    hinge_noise[:, 2:] *= arm_noise[:, None]
    return PoseBatch(poses.euler_deg + noise, poses.hinge_deg + hinge_noise).clamped()


def _turn_root(rng: np.random.Generator, poses: PoseBatch, yaw_range_deg: float, pitch_std_deg: float) -> None:
    """In place: a modest random pitch and roll on top of the key pose's own lean, then any yaw."""
    count = len(poses)
    root = poses.euler_deg[:, 0]
    root[:, 0] += rng.normal(0.0, pitch_std_deg, count)
    root[:, 1] += rng.normal(0.0, pitch_std_deg * 0.6, count)
    yaw = rng.uniform(-yaw_range_deg, yaw_range_deg, count)
    poses.euler_deg[:, 0] = compose_yaw(root, yaw)
