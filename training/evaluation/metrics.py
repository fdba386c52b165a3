"""Evaluation metrics as pure numpy functions, with their protocols stated once here.

**Benchmark protocol** (``PROTOCOL_VERSION``; every report records ``protocol_version``):

* **v1** (``training/configs/testset.yaml``, ``data/testset``): the v1 simulated detector (world
  keypoints = truth scaled by sqrt(1.7 / stature), small noise), every method given the true focal length
  as EXIF, crops from the true silhouette +-2 %, no misses, every lowest vertex on the floor.
* **v2** (``training/configs/testset_v2.yaml``, ``data/testset_v2``; the same people, poses, clothes and
  cameras): the detector simulator calibrated on the real MediaPipe (``training/calibration/``: its 2D
  offsets and noise, visibility, swaps, world keypoints without the stature leak, torso and limb depth
  flips, tilt, scale law, masks, the crop from the detector's own box, misses); the focal length is known
  as EXIF for ``EXIF_SHARE`` of the samples, drawn per sample (seeded by its index), with a log-normal
  error of ``EXIF_FOCAL_ERROR``, and the others carry none, so the method estimates it
  (``exif_focal_px``); a sample the detector misses (``detected`` false) is a failure of every method
  that reads the detector, reported as the detection rate (``detection_rate``: detected / samples; the
  metric means are over the detected samples), never skipped silently. People off the floor: v1's pose
  mix plus more jumps, their people lifted 5-40 cm (``DataConfig.off_floor_m``), and people with one foot
  up on a step (the ``step`` family), ~11 % of the samples; reported as the ``off_floor`` subset, where
  the ground-plane cue (the feet's floor contacts) must not mislead the depth. The network-only method
  crops from the detection's own person box on either protocol.

Frame: everything is compared in the OpenCV camera frame of the photo (x right, y down, z forward,
metres), where a method's prediction and the ground truth share the intrinsics ``K``. The *root* is
the smpl24 pelvis joint.

* **MPJPE** (mm): mean Euclidean distance over the 24 smpl24 joints after translating the prediction
  so its pelvis joint coincides with the ground truth's (no rotation, no scale).
* **PA-MPJPE** (mm): the same after the similarity transform (scale, rotation, translation) that best
  aligns the predicted joints to the true ones in least squares (Umeyama / Procrustes).
* **PVE** (mm): mean per-vertex distance over the body mesh after the pelvis alignment of MPJPE
  (same topology, so vertices correspond).
* **Clothed surface** (cm), after the same pelvis translation (the protocol of ICON/ECON on
  CAPE/THuman2.0, with correspondence-free distances): ``n`` points sampled uniformly by area on each
  surface with a fixed seed; **P2S** is the mean distance from the ground truth's points to the
  predicted surface (scan to reconstruction); **Chamfer** the mean of that and the reverse direction;
  **normal consistency** the mean |cos| between each sampled point's face normal and the normal of the
  nearest point on the other surface, both directions (1 = perfect, orientation-agnostic).
* **2D keypoint error**: mean pixel distance between the 33 landmarks regressed from the predicted
  body (projected with the method's own intrinsics, e.g. its estimated focal length under v2; the same
  for its silhouettes) and the true landmarks (projected with ``K``), over the true landmarks inside the
  photo; also as a fraction of the person's height in pixels (stature x focal / pelvis depth).
* **Silhouette IoU** in the crop, clothed against the clean clothed mask, body against the body mask.
  (Projection, keypoint error and IoU are ``munet.geometry``'s, re-exported here as ``project``,
  ``keypoint_error`` and ``iou``.)
* **Depth-order accuracy**: over the joint pairs whose true camera depths differ by more than 10 cm,
  the fraction whose predicted depth order matches.
* **Facing**: the torso's forward direction (hips' left-to-right axis crossed with the pelvis-to-neck
  axis) projected on the camera's ground plane (x, z); *facing accuracy* = the yaw error is below 45
  degrees; *front/back accuracy* = both point towards the camera or both away.
"""

from __future__ import annotations

import numpy as np

