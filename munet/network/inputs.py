"""The network's appearance-free input: the crop's soft mask and 33 keypoint heatmaps, and the
detector's metric 3D keypoints.

Both the trainer (synthetic samples) and the pipeline (MediaPipe on a photo) build it here, so the
network sees the same thing in both places.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def make_input(mask: torch.Tensor, keypoints_crop: torch.Tensor, visibility: torch.Tensor, size: int,
               sigma: float) -> torch.Tensor:
    """mask: (B, R, R) soft mask in [0, 1]; keypoints_crop: (B, 33, 2) crop pixels (corner convention,
    x right, y down) of an R-pixel crop; visibility: (B, 33) in [0, 1] -> (B, 34, size, size) float32.

    Heatmap k is a Gaussian (sigma in input pixels) at the keypoint, scaled by its visibility.
    """
    if mask.ndim != 3 or keypoints_crop.shape[1:] != (33, 2) or visibility.shape[1:] != (33,):
        raise ValueError(f"expected mask (B, R, R), keypoints (B, 33, 2), visibility (B, 33); got "
                         f"{tuple(mask.shape)}, {tuple(keypoints_crop.shape)}, {tuple(visibility.shape)}")
    mask = mask.float()
    resolution = mask.shape[-1]
    small = F.interpolate(mask[:, None], size=(size, size), mode="area") if resolution != size else mask[:, None]
    points = keypoints_crop.float() * (size / resolution)  # input pixels, corner convention
    centres = torch.arange(size, dtype=torch.float32, device=mask.device) + 0.5
    gx = torch.exp(-((centres[None, None] - points[..., :1]) ** 2) / (2 * sigma**2))  # (B, 33, S)
    gy = torch.exp(-((centres[None, None] - points[..., 1:]) ** 2) / (2 * sigma**2))
    heat = gy[..., :, None] * gx[..., None, :] * visibility.float().clamp(0, 1)[..., None, None]
    return torch.cat([small, heat], 1)


ALIGNED_TO_CANONICAL = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
"""Camera-aligned Blender frame (X right, Y away, Z up) -> the network's canonical frame (OpenCV axes)."""


def make_world_input(world_keypoints_m: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """world_keypoints_m: (B, 33, 3) the detector's hip-centred metric landmarks, camera-aligned Blender
    frame (``munet.detect.Detection.world_keypoints_m``); seen: (B, 33) bool -> (B, 33, 3) float32 in the
    canonical frame, zero where the keypoint was not seen (MediaPipe invents those)."""
    if world_keypoints_m.shape[1:] != (33, 3) or seen.shape[1:] != (33,):
        raise ValueError(f"expected world keypoints (B, 33, 3) and seen (B, 33); got "
                         f"{tuple(world_keypoints_m.shape)}, {tuple(seen.shape)}")
    canonical = world_keypoints_m.float() @ ALIGNED_TO_CANONICAL.T.to(world_keypoints_m.device)
    return canonical * seen.to(torch.bool)[..., None].float()
