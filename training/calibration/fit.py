"""Fit the calibrated simulator (``training.data.detector_calibrated``) to measured statistics.

Most parameters are read off the statistics directly (definition offsets, visibility histograms, miss
rates, swap rates, the scale law, the tilt, the crop). The others interact (noise widens the tilt and
scale spreads, torso and limb flips add up, wobble and blur set the mask's IoU), so they are refined by
simulation: the simulator runs on the very people the real detector saw (the records' truth), the same
statistics are computed, and each parameter is corrected towards its target (``ITERATIONS`` damped
rounds on the same ``REPLICAS`` draws per person, so the rounds converge instead of chasing noise).
"""

from __future__ import annotations

import logging

import numpy as np

from training.calibration import records as rec_mod
from training.calibration.statistics import statistics
from training.data import detector_calibrated as dc

log = logging.getLogger("training.calibrate")
ITERATIONS = 10
STEP = 0.7  # damping of each correction (the parameters interact)
REPLICAS = 2  # the simulator runs this many times on each person per round
MASK_RESOLUTION_KEY = "gt_mask"


def initial_model(stats: dict) -> dc.CalibratedModel:
    """The simulator read off the statistics (before the refinement by simulation)."""
    kp, world, vis = stats["keypoints_2d"], stats["world"], stats["visibility"]
    flips = world["flip"]["far"]
    torso = _rate(flips["torso"])
    segment = {kind: float(np.clip((_rate(flips[kind]) - torso) / max(1 - 2 * torso, 0.1), 0.0, 0.5)) for kind in dc.SEGMENT_KINDS}
    rate = np.array([r if np.isfinite(r) else np.nan for r in stats["detection"]["rate_by_cut"]], np.float64)
    rate = np.where(np.isfinite(rate), rate, np.nanmin(rate) if np.isfinite(rate).any() else 1.0)
    tilt = world["tilt_deg"]
    return dc.CalibratedModel(
        offset=np.asarray(kp["offset"]), sigma=np.asarray(kp["sigma"]), sample_log_std=_pos(kp["sample_log_std"], 0.3),
        occluded_factor=_pos(kp["occluded_factor"], 2.0), out_of_frame_factor=_pos(kp["out_of_frame_factor"], 3.0),
        outlier_rate=_rate(kp["outlier_rate"]),
        visibility={k: np.asarray(v, np.float64) + 1e-4 for k, v in vis["hist"].items()},
        miss_rate=np.clip(1.0 - rate, 0.0, 1.0),
        swap={g: _rate(stats["swaps"][g]) for g in ("body", "arms", "legs")},
        world_follows_swap=_rate(world["follows_2d_swap"], 1.0), torso_flip=torso, segment_flip=segment,
        tilt_deg=(tilt["intercept"], _pos(tilt["residual_std"], 1.0), tilt["slope_per_pitch_deg"]),
        scale=(world["scale"]["k"], world["scale"]["log_c"], _pos(world["scale"]["log_std"], 0.05)),
        world_noise_m=np.maximum(np.asarray(world["residual_aligned_per_landmark_m"]), 1e-3),
        axis_scale=np.array([world["axis_scale"]["median"], world["axis_scale"]["std"]], np.float64),
        mask={"wobble": 0.05, "shift": 0.0, "blur": [0.5, 1.0], "blob_rate": 0.02},
        crop={"center_mean": stats["crop"]["center_mean"], "center_std": stats["crop"]["center_std"], "log_side": stats["crop"]["log_side"]},
    )  # fmt: skip


def _rate(value, default: float = 0.0) -> float:
    return float(np.clip(value, 0.0, 1.0)) if value is not None and np.isfinite(value) else default


def _pos(value, default: float) -> float:
    return float(value) if value is not None and np.isfinite(value) and value > 0 else default


def simulate_records(rec: dict, model: dc.CalibratedModel, seed: int = 0) -> dict:
    """The records with their detection fields replaced by the simulator's, run on the same truth."""
    count = len(rec["detected"])
    resolution = int(round(np.sqrt(rec[MASK_RESOLUTION_KEY].shape[1] * 8)))
    out = rec_mod.empty_detection(count)
    for b in range(count):
        rng = np.random.default_rng([seed, b])
        if not dc.detected(rng, rec["in_frame"][b], model):
            continue
        kp, vis, order = dc.keypoints(rng, rec["gt_px"][b].astype(np.float64), rec["visible"][b], rec["in_frame"][b], float(rec["height_px"][b]), model)
        out["detected"][b] = True
        out["keypoints_px"][b], out["visibility"][b] = kp, vis
        out["world_cv"][b] = dc.world_keypoints(rng, rec["landmarks_cam"][b], float(rec["stature_m"][b]), float(rec["camera_pitch_deg"][b]), order, model)
        centre, side = dc.crop_box(rng, rec["true_crop"][b, :2], float(rec["true_crop"][b, 2]), model)
        out["det_crop"][b] = [*centre, side]
        clean = rec_mod.unpack_mask(rec[MASK_RESOLUTION_KEY][b], resolution)
        inside = _inside_photo(rec["crop"][b], rec["image_size"][b], resolution)
        soft = dc.mask(rng, clean, inside, model)
        out["mask_iou"][b], out["mask_bias_px"][b] = rec_mod.mask_metrics(soft, clean)
    return {**rec, **out}


