"""What the fit matches: the targets taken from one photo (the state being fitted is ``body_fit.FitState``)."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class FitTargets:
    """Everything the fit matches, from one detection (pixels of the full photo, corner convention).

    keypoints_px: (33, 2) float32 MediaPipe landmarks. keypoint_weights: (33,) float32 trust (visibility x
    per-landmark weight, 0 for unseen/out-of-frame). world_m: (33, 3) float32 MediaPipe world keypoints,
    camera-aligned Blender frame (X right, Y away, Z up), hip-centred. mask: (H, W) bool person mask.
    mask_outline_px: (N, 2) float64 boundary pixel centres of the mask. scale_px: the person's standing
    height in pixels, roughly (normalises 2D errors). focal_px, principal_px: intrinsics. image_size:
    (width, height). contact: per foot (``"left"``, ``"right"``), whether it is taken to touch the floor.
    facing_away: the torso's front points away from the camera. seen: (33,) bool. world_weights: (33,)
    float32 trust in each world keypoint (0 where the landmark was not seen: MediaPipe invents those).
    joint_prior_scale: (24,) float32 multiplier of each smpl24 joint's pose prior (large for limbs the
    photo does not show, which are then held at a relaxed standing pose).
    """

    keypoints_px: np.ndarray
    keypoint_weights: np.ndarray
    world_m: np.ndarray
    mask: np.ndarray
    mask_outline_px: np.ndarray
    scale_px: float
    focal_px: float
    principal_px: tuple[float, float]
    image_size: tuple[int, int]
    contact: dict[str, bool]
    facing_away: bool
    seen: np.ndarray
    world_weights: np.ndarray
    joint_prior_scale: np.ndarray | None = None  # (24,) pose-prior multiplier, > 1 for unseen limbs
    focal_log_sigma: float = 0.35  # prior spread of log(focal / focal_px): estimated, or held when from EXIF
    shape_prior: np.ndarray | None = None  # (S,) centre of the shape prior (the network's shape); None: average
    cache: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)  # torch views, see body_fit
