"""MediaPipe Pose landmark layout, body-part groups and the world-frame conversion (pure functions).

Frames used by the front end (see ``munet/reconstruction.py`` for the project-wide conventions):

* **Image pixels**: x right, y down, (0, 0) is the top-left corner of the top-left pixel, so a pixel
  ``(i, j)`` (column, row) covers ``[i, i + 1) x [j, j + 1)`` and its centre is ``(i + 0.5, j + 0.5)``.
* **MediaPipe world** (``pose_world_landmarks``): metres, origin at the midpoint of the hips, axes
  aligned with the camera: x to the image's right, y to the image's bottom, z away from the camera
  (MediaPipe: "the smaller the value, the closer the landmark is to the camera"). It is the OpenCV
  camera frame's orientation with a hip-centred origin and a standard body size.
* **Camera-aligned Blender frame** (what ``Detection.world_keypoints_m`` holds): metres, hip-centred,
  X = image right, Y = away from the camera (depth), Z = up. It is Blender's convention (Z up, a person
  who faces the camera faces -Y and has their left at +X) for a camera that looks along +Y with no roll.
  The conversion is the proper rotation ``(x, y, z)_mp -> (x, z, -y)``; the OpenCV camera frame of such
  a camera is ``R_world_to_cam = MEDIAPIPE_WORLD_TO_BLENDER.T`` (``(X, Y, Z) -> (X, -Z, Y)``).
"""

from __future__ import annotations

import numpy as np

MEDIAPIPE_LANDMARKS: tuple[str, ...] = (
    "nose",
    "left_eye_inner",
    "left_eye",
    "left_eye_outer",
    "right_eye_inner",
    "right_eye",
    "right_eye_outer",
    "left_ear",
    "right_ear",
    "mouth_left",
    "mouth_right",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_pinky",
    "right_pinky",
    "left_index",
    "right_index",
    "left_thumb",
    "right_thumb",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
    "left_heel",
    "right_heel",
    "left_foot_index",
    "right_foot_index",
)
"""The 33 MediaPipe Pose landmarks in MediaPipe's order ("left" is the person's left)."""

NUM_LANDMARKS = len(MEDIAPIPE_LANDMARKS)

_INDEX = {name: i for i, name in enumerate(MEDIAPIPE_LANDMARKS)}

MIRRORED_LANDMARKS = np.array([_INDEX[name.replace("left", "RIGHT").replace("right", "left").replace("RIGHT", "right")]
                               for name in MEDIAPIPE_LANDMARKS])
"""(33,) each landmark's counterpart in the left-right mirror image (left <-> right; the nose is its own):
``points[MIRRORED_LANDMARKS]`` relabels a mirrored person's landmarks."""

BODY_PARTS: dict[str, tuple[int, ...]] = {
    "head": tuple(range(0, 11)),
    "shoulders": (_INDEX["left_shoulder"], _INDEX["right_shoulder"]),
    "left_arm": (_INDEX["left_elbow"], _INDEX["left_wrist"]),
    "right_arm": (_INDEX["right_elbow"], _INDEX["right_wrist"]),
    "left_hand": (_INDEX["left_pinky"], _INDEX["left_index"], _INDEX["left_thumb"]),
    "right_hand": (_INDEX["right_pinky"], _INDEX["right_index"], _INDEX["right_thumb"]),
    "hips": (_INDEX["left_hip"], _INDEX["right_hip"]),
    "left_leg": (_INDEX["left_knee"], _INDEX["left_ankle"]),
    "right_leg": (_INDEX["right_knee"], _INDEX["right_ankle"]),
    "left_foot": (_INDEX["left_heel"], _INDEX["left_foot_index"]),
    "right_foot": (_INDEX["right_heel"], _INDEX["right_foot_index"]),
}
"""Body part -> indices into ``MEDIAPIPE_LANDMARKS``. A part is *seen* when at least half its
landmarks are seen (in the frame and visible enough)."""

_PAIRED_PARTS = {"arms": "arm", "hands": "hand", "legs": "leg", "feet": "foot"}

MEDIAPIPE_WORLD_TO_BLENDER = np.array(
    [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]], dtype=np.float32
)
"""(3, 3) rotation taking MediaPipe world points (x right, y down, z away from the camera) to the
camera-aligned Blender frame (X right, Y away from the camera, Z up): ``p_blender = M @ p_mp``."""


def mediapipe_world_to_blender(points_mp: np.ndarray) -> np.ndarray:
    """Convert MediaPipe world points to the camera-aligned Blender frame.

    points_mp: (..., 3) metres, MediaPipe world frame (see the module docstring).
    Returns (..., 3) float32, metres, camera-aligned Blender frame: ``(x, y, z) -> (x, z, -y)``.
    """
    points_mp = np.asarray(points_mp, dtype=np.float32)
    return points_mp @ MEDIAPIPE_WORLD_TO_BLENDER.T


def in_frame(keypoints_px: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Which keypoints lie inside the photo.

    keypoints_px: (N, 2) pixels of the full photo (corner convention, see the module docstring).
    image_size: (width, height) in pixels.
    Returns (N,) bool, True where ``0 <= x < width`` and ``0 <= y < height``.
    """
    width, height = image_size
    x, y = keypoints_px[:, 0], keypoints_px[:, 1]
    return (x >= 0) & (x < width) & (y >= 0) & (y < height)


def unseen_parts(seen: np.ndarray) -> tuple[str, ...]:
    """Name the body parts that were not seen.

    seen: (33,) bool, per MediaPipe landmark: in the frame and visible enough.
    Returns part names in ``BODY_PARTS`` order, where a left/right pair that is unseen on both sides is
    collapsed to its plural (``"legs"``, ``"feet"``, ``"arms"``, ``"hands"``); e.g. a head-and-shoulders
    photo gives ``("left_arm", "hands", "hips", "legs", "feet")`` or similar.
    """
    seen = np.asarray(seen, dtype=bool)
    if seen.shape != (NUM_LANDMARKS,):
        raise ValueError(f"seen must have shape ({NUM_LANDMARKS},), got {seen.shape}")
    unseen = [part for part, indices in BODY_PARTS.items() if 2 * int(seen[list(indices)].sum()) < len(indices)]
    names: list[str] = []
    for part in unseen:
        side, _, kind = part.partition("_")
        if side in ("left", "right"):
            plural = next(p for p, s in _PAIRED_PARTS.items() if s == kind)
            other = ("right_" if side == "left" else "left_") + kind
            if other in unseen:
                if plural not in names:
                    names.append(plural)
                continue
        names.append(part)
    return tuple(names)