def _inside_photo(crop: np.ndarray, image_size: np.ndarray, resolution: int) -> np.ndarray:
    centre, side = crop[:2].astype(np.float64), float(crop[2])
    grid = (np.arange(resolution) + 0.5) * side / resolution
    xs, ys = grid + centre[0] - side / 2, grid + centre[1] - side / 2
    width, height = (int(v) for v in image_size)
    return ((ys >= 0) & (ys < height))[:, None] & ((xs >= 0) & (xs < width))[None, :]


def fit(rec: dict, stats: dict, iterations: int = ITERATIONS, seed: int = 0) -> tuple[dc.CalibratedModel, list[dict]]:
    """The simulator fitted to ``stats`` (measured on ``rec``); also the per-round simulated summaries."""
    from training.calibration.table import summary

    model = initial_model(stats)
    rounds = []
    replicated = {k: np.concatenate([v] * REPLICAS) for k, v in rec.items()}  # less Monte-Carlo noise
    for step in range(iterations):
        simulated = statistics(simulate_records(replicated, model, seed))  # the same draws each round
        rounds.append(summary(simulated))
        log.info("fit round %d: %s", step, {k: round(v, 4) for k, v in list(rounds[-1].items())[:6]})
        model = _correct(model, stats, simulated)
    return model, rounds


def _ratio(target, current, lo: float = 0.5, hi: float = 2.0):
    t, c = np.asarray(target, np.float64), np.asarray(current, np.float64)
    r = np.where((c > 0) & np.isfinite(c) & np.isfinite(t), t / np.where(c > 0, c, 1.0), 1.0)
    return np.clip(r, lo, hi) ** STEP


def _correct(model: dc.CalibratedModel, target: dict, sim: dict) -> dc.CalibratedModel:
    """One correction round: each refined parameter moves towards the value that matches its statistic."""
    tk, sk, tw, sw = target["keypoints_2d"], sim["keypoints_2d"], target["world"], sim["world"]
    mean, tilt_std, slope = model.tilt_deg
    k, log_c, log_std = model.scale
    t_far, s_far = tw["flip"]["far"], sw["flip"]["far"]
    torso = float(np.clip(model.torso_flip + STEP * (_rate(t_far["torso"]) - _rate(s_far["torso"])), 0.0, 0.5))
    segment = {kind: float(np.clip(p + STEP * (_rate(t_far[kind]) - _rate(s_far[kind])), 0.0, 0.5)) for kind, p in model.segment_flip.items()}
    mask = dict(model.mask)
    t_miss = 1.0 - target["mask"]["iou_mean"]
    s_miss = 1.0 - sim["mask"]["iou_mean"]
    mask["wobble"] = float(np.clip(mask["wobble"] * _ratio(t_miss, s_miss, 0.5, 2.0), 0.0, 0.5))
    mask["shift"] = float(np.clip(mask["shift"] + STEP * 0.25 * (target["mask"]["bias_px_mean"] - sim["mask"]["bias_px_mean"]), -0.4, 0.4))
    return dc.CalibratedModel(**{
        **{f: getattr(model, f) for f in model.__dataclass_fields__},
        "sigma": model.sigma * _ratio(tk["sigma"], sk["sigma"]),
        "sample_log_std": float(model.sample_log_std * _ratio(tk["sample_log_std"], sk["sample_log_std"])),
        "occluded_factor": float(model.occluded_factor * _ratio(tk["occluded_factor"], sk["occluded_factor"])),
        "out_of_frame_factor": float(model.out_of_frame_factor * _ratio(tk["out_of_frame_factor"], sk["out_of_frame_factor"])),
        "outlier_rate": float(np.clip(model.outlier_rate * _ratio(tk["outlier_rate"], sk["outlier_rate"], 0.25, 4.0), 0.0, 0.5)),
        "torso_flip": torso, "segment_flip": segment,
        "tilt_deg": (mean + STEP * (tw["tilt_deg"]["intercept"] - sw["tilt_deg"]["intercept"]),
                     float(np.sqrt(max(tilt_std**2 + tw["tilt_deg"]["residual_std"] ** 2 - sw["tilt_deg"]["residual_std"] ** 2, 0.25))),
                     slope + STEP * (tw["tilt_deg"]["slope_per_pitch_deg"] - sw["tilt_deg"]["slope_per_pitch_deg"])),
        "scale": (k + STEP * (tw["scale"]["k"] - sw["scale"]["k"]), log_c + STEP * (tw["scale"]["log_c"] - sw["scale"]["log_c"]),
                  float(np.sqrt(max(log_std**2 + tw["scale"]["log_std"] ** 2 - sw["scale"]["log_std"] ** 2, 1e-4)))),
        "world_noise_m": model.world_noise_m * _ratio(tw["residual_aligned_per_landmark_m"], sw["residual_aligned_per_landmark_m"]),
        "axis_scale": np.stack([model.axis_scale[0] + STEP * np.subtract(tw["axis_scale"]["median"], sw["axis_scale"]["median"]),
                                np.sqrt(np.maximum(model.axis_scale[1] ** 2 + np.square(tw["axis_scale"]["std"]) - np.square(sw["axis_scale"]["std"]), 1e-4))]),
        "mask": mask,
    })  # fmt: skip
