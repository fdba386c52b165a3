"""MediaPipe Pose on the full photo: keypoints, world keypoints, person mask, person box, unseen parts.

Uses the legacy ``mp.solutions.pose.Pose`` of mediapipe 0.10.21 (the last release that bundles the
Pose models), static-image mode, ``model_complexity=1`` (0 and 2 try to download their model and fail
offline), segmentation on. Frames and pixel conventions: see ``munet/detect/landmarks.py``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time

import cv2
import numpy as np

from munet.detect.image_io import LoadedImage
from munet.detect.landmarks import (
    MEDIAPIPE_LANDMARKS,
    NUM_LANDMARKS,
    in_frame,
    mediapipe_world_to_blender,
    unseen_parts,
)
from munet.errors import MunetError, NoPersonFoundError
from munet.paths import INSTALL_HINT

logger = logging.getLogger(__name__)

VISIBILITY_THRESHOLD = 0.5
"""A landmark counts as seen when it is inside the photo and its visibility is at least this."""

MASK_THRESHOLD = 0.5
"""Mask values at or above this are the person (for the person box)."""

MODEL_COMPLEXITY = 1
"""The only complexity whose model ships in the mediapipe wheel (0 and 2 download theirs)."""


@dataclasses.dataclass(frozen=True)
class Detection:
    """One person found in a photo.

    keypoints_px: (33, 2) float32, pixels of the full photo (x right, y down, corner convention),
        MediaPipe order (``landmark_names``). Points outside the photo are MediaPipe's extrapolation.
    visibility: (33,) float32 in [0, 1], MediaPipe's visibility as it reports it. It can be
        over-confident, notably for points outside the photo: use ``seen`` / ``keypoint_weights``.
    in_frame: (33,) bool, the keypoint lies inside the photo.
    seen: (33,) bool, ``in_frame & (visibility >= VISIBILITY_THRESHOLD)``.
    presence: (33,) float32 in [0, 1], or None (the legacy solution API does not report presence).
    keypoint_depth: (33,) float32, MediaPipe's relative depth of each image landmark (same scale as x
        in normalised image units, hip midpoint 0, smaller = closer to the camera).
    world_keypoints_m: (33, 3) float32, metres, hip-centred, camera-aligned Blender frame
        (X image right, Y away from the camera, Z up; see ``landmarks.MEDIAPIPE_WORLD_TO_BLENDER``).
    mask: (H, W) float32 in [0, 1], soft person mask at the photo's size.
    person_box_px: (x0, y0, x1, y1) float, pixels of the full photo, clipped to the photo: the box around
        the person's mask and seen keypoints.
    image_size: (width, height) of the photo in pixels.
    landmark_names: the 33 names of ``MEDIAPIPE_LANDMARKS``.
    unseen_parts: body parts not seen (out of the photo or low visibility), see
        ``landmarks.unseen_parts``; empty when the whole body was seen.
    confidence: scalar in [0, 1]: the mean visibility of the keypoints inside the photo (the legacy
        API gives no detection score).
    """

    keypoints_px: np.ndarray
    visibility: np.ndarray
    in_frame: np.ndarray
    seen: np.ndarray
    presence: np.ndarray | None
    keypoint_depth: np.ndarray
    world_keypoints_m: np.ndarray
    mask: np.ndarray
    person_box_px: tuple[float, float, float, float]
    image_size: tuple[int, int]
    landmark_names: tuple[str, ...]
    unseen_parts: tuple[str, ...]
    confidence: float

    @property
    def keypoint_weights(self) -> np.ndarray:
        """(33,) float32 weights for fitting: visibility inside the photo, 0 outside it."""
        return np.where(self.in_frame, self.visibility, 0.0).astype(np.float32)

    def report(self) -> dict:
        """JSON-serialisable summary for the reconstruction report."""
        return {
            "image_size": list(self.image_size),
            "confidence": round(float(self.confidence), 4),
            "person_box_px": [round(float(v), 1) for v in self.person_box_px],
            "unseen_parts": list(self.unseen_parts),
            "seen_keypoints": int(self.seen.sum()),
        }


class PoseDetector:
    """MediaPipe Pose, created once and reused; ``detect`` is serialised by a lock (the graph is not
    thread-safe). Use as a context manager or call ``close()``.

    visibility_threshold: see ``VISIBILITY_THRESHOLD``.
    """

    def __init__(self, visibility_threshold: float = VISIBILITY_THRESHOLD):
        try:
            import mediapipe as mp  # deferred: ~1 s import, only needed when detecting
        except ImportError as e:  # installed apart, --no-deps (requirements-mediapipe.txt)
            raise MunetError(f"MediaPipe (mediapipe==0.10.21, the person detector) is not installed in this "
                             f"environment ({e}): {INSTALL_HINT}, or run `pip install --no-deps mediapipe==0.10.21` "
                             "in it") from e

        self.visibility_threshold = float(visibility_threshold)
        self._lock = threading.Lock()
        started = time.perf_counter()
        self._pose = mp.solutions.pose.Pose(
            static_image_mode=True,
            model_complexity=MODEL_COMPLEXITY,
            enable_segmentation=True,
        )
        logger.debug("MediaPipe Pose created in %.0f ms", 1000 * (time.perf_counter() - started))

    def close(self) -> None:
        """Release the MediaPipe graph; idempotent."""
        with self._lock:
            if self._pose is not None:
                self._pose.close()
                self._pose = None

    def __enter__(self) -> "PoseDetector":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def detect(self, image: LoadedImage | np.ndarray) -> Detection:
        """Find the (one) person in a photo.

        image: a ``LoadedImage`` or an (H, W, 3) uint8 RGB array.
        Raises ``NoPersonFoundError`` when MediaPipe finds nobody, ``ValueError`` for a wrong array.
        """
        rgb = image.rgb if isinstance(image, LoadedImage) else np.asarray(image)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
            raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
        rgb = np.ascontiguousarray(rgb)
        started = time.perf_counter()
        with self._lock:
            if self._pose is None:
                raise RuntimeError("PoseDetector.detect called after close()")
            result = self._pose.process(rgb)
            # Copy out while holding the lock: the next call reuses MediaPipe's buffers.
            landmarks = _landmark_array(result.pose_landmarks)
            world = _landmark_array(result.pose_world_landmarks)
            mask = None if result.segmentation_mask is None else np.array(result.segmentation_mask, np.float32)
        elapsed_ms = 1000 * (time.perf_counter() - started)
        logger.debug("MediaPipe Pose ran in %.0f ms on %dx%d", elapsed_ms, rgb.shape[1], rgb.shape[0])
        if landmarks is None or world is None:
            raise NoPersonFoundError(
                "no person was found in the photo: use a photo where one person is clearly visible "
                "(at least head and shoulders)"
            )
        height, width = rgb.shape[:2]
        if mask is None or mask.shape != (height, width):
            mask = np.zeros((height, width), np.float32) if mask is None else cv2.resize(mask, (width, height))
        return _build_detection(landmarks, world, np.clip(mask, 0.0, 1.0), (width, height), self.visibility_threshold)


def _landmark_array(landmark_list) -> np.ndarray | None:
    """MediaPipe landmark list -> (33, 5) float32 [x, y, z, visibility, presence] (presence NaN if unset)."""
    if landmark_list is None:
        return None
    rows = [
        (lm.x, lm.y, lm.z, lm.visibility, lm.presence if lm.HasField("presence") else np.nan)
        for lm in landmark_list.landmark
    ]
    if len(rows) != NUM_LANDMARKS:
        raise RuntimeError(f"MediaPipe returned {len(rows)} landmarks, expected {NUM_LANDMARKS}")
    return np.asarray(rows, np.float32)


def _build_detection(
    landmarks: np.ndarray, world: np.ndarray, mask: np.ndarray, image_size: tuple[int, int], threshold: float
) -> Detection:
    width, height = image_size
    keypoints = (landmarks[:, :2] * np.array([width, height], np.float32)).astype(np.float32)
    visibility = np.clip(landmarks[:, 3], 0.0, 1.0).astype(np.float32)
    inside = in_frame(keypoints, image_size)
    seen = inside & (visibility >= threshold)
    presence = None if np.isnan(landmarks[:, 4]).any() else np.clip(landmarks[:, 4], 0.0, 1.0)
    confidence = float(visibility[inside].mean()) if inside.any() else 0.0
    return Detection(
        keypoints_px=keypoints,
        visibility=visibility,
        in_frame=inside,
        seen=seen,
        presence=presence,
        keypoint_depth=landmarks[:, 2].copy(),
        world_keypoints_m=mediapipe_world_to_blender(world[:, :3]),
        mask=mask,
        person_box_px=person_box(mask, keypoints, seen, image_size),
        image_size=(width, height),
        landmark_names=MEDIAPIPE_LANDMARKS,
        unseen_parts=unseen_parts(seen),
        confidence=confidence,
    )


def person_box(
    mask: np.ndarray, keypoints_px: np.ndarray, seen: np.ndarray, image_size: tuple[int, int]
) -> tuple[float, float, float, float]:
    """The box around the person: the union of the seen keypoints and the mask's connected components
    that contain one of them (the largest component when none does; other blobs are ignored), clipped to
    the photo.

    mask: (H, W) float32 in [0, 1]. keypoints_px: (33, 2) pixels. seen: (33,) bool.
    Returns (x0, y0, x1, y1) floats, pixels of the full photo (corner convention).
    """
    width, height = image_size
    points = keypoints_px[seen]
    binary = (mask >= MASK_THRESHOLD).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    boxes = []
    if count > 1:
        keep = np.zeros(count - 1, bool)
        if len(points):
            cols = np.clip(points[:, 0].astype(int), 0, width - 1)
            rows = np.clip(points[:, 1].astype(int), 0, height - 1)
            touched = np.unique(labels[rows, cols])
            keep[touched[touched > 0] - 1] = True
        if not keep.any():  # no seen keypoint lies on the mask: trust its largest blob
            keep[np.argmax(stats[1:, cv2.CC_STAT_AREA])] = True
        for label in np.flatnonzero(keep) + 1:
            x, y, w, h = stats[label, :4]
            boxes.append((x, y, x + w, y + h))
    if len(points):
        boxes.append((points[:, 0].min(), points[:, 1].min(), points[:, 0].max() + 1, points[:, 1].max() + 1))
    if not boxes:  # nothing seen and an empty mask: fall back to every in-frame keypoint, else the photo
        inside = in_frame(keypoints_px, image_size)
        if inside.any():
            pts = keypoints_px[inside]
            boxes.append((pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max() + 1, pts[:, 1].max() + 1))
        else:
            boxes.append((0, 0, width, height))
    b = np.asarray(boxes, np.float64)
    x0, y0 = max(b[:, 0].min(), 0.0), max(b[:, 1].min(), 0.0)
    x1, y1 = min(b[:, 2].max(), float(width)), min(b[:, 3].max(), float(height))
    return float(x0), float(y0), float(x1), float(y1)
