"""The statistics the simulator needs, from calibration records (``records.py``; N images stacked).

Every statistic is computed the same way for the real MediaPipe and for the simulator, so the two can be
compared line by line (``table.py``). Conventions: 2D offsets and noise in the body frame
(``detector_calibrated.body_frame``: lateral towards the person's left, up along the torso) as
fractions of the person's projected height; robust spreads are 1.4826 x the median absolute deviation;
world keypoints compared hip-centred in the OpenCV camera frame (z away from the camera).
"""

from __future__ import annotations

import warnings

import numpy as np

from training.data import detector_calibrated as dc

L = dc.L
MAD = 1.4826
GROUPS = {
    "face": tuple(range(11)),
    "torso": (L["left_shoulder"], L["right_shoulder"], L["left_hip"], L["right_hip"]),
    "limbs": (L["left_elbow"], L["right_elbow"], L["left_knee"], L["right_knee"]),
    "extremities": tuple(i for i in range(15, 23)) + tuple(range(27, 33)),
}
SWAP_PAIRS = {
    "body": (("left_shoulder", "right_shoulder"), ("left_hip", "right_hip")),
    "arms": (("left_elbow", "right_elbow"), ("left_wrist", "right_wrist")),
    "legs": (("left_knee", "right_knee"), ("left_ankle", "right_ankle")),
}
GAP_NEAR_M, GAP_FAR_M = 0.05, 0.15


def robust_std(values: np.ndarray, axis=None) -> np.ndarray:
    median = np.nanmedian(values, axis=axis, keepdims=True)
    return MAD * np.nanmedian(np.abs(values - median), axis=axis)


def _f(value) -> float:
    return round(float(value), 6) if np.isfinite(value) else float("nan")


def swap_flags(rec: dict) -> dict[str, np.ndarray]:
    """Per image: ``{group}`` bool swapped and ``{group}_ok`` bool decidable (the pair's landmarks in the
    photo and apart by > 5 % of the height). Arms and legs are swapped relative to the torso's labels."""
    kp, gt, h = rec["keypoints_px"], rec["gt_px"], rec["height_px"][:, None]
    out = {}
    for group, pairs in SWAP_PAIRS.items():
        left = np.array([L[a] for a, _ in pairs])
        right = np.array([L[b] for _, b in pairs])
        direct = (np.linalg.norm(kp[:, left] - gt[:, left], axis=-1) + np.linalg.norm(kp[:, right] - gt[:, right], axis=-1)).sum(1)
        crossed = (np.linalg.norm(kp[:, left] - gt[:, right], axis=-1) + np.linalg.norm(kp[:, right] - gt[:, left], axis=-1)).sum(1)
        apart = (np.linalg.norm(gt[:, left] - gt[:, right], axis=-1) / h).mean(1) > 0.05
        ok = rec["detected"] & rec["in_frame"][:, np.concatenate([left, right])].all(1) & apart
        out[group], out[group + "_ok"] = ok & (crossed < 0.5 * direct), ok
    for group in ("arms", "legs"):
        out[group] = out[group] ^ (out["body"] & out[group + "_ok"])
    return out


def body_residuals(rec: dict) -> np.ndarray:
    """(N, 33, 2) detector minus truth in the body frame (lateral, up), fractions of the height."""
    out = np.full(rec["gt_px"].shape, np.nan)
    for b in np.flatnonzero(rec["detected"]):
        up, lateral = dc.body_frame(rec["gt_px"][b].astype(np.float64))
        d = (rec["keypoints_px"][b] - rec["gt_px"][b]) / rec["height_px"][b]
        out[b] = np.stack([d @ lateral, d @ up], 1)
    return out


def keypoint_stats(rec: dict, swaps: dict) -> dict:
    """Per-landmark offset and noise (visible, unswapped), noise factors, per-sample spread, outliers."""
    d = body_residuals(rec)
    clean = rec["detected"] & ~swaps["body"]
    use = np.repeat(clean[:, None], 33, 1)
    for group in ("arms", "legs"):
        members = np.array(dc.SWAP_GROUPS[group])
        use[np.ix_(swaps[group], np.concatenate([members, dc.SWAP[members]]))] = False
    visible = use & rec["visible"]
    occluded = use & rec["in_frame"] & ~rec["visible"]
    outside = use & ~rec["in_frame"]
    dv = np.where(visible[..., None], d, np.nan)
    offset = np.nan_to_num(np.nanmedian(dv, 0))
    sigma = np.maximum(np.nan_to_num(robust_std(dv, 0), nan=0.01), 1e-4)
    z = (d - offset) / sigma  # normalised residuals
    per_sample = np.nanmedian(np.where(visible, np.abs(z).mean(-1), np.nan), 1)
    per_sample = per_sample[np.isfinite(per_sample) & (per_sample > 0)]
    error = np.linalg.norm(d, axis=-1)
    residual = np.linalg.norm(d - offset, axis=-1)
    return {
        "offset": np.round(offset, 6).tolist(),
        "sigma": np.round(sigma, 6).tolist(),
        "sample_log_std": _f(robust_std(np.log(per_sample))) if len(per_sample) > 2 else float("nan"),
        "occluded_factor": _f(robust_std(z[occluded].ravel())),
        "out_of_frame_factor": _f(robust_std(z[outside].ravel())),
        "outlier_rate": _f(np.mean(residual[visible] > 0.05)) if visible.any() else float("nan"),
        "median_error": {g: _f(np.nanmedian(np.where(visible[:, list(i)], error[:, list(i)], np.nan))) for g, i in GROUPS.items()},
        "median_residual": {g: _f(np.nanmedian(np.where(visible[:, list(i)], residual[:, list(i)], np.nan))) for g, i in GROUPS.items()},
        "counts": {"visible": int(visible.sum()), "occluded": int(occluded.sum()), "out_of_frame": int(outside.sum())},
    }


