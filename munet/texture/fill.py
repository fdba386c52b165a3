"""Filling an image where its weight is low: a pull-push pyramid (Gortler et al. 1996), vectorised with OpenCV.

Pull: average the weighted colours and the weights down a pyramid of halvings, so every coarse level knows
a weighted mean of what lies beneath. Push: from the coarsest level back up, each level keeps its own
colour where its weight is high and takes the (bilinearly upsampled) coarser level elsewhere. Nothing
stays empty, known texels keep their colour, and holes fill smoothly from all their borders.
"""

from __future__ import annotations

import cv2
import numpy as np

CONFIDENT = 0.25
"""A pyramid level's averaged weight at which its own colour fully wins over the coarser level's."""


def _half(stack: np.ndarray) -> np.ndarray:
    h, w = stack.shape[:2]
    out = cv2.resize(stack, (max(1, (w + 1) // 2), max(1, (h + 1) // 2)), interpolation=cv2.INTER_AREA)
    return out.reshape(*out.shape[:2], stack.shape[2])


def pull_push(colour: np.ndarray, weight: np.ndarray, skip_levels: int = 0) -> np.ndarray:
    """Fill an image by pull-push.

    colour: (H, W, C) float32, any values where ``weight`` is 0; weight: (H, W) float32 in [0, 1].
    skip_levels: start the pyramid this many halvings down and upsample the result (a smooth fill at a
    fraction of the cost; known texels then come back slightly blurred).
    Returns (H, W, C) float32: ``colour`` where the weight is high, a smooth fill from the known texels
    elsewhere (zeros when nothing is known).
    """
    colour = np.asarray(colour, np.float32)
    height, width, channels = colour.shape
    weight = np.clip(np.asarray(weight, np.float32), 0.0, 1.0)[..., None]
    stack = np.concatenate([colour * weight, weight], axis=2)  # premultiplied colour + weight
    for _ in range(skip_levels):
        stack = _half(stack)
    levels = [stack]
    while max(levels[-1].shape[:2]) > 1:
        levels.append(_half(levels[-1]))
    top = levels[-1]
    filled = top[..., :channels] / np.maximum(top[..., channels:], 1e-8)
    for level in reversed(levels[:-1]):
        up = cv2.resize(filled, (level.shape[1], level.shape[0]), interpolation=cv2.INTER_LINEAR)
        up = up.reshape(*level.shape[:2], channels)
        w = level[..., channels:]
        own = level[..., :channels] / np.maximum(w, 1e-8)
        filled = up + np.minimum(w * (1.0 / CONFIDENT), 1.0) * (own - up)
    if skip_levels:
        filled = cv2.resize(filled, (width, height), interpolation=cv2.INTER_LINEAR).reshape(height, width, channels)
    return filled
