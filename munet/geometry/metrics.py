"""2D alignment metrics, in the units the report uses (the pipeline's report and the evaluation's
protocol, ``training.evaluation.metrics``, both use these)."""

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
    """Weighted mean Euclidean distance (pixels) between (N, 2) predicted and target keypoints.

    weights: (N,) non-negative floats, or bool (a plain mean over the True ones). Keypoints with zero
    weight are left out entirely (a NaN there does not spread); NaN when every weight is zero.
    """
    weights = np.asarray(weights, np.float64)
    used = weights > 0
    if not used.any():
        return float("nan")
    difference = np.asarray(predicted_px, np.float64)[used] - np.asarray(target_px, np.float64)[used]
    distance = np.linalg.norm(difference, axis=1)
    return float((weights[used] * distance).sum() / weights[used].sum())