def visibility_stats(rec: dict) -> dict:
    """Score histograms and P(score >= 0.5) of truly visible, occluded and out-of-photo landmarks."""
    found = rec["detected"][:, None]
    categories = {
        "visible": found & rec["visible"],
        "occluded": found & rec["in_frame"] & ~rec["visible"],
        "out_of_frame": found & ~rec["in_frame"],
    }
    out = {"hist": {}, "p_seen": {}, "count": {}}
    for name, where in categories.items():
        scores = rec["visibility"][where]
        hist, _ = np.histogram(np.clip(scores, 0, 1), bins=dc.VISIBILITY_BINS, range=(0.0, 1.0))
        out["hist"][name] = np.round(hist / max(hist.sum(), 1), 6).tolist()
        out["p_seen"][name] = _f(np.mean(scores >= 0.5)) if len(scores) else float("nan")
        out["count"][name] = int(len(scores))
    return out


def detection_stats(rec: dict) -> dict:
    """Detection rate overall, per cut bin (``detector_calibrated.cut_bin``) and per framing."""
    bins = np.array([dc.cut_bin(f) for f in rec["in_frame"]])
    found = rec["detected"]
    return {
        "rate": _f(found.mean()),
        "count": int(len(found)),
        "rate_by_cut": [_f(found[bins == b].mean()) if (bins == b).any() else float("nan") for b in range(len(dc.CUT_EDGES) + 1)],
        "count_by_cut": [int((bins == b).sum()) for b in range(len(dc.CUT_EDGES) + 1)],
        "rate_by_framing": [_f(found[rec["framing"] == f].mean()) if (rec["framing"] == f).any() else float("nan") for f in range(4)],
    }


def _procrustes_residual(P: np.ndarray, T: np.ndarray) -> np.ndarray:
    """(33, 3) residual of P after the similarity transform that best maps it onto T."""
    p, t = P - P.mean(0), T - T.mean(0)
    u, s, vt = np.linalg.svd(p.T @ t)
    d = np.sign(np.linalg.det(u @ vt))
    s[-1] *= d
    u[:, -1] *= d
    R = u @ vt
    scale = s.sum() / max((p**2).sum(), 1e-12)
    return scale * p @ R - t


