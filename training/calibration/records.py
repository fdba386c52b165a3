"""Per-image records of the calibration: the truth of a synthetic person and what a detector (the real
MediaPipe or the simulator) reported for it, as flat arrays that stack along a first axis.

Truth (from the data engine's sample): ``gt_px`` (33, 2) true landmarks in the engine's photo pixels,
``in_frame`` / ``visible`` (33,) bool, ``landmarks_cam`` (33, 3) metres in the OpenCV camera frame,
``stature_m``, ``height_px`` (the clothed person's projected height), ``framing``, ``image_size``
(width, height), ``camera_pitch_deg`` (how far the camera looks down), ``true_crop`` (cx, cy, side) the
pipeline's crop around the true person box, ``crop`` (cx, cy, side) the sample's crop and ``gt_mask``
the clean silhouette in it (packed bits, ``resolution`` squared).

Detection: ``detected`` bool, ``keypoints_px`` (33, 2) in the engine's photo pixels, ``visibility``
(33,), ``world_cv`` (33, 3) metres, hip-centred, OpenCV camera axes (MediaPipe's own world frame),
``det_crop`` (cx, cy, side) the pipeline's crop around the detector's person box, ``mask_iou`` and
``mask_bias_px`` (the soft mask at 0.5 against the clean silhouette in the sample's crop; bias = area
difference over the true outline's length, crop pixels). NaN where the detector missed.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from munet.detect.crop import crop_params
from munet.detect.landmarks import MEDIAPIPE_WORLD_TO_BLENDER, in_frame
from munet.geometry.projection import project_pinhole

CROP_PAD = 0.15  # the pipeline's crop padding (munet.detect.crop_params)


def to_camera(points_world: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(B, N, 3) world points -> OpenCV camera frame with R (B, 3, 3), t (B, 3)."""
    return np.einsum("bij,bnj->bni", R, points_world) + t[:, None]


def truth_records(sample: dict, regressor) -> dict[str, np.ndarray]:
    """The truth fields of a stacked engine batch; regressor: ``munet.body.keypoints.MediaPipeRegressor``."""
    R, t, K = sample["R_world_to_cam"].astype(np.float64), sample["t_world_to_cam_m"].astype(np.float64), sample["K"].astype(np.float64)
    with torch.no_grad():
        landmarks_world = regressor(torch.from_numpy(sample["body_vertices_m"]).float()).numpy()
    landmarks_cam = to_camera(landmarks_world.astype(np.float64), R, t)
    clothed_px = project_pinhole(to_camera(sample["clothed_vertices_m"].astype(np.float64), R, t), K)
    sizes = sample["image_size"]
    true_crop = []
    for b in range(len(sizes)):
        width, height = (float(v) for v in sizes[b])
        lo, hi = clothed_px[b].min(0), clothed_px[b].max(0)
        box = (max(lo[0], 0.0), max(lo[1], 0.0), min(hi[0], width), min(hi[1], height))
        if box[2] - box[0] < 2 or box[3] - box[1] < 2:
            box = (0.0, 0.0, width, height)
        crop = crop_params(box, (int(width), int(height)), pad=CROP_PAD)
        true_crop.append([*crop.center_px, crop.side_px])
    up_cam = R[:, :, 2]  # the world's up axis in camera coordinates
    gt_px = sample["gt_keypoints_px"].astype(np.float32)
    return {
        "gt_px": gt_px,
        "in_frame": np.stack([in_frame(gt_px[b], tuple(sizes[b])) for b in range(len(sizes))]),
        "visible": sample["gt_visible"].astype(bool),
        "landmarks_cam": landmarks_cam.astype(np.float32),
        "stature_m": sample["stature_m"].astype(np.float32),
        "height_px": np.ptp(clothed_px[..., 1], axis=1).astype(np.float32),
        "framing": sample["framing"].astype(np.int16),
        "image_size": sizes.astype(np.int32),
        "camera_pitch_deg": np.degrees(np.arctan2(-up_cam[:, 2], -up_cam[:, 1])).astype(np.float32),
        "true_crop": np.asarray(true_crop, np.float32),
        "crop": np.concatenate([sample["crop_center_px"], sample["crop_side_px"][:, None]], 1).astype(np.float32),
        "gt_mask": np.packbits(sample["gt_mask"].reshape(len(sizes), -1), axis=1),
    }