from munet.body.skeleton import SMPL24_INDEX as J
from munet.geometry.mesh import face_normals
from munet.geometry.metrics import keypoint_error  # noqa: F401  the 2D protocol's measures, from their home
from munet.geometry.metrics import silhouette_iou as iou  # noqa: F401
from munet.geometry.projection import project_pinhole as project  # noqa: F401

PROTOCOL_VERSION = 2
EXIF_SHARE = 0.5
EXIF_FOCAL_ERROR = 0.05
"""v2: the share of samples whose photo carries EXIF, and the log-normal sigma of its focal length's error."""
PROTOCOL_SEED = 20261128

ROOT = J["pelvis"]


def exif_focal_px(sample: dict, protocol: int) -> float | None:
    """The focal length (pixels) the sample's EXIF gives a method under ``protocol``: v1 the truth's; v2
    the truth's x exp(N(0, EXIF_FOCAL_ERROR)) for ``EXIF_SHARE`` of the samples, else None (no EXIF),
    drawn from the sample's index (the same for every method and run)."""
    focal = float(np.asarray(sample["K"], np.float64)[0, 0])
    if protocol == 1:
        return focal
    if protocol != 2:
        raise ValueError(f"unknown benchmark protocol {protocol!r}: 1 or 2")
    rng = np.random.default_rng([PROTOCOL_SEED, int(sample["index"])])
    has_exif, error = rng.random() < EXIF_SHARE, rng.normal(0.0, EXIF_FOCAL_ERROR)
    return focal * float(np.exp(error)) if has_exif else None


def detected(sample: dict) -> bool:
    """Whether the detector found the person (v1 samples carry no flag: always)."""
    return bool(np.asarray(sample.get("detected", True)))
DEPTH_ORDER_MIN_GAP_M = 0.10
FACING_TOLERANCE_DEG = 45.0


def root_align(pred: np.ndarray, pred_root: np.ndarray, true_root: np.ndarray) -> np.ndarray:
    """Translate (N, 3) predicted points so that ``pred_root`` lands on ``true_root``."""
    return pred - pred_root + true_root


def mpjpe_mm(pred_joints: np.ndarray, true_joints: np.ndarray) -> float:
    """(J, 3) joints, metres -> MPJPE in mm after root (pelvis) alignment."""
    aligned = root_align(pred_joints, pred_joints[ROOT], true_joints[ROOT])
    return 1000.0 * float(np.linalg.norm(aligned - true_joints, axis=1).mean())


