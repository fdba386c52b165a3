"""The comparison table: one line per statistic, real MediaPipe vs the simulator before and after the
calibration, with the relative difference (target: within 20 % after; near-zero statistics are
compared at a floor scale, ``FLOORS``)."""

from __future__ import annotations

import warnings

import numpy as np

from training.calibration.statistics import GROUPS, L

EXTREMITIES = list(GROUPS["extremities"])

TOLERANCE = 0.20


def summary(stats: dict) -> dict[str, float]:
    """The scalar statistics of a statistics dict, by name (the table's lines)."""
    kp, vis, world, swaps = stats["keypoints_2d"], stats["visibility"], stats["world"], stats["swaps"]
    offset = np.asarray(kp["offset"])
    sigma = np.asarray(kp["sigma"])
    near, far = world["flip"]["near"], world["flip"]["far"]
    out = {
        "detection rate": stats["detection"]["rate"],
        "detection rate, > 20 % of landmarks cut": _nanmean(stats["detection"]["rate_by_cut"][2:], stats["detection"]["count_by_cut"][2:]),
        **{f"2D error {g}, % height": 100 * v for g, v in kp["median_error"].items()},
        "2D noise (robust std) face, % height": 100 * float(np.median(sigma[:11])),
        "2D noise (robust std) body, % height": 100 * float(np.median(sigma[11:])),
        "2D offset foot tips up, % height": 100 * float(offset[[L["left_foot_index"], L["right_foot_index"]], 1].mean()),
        "2D offset shoulders up, % height": 100 * float(offset[[L["left_shoulder"], L["right_shoulder"]], 1].mean()),
        "2D offset hips lateral, % height": 100 * float(offset[[L["left_hip"], L["right_hip"]], 0].mean()),
        "2D offset hips up, % height": 100 * float(offset[[L["left_hip"], L["right_hip"]], 1].mean()),
        "2D outliers (> 5 % height)": kp["outlier_rate"],
        "2D noise factor occluded": kp["occluded_factor"],
        "2D noise factor out of photo": kp["out_of_frame_factor"],
        "2D per-sample noise spread (log std)": kp["sample_log_std"],
        "P(vis >= 0.5 | visible)": vis["p_seen"]["visible"],
        "P(vis >= 0.5 | occluded)": vis["p_seen"]["occluded"],
        "P(vis >= 0.5 | out of photo)": vis["p_seen"]["out_of_frame"],
        "swap rate whole body": swaps["body"],
        "swap rate arms": swaps["arms"],
        "swap rate legs": swaps["legs"],
        "world depth-sign agreement, limbs, gap > 5 cm": 1 - _nanmean([near[k] for k in ("upper_arm", "forearm", "thigh", "shin")],
                                                                     [near[k + "_count"] for k in ("upper_arm", "forearm", "thigh", "shin")]),
        **{f"world flip rate {k}, gap > 15 cm": far[k] for k in ("upper_arm", "forearm", "thigh", "shin", "torso", "spine")},
        "world tilt about camera x, mean deg": world["tilt_deg"]["mean"],
        "world tilt, robust std deg": world["tilt_deg"]["std"],
        "world scale exponent k": world["scale"]["k"],
        "world scale at 1.7 m (exp log c)": float(np.exp(world["scale"]["log_c"])),
        **{f"world stretch of axis {a} (median)": v for a, v in zip("xyz", world["axis_scale"]["median"])},
        "world depth stretch, robust std": world["axis_scale"]["std"][2],
        **{f"world error before alignment {a}, cm": 100 * v for a, v in zip("xyz", world["error_before_m"])},
        **{f"world residual after similarity {a}, cm": 100 * v for a, v in zip("xyz", world["residual_aligned_m"])},
        "world residual z, hands and feet, cm": 100 * float(np.median(np.asarray(world["residual_aligned_per_landmark_m"])[EXTREMITIES, 2])),
        "mask 1 - IoU, mean": 1.0 - stats["mask"]["iou_mean"],
        "mask 1 - IoU, 90th percentile": 1.0 - stats["mask"]["iou_p10"],
        "mask boundary bias, crop px": stats["mask"]["bias_px_mean"],
        "crop centre offset std x, % side": 100 * stats["crop"]["center_std"][0],
        "crop side log ratio mean": stats["crop"]["log_side"][0],
    }  # fmt: skip
    return {k: float(v) for k, v in out.items()}


def _nanmean(values, counts) -> float:
    values, counts = np.asarray(values, np.float64), np.asarray(counts, np.float64)
    ok = np.isfinite(values) & (counts > 0)
    return float(np.sum(values[ok] * counts[ok]) / counts[ok].sum()) if ok.any() else float("nan")


# the smallest scale a statistic is compared at (relative differences of near-zero values mean
# nothing): 20 % of it is the tolerance there. Matched on the statistic's name, first match wins.
FLOORS = (("rate", 0.05), ("P(vis", 0.05), ("agreement", 0.05), ("outliers", 0.05), ("1 - IoU", 0.05), ("% height", 0.5),
          ("deg", 5.0), ("cm", 1.0), ("crop px", 1.0), ("% side", 1.0), ("log", 0.05), ("", 0.1))  # fmt: skip


def floor(name: str) -> float:
    return next(value for key, value in FLOORS if key in name)


def relative(a: float, b: float, name: str = "") -> float:
    """|a - b| relative to the real value |b|, or to the statistic's floor when |b| is below it."""
    return abs(a - b) / max(abs(b), floor(name))


def bootstrap_se(rec: dict, resamples: int = 20, seed: int = 0) -> dict[str, float]:
    """Standard error of each summary statistic over images (bootstrap resamples of the records)."""
    from training.calibration.statistics import statistics

    rng = np.random.default_rng(seed)
    count = len(rec["detected"])
    draws = [summary(statistics({k: v[idx] for k, v in rec.items()})) for idx in (rng.integers(0, count, count) for _ in range(resamples))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return {name: float(np.nanstd([d[name] for d in draws], ddof=1)) for name in draws[0]}


def agrees(simulated: float, real: float, name: str, se: float = 0.0) -> bool:
    """Within TOLERANCE (relative, floored), or within two standard errors of the difference of two
    independent measurements of this size (sqrt(2) x the real one's SE) when that is wider."""
    return relative(simulated, real, name) <= TOLERANCE or abs(simulated - real) <= 2.0 * np.sqrt(2.0) * se


def markdown(real: dict, before: dict, after: dict, real_se: dict | None = None) -> str:
    """The table as markdown (each argument: a statistics dict; real_se: ``bootstrap_se`` of the real one)."""
    r, b, a = summary(real), summary(before), summary(after)
    se = real_se or {}
    lines = ["| statistic | real MediaPipe (± SE) | simulated before | simulated after | after vs real |", "|---|---|---|---|---|"]
    for name, value in r.items():
        diff, s = relative(a[name], value, name), se.get(name, 0.0)
        mark = "ok" if diff <= TOLERANCE else "ok (< 2 SE)" if agrees(a[name], value, name, s) else "**off**"
        lines.append(f"| {name} | {value:.4g} ± {s:.2g} | {b[name]:.4g} | {a[name]:.4g} | {100 * diff:.0f} % {mark} |")
    within = sum(relative(a[n], v, n) <= TOLERANCE for n, v in r.items())
    noise = sum(agrees(a[n], v, n, se.get(n, 0.0)) for n, v in r.items()) - within
    lines.append(f"\n{within} of {len(r)} statistics within {100 * TOLERANCE:.0f} % after calibration; {noise} more within two "
                 "standard errors of the measurement.")
    return "\n".join(lines)
