"""2D alignment metrics, in the units the report uses."""

from __future__ import annotations

import numpy as np


def silhouette_iou(predicted: np.ndarray, target: np.ndarray) -> float:
    """Intersection over union of two (H, W) masks (bool, or float thresholded at 0.5). 1.0 when both
    are empty."""
    a = predicted if predicted.dtype == np.bool_ else predicted >= 0.5
    b = target if target.dtype == np.bool_ else target >= 0.5
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape: {a.shape} vs {b.shape}")
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def keypoint_error(predicted_px: np.ndarray, target_px: np.ndarray, weights: np.ndarray) -> float:
    """Weighted mean Euclidean distance (pixels) between (N, 2) predicted and target keypoints; NaN when
    every weight is zero."""
    weights = np.asarray(weights, np.float64)
    if weights.sum() <= 0:
        return float("nan")
    distance = np.linalg.norm(np.asarray(predicted_px, np.float64) - np.asarray(target_px, np.float64), axis=1)
    return float((weights * distance).sum() / weights.sum())