def similarity_transform(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Umeyama: scale s, rotation R (3, 3), translation t minimising sum |s R x + t - y|^2 for (N, 3)
    point sets x = source, y = target."""
    mu_x, mu_y = source.mean(0), target.mean(0)
    x, y = source - mu_x, target - mu_y
    covariance = y.T @ x / len(source)
    u, d, vt = np.linalg.svd(covariance)
    fix = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        fix[2, 2] = -1.0
    rotation = u @ fix @ vt
    variance = (x**2).sum() / len(source)
    scale = float(np.trace(np.diag(d) @ fix) / max(variance, 1e-12))
    translation = mu_y - scale * rotation @ mu_x
    return scale, rotation, translation


def pa_mpjpe_mm(pred_joints: np.ndarray, true_joints: np.ndarray) -> float:
    """MPJPE in mm after the best similarity alignment of the predicted joints."""
    scale, rotation, translation = similarity_transform(pred_joints, true_joints)
    aligned = scale * pred_joints @ rotation.T + translation
    return 1000.0 * float(np.linalg.norm(aligned - true_joints, axis=1).mean())


def pve_mm(pred_vertices: np.ndarray, true_vertices: np.ndarray, pred_root: np.ndarray, true_root: np.ndarray) -> float:
    """Per-vertex error in mm after root alignment (same topology)."""
    aligned = root_align(pred_vertices, pred_root, true_root)
    return 1000.0 * float(np.linalg.norm(aligned - true_vertices, axis=1).mean())


# ---- surfaces -----------------------------------------------------------------------------------


def sample_surface(vertices: np.ndarray, faces: np.ndarray, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` points uniformly by area on a mesh: (count, 3) points and (count, 3) unit face normals."""
    tri = vertices[faces]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    area = np.linalg.norm(cross, axis=1)
    chosen = rng.choice(len(faces), size=count, p=area / area.sum())
    u, v = rng.random(count), rng.random(count)
    flip = u + v > 1
    u, v = np.where(flip, 1 - u, u), np.where(flip, 1 - v, v)
    t = tri[chosen]
    points = t[:, 0] + u[:, None] * (t[:, 1] - t[:, 0]) + v[:, None] * (t[:, 2] - t[:, 0])
    normals = cross[chosen] / np.maximum(area[chosen, None], 1e-12)
    return points, normals


def closest_points_on_triangles(points: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Closest point to each point on its paired triangle (Ericson, Real-Time Collision Detection 5.1.5),
    vectorised: points, a, b, c all (..., 3) -> (..., 3)."""
    ab, ac, ap = b - a, c - a, points - a
    d1, d2 = (ab * ap).sum(-1), (ac * ap).sum(-1)
    bp = points - b
    d3, d4 = (ab * bp).sum(-1), (ac * bp).sum(-1)
    cp = points - c
    d5, d6 = (ab * cp).sum(-1), (ac * cp).sum(-1)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    denom = np.maximum(va + vb + vc, 1e-30)
    v = vb / denom
    w = vc / denom
    result = a + ab * v[..., None] + ac * w[..., None]  # inside the face
    # Voronoi regions, applied from the least to the most prioritised case of Ericson's early returns
    # (A, B, AB, C, AC, BC, face): later assignments win
    t_bc = np.clip((d4 - d3) / np.maximum((d4 - d3) + (d5 - d6), 1e-30), 0, 1)
    result = np.where(((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0))[..., None], b + t_bc[..., None] * (c - b), result)
    t_ac = np.clip(d2 / np.maximum(d2 - d6, 1e-30), 0, 1)
    result = np.where(((vb <= 0) & (d2 >= 0) & (d6 <= 0))[..., None], a + t_ac[..., None] * ac, result)
    result = np.where(((d6 >= 0) & (d5 <= d6))[..., None], c, result)
    t_ab = np.clip(d1 / np.maximum(d1 - d3, 1e-30), 0, 1)
    result = np.where(((vc <= 0) & (d1 >= 0) & (d3 <= 0))[..., None], a + t_ab[..., None] * ab, result)
    result = np.where(((d3 >= 0) & (d4 <= d3))[..., None], b, result)
    result = np.where(((d1 <= 0) & (d2 <= 0))[..., None], a, result)
    return result


def point_to_mesh(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray, candidates: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Distance from each point to a triangle mesh and the unit normal of the face it is nearest to.

    Exact for the ``candidates`` triangles whose centroids are nearest each point (a KD-tree): exact in
    practice for meshes of small, even triangles like the body's (1-3 cm edges).
    Returns (N,) distances and (N, 3) face normals.
    """
    from scipy.spatial import cKDTree

    tri = vertices[faces]  # (F, 3, 3)
    centroids = tri.mean(1)
    _, index = cKDTree(centroids).query(points, k=min(candidates, len(faces)))  # (N, k)
    index = index.reshape(len(points), -1)
    t = tri[index]  # (N, k, 3, 3)
    closest = closest_points_on_triangles(points[:, None], t[..., 0, :], t[..., 1, :], t[..., 2, :])
    distance = np.linalg.norm(closest - points[:, None], axis=-1)  # (N, k)
    best = distance.argmin(1)
    rows = np.arange(len(points))
    return distance[rows, best], face_normals(vertices, faces[index[rows, best]])


def surface_metrics(pred_vertices: np.ndarray, true_vertices: np.ndarray, faces: np.ndarray, count: int = 5000,
                    seed: int = 0) -> dict[str, float]:
    """Chamfer and P2S (cm) and normal consistency between two aligned meshes (see the module doc)."""
    rng = np.random.default_rng(seed)
    true_points, true_normals = sample_surface(true_vertices, faces, count, rng)
    pred_points, pred_normals = sample_surface(pred_vertices, faces, count, rng)
    to_pred, n_pred = point_to_mesh(true_points, pred_vertices, faces)
    to_true, n_true = point_to_mesh(pred_points, true_vertices, faces)
    consistency = 0.5 * (np.abs((true_normals * n_pred).sum(1)).mean() + np.abs((pred_normals * n_true).sum(1)).mean())
    return {
        "p2s_cm": 100.0 * float(to_pred.mean()),
        "chamfer_cm": 100.0 * float(0.5 * (to_pred.mean() + to_true.mean())),
        "normal_consistency": float(consistency),
    }


# ---- depth and facing ---------------------------------------------------------------------------


def _depth_ordered_pairs(pred_joints: np.ndarray, true_joints: np.ndarray, min_gap_m: float):
    """Every joint pair (i < j) whose true depths (camera z) differ by more than ``min_gap_m``: (P,) int
    indices i and j, and (P,) bool whether the prediction orders that pair the same way."""
    i, j = np.triu_indices(len(true_joints), 1)
    true_gap = true_joints[i, 2] - true_joints[j, 2]
    counted = np.abs(true_gap) > min_gap_m
    pred_gap = pred_joints[i, 2] - pred_joints[j, 2]
    return i[counted], j[counted], np.sign(pred_gap[counted]) == np.sign(true_gap[counted])


def depth_order_accuracy(pred_joints: np.ndarray, true_joints: np.ndarray, min_gap_m: float = DEPTH_ORDER_MIN_GAP_M) -> tuple[float, int]:
    """Fraction of joint pairs, among those whose true depths (camera z) differ by more than
    ``min_gap_m``, whose predicted depth order matches; and how many such pairs there were (NaN, 0
    when none)."""
    _, _, correct = _depth_ordered_pairs(pred_joints, true_joints, min_gap_m)
    if not len(correct):
        return float("nan"), 0
    return float(correct.mean()), int(len(correct))


def depth_order_by_joint(pred_joints: np.ndarray, true_joints: np.ndarray,
                         min_gap_m: float = DEPTH_ORDER_MIN_GAP_M) -> tuple[np.ndarray, np.ndarray]:
    """Where ``depth_order_accuracy`` goes wrong: per joint, (J,) int how many of its counted pairs there
    are and (J,) int how many of them the prediction orders wrongly (a pair counts for both its joints)."""
    i, j, correct = _depth_ordered_pairs(pred_joints, true_joints, min_gap_m)
    pairs, wrong = np.zeros(len(true_joints), np.int64), np.zeros(len(true_joints), np.int64)
    np.add.at(pairs, i, 1)
    np.add.at(pairs, j, 1)
    np.add.at(wrong, i[~correct], 1)
    np.add.at(wrong, j[~correct], 1)
    return pairs, wrong


def forward_direction(joints: np.ndarray) -> np.ndarray:
    """(3,) unit forward direction of the torso from smpl24 joints (any frame): the person's left
    (right hip -> left hip, plus right shoulder -> left shoulder) crossed with up (pelvis -> neck)."""
    left = (joints[J["left_hip"]] - joints[J["right_hip"]]) + (joints[J["left_shoulder"]] - joints[J["right_shoulder"]])
    up = joints[J["neck"]] - joints[J["pelvis"]]
    forward = np.cross(left, up)
    return forward / max(np.linalg.norm(forward), 1e-12)


def facing_error_deg(pred_joints: np.ndarray, true_joints: np.ndarray) -> tuple[float, bool]:
    """Yaw error in degrees between predicted and true torso directions projected on the camera's
    x-z plane, and whether both face the same way relative to the camera (towards: z < 0)."""
    p, t = forward_direction(pred_joints), forward_direction(true_joints)
    yaw_p, yaw_t = np.arctan2(p[0], -p[2]), np.arctan2(t[0], -t[2])
    error = abs((np.degrees(yaw_p - yaw_t) + 180.0) % 360.0 - 180.0)
    return float(error), bool((p[2] < 0) == (t[2] < 0))
