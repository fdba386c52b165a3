"""A square, padded crop around the person: parameters, pixel mapping, and image resampling.

Pixel coordinates follow ``munet/reconstruction.py``: (0, 0) is the top-left corner of the top-left
pixel, x right, y down; a pixel's centre is at ``(i + 0.5, j + 0.5)``. The crop is the square
``[cx - side/2, cx + side/2] x [cy - side/2, cy + side/2]`` of the full photo, resampled to
``resolution x resolution`` pixels, so ``crop = (full - corner) * resolution / side``.
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np


@dataclasses.dataclass(frozen=True)
class CropParams:
    """A square region of the full photo.

    center_px: (cx, cy) centre of the square, pixels of the full photo.
    side_px: side length in pixels of the full photo (may extend past the photo's borders).
    """

    center_px: tuple[float, float]
    side_px: float

    @property
    def corner_px(self) -> tuple[float, float]:
        """(x0, y0) top-left corner of the square, pixels of the full photo."""
        return self.center_px[0] - 0.5 * self.side_px, self.center_px[1] - 0.5 * self.side_px

    def scale(self, resolution: int) -> float:
        """Crop pixels per full-photo pixel."""
        return resolution / self.side_px

    def matrix(self, resolution: int) -> np.ndarray:
        """(3, 3) float64 affine map from full-photo pixels to crop pixels (homogeneous, corner
        convention). Intrinsics of the crop: ``K_crop = matrix(resolution) @ K_full``."""
        s = self.scale(resolution)
        x0, y0 = self.corner_px
        return np.array([[s, 0.0, -s * x0], [0.0, s, -s * y0], [0.0, 0.0, 1.0]])

    def to_crop(self, points_px: np.ndarray, resolution: int) -> np.ndarray:
        """Map (..., 2) full-photo pixels to crop pixels at ``resolution``; float64."""
        points = np.asarray(points_px, dtype=np.float64)
        return (points - np.asarray(self.corner_px)) * self.scale(resolution)

    def to_full(self, points_crop: np.ndarray, resolution: int) -> np.ndarray:
        """Map (..., 2) crop pixels at ``resolution`` back to full-photo pixels; float64."""
        points = np.asarray(points_crop, dtype=np.float64)
        return points / self.scale(resolution) + np.asarray(self.corner_px)


def crop_params(box: tuple[float, float, float, float], image_size: tuple[int, int], pad: float = 0.15) -> CropParams:
    """The square crop for a person box.

    box: (x0, y0, x1, y1) pixels of the full photo, x1 > x0, y1 > y0.
    image_size: (width, height) of the full photo; the crop is centred on the box and may extend past
        the photo (those pixels come out as zeros), but its side never exceeds what covers the photo
        twice over.
    pad: margin added on each side, as a fraction of the box's longer side
        (``side = max(w, h) * (1 + 2 * pad)``).
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)) or x1 <= x0 or y1 <= y0:
        raise ValueError(f"box must be finite (x0, y0, x1, y1) with x1 > x0 and y1 > y0, got {box}")
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    width, height = image_size
    side = max(x1 - x0, y1 - y0) * (1.0 + 2.0 * pad)
    side = min(max(side, 1.0), 2.0 * max(width, height, 1))
    return CropParams(center_px=(0.5 * (x0 + x1), 0.5 * (y0 + y1)), side_px=side)


def crop_image(
    array: np.ndarray, params: CropParams, resolution: int, interpolation: int = cv2.INTER_LINEAR
) -> np.ndarray:
    """Resample the crop square of an image or mask to ``resolution x resolution``.

    array: (H, W) or (H, W, C) full-photo image (uint8 RGB, float32 mask in [0, 1], ...).
    Returns (resolution, resolution[, C]), same dtype; pixels outside the photo are 0. When the crop
    shrinks the image by more than 2x, it is first reduced with a Gaussian pyramid (anti-aliasing),
    keeping the exact ``CropParams.to_crop`` mapping.
    """
    array = np.asarray(array)
    if array.ndim not in (2, 3) or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"array must have shape (H, W) or (H, W, C) with H, W > 0, got {array.shape}")
    if resolution <= 0:
        raise ValueError(f"resolution must be positive, got {resolution}")
    if array.dtype == np.bool_:
        raise ValueError("crop a float32 mask, not a bool array (convert with .astype(np.float32))")

    scale = params.scale(resolution)
    levels = 0
    while scale * 2 ** (levels + 1) <= 1.0:
        levels += 1

    # Slice the square (plus the pyramid's kernel margin) so the pyramid only touches what is needed.
    height, width = array.shape[:2]
    x0, y0 = params.corner_px
    margin = 2 ** (levels + 2)
    ix0 = max(int(math.floor(x0)) - margin, 0)
    iy0 = max(int(math.floor(y0)) - margin, 0)
    ix1 = min(int(math.ceil(x0 + params.side_px)) + margin, width)
    iy1 = min(int(math.ceil(y0 + params.side_px)) + margin, height)
    channels = array.shape[2:]
    if ix1 <= ix0 or iy1 <= iy0:  # the square misses the photo entirely
        return np.zeros((resolution, resolution, *channels), array.dtype)
    region = np.ascontiguousarray(array[iy0:iy1, ix0:ix1])

    # Full-photo pixels -> region pixels -> pyramid-level pixels -> crop pixels. pyrDown centres output
    # pixel i on input pixel 2i: c' = c / 2 in centre coordinates, p' = (p + 0.5) / 2 in corner ones.
    full_to_level = np.array([[1.0, 0.0, -ix0], [0.0, 1.0, -iy0], [0.0, 0.0, 1.0]])
    halve = np.array([[0.5, 0.0, 0.25], [0.0, 0.5, 0.25], [0.0, 0.0, 1.0]])
    for _ in range(levels):
        region = cv2.pyrDown(region)
        full_to_level = halve @ full_to_level
    level_to_crop = params.matrix(resolution) @ np.linalg.inv(full_to_level)
    # cv2 uses pixel-centre coordinates: shift in by +0.5 and out by -0.5.
    to_centre = np.array([[1.0, 0.0, -0.5], [0.0, 1.0, -0.5], [0.0, 0.0, 1.0]])
    from_centre = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    warp = (to_centre @ level_to_crop @ from_centre)[:2]
    out = cv2.warpAffine(
        region,
        warp,
        (resolution, resolution),
        flags=interpolation,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    return out.reshape(resolution, resolution, *channels)
