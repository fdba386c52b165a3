"""Run methods over a synthetic test set; per-sample metrics, aggregates, a JSON report and a table.

Metric definitions and the alignment protocol: ``training.evaluation.metrics``.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import time

import numpy as np
import torch

from training.data.progress import Progress
from training.data.sample import to_camera
from training.evaluation import metrics as M
from training.evaluation.methods import inputs_of, make_method

log = logging.getLogger(__name__)

METRIC_ORDER = (
    ("mpjpe_mm", "MPJPE mm", "lower"), ("pa_mpjpe_mm", "PA-MPJPE mm", "lower"), ("pve_mm", "PVE mm", "lower"),
    ("chamfer_cm", "Chamfer cm", "lower"), ("p2s_cm", "P2S cm", "lower"), ("normal_consistency", "NC", "higher"),
    ("kp2d_px", "2D kp px", "lower"), ("kp2d_height_pct", "2D kp %h", "lower"),
    ("iou_clothed", "IoU clothed", "higher"), ("iou_body", "IoU body", "higher"),
    ("depth_order_acc", "depth order", "higher"), ("facing_acc", "facing", "higher"),
    ("front_back_acc", "front/back", "higher"), ("facing_error_deg", "yaw err deg", "lower"),
    ("time_ms", "time ms", "lower"),
)  # fmt: skip


class Scorer:
    """Holds what the metrics need once (faces, the landmark regressor) and scores one prediction."""

    def __init__(self, surface_points: int = 5000):
        from munet.body.anny_model import AnnyBody
        from munet.body.keypoints import MediaPipeRegressor

        body = AnnyBody()
        self.faces_t = body.faces
        self.faces = body.faces.numpy()
        self.regressor = MediaPipeRegressor()
        self.surface_points = surface_points

    def _masks(self, vertices_cam: list[np.ndarray], K_crop: np.ndarray, inside: np.ndarray, res: int) -> list[np.ndarray]:
        from munet.geometry.raster import rasterize
        from munet.geometry.projection import project_pinhole as project

        points = torch.from_numpy(np.stack(vertices_cam)).float()
        K = torch.from_numpy(np.repeat(K_crop[None], len(vertices_cam), 0)).float()
        raster = rasterize(project(points, K), self.faces_t, (res, res), cull_backfaces=False)
        return [m & inside for m in raster.mask.numpy()]

    def score(self, sample: dict, prediction, index: int) -> dict[str, float]:
        K = np.asarray(sample["K"], np.float64)
        true_joints = to_camera(sample["body_joints_m"], sample)
        true_body = to_camera(sample["body_vertices_m"], sample)
        true_clothed = to_camera(sample["clothed_vertices_m"], sample)
        pj, pb = prediction.body_joints_cam, prediction.body_vertices_cam
        pc = prediction.clothed_vertices_cam if prediction.clothed_vertices_cam is not None else pb
        out = {
            "mpjpe_mm": M.mpjpe_mm(pj, true_joints),
            "pa_mpjpe_mm": M.pa_mpjpe_mm(pj, true_joints),
            "pve_mm": M.pve_mm(pb, true_body, pj[M.ROOT], true_joints[M.ROOT]),
        }
        aligned_clothed = M.root_align(pc, pj[M.ROOT], true_joints[M.ROOT])
        out.update(M.surface_metrics(aligned_clothed, true_clothed, self.faces, self.surface_points, seed=index))
        # 2D: landmarks of the predicted and the true body, projected with the photo's intrinsics
        with torch.no_grad():
            landmarks = self.regressor(torch.from_numpy(np.stack([pb, true_body])).float()).numpy().astype(np.float64)
        K_pred = K if prediction.K_px is None else np.asarray(prediction.K_px, np.float64)
        pred_px, true_px = M.project(landmarks[0], K_pred), M.project(landmarks[1], K)
        width, height = sample["image_size"]
        valid = (true_px[:, 0] >= 0) & (true_px[:, 0] < width) & (true_px[:, 1] >= 0) & (true_px[:, 1] < height)
        out["kp2d_px"] = M.keypoint_error(pred_px, true_px, valid)
        person_px = float(sample["stature_m"]) * K[0, 0] / max(float(true_joints[M.ROOT, 2]), 0.1)
        out["kp2d_height_pct"] = 100.0 * out["kp2d_px"] / person_px
        # silhouettes in the crop (only the part inside the photo)
        res = sample["gt_mask"].shape[0]
        inside = _inside_photo(sample, res)
        K_crop = np.asarray(sample["K_crop"], np.float64)
        wanted = [pc, pb] + ([] if "gt_body_mask" in sample else [true_body])
        # the method's answer drawn with its own intrinsics, in the same crop (K_crop = A K, A: photo -> crop)
        masks = self._masks(wanted[:2], K_crop @ np.linalg.inv(K) @ K_pred, inside, res)
        masks += self._masks(wanted[2:], K_crop, inside, res) if len(wanted) > 2 else []
        true_body_mask = sample["gt_body_mask"] if "gt_body_mask" in sample else masks[2]
        out["iou_clothed"] = M.iou(masks[0], np.asarray(sample["gt_mask"], bool))
        out["iou_body"] = M.iou(masks[1], np.asarray(true_body_mask, bool))
        order, pairs = M.depth_order_accuracy(pj, true_joints)
        out["depth_order_acc"] = order
        pairs_by_joint, wrong_by_joint = M.depth_order_by_joint(pj, true_joints)
        out["depth_pairs_by_joint"], out["depth_wrong_by_joint"] = pairs_by_joint.tolist(), wrong_by_joint.tolist()
        yaw_error, same_side = M.facing_error_deg(pj, true_joints)
        out["facing_error_deg"] = yaw_error
        out["facing_acc"] = float(yaw_error < M.FACING_TOLERANCE_DEG)
        out["front_back_acc"] = float(same_side)
        return out


def _inside_photo(sample: dict, res: int) -> np.ndarray:
    side = float(sample["crop_side_px"])
    cx, cy = (float(v) for v in sample["crop_center_px"])
    width, height = sample["image_size"]
    xs = (np.arange(res) + 0.5) * side / res + cx - side / 2
    ys = (np.arange(res) + 0.5) * side / res + cy - side / 2
    return ((ys >= 0) & (ys < height))[:, None] & ((xs >= 0) & (xs < width))[None, :]


# ---- running -------------------------------------------------------------------------------------

_STATE: dict = {}


MISSED = "missed: the detector found nobody"


def _init(specs: list[str], surface_points: int, threads: int, protocol: int = M.PROTOCOL_VERSION) -> None:
    torch.set_num_threads(threads)
    _STATE["methods"] = [make_method(s) for s in specs]
    _STATE["scorer"] = Scorer(surface_points)
    _STATE["protocol"] = protocol


def _evaluate_one(task: tuple[str, int]) -> dict:
    from training.data.dataset import ShardDataset

    root, index = task
    if _STATE.get("root") != root:
        _STATE["dataset"], _STATE["root"] = ShardDataset(root), root
    sample = _STATE["dataset"][index]
    record = {"index": int(sample["index"]), "framing": int(sample["framing"]), "family": int(sample["family"]),
              "skirt": int(sample["garments"][4]), "detected": M.detected(sample), "methods": {}}  # fmt: skip
    for method in _STATE["methods"]:
        if not record["detected"] and not method.uses_truth:  # a miss is every detector-fed method's failure
            record["methods"][method.name] = {"failed": MISSED}
            continue
        started = time.perf_counter()
        try:
            prediction = method.predict(inputs_of(sample, _STATE["protocol"]), sample if method.uses_truth else None)
        except Exception as e:  # noqa: BLE001 - a failure on one sample is recorded, the run goes on
            log.warning("%s failed on sample %d: %s", method.name, index, e)
            record["methods"][method.name] = {"failed": f"{type(e).__name__}: {e}"}
            continue
        elapsed = 1000.0 * (time.perf_counter() - started)
        scores = _STATE["scorer"].score(sample, prediction, index)
        scores["time_ms"] = elapsed
        scores["stages_ms"] = {k: float(v) for k, v in prediction.timings_ms.items()}
        record["methods"][method.name] = scores
    return record


def run(root: str, specs: list[str], limit: int | None = None, workers: int = 1, surface_points: int = 5000,
        protocol: int = M.PROTOCOL_VERSION) -> list[dict]:
    """Per-sample records for every method on the first ``limit`` samples of the dataset at ``root``, under
    benchmark ``protocol`` (``training.evaluation.metrics``: 1 or 2)."""
    from training.data.shards import read_manifest

    total = read_manifest(root)["count"]
    count = total if limit is None else min(limit, total)
    tasks = [(str(root), i) for i in range(count)]
    progress = Progress(count, "evaluating")
    records = []
    if workers <= 1:
        _init(specs, surface_points, threads=1, protocol=protocol)
        for task in tasks:
            records.append(_evaluate_one(task))
            progress.update()
        return records
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_init, initargs=(specs, surface_points, 1, protocol)) as pool:
        for record in pool.imap(_evaluate_one, tasks):
            records.append(record)
            progress.update()
    return records


def _summary(values: list[float]) -> dict[str, float]:
    finite = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not finite:
        return {"mean": float("nan"), "median": float("nan"), "count": 0}
    return {"mean": float(np.mean(finite)), "median": float(np.median(finite)), "count": len(finite)}


def aggregate(records: list[dict], method_names: list[str]) -> dict:
    """Mean/median per metric per method, overall and by subset (full vs partial framing, skirts, people off
    the floor: a jump or a foot up on a step)."""
    from training.data.engine import FAMILY_NAMES
    from training.data.poses import OFF_FLOOR_FAMILIES

    off_floor = {FAMILY_NAMES.index(f) for f in OFF_FLOOR_FAMILIES}
    subsets = {
        "all": lambda r: True,
        "full_body": lambda r: r["framing"] == 0,
        "partial_view": lambda r: r["framing"] != 0,
        "skirt_or_dress": lambda r: r["skirt"] == 1,
        "off_floor": lambda r: r.get("family") in off_floor,
    }
    out = {}
    for name in method_names:
        per_subset = {}
        for subset, keep in subsets.items():
            chosen = [r["methods"].get(name, {}) for r in records if keep(r)]
            ok = [m for m in chosen if "failed" not in m]
            metrics = {key: _summary([m.get(key) for m in ok]) for key, _, _ in METRIC_ORDER}
            stages = sorted({s for m in ok for s in m.get("stages_ms", {})})
            missed = sum(m.get("failed") == MISSED for m in chosen)
            per_subset[subset] = {
                "samples": len(chosen),
                "failures": len(chosen) - len(ok),
                "missed": missed,
                "detection_rate": 1.0 - missed / len(chosen) if chosen else float("nan"),
                "metrics": metrics,
                "stages_ms_median": {s: float(np.median([m["stages_ms"][s] for m in ok if s in m["stages_ms"]])) for s in stages},
                "depth_order_by_joint": _depth_order_by_joint(ok),
            }
        out[name] = per_subset
    return out


def _depth_order_by_joint(scores: list[dict]) -> dict[str, float]:
    """Per smpl24 joint, the depth order's accuracy over the counted pairs it takes part in, pooled over the
    samples (``metrics.depth_order_by_joint``); empty for reports without the per-joint counts."""
    rows = [m for m in scores if "depth_pairs_by_joint" in m]
    if not rows:
        return {}
    pairs = np.sum([m["depth_pairs_by_joint"] for m in rows], axis=0)
    wrong = np.sum([m["depth_wrong_by_joint"] for m in rows], axis=0)
    return {name: float(1.0 - wrong[i] / pairs[i]) if pairs[i] else float("nan") for name, i in M.J.items()}


def depth_order_table(summary: dict, subset: str = "all") -> str:
    """A markdown table: per joint (rows, worst first by the first method), each method's depth-order
    accuracy over the pairs that joint takes part in."""
    names = [n for n in summary if summary[n][subset].get("depth_order_by_joint")]
    if not names:
        return ""
    first = summary[names[0]][subset]["depth_order_by_joint"]
    lines = ["| joint | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 1)]
    for joint in sorted(first, key=lambda j: first[j]):
        lines.append(f"| {joint} | " + " | ".join(f"{summary[n][subset]['depth_order_by_joint'][joint]:.3f}" for n in names) + " |")
    return "\n".join(lines)


def stage_table(summary: dict, subset: str = "all") -> str:
    """A markdown table of each method's median time per stage (ms)."""
    stages = sorted({s for name in summary for s in summary[name][subset]["stages_ms_median"]}, key=lambda s: (s == "total", s))
    lines = ["| method | " + " | ".join(stages) + " |", "|" + "---|" * (len(stages) + 1)]
    for name, entry in summary.items():
        values = entry[subset]["stages_ms_median"]
        lines.append(f"| {name} | " + " | ".join(f"{values[s]:.0f}" if s in values else "-" for s in stages) + " |")
    return "\n".join(lines)


def table(summary: dict, subset: str = "all", reference: tuple[str, ...] = ("floor", "oracle")) -> str:
    """A markdown table, one row per method (reference methods marked), means over the subset."""
    names = list(summary)
    header = "| method | n | detected | " + " | ".join(label for _, label, _ in METRIC_ORDER) + " |"
    lines = [header, "|" + "---|" * (len(METRIC_ORDER) + 3)]
    for name in names:
        entry = summary[name][subset]
        cells = []
        for key, _, _ in METRIC_ORDER:
            value = entry["metrics"][key]["mean"]
            cells.append("-" if value != value else (f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"))
        label = f"{name} (reference, uses truth)" if name in reference else name
        rate = entry.get("detection_rate", 1.0)
        lines.append(f"| {label} | {entry['samples'] - entry['failures']} | {rate:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
