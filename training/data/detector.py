"""What MediaPipe would see: the front end of ``munet.detect`` simulated on synthetic people.

Per sample: the 33 MediaPipe landmarks (``munet.body.keypoints.MediaPipeRegressor`` on the body),
projected into the full photo; visibility from self-occlusion (a z-buffer of the clothed surface)
and the photo's bounds; MediaPipe-like errors (Gaussian noise scaled by the person's size and
larger where occluded or outside the photo, outliers, left/right swaps of a limb or of the whole
body -- the front/back confusion --, limb dropouts, over-confident visibility); a soft, slightly
noisy person mask rendered from the clothed surface; metric world landmarks in the detector's
camera-aligned Blender frame; and the crop the pipeline would take (``munet.detect.crop``: a square
around the person box, padded, possibly reaching past the photo, where it reads zeros).

Visibility semantics match ``munet.detect.pose.Detection``: ``visibility`` is the detector's own
score in [0, 1] (over-confident at times), ``in_frame`` whether the point lies in the photo,
``seen = in_frame & visibility >= 0.5``.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import torch

from munet.detect.crop import CropParams, crop_params
from munet.detect.landmarks import MEDIAPIPE_LANDMARKS, MEDIAPIPE_WORLD_TO_BLENDER, MIRRORED_LANDMARKS
from munet.detect.pose import VISIBILITY_THRESHOLD
from munet.geometry.projection import project_pinhole
from munet.geometry.raster import rasterize

L = {name: i for i, name in enumerate(MEDIAPIPE_LANDMARKS)}
NUM_LANDMARKS = len(MEDIAPIPE_LANDMARKS)
SWAP = MIRRORED_LANDMARKS  # a whole-body left/right swap of the labels
ARM_LANDMARKS = tuple(L[f"{s}_{p}"] for s in ("left", "right") for p in ("elbow", "wrist", "pinky", "index", "thumb"))
LEG_LANDMARKS = tuple(L[f"{s}_{p}"] for s in ("left", "right") for p in ("knee", "ankle", "heel", "foot_index"))
LIMBS = {
    side + "_" + kind: tuple(L[f"{side}_{p}"] for p in parts)
    for side in ("left", "right")
    for kind, parts in (("arm", ("elbow", "wrist", "pinky", "index", "thumb")), ("leg", ("knee", "ankle", "heel", "foot_index")))
}
# relative noise per landmark: the face is precise, extremities are not
NOISE_FACTOR = np.array(
    [0.6 if i <= L["mouth_right"] else 1.0 if "shoulder" in n or "hip" in n or "elbow" in n or "knee" in n
     else 1.3 if "wrist" in n or "ankle" in n else 1.6 for i, n in enumerate(MEDIAPIPE_LANDMARKS)], np.float32
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class DetectorConfig:
    """Error model of the simulated detector: by default chosen by hand to resemble MediaPipe's errors on
    real photos (not fitted to data; the shipped network's training data used it); with ``calibration``
    set, fitted to the real MediaPipe.

    noise_px: range of the per-sample keypoint noise std, as a fraction of the person's height.
    outlier_rate: per landmark; outliers move 5-15 % of the height.
    swap_limb_rate / swap_body_rate: left/right swap of one arm pair or leg pair / of the whole body.
    dropout_rate: per limb: its landmarks get low visibility and large errors.
    mask_blur_px: range of the soft mask's Gaussian blur (crop pixels).
    mask_blob_rate: chance of an extra blob (a bag, a neighbour) or a missing chunk in the mask.
    crop_pad: padding of the pipeline's crop (``munet.detect.crop.crop_params``).
    box_jitter: the person box's edges move by up to this fraction of its size (mask noise).
    calibration: a statistics file of ``python -m training.calibrate`` (e.g.
        ``training/calibration/mediapipe_0.10.21.json``, relative to the repository root): when set, the
        detector is the model fitted to the real MediaPipe (``detector_calibrated``) and the fields above
        except ``crop_pad`` are unused; empty (the default): the hand-set model above, unchanged.
    """

    noise_px: tuple[float, float] = (0.004, 0.012)
    outlier_rate: float = 0.02
    swap_limb_rate: float = 0.03
    swap_body_rate: float = 0.02
    dropout_rate: float = 0.03
    mask_blur_px: tuple[float, float] = (0.5, 1.8)
    mask_blob_rate: float = 0.12
    crop_pad: float = 0.15
    box_jitter: float = 0.02
    calibration: str = ""


def landmark_tolerances(rest_vertices: np.ndarray, rest_landmarks: np.ndarray, neighbours: int = 60) -> np.ndarray:
    """(33,) metres: how deep each landmark lies inside its body part in the rest pose (the median
    distance to its 60 nearest surface vertices: ~1 cm for the face, the limb's radius for a knee, half
    the pelvis' depth for a hip), plus 4 cm. A landmark is occluded when the nearest surface along its
    ray is closer than its own depth minus this."""
    from scipy.spatial import cKDTree

    distances, _ = cKDTree(rest_vertices).query(rest_landmarks, k=neighbours)
    return (np.median(distances, axis=1) + 0.04).astype(np.float32)


@dataclasses.dataclass
class CropGeometry:
    """The crop of each sample: centre (B, 2) and side (B,) in full-photo pixels, the crop's intrinsics
    K_crop (B, 3, 3) and ``inside_photo`` (B, R, R) bool: crop pixels that lie inside the photo."""

    center: np.ndarray
    side: np.ndarray
    K_crop: np.ndarray
    inside_photo: np.ndarray


def person_crops(
    clothed_px: np.ndarray, image_sizes: np.ndarray, rngs: list[np.random.Generator], resolution: int, config: DetectorConfig,
    K: np.ndarray,
) -> CropGeometry:
    """The pipeline's crop around each person box: the projected clothed silhouette's box, clipped to
    the photo, with a little jitter (the real box comes from a noisy mask and keypoints).

    clothed_px: (B, V, 2) projected clothed vertices, full-photo pixels; image_sizes: (B, 2).
    """
    batch = len(clothed_px)
    centers, sides, Ks, inside = [], [], [], []
    grid = (np.arange(resolution) + 0.5)
    for b in range(batch):
        width, height = (int(v) for v in image_sizes[b])
        lo = clothed_px[b].min(0)
        hi = clothed_px[b].max(0)
        x0, y0 = max(lo[0], 0.0), max(lo[1], 0.0)
        x1, y1 = min(hi[0], float(width)), min(hi[1], float(height))
        if x1 - x0 < 2 or y1 - y0 < 2:  # nobody in the photo (should not happen): take the photo
            x0, y0, x1, y1 = 0.0, 0.0, float(width), float(height)
        if config.calibration:  # the detector's own box: its crop around the true person's, as measured
            crop = _calibrated_crop(rngs[b], (x0, y0, x1, y1), (width, height), config)
        else:
            size = max(x1 - x0, y1 - y0)
            jitter = rngs[b].uniform(-config.box_jitter, config.box_jitter, 4) * size
            box = (x0 + jitter[0], y0 + jitter[1], max(x1 + jitter[2], x0 + jitter[0] + 2), max(y1 + jitter[3], y0 + jitter[1] + 2))
            crop = crop_params(box, (width, height), pad=config.crop_pad)
        centers.append(crop.center_px)
        sides.append(crop.side_px)
        Ks.append(crop.matrix(resolution) @ K[b])
        cx0, cy0 = crop.corner_px
        xs = grid / crop.scale(resolution) + cx0
        ys = grid / crop.scale(resolution) + cy0
        inside.append(((ys >= 0) & (ys < height))[:, None] & ((xs >= 0) & (xs < width))[None, :])
    return CropGeometry(np.asarray(centers, np.float64), np.asarray(sides, np.float64), np.stack(Ks), np.stack(inside))


def _calibrated_crop(rng: np.random.Generator, box: tuple, image_size: tuple[int, int], config: DetectorConfig) -> CropParams:
    from training.data import detector_calibrated

    true = crop_params(box, image_size, pad=config.crop_pad)
    centre, side = detector_calibrated.crop_box(rng, np.asarray(true.center_px), true.side_px, detector_calibrated.load_model(config.calibration))
    side = min(max(side, 2.0), 2.0 * max(image_size))
    return CropParams(center_px=(float(centre[0]), float(centre[1])), side_px=side)


def render_crops(
    clothed_cam: torch.Tensor, body_cam: torch.Tensor | None, faces: torch.Tensor, crops: CropGeometry, resolution: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Rasterise the clothed surface (with depth) and optionally the body into each crop.

    Returns clothed masks (B, R, R) bool, clothed depth (B, R, R) float32 (+inf empty), body masks
    (B, R, R) bool or None. Pixels outside the photo are cleared from the masks (not the depth).
    """
    K = torch.from_numpy(crops.K_crop).float()
    # back faces never reach a silhouette or a z-buffer of a closed surface: culling halves the work
    clothed = rasterize(project_pinhole(clothed_cam, K), faces, (resolution, resolution), depth=clothed_cam[..., 2], cull_backfaces=True)
    inside = torch.from_numpy(crops.inside_photo)
    mask = (clothed.mask & inside).numpy()
    body_mask = None
    if body_cam is not None:
        body_mask = (rasterize(project_pinhole(body_cam, K), faces, (resolution, resolution), cull_backfaces=True).mask & inside).numpy()
    return mask, clothed.depth.numpy(), body_mask


def occlusion(landmarks_crop: np.ndarray, depth: np.ndarray, zbuffer: np.ndarray, tolerance: np.ndarray) -> np.ndarray:
    """(B, 33) bool: a landmark is hidden when the surface its pixel sees is closer than its own depth
    minus its tolerance.

    landmarks_crop: (B, 33, 2) crop pixels; depth: (B, 33) metres; zbuffer: (B, R, R); tolerance:
    (B, 33) or (33,) metres. Landmarks outside the crop are not occluded by this test.
    """
    batch, res = zbuffer.shape[0], zbuffer.shape[1]
    col = np.floor(landmarks_crop[..., 0]).astype(np.int64)
    row = np.floor(landmarks_crop[..., 1]).astype(np.int64)
    inside = (col >= 0) & (col < res) & (row >= 0) & (row < res)
    nearest = zbuffer[np.arange(batch)[:, None], row.clip(0, res - 1), col.clip(0, res - 1)]
    return inside & (nearest < depth - tolerance)


def noisy_keypoints(
    rng: np.random.Generator, gt_px: np.ndarray, visible: np.ndarray, in_frame: np.ndarray, person_height_px: float,
    config: DetectorConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """One sample's detector keypoints (33, 2) full-photo pixels and visibility (33,) in [0, 1].

    gt_px: (33, 2) true projections; visible: (33,) truly visible (in frame and not occluded);
    in_frame: (33,) inside the photo.
    """
    sigma = rng.uniform(*config.noise_px) * person_height_px * NOISE_FACTOR
    occluded = in_frame & ~visible
    scale = np.where(visible, 1.0, np.where(occluded, 3.0, 4.0))
    keypoints = gt_px + rng.normal(0.0, 1.0, (NUM_LANDMARKS, 2)) * (sigma * scale)[:, None]
    # a whole-body left/right swap (front/back confusion), or one limb pair swapped
    order = np.arange(NUM_LANDMARKS)
    if rng.random() < config.swap_body_rate:
        order = SWAP.copy()
    else:
        for group in (ARM_LANDMARKS, LEG_LANDMARKS):
            if rng.random() < config.swap_limb_rate:
                group = np.asarray(group)
                order[group] = SWAP[group]
    keypoints = keypoints[order]
    visible_o, occluded_o = visible[order], occluded[order]
    # outliers
    outlier = rng.random(NUM_LANDMARKS) < config.outlier_rate
    angle = rng.uniform(0, 2 * np.pi, NUM_LANDMARKS)
    jump = rng.uniform(0.05, 0.15, NUM_LANDMARKS) * person_height_px
    keypoints += outlier[:, None] * np.stack([np.cos(angle), np.sin(angle)], 1) * jump[:, None]
    # visibility scores: confident when visible, often over-confident when occluded or outside
    visibility = np.where(
        visible_o,
        np.where(rng.random(NUM_LANDMARKS) < 0.03, rng.uniform(0.3, 0.7, NUM_LANDMARKS), 1.0 - np.abs(rng.normal(0, 0.04, NUM_LANDMARKS))),
        np.where(
            occluded_o,
            np.where(rng.random(NUM_LANDMARKS) < 0.5, rng.uniform(0.5, 0.95, NUM_LANDMARKS), rng.uniform(0.05, 0.5, NUM_LANDMARKS)),
            np.where(rng.random(NUM_LANDMARKS) < 0.25, rng.uniform(0.5, 0.9, NUM_LANDMARKS), rng.uniform(0.0, 0.4, NUM_LANDMARKS)),
        ),
    )
    visibility = np.where(outlier, np.minimum(visibility, rng.uniform(0.2, 0.9, NUM_LANDMARKS)), visibility)
    # limb dropouts: the detector loses a limb
    for limb in LIMBS.values():
        if rng.random() < config.dropout_rate:
            idx = np.asarray(limb)
            visibility[idx] = rng.uniform(0.0, 0.35, len(idx))
            keypoints[idx] += rng.normal(0.0, 1.0, (len(idx), 2)) * 8.0 * sigma[idx, None]
    return keypoints.astype(np.float32), np.clip(visibility, 0.0, 1.0).astype(np.float32)


def noisy_world_keypoints(rng: np.random.Generator, landmarks_cam: np.ndarray, stature_m: float) -> np.ndarray:
    """MediaPipe-like metric world landmarks (33, 3): hip-centred, camera-aligned Blender frame,
    roughly normalised to a standard body size, with noise larger in depth and occasional depth
    flips of a limb (the monocular ambiguity)."""
    hip = 0.5 * (landmarks_cam[L["left_hip"]] + landmarks_cam[L["right_hip"]])
    points = (landmarks_cam - hip) * (1.7 / stature_m) ** 0.5
    points = points + rng.normal(0.0, 1.0, points.shape) * np.array([0.015, 0.015, 0.04])
    for limb in LIMBS.values():
        if rng.random() < 0.08:
            idx = np.asarray(limb)
            points[idx, 2] = -points[idx, 2]
    # OpenCV camera axes (x right, y down, z forward) are MediaPipe world's; convert to Blender-style
    return (points @ MEDIAPIPE_WORLD_TO_BLENDER.T).astype(np.float32)


def noisy_mask(rng: np.random.Generator, mask: np.ndarray, inside_photo: np.ndarray, config: DetectorConfig) -> np.ndarray:
    """A soft (R, R) float32 person mask in [0, 1] like MediaPipe's: wobbly, blurred edges, the odd
    extra blob or missing chunk, zero outside the photo."""
    res = mask.shape[0]
    m = mask.astype(np.float32)
    grow = int(rng.choice([-2, -1, 0, 0, 0, 1, 1, 2]))
    if grow:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(grow) + 1, 2 * abs(grow) + 1))
        m = cv2.dilate(m, kernel) if grow > 0 else cv2.erode(m, kernel)
    # wobble: a smooth random field shifts the threshold of a blurred mask
    field = cv2.resize(rng.normal(0.0, 1.0, (8, 8)).astype(np.float32), (res, res), interpolation=cv2.INTER_CUBIC)
    soft = cv2.GaussianBlur(m, (0, 0), 1.5)
    m = (soft + 0.12 * field > 0.5).astype(np.float32)
    if rng.random() < config.mask_blob_rate and m.any():
        # on the outline: a bag or a neighbour's arm joins the person, or a piece of them is missed
        edge = m - cv2.erode(m, np.ones((3, 3), np.uint8))
        rows, cols = np.nonzero(edge if edge.any() else m)
        k = rng.integers(len(rows))
        centre = (int(cols[k] + rng.normal(0, 6)), int(rows[k] + rng.normal(0, 6)))
        axes = (int(rng.uniform(4, 18)), int(rng.uniform(4, 18)))
        blob = np.zeros_like(m)
        cv2.ellipse(blob, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
        m = np.maximum(m, blob) if rng.random() < 0.5 else m * (1.0 - blob)
    sigma = rng.uniform(*config.mask_blur_px)
    m = cv2.GaussianBlur(m, (0, 0), sigma)
    m *= rng.uniform(0.85, 1.0)
    return np.where(inside_photo, np.clip(m, 0.0, 1.0), 0.0).astype(np.float32)


def seen_flags(keypoints_px: np.ndarray, visibility: np.ndarray, image_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(in_frame, seen) as ``munet.detect.pose`` computes them."""
    width, height = image_size
    x, y = keypoints_px[:, 0], keypoints_px[:, 1]
    in_frame = (x >= 0) & (x < width) & (y >= 0) & (y < height)
    return in_frame, in_frame & (visibility >= VISIBILITY_THRESHOLD)


@dataclasses.dataclass
class SimulatedDetection:
    """What the simulated detector reports for one sample: keypoints (33, 2) float32 full-photo pixels,
    visibility (33,) float32, mask (R, R) float32 soft mask in the crop, world (33, 3) float32 metres
    (hip-centred, camera-aligned Blender frame) and detected (False: the detector found nobody; the
    other fields are then what it would have reported, for training, but a benchmark counts a miss)."""

    keypoints: np.ndarray
    visibility: np.ndarray
    mask: np.ndarray
    world: np.ndarray
    detected: bool


def camera_pitch_deg(R_world_to_cam: np.ndarray) -> np.ndarray:
    """(B,) degrees the camera looks down (world Z up; OpenCV camera axes) from R (B, 3, 3)."""
    up = np.asarray(R_world_to_cam, np.float64)[:, :, 2]
    return np.degrees(np.arctan2(-up[:, 2], -up[:, 1]))


def simulate(
    rng: np.random.Generator, gt_px: np.ndarray, visible: np.ndarray, in_frame: np.ndarray, height_px: float,
    clean_mask: np.ndarray, inside_photo: np.ndarray, landmarks_cam: np.ndarray, stature_m: float, camera_pitch: float,
    config: DetectorConfig,
) -> SimulatedDetection:
    """One sample's detection. gt_px: (33, 2) true landmarks, full-photo pixels; visible / in_frame: (33,)
    bool; height_px: the person's projected height; clean_mask, inside_photo: (R, R) bool in the crop;
    landmarks_cam: (33, 3) metres, OpenCV camera frame; camera_pitch: degrees (``camera_pitch_deg``).

    The hand-set model draws from ``rng`` exactly as it always has (keypoints, mask, world); the
    calibrated one (``config.calibration``) also swaps the world keypoints with the 2D ones, draws
    misses, and has no stature leak beyond the measured scale law."""
    if not config.calibration:
        keypoints, visibility = noisy_keypoints(rng, gt_px, visible, in_frame, height_px, config)
        mask = noisy_mask(rng, clean_mask, inside_photo, config)
        world = noisy_world_keypoints(rng, landmarks_cam, stature_m)
        return SimulatedDetection(keypoints, visibility, mask, world, True)
    from training.data import detector_calibrated as calibrated

    model = calibrated.load_model(config.calibration)
    keypoints, visibility, order = calibrated.keypoints(rng, gt_px.astype(np.float64), visible, in_frame, height_px, model)
    mask = calibrated.mask(rng, clean_mask, inside_photo, model)
    world = calibrated.world_keypoints(rng, landmarks_cam, stature_m, camera_pitch, order, model)
    found = calibrated.detected(rng, in_frame, model)
    return SimulatedDetection(keypoints, visibility, mask, (world @ MEDIAPIPE_WORLD_TO_BLENDER.T).astype(np.float32), found)