def unpack_mask(packed: np.ndarray, resolution: int) -> np.ndarray:
    """(..., R*R/8) packed bits -> (..., R, R) bool."""
    bits = np.unpackbits(packed, axis=-1, count=resolution * resolution)
    return bits.reshape(*packed.shape[:-1], resolution, resolution).astype(bool)


def mask_metrics(soft: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(IoU, boundary bias in pixels) of a soft mask (R, R) thresholded at 0.5 against a bool mask."""
    pred = soft >= 0.5
    union = np.logical_or(pred, truth).sum()
    iou = float(np.logical_and(pred, truth).sum() / union) if union else 1.0
    t8 = truth.astype(np.uint8)
    outline = max(int((t8 - cv2.erode(t8, np.ones((3, 3), np.uint8))).sum()), 1)
    return iou, float((int(pred.sum()) - int(truth.sum())) / outline)


def empty_detection(count: int) -> dict[str, np.ndarray]:
    """Detection fields of ``count`` images, all missed (NaN)."""
    return {
        "detected": np.zeros(count, bool),
        "keypoints_px": np.full((count, 33, 2), np.nan, np.float32),
        "visibility": np.full((count, 33), np.nan, np.float32),
        "world_cv": np.full((count, 33, 3), np.nan, np.float32),
        "det_crop": np.full((count, 3), np.nan, np.float32),
        "mask_iou": np.full(count, np.nan, np.float32),
        "mask_bias_px": np.full(count, np.nan, np.float32),
    }


def real_detection(out: dict, k: int, detection, scale: float, crop: np.ndarray, truth_mask: np.ndarray) -> None:
    """Fill row ``k`` of ``out`` (``empty_detection``) from a ``munet.detect.pose.Detection`` on a render
    ``scale`` times the engine's photo; crop: the sample's (cx, cy, side); truth_mask: (R, R) bool."""
    width, height = detection.image_size
    size = (int(round(width / scale)), int(round(height / scale)))
    out["detected"][k] = True
    out["keypoints_px"][k] = detection.keypoints_px / scale
    out["visibility"][k] = detection.visibility
    out["world_cv"][k] = detection.world_keypoints_m @ MEDIAPIPE_WORLD_TO_BLENDER
    x0, y0, x1, y1 = (v / scale for v in detection.person_box_px)
    det = crop_params((x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)), size, pad=CROP_PAD)
    out["det_crop"][k] = [*det.center_px, det.side_px]
    res = truth_mask.shape[0]
    s = res / (float(crop[2]) * scale)
    corner = (crop[:2] - 0.5 * crop[2]) * scale
    affine = np.array([[s, 0.0, -s * corner[0]], [0.0, s, -s * corner[1]]], np.float64)
    soft = cv2.warpAffine(detection.mask, affine, (res, res), flags=cv2.INTER_LINEAR, borderValue=0.0)
    out["mask_iou"][k], out["mask_bias_px"][k] = mask_metrics(soft, truth_mask)


def simulated_detection(sample: dict) -> dict[str, np.ndarray]:
    """Detection fields of a stacked engine batch: the simulator's own output."""
    count = len(sample["index"])
    out = empty_detection(count)
    found = sample["detected"].astype(bool) if "detected" in sample else np.ones(count, bool)
    out["detected"] = found
    out["keypoints_px"] = np.where(found[:, None, None], sample["keypoints_px"], np.nan).astype(np.float32)
    out["visibility"] = np.where(found[:, None], sample["visibility"], np.nan).astype(np.float32)
    out["world_cv"] = np.where(found[:, None, None], sample["world_keypoints_m"] @ MEDIAPIPE_WORLD_TO_BLENDER, np.nan).astype(np.float32)
    crops = np.concatenate([sample["crop_center_px"], sample["crop_side_px"][:, None]], 1)
    out["det_crop"] = np.where(found[:, None], crops, np.nan).astype(np.float32)
    for k in np.flatnonzero(found):
        out["mask_iou"][k], out["mask_bias_px"][k] = mask_metrics(sample["mask"][k], sample["gt_mask"][k])
    return out
