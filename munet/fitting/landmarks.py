"""How the fit uses the 33 MediaPipe landmarks: per-landmark trust, bones for 3D directions, facing.

Landmark order is ``munet.detect.MEDIAPIPE_LANDMARKS`` (= ``munet.body.keypoints.MEDIAPIPE_LANDMARKS``).
"""

from __future__ import annotations

import numpy as np

from munet.detect.landmarks import MEDIAPIPE_LANDMARKS

LM = {name: i for i, name in enumerate(MEDIAPIPE_LANDMARKS)}
FACE = tuple(range(0, 11))
EARS = (LM["left_ear"], LM["right_ear"])

# Relative trust of each landmark in the 2D term (times the detector's visibility). MediaPipe's hips sit
# elsewhere than any skeleton's hips (DESIGN.md §7) and hand landmarks jitter: both count less.
_BASE_WEIGHT = {
    "nose": 0.6, "left_eye_inner": 0.2, "left_eye": 0.3, "left_eye_outer": 0.2, "right_eye_inner": 0.2,
    "right_eye": 0.3, "right_eye_outer": 0.2, "left_ear": 0.6, "right_ear": 0.6, "mouth_left": 0.2,
    "mouth_right": 0.2, "left_shoulder": 1.0, "right_shoulder": 1.0, "left_elbow": 1.0, "right_elbow": 1.0,
    "left_wrist": 1.0, "right_wrist": 1.0, "left_pinky": 0.3, "right_pinky": 0.3, "left_index": 0.3,
    "right_index": 0.3, "left_thumb": 0.2, "right_thumb": 0.2, "left_hip": 0.6, "right_hip": 0.6,
    "left_knee": 1.0, "right_knee": 1.0, "left_ankle": 1.0, "right_ankle": 1.0, "left_heel": 0.8,
    "right_heel": 0.8, "left_foot_index": 0.8, "right_foot_index": 0.8,
}  # fmt: skip
BASE_WEIGHTS = np.array([_BASE_WEIGHT[n] for n in MEDIAPIPE_LANDMARKS], np.float32)

FACING_AWAY_FACE_FACTOR = 0.1
"""On back views MediaPipe puts face landmarks on the back of the head (DESIGN.md §7): trust them less."""

# Bones whose 3D direction the world keypoints suggest: (from, to, weight).
BONES = (
    ("left_hip", "right_hip", 1.0), ("left_shoulder", "right_shoulder", 1.0),
    ("mid_hip", "mid_shoulder", 1.0), ("mid_shoulder", "nose", 0.3),
    ("left_shoulder", "left_elbow", 1.0), ("left_elbow", "left_wrist", 1.0),
    ("right_shoulder", "right_elbow", 1.0), ("right_elbow", "right_wrist", 1.0),
    ("left_hip", "left_knee", 1.0), ("left_knee", "left_ankle", 1.0),
    ("right_hip", "right_knee", 1.0), ("right_knee", "right_ankle", 1.0),
    ("left_heel", "left_foot_index", 0.5), ("right_heel", "right_foot_index", 0.5),
    ("left_wrist", "left_index", 0.2), ("right_wrist", "right_index", 0.2),
)  # fmt: skip

LEGS = {
    "left": ("left_knee", "left_ankle", "left_heel", "left_foot_index"),
    "right": ("right_knee", "right_ankle", "right_heel", "right_foot_index"),
}
HIP = {"left": "left_hip", "right": "right_hip"}
FEET = {"left": ("left_ankle", "left_heel", "left_foot_index"), "right": ("right_ankle", "right_heel", "right_foot_index")}


def with_midpoints(points: np.ndarray) -> dict[str, np.ndarray]:
    """(..., 33, 3) -> name -> (..., 3), with ``mid_hip`` and ``mid_shoulder`` added."""
    named = {name: points[..., i, :] for name, i in LM.items()}
    named["mid_hip"] = 0.5 * (named["left_hip"] + named["right_hip"])
    named["mid_shoulder"] = 0.5 * (named["left_shoulder"] + named["right_shoulder"])
    return named


EXTENDED = {**LM, "mid_hip": len(LM), "mid_shoulder": len(LM) + 1}
BONE_FROM = np.array([EXTENDED[a] for a, _, _ in BONES])
BONE_TO = np.array([EXTENDED[b] for _, b, _ in BONES])


def extend_with_midpoints(points):
    """(B, 33, 3) torch points -> (B, 35, 3) with ``mid_hip`` and ``mid_shoulder`` appended."""
    import torch

    mid_hip = 0.5 * (points[:, LM["left_hip"]] + points[:, LM["right_hip"]])
    mid_shoulder = 0.5 * (points[:, LM["left_shoulder"]] + points[:, LM["right_shoulder"]])
    return torch.cat([points, mid_hip[:, None], mid_shoulder[:, None]], 1)


def bone_weights(landmark_weights: np.ndarray) -> np.ndarray:
    """(len(BONES),) trust of each bone's world direction: its weight times the smaller trust of its ends."""
    w = {name: float(landmark_weights[i]) for name, i in LM.items()}
    w["mid_hip"] = min(w["left_hip"], w["right_hip"])
    w["mid_shoulder"] = min(w["left_shoulder"], w["right_shoulder"])
    return np.array([weight * min(w[a], w[b]) for a, b, weight in BONES], np.float32)


def torso_frame(world: np.ndarray) -> np.ndarray:
    """(33, 3) world keypoints (camera-aligned Blender frame) -> (3, 3) rotation taking the rest pose's
    axes (left = +X, up = +Z, facing -Y) onto the person's: columns are left, back, up."""
    named = with_midpoints(world)
    left = (named["left_hip"] - named["right_hip"]) + (named["left_shoulder"] - named["right_shoulder"])
    up = named["mid_shoulder"] - named["mid_hip"]
    up = up / max(np.linalg.norm(up), 1e-9)
    left = left - up * (left @ up)
    left = left / max(np.linalg.norm(left), 1e-9)
    back = np.cross(up, left)  # rest: up (Z) x left (X) = +Y = back
    return np.stack([left, back, up], 1)


def facing_away(world: np.ndarray) -> bool:
    """True when the torso's front points away from the camera (+Y in the camera-aligned frame)."""
    facing = -torso_frame(world)[:, 1]
    return bool(facing[1] > 0)


def flip_leg_depth(world: np.ndarray, side: str, segment: str) -> np.ndarray:
    """Mirror part of a leg in depth (Y of the camera-aligned frame): the ambiguity 2D cannot see.

    segment: ``"leg"`` mirrors knee and below about the hip's depth; ``"shank"`` mirrors ankle and foot
    about the knee's depth; ``"thigh"`` mirrors the knee about the hip and carries the shank along
    unchanged. Returns a copy of (33, 3).
    """
    out = world.copy()
    knee, ankle, heel, toe = (LM[n] for n in LEGS[side])
    hip_y = out[LM[HIP[side]], 1]
    if segment == "leg":
        out[[knee, ankle, heel, toe], 1] = 2.0 * hip_y - out[[knee, ankle, heel, toe], 1]
    elif segment == "shank":
        out[[ankle, heel, toe], 1] = 2.0 * out[knee, 1] - out[[ankle, heel, toe], 1]
    elif segment == "thigh":
        shift = 2.0 * (hip_y - out[knee, 1])
        out[[knee, ankle, heel, toe], 1] += shift
    else:
        raise ValueError(f"segment must be 'leg', 'shank' or 'thigh', got {segment!r}")
    return out
