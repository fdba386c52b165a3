"""The key-pose library as arrays: every lower-body key pose, and every arm gesture solved on every
lower pose it suits (IK gestures by ``arm_ik``), cached on disk by a hash of the definitions."""

from __future__ import annotations

import dataclasses
import functools
import os

import numpy as np

from training.data.poses.arm_gestures import ARM_GESTURES, ARMS_RELAXED
from training.data.poses.arm_ik import average_rest_joints, solve_arm_ik
from training.data.poses.lower_poses import LOWER_POSES, STAND_LEGS
from training.data.poses.representation import HINGE_RANGES_DEG, LIMITS_DEG, NUM_JOINTS, spec_to_arrays


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


def _lower_poses() -> dict[str, tuple[str, dict]]:
    """The lower-body key poses plus "gait" (the standing legs walking and running gestures use)."""
    return {**LOWER_POSES, "gait": ("gait", dict(STAND_LEGS))}


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
        lower = _lower_poses()
        return PoseLibrary(
            tuple(lower), tuple(f for f, _ in lower.values()), data["lower_euler"], data["lower_hinge"],
            tuple(ARM_GESTURES), tuple(f for f, _, _ in ARM_GESTURES.values()), data["arm_euler"], data["arm_hinge"],
        )  # fmt: skip
    library = build_library()
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, lower_euler=library.lower_euler, lower_hinge=library.lower_hinge, arm_euler=library.arm_euler,
             arm_hinge=library.arm_hinge)
    tmp.replace(path)
    return library


def build_library() -> PoseLibrary:
    """The library computed from the definitions (no cache): direct gestures copied, IK gestures solved."""
    lower = _lower_poses()
    lower_names = tuple(lower)
    lower_family = tuple(family for family, _ in lower.values())
    arrays = [spec_to_arrays(spec)[:2] for _, spec in lower.values()]
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
                arm_euler[l, a], arm_hinge[l, a], _ = spec_to_arrays({**ARMS_RELAXED, **spec})
    if problems:
        gestures = list(ARM_GESTURES.values())
        euler, hinge = solve_arm_ik(
            [arrays[l] for l, _ in problems], [gestures[a][1] for _, a in problems], [gestures[a][2] for _, a in problems]
        )
        for k, (l, a) in enumerate(problems):
            arm_euler[l, a], arm_hinge[l, a] = euler[k], hinge[k]
    return PoseLibrary(lower_names, lower_family, lower_euler, lower_hinge, arm_names, arm_families, arm_euler, arm_hinge)