def world_stats(rec: dict, swaps: dict) -> dict:
    """World keypoints: errors before/after a similarity alignment, scale law, tilt, depth flips."""
    found = np.flatnonzero(rec["detected"])
    T = dc.hip_centred(rec["landmarks_cam"][found].astype(np.float64))
    P = dc.hip_centred(rec["world_cv"][found].astype(np.float64))
    size_p = np.sqrt((P**2).sum(-1).mean(-1))
    size_t = np.sqrt((T**2).sum(-1).mean(-1))
    log_s, log_x = np.log(size_p / size_t), np.log(1.7 / rec["stature_m"][found])
    if len(found) < 3:  # too few detections for the fits: every number NaN, same structure
        log_s = log_x = np.array([np.nan, np.nan, np.nan])
    k, log_c = _line(log_x, log_s)
    Ps = P / (size_p / size_t)[:, None, None]
    tilt = np.degrees(np.arctan2((Ps[..., 2] * T[..., 1] - Ps[..., 1] * T[..., 2]).sum(1), (Ps[..., 1] * T[..., 1] + Ps[..., 2] * T[..., 2]).sum(1)))
    pitch = rec["camera_pitch_deg"][found]
    slope, intercept = _line(pitch, tilt)
    aligned = np.stack([_procrustes_residual(P[i], T[i]) for i in range(len(found))]) if len(found) else np.full((1, 33, 3), np.nan)
    axis = (Ps * T).sum(1) / np.maximum((T**2).sum(1), 1e-9)  # (n, 3) per-sample stretch of each axis
    return {
        "error_before_m": np.round(np.nanmedian(np.abs(P - T), (0, 1)), 6).tolist(),
        "residual_aligned_m": np.round(robust_std(aligned.reshape(-1, 3), 0), 6).tolist(),
        "residual_aligned_per_landmark_m": np.round(np.nan_to_num(robust_std(aligned, 0), nan=0.05), 6).tolist(),
        "axis_scale": {"median": np.round(np.nanmedian(axis, 0), 6).tolist(), "std": np.round(robust_std(axis, 0), 6).tolist()},
        "mean_aligned_distance_m": _f(np.linalg.norm(aligned, axis=-1).mean()),
        "scale": {"k": _f(k), "log_c": _f(log_c), "log_std": _f(robust_std(log_s - (k * log_x + log_c)))},
        "tilt_deg": {"mean": _f(np.mean(tilt)), "median": _f(np.median(tilt)), "std": _f(robust_std(tilt)),
                     "slope_per_pitch_deg": _f(slope), "intercept": _f(intercept), "residual_std": _f(robust_std(tilt - slope * pitch - intercept))},
        "flip": _flip_rates(P, T),
        "follows_2d_swap": _world_swap(P, T, swaps["body"][found]),
    }  # fmt: skip


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) of the least-squares line, NaN with fewer than 3 finite points."""
    ok = np.isfinite(x) & np.isfinite(y)
    return tuple(np.polyfit(x[ok], y[ok], 1)) if ok.sum() >= 3 and np.ptp(x[ok]) > 0 else (float("nan"), float("nan"))


def _flip_rates(P: np.ndarray, T: np.ndarray) -> dict:
    """Depth-sign disagreement per segment kind (left and right pooled) and torso segment, where the
    true depth gap exceeds 5 cm (``near``) and 15 cm (``far``)."""
    gp, gt = dc.segment_gaps(P), dc.segment_gaps(T)
    kinds = {kind: [f"left_{kind}", f"right_{kind}"] for kind in dc.LIMB_KINDS}
    kinds.update({"shoulders": ["shoulders"], "hips": ["hips"], "spine": ["spine"], "torso": ["shoulders", "hips"]})
    out = {}
    for bound, threshold in (("near", GAP_NEAR_M), ("far", GAP_FAR_M)):
        out[bound] = {}
        for kind, names in kinds.items():
            true, pred = np.concatenate([gt[n] for n in names]), np.concatenate([gp[n] for n in names])
            where = np.abs(true) > threshold
            out[bound][kind] = _f(np.mean(np.sign(true[where]) != np.sign(pred[where]))) if where.any() else float("nan")
            out[bound][kind + "_count"] = int(where.sum())
    return out


def _world_swap(P: np.ndarray, T: np.ndarray, body_swapped: np.ndarray) -> float:
    """Share of 2D whole-body swaps whose world keypoints swap left and right too (shoulders and hips
    across the image, where the truth has them > 10 cm apart)."""
    pairs = ((L["left_shoulder"], L["right_shoulder"]), (L["left_hip"], L["right_hip"]))
    true_x = np.stack([T[:, a, 0] - T[:, b, 0] for a, b in pairs], 1)
    pred_x = np.stack([P[:, a, 0] - P[:, b, 0] for a, b in pairs], 1)
    decidable = body_swapped & (np.abs(true_x) > 0.1).all(1)
    if not decidable.any():
        return float("nan")
    return _f(np.mean((np.sign(true_x[decidable]) != np.sign(pred_x[decidable])).all(1)))


def mask_stats(rec: dict) -> dict:
    iou, bias = rec["mask_iou"][rec["detected"]], rec["mask_bias_px"][rec["detected"]]
    if len(iou) == 0:
        iou = bias = np.array([np.nan])
    return {
        "iou_mean": _f(np.mean(iou)), "iou_median": _f(np.median(iou)),
        "iou_p10": _f(np.percentile(iou, 10)), "iou_p90": _f(np.percentile(iou, 90)),
        "bias_px_mean": _f(np.mean(bias)), "bias_px_median": _f(np.median(bias)), "bias_px_std": _f(robust_std(bias)),
    }  # fmt: skip


def crop_stats(rec: dict) -> dict:
    """The detector's crop against the true person's: centre offset and log side ratio."""
    found = rec["detected"]
    det, true = rec["det_crop"][found].astype(np.float64), rec["true_crop"][found].astype(np.float64)
    offset = (det[:, :2] - true[:, :2]) / true[:, 2:3]
    log_side = np.log(det[:, 2] / true[:, 2])
    return {
        "center_mean": np.round(np.median(offset, 0), 6).tolist(), "center_std": np.round(robust_std(offset, 0), 6).tolist(),
        "log_side": [_f(np.median(log_side)), _f(robust_std(log_side))],
    }  # fmt: skip


def statistics(rec: dict) -> dict:
    """All statistics of a set of records (see the module docstring); NaN where there is no data."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return _statistics(rec)


def _statistics(rec: dict) -> dict:
    swaps = swap_flags(rec)
    swap_rates = {g: _f(swaps[g][swaps[g + "_ok"]].mean()) if swaps[g + "_ok"].any() else float("nan") for g in SWAP_PAIRS}
    swap_rates.update({g + "_count": int(swaps[g + "_ok"].sum()) for g in SWAP_PAIRS})
    return {
        "detection": detection_stats(rec),
        "keypoints_2d": keypoint_stats(rec, swaps),
        "visibility": visibility_stats(rec),
        "swaps": swap_rates,
        "world": world_stats(rec, swaps),
        "mask": mask_stats(rec),
        "crop": crop_stats(rec),
    }
