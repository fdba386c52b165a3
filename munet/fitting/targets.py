"""Turn a ``munet.detect.Detection`` into the fit's ``FitTargets``."""

from __future__ import annotations

import numpy as np

from munet.detect import Detection
from munet.fitting.landmarks import BASE_WEIGHTS, FACE, FACING_AWAY_FACE_FACTOR, FEET, LM, facing_away
from munet.fitting.state import FitTargets
from munet.geometry.mesh import mask_outline

MASK_THRESHOLD = 0.5
MAX_OUTLINE_POINTS = 1500
CONTACT_TOLERANCE_M = 0.10
"""A seen foot whose lowest world keypoint is within this of the lowest foot point is on the floor."""
UNSURE_VISIBILITY_FACTOR = 0.0
"""In-frame landmarks below the detector's visibility threshold count this much (times visibility): not
at all, as MediaPipe invents such points (e.g. wrists in front of the chest when the hands are out of the
photo) and the pose prior holds those limbs better."""


def person_mask(detection: Detection) -> np.ndarray:
    """(H, W) bool: the detector's soft mask thresholded, keeping only blobs that hold a seen keypoint
    (or the largest blob when none does)."""
    import cv2

    binary = (detection.mask >= MASK_THRESHOLD).astype(np.uint8)
    count, labels = cv2.connectedComponents(binary, connectivity=8)
    if count <= 2:
        return binary.astype(bool)
    points = detection.keypoints_px[detection.seen]
    height, width = binary.shape
    keep = np.zeros(count, bool)
    if len(points):
        rows = np.clip(points[:, 1].astype(int), 0, height - 1)
        cols = np.clip(points[:, 0].astype(int), 0, width - 1)
        keep[np.unique(labels[rows, cols])] = True
    keep[0] = False
    if not keep.any():
        areas = np.bincount(labels.ravel(), minlength=count)
        areas[0] = 0
        keep[np.argmax(areas)] = True
    return keep[labels]


def foot_contact(world: np.ndarray, seen: np.ndarray) -> dict[str, bool]:
    """Which feet touch the floor, from the world keypoints' heights (Z). Unseen feet are taken to stand."""
    lowest = {}
    for side, names in FEET.items():
        idx = [LM[n] for n in names]
        if seen[idx].sum() >= 2:
            lowest[side] = float(world[idx, 2].min())
    if not lowest:
        return {"left": True, "right": True}
    floor = min(lowest.values())
    return {side: (side not in lowest) or (lowest[side] - floor < CONTACT_TOLERANCE_M) for side in FEET}


def joint_prior_scale(seen: np.ndarray) -> np.ndarray:
    """(24,) float32 smpl24 pose-prior multipliers: ``UNSEEN_PRIOR_SCALE`` for the joints of limbs whose
    landmarks were not seen (a limb's joints from the first unseen landmark down), 1 elsewhere."""
    from munet.body.skeleton import SMPL24_INDEX as JOINT
    from munet.fitting.pose import UNSEEN_PRIOR_SCALE

    scale = np.ones(24, np.float32)
    chains = {
        "arm": (("elbow", ("shoulder", "elbow", "wrist", "hand")), ("wrist", ("elbow", "wrist", "hand"))),
        "leg": (("knee", ("hip", "knee", "ankle", "foot")), ("ankle", ("knee", "ankle", "foot"))),
    }
    for side in ("left", "right"):
        for steps in chains.values():
            for landmark, joints in steps:
                if not seen[LM[f"{side}_{landmark}"]]:
                    for joint in joints:
                        scale[JOINT[f"{side}_{joint}"]] = UNSEEN_PRIOR_SCALE
                    break
    return scale


def targets_from_detection(detection: Detection, focal_px: float, principal_px: tuple[float, float] | None = None,
                           rng: np.random.Generator | None = None, focal_log_sigma: float = 0.35) -> FitTargets:
    """FitTargets for a detection. principal_px defaults to the image centre; focal_log_sigma: how far the
    fit may move the focal length (``munet.fitting.camera.FOCAL_LOG_SIGMA`` / ``EXIF_FOCAL_LOG_SIGMA``)."""
    width, height = detection.image_size
    principal = principal_px or (0.5 * width, 0.5 * height)
    world = detection.world_keypoints_m.astype(np.float32)
    seen = detection.seen.copy()
    away = facing_away(world)
    visibility = np.where(detection.in_frame, detection.visibility, 0.0)
    trust = np.where(seen, 1.0, UNSURE_VISIBILITY_FACTOR) * visibility
    weights = (trust * BASE_WEIGHTS).astype(np.float32)
    if away:
        weights[list(FACE)] *= FACING_AWAY_FACE_FACTOR
        weights[[LM["left_ear"], LM["right_ear"]]] /= FACING_AWAY_FACE_FACTOR  # ears stay meaningful
    mask = person_mask(detection)
    outline = mask_outline(mask)
    if len(outline) > MAX_OUTLINE_POINTS:
        rng = rng or np.random.default_rng(0)
        outline = outline[np.sort(rng.choice(len(outline), MAX_OUTLINE_POINTS, replace=False))]
    x0, y0, x1, y1 = detection.person_box_px
    return FitTargets(
        keypoints_px=detection.keypoints_px.astype(np.float32),
        keypoint_weights=weights,
        world_m=world,
        mask=mask,
        mask_outline_px=outline,
        scale_px=float(max(y1 - y0, x1 - x0, 1.0)),
        focal_px=float(focal_px),
        principal_px=(float(principal[0]), float(principal[1])),
        image_size=(int(width), int(height)),
        contact=foot_contact(world, seen),
        facing_away=away,
        seen=seen,
        world_weights=np.where(seen, visibility, 0.0).astype(np.float32),
        joint_prior_scale=joint_prior_scale(seen),
        focal_log_sigma=focal_log_sigma,
    )
