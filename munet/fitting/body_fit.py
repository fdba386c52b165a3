"""Fit the body (smpl24 pose, shape, placement) and the camera to one photo's keypoints, mask and depth cues.

A least-squares problem solved by Levenberg-Marquardt (``munet.fitting.lm``). Residual groups, each in a
unit that means something (DESIGN.md §7: balance losses in meaningful units); a group's loss term is the
sum of its squared residuals:

* ``keypoints``: 2D landmark error in % of the person's height, visibility-weighted, robust (Cauchy).
* ``silhouette``: outline vertices <-> mask outline, % of height, robust; correspondences refreshed every
  few iterations from a rendered silhouette (only outline vertices are evaluated, DESIGN.md §7).
* ``ground``: feet that touch the floor touch z = 0 (cm), nothing below it. Under perspective this is what
  makes the foot higher in the photo the farther one.
* ``world``: 3D bone directions from MediaPipe's world keypoints (a weak prior: its depth is unreliable).
* ``anchor`` (only with a ``DepthAnchor``, the network's body): every anchor point's camera-frame position
  relative to the hips, against the network's (cm): strongly along the viewing axis (the depth the photo
  cannot see), weakly in the image plane (which the 2D terms may move).
* ``pose`` / ``limits``: small-angle prior; Euler joint limits and hinge ranges (radians).
* ``shape``: phenotypes stay near average (or near ``targets.shape_prior``, the network's shape).
  ``upright``: the spine stays within ~25 deg of vertical. ``camera``: pitch near level, camera above
  the floor, everything in front of it.

Everything is batched: B candidate bodies (depth hypotheses) are fitted at once and the best kept.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable

import numpy as np
import torch

from munet.body.base import BodyModel
from munet.body.skeleton import SMPL24_INDEX as JOINT
from munet.fitting import camera as cam
from munet.fitting.landmarks import BONE_FROM, BONE_TO, bone_weights, extend_with_midpoints
from munet.fitting.lm import levenberg_marquardt
from munet.fitting.pose import (
    POSE_SIZE,
    PoseLimits,
    compose_rotations,
    limit_residuals,
    prior_residuals,
    prior_target,
    root_rotation,
)
from munet.fitting.smpl_landmarks import landmark_arrays
from munet.fitting.state import FitTargets
from munet.fitting.subset import PointSet, SubsetBody
from munet.geometry.mesh import outline_vertices
from munet.geometry.raster import rasterize_silhouette

DTYPE = torch.float64  # finite differences want the precision; the evaluations are tiny
MAX_OUTLINE_VERTICES = 400
MAX_MASK_POINTS = 600
"""Silhouette correspondences are subsampled to these counts (each refresh draws the same way)."""
CHUNK_TOLERANCE = 0.01
"""Refinement stops once a refresh of the silhouette correspondences changes the cost by less than this
(or the solver settles before the next refresh is due)."""


@dataclasses.dataclass(frozen=True)
class FitWeights:
    """Loss weights (multiplying squared residuals, each already in its natural unit)."""

    keypoints: float = 1.0
    keypoint_robust_pct: float = 5.0  # Cauchy scale, % of height
    silhouette_outside: float = 0.5  # body outline beyond the mask
    silhouette_inside: float = 0.25  # mask outline beyond the body (clothes may explain some of it)
    silhouette_robust_pct: float = 3.0
    ground_contact: float = 1.0
    ground_penetration: float = 4.0
    world: float = 3.0
    pose: float = 4.0
    limits: float = 300.0
    shape: float = 6.0
    upright: float = 40.0
    upright_free_deg: float = 25.0
    camera_pitch: float = 2.0  # per (pitch / 30 deg)^2
    camera_height: float = 100.0  # per metre below 0.2 m, squared
    anchor_depth: float = 1.0  # per cm^2 of mean relative-depth deviation from the network's body
    anchor_plane: float = 0.05  # per cm^2 of mean image-plane deviation (relative to the hips)
    anchor_scale_cm: float = 0.0  # > 0: each point's depth deviation is robust (Cauchy) beyond this scale


@dataclasses.dataclass
class FitState:
    """B candidates being fitted.

    root_init: (B, 3, 3) fixed root rotations; pose: (B, POSE_SIZE) packed (``munet.fitting.pose``);
    translation_m: (B, 3) world; camera: (B, 3) pitch (rad, positive looks down), height above the
    floor (m) and log focal scale (focal = ``targets.focal_px * exp(camera[:, 2])``); shape: (B, S) body shape; names: (B,) candidate names. All float64.
    """

    root_init: torch.Tensor
    pose: torch.Tensor
    translation_m: torch.Tensor
    camera: torch.Tensor
    shape: torch.Tensor
    names: list[str]

    @property
    def batch(self) -> int:
        return self.pose.shape[0]

    def cat(self, other: "FitState") -> "FitState":
        """This batch followed by another's."""
        return FitState(torch.cat([self.root_init, other.root_init]), torch.cat([self.pose, other.pose]),
                        torch.cat([self.translation_m, other.translation_m]), torch.cat([self.camera, other.camera]),
                        torch.cat([self.shape, other.shape]), self.names + other.names)

    def select(self, index: int) -> "FitState":
        """Candidate ``index`` alone, its root correction folded into ``root_init``."""
        i = slice(index, index + 1)
        root = root_rotation(self.root_init[i], self.pose[i])
        pose = self.pose[i].clone()
        pose[:, :3] = 0.0
        return FitState(root, pose, self.translation_m[i].clone(), self.camera[i].clone(), self.shape[i].clone(),
                        [self.names[index]])

    @property
    def pitch_rad(self) -> torch.Tensor:
        return self.camera[:, 0]

    @property
    def height_m(self) -> torch.Tensor:
        return self.camera[:, 1]

    def focal_px(self, prior_focal_px: float) -> torch.Tensor:
        """(B,) each candidate's focal length in pixels."""
        return prior_focal_px * torch.exp(self.camera[:, 2])


@dataclasses.dataclass(frozen=True)
class DepthAnchor:
    """The network's body as the refinement's 3D anchor.

    points: ``PointSet`` of K body vertices spread over the mesh; target_cam: (33 + K, 3) float64, the
    network's 33 landmarks then those K vertices in the OpenCV camera frame (orientation only), metres,
    relative to the midpoint of its two hip landmarks. weight: (33 + K,) float64 in [0, 1], how much each
    point is held (0 on a leg whose foot the floor observes: the photo places that leg itself).
    """

    points: PointSet
    target_cam: torch.Tensor
    weight: torch.Tensor | None = None


HIP_LANDMARKS = (23, 24)
ANCHOR_VERTICES = 96
"""Mesh vertices (besides the 33 landmarks) whose depth the anchor holds (a fixed, evenly drawn subset)."""


def relative_to_hips(points_cam: torch.Tensor) -> torch.Tensor:
    """(..., 33 + K, 3) landmarks-then-points -> the same relative to the midpoint of the hip landmarks."""
    return points_cam - points_cam[..., HIP_LANDMARKS, :].mean(-2, keepdim=True)


@dataclasses.dataclass
class FitResult:
    """The fitted candidates and each one's loss terms (B,) at the end (``terms``: computed on first use,
    from ``loss_terms``; the refinement needs only the state)."""

    state: FitState
    loss_terms: Callable[[], dict[str, torch.Tensor]]

    @functools.cached_property
    def terms(self) -> dict[str, torch.Tensor]:
        return self.loss_terms()

    def total(self) -> torch.Tensor:
        return sum(self.terms.values())

    @property
    def names(self) -> list[str]:
        return self.state.names


def bone_directions(points: torch.Tensor) -> torch.Tensor:
    """(B, 33, 3) landmarks -> (B, len(BONES), 3) unit bone directions (``landmarks.BONES``)."""
    ext = extend_with_midpoints(points)
    d = ext[:, BONE_TO] - ext[:, BONE_FROM]
    return d / d.norm(dim=-1, keepdim=True).clamp_min(1e-9)


def _cauchy(errors: torch.Tensor, scale: float) -> torch.Tensor:
    """Residual vectors (..., 2) rescaled so their squared norm is the Cauchy loss c^2 log(1 + e^2 / c^2)."""
    norm = errors.norm(dim=-1, keepdim=True)
    robust = scale * torch.sqrt(torch.log1p((norm / scale) ** 2))
    return errors * torch.where(norm > 1e-9, robust / norm.clamp_min(1e-9), torch.ones_like(norm))


def _tensors(targets: FitTargets) -> dict[str, torch.Tensor]:
    """Torch views of the targets, computed once per targets object (``targets.cache``)."""
    cache = targets.cache
    if not cache:
        cache["keypoints"] = torch.from_numpy(targets.keypoints_px).to(DTYPE)
        weights = torch.from_numpy(targets.keypoint_weights).to(DTYPE)
        cache["keypoint_sqrt_w"] = (weights / weights.sum().clamp_min(1e-9)).sqrt()
        trust = torch.from_numpy(bone_weights(targets.world_weights)).to(DTYPE)
        cache["bone_sqrt_w"] = (trust / trust.sum().clamp_min(1e-9)).sqrt()
        cache["world_directions"] = bone_directions(torch.from_numpy(targets.world_m).to(DTYPE)[None])
        scale = targets.joint_prior_scale if targets.joint_prior_scale is not None else np.ones(24, np.float32)
        cache["joint_prior_scale"] = torch.from_numpy(scale).to(DTYPE)
        cache["prior_target"] = prior_target(DTYPE)
        if targets.shape_prior is not None:
            cache["shape_prior"] = torch.as_tensor(np.asarray(targets.shape_prior)).to(DTYPE).reshape(1, -1)
    return cache


class BodyFitter:
    """Holds the body model, the landmark and sole point sets, and fits candidates to targets."""

    def __init__(self, body: BodyModel, weights: FitWeights | None = None):
        self.body = body
        self.weights = weights or FitWeights()
        self.subset = SubsetBody(body, DTYPE)
        self.limits = PoseLimits(DTYPE)
        indices, lm_weights = landmark_arrays(body)
        self.landmark_indices, self.landmark_regressor_weights = indices, lm_weights
        support = np.unique(indices)
        mix = np.zeros((indices.shape[0], support.size), np.float64)
        rows = np.repeat(np.arange(indices.shape[0]), indices.shape[1])
        np.add.at(mix, (rows, np.searchsorted(support, indices).ravel()), lm_weights.ravel())
        self.landmark_points = self.subset.points(torch.from_numpy(support), torch.from_numpy(mix))
        with torch.no_grad():
            rest_vertices, _ = body.rest(body.default_shape)
        rest = rest_vertices[0]
        dense = body.dense_weights
        soles = []
        for side in ("left", "right"):
            foot = dense[:, JOINT[f"{side}_ankle"]] + dense[:, JOINT[f"{side}_foot"]]
            candidates = torch.nonzero((foot > 0.5) & (rest[:, 2] < 0.025)).squeeze(1)
            soles.append(candidates[:: max(1, candidates.numel() // 48)])
        self.sole_sizes = (soles[0].numel(), soles[1].numel())
        self.sole_points = self.subset.vertices(torch.cat(soles))
        self.faces_np = body.faces.numpy()
        self.default_shape = body.default_shape.to(DTYPE)

    # ---- model evaluation -----------------------------------------------------------------------

    def evaluate(self, state_rows: dict[str, torch.Tensor], extra: PointSet | None = None,
                 rest_cache: tuple | None = None, anchor: PointSet | None = None) -> dict[str, torch.Tensor]:
        """Pose the point sets for N parameter rows: root_init (N, 3, 3), pose (N, P), translation (N, 3),
        shape (N, S). rest_cache: (rest points list, rest joints) to reuse when the shape is fixed (built
        from ``point_sets(extra, anchor)``); anchor: the ``DepthAnchor``'s points (out["anchor"])."""
        sets = self.point_sets(extra, anchor)
        if rest_cache is None:
            rest, rest_j = self._rest_per_distinct_shape(state_rows["shape"], sets)
        else:
            rest, rest_j = rest_cache
        rotations = compose_rotations(state_rows["root_init"], state_rows["pose"], rest_j)
        posed, joints = self.subset.pose(rest, sets, rest_j, rotations, state_rows["translation"])
        n_l = self.sole_sizes[0]
        extra_posed = posed[2] if extra is not None else posed[1][:, :0]
        return {
            "landmarks": posed[0],
            "sole_left": posed[1][:, :n_l],
            "sole_right": posed[1][:, n_l:],
            "extra": extra_posed,
            "anchor": posed[-1] if anchor is not None else None,
            "all": torch.cat(posed[: len(posed) - (anchor is not None)], 1),
            "joints": joints,
            "rotations": rotations,
        }

    def _rest_per_distinct_shape(self, shape: torch.Tensor, sets: list[PointSet]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """``subset.rest`` for rows (N, S) of shapes, computed once per distinct shape: a finite-difference
        Jacobian's rows differ in shape only in the shape columns, so most share their candidate's (the shape's
        rest forms were ~half the refinement's time). Batch 1 when every row shares one shape (``pose`` and
        ``compose_rotations`` broadcast it)."""
        distinct, row_of = torch.unique(shape, dim=0, return_inverse=True)
        rest, rest_j = self.subset.rest(distinct, sets)
        if distinct.shape[0] == 1:
            return rest, rest_j
        return [points[row_of] for points in rest], rest_j[row_of]

    def point_sets(self, extra: PointSet | None = None, anchor: PointSet | None = None) -> list[PointSet]:
        """The point sets ``evaluate`` poses, in order: landmarks, soles, [extra], [anchor]."""
        return [self.landmark_points, self.sole_points] + [p for p in (extra, anchor) if p is not None]

    def depth_anchor(self, vertices_cam: np.ndarray, count: int = ANCHOR_VERTICES) -> DepthAnchor:
        """The anchor holding a body's relative depths: (V, 3) full-mesh vertices in the OpenCV camera frame
        -> its landmarks and ``count`` evenly drawn vertices, relative to its hips, each weighted 1."""
        index = np.sort(np.random.default_rng(0).choice(len(vertices_cam), count, replace=False))
        points = np.concatenate([self.regress_landmarks(vertices_cam.astype(np.float64)), vertices_cam[index]])
        target = relative_to_hips(torch.from_numpy(points.astype(np.float64)).to(DTYPE))
        weight = torch.ones(len(points), dtype=DTYPE)
        return DepthAnchor(self.subset.vertices(torch.from_numpy(index)), target, weight)

    def shape_prior(self, targets: FitTargets) -> torch.Tensor:
        """(1, S) the centre of the shape prior (where fits start): ``targets.shape_prior`` when given,
        else the model's average shape."""
        return _tensors(targets).get("shape_prior", self.default_shape)

    def regress_landmarks(self, vertices: np.ndarray) -> np.ndarray:
        """(V, 3) full-mesh vertices -> (33, 3) MediaPipe landmarks (the exact regressor, for metrics)."""
        gathered = vertices[self.landmark_indices]  # (33, K, 3)
        return np.einsum("lk,lkc->lc", self.landmark_regressor_weights, gathered)

    def landmarks_and_joints(self, state: FitState) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 33, 3) landmarks and (B, 24, 3) joints of each candidate, world frame."""
        out = self.evaluate(_rows(state))
        return out["landmarks"], out["joints"]

    # ---- residuals ------------------------------------------------------------------------------

    def residuals(self, targets: FitTargets, rows: dict[str, torch.Tensor], pairs: dict | None = None,
                  weights: FitWeights | None = None, rest_cache=None, anchor: DepthAnchor | None = None,
                  ) -> dict[str, torch.Tensor]:
        """Residual groups (each (N, R_g)) for N parameter rows (see ``evaluate``; plus camera (N, 3))."""
        w = weights or self.weights
        t = _tensors(targets)
        extra = pairs["points"] if pairs is not None else None
        out = self.evaluate(rows, extra, rest_cache, anchor.points if anchor is not None else None)
        pitch, height = rows["camera"][:, 0], rows["camera"][:, 1]
        focal = targets.focal_px * torch.exp(rows["camera"][:, 2])
        res: dict[str, torch.Tensor] = {}

        uv, depth = cam.project(out["landmarks"], pitch, height, focal, targets.principal_px)
        err = (uv - t["keypoints"]) / targets.scale_px * 100.0  # (N, 33, 2) % of height
        res["keypoints"] = (math.sqrt(w.keypoints) * _cauchy(err, w.keypoint_robust_pct) * t["keypoint_sqrt_w"][:, None]).flatten(1)

        if pairs is not None:
            uv_extra, _ = cam.project(out["extra"], pitch, height, focal, targets.principal_px)
            err = (uv_extra[:, pairs["local"]] - pairs["targets"]) / targets.scale_px * 100.0
            res["silhouette"] = (_cauchy(err, w.silhouette_robust_pct) * pairs["sqrt_w"][:, None]).flatten(1)

        ground = []
        for side in ("left", "right"):
            if targets.contact.get(side, False):
                ground.append(math.sqrt(w.ground_contact) * 100.0 * out[f"sole_{side}"][..., 2].min(dim=1).values[:, None])
        below = torch.relu(-out["all"][..., 2]) * 100.0
        ground.append(math.sqrt(w.ground_penetration / below.shape[1]) * below)
        res["ground"] = torch.cat(ground, 1)

        ww = w.world
        if ww > 0:
            rotation = cam.world_to_camera_rotation(pitch)
            cam_pts = torch.einsum("nij,nkj->nki", rotation, out["landmarks"])
            aligned = torch.stack([cam_pts[..., 0], cam_pts[..., 2], -cam_pts[..., 1]], -1)  # camera-aligned frame
            diff = bone_directions(aligned) - t["world_directions"]
            res["world"] = (math.sqrt(ww) * diff * t["bone_sqrt_w"][:, None]).flatten(1)

        if anchor is not None:
            res["anchor"] = _anchor_residuals(out, pitch, anchor, w)
        res["pose"] = math.sqrt(w.pose) * prior_residuals(rows["pose"], self.limits, t["joint_prior_scale"],
                                                          t["prior_target"])
        res["limits"] = math.sqrt(w.limits) * limit_residuals(out["rotations"], rows["pose"], self.limits)
        res["shape"] = math.sqrt(w.shape) * (rows["shape"] - self.shape_prior(targets))
        spine = out["joints"][:, JOINT["neck"]] - out["joints"][:, JOINT["pelvis"]]
        cos_up = spine[:, 2] / spine.norm(dim=-1).clamp_min(1e-9)
        free = math.cos(math.radians(w.upright_free_deg))
        res["upright"] = math.sqrt(w.upright) * torch.relu(free - cos_up)[:, None]
        res["camera"] = torch.stack([
            math.sqrt(w.camera_pitch) * pitch / math.radians(30.0),
            math.sqrt(w.camera_height) * torch.relu(0.2 - height),
            10.0 * torch.relu(0.5 - depth).sum(1),  # everything in front of the camera
            rows["camera"][:, 2] / targets.focal_log_sigma,  # focal near its prior (EXIF: held)
        ], 1)
        return res

    # ---- fitting ---------------------------------------------------------------------------------

    def fit(self, targets: FitTargets, state: FitState, iterations: int, silhouette: bool = False,
            refresh_every: int = 5, fit_shape: bool = False, weights: FitWeights | None = None,
            group_scale: dict[str, torch.Tensor] | None = None, anchor: DepthAnchor | None = None,
            shape_iterations: int | None = None) -> FitResult:
        """Levenberg-Marquardt on pose, translation, camera (and shape) of every candidate. weights: override
        the fitter's loss weights for this call; group_scale: per-candidate (B,) multipliers of residual
        groups (e.g. ``{"ground": ...}`` with zeros to fit some candidates without the floor, in the same
        batch); anchor: hold every point's depth relative to the hips near this body's (the network's);
        shape_iterations: with ``fit_shape``, the shape is free only in the chunks starting before this many
        iterations (None: throughout), then held (its rest pose is computed once: much cheaper)."""
        state = dataclasses.replace(state, names=list(state.names))
        done = 0
        pairs = None
        previous = None
        chunk = refresh_every if silhouette else max(iterations, 1)
        while done < iterations:
            steps = min(chunk, iterations - done)
            if silhouette:
                pairs = self.silhouette_pairs(state, targets)
            free_shape = fit_shape and (shape_iterations is None or done < shape_iterations)
            state, used, cost = self._solve(targets, state, steps, pairs, free_shape, weights, group_scale, anchor)
            done += steps
            # stop once the solver settles within a chunk, or fresh correspondences barely change the cost
            if previous is not None and (used < steps or bool((torch.abs(previous - cost) <= CHUNK_TOLERANCE * previous).all())):
                break
            previous = cost
        def loss_terms() -> dict[str, torch.Tensor]:
            with torch.no_grad():
                res = _scaled(self.residuals(targets, _rows(state), pairs, weights, anchor=anchor), group_scale,
                              torch.arange(state.batch))
            return {k: (v**2).sum(1) for k, v in res.items()}

        return FitResult(state, loss_terms)

    def _solve(self, targets: FitTargets, state: FitState, iterations: int, pairs, fit_shape: bool,
               weights: FitWeights | None, group_scale: dict[str, torch.Tensor] | None = None,
               anchor: DepthAnchor | None = None) -> tuple[FitState, int, torch.Tensor]:
        n_shape = state.shape.shape[1] if fit_shape else 0
        low, high = self.body.shape_bounds or (None, None)

        def to_shape(z: torch.Tensor) -> torch.Tensor:
            return z if low is None else low + (high - low) * torch.sigmoid(z)

        def from_shape(shape: torch.Tensor) -> torch.Tensor:
            if low is None:
                return shape
            return torch.logit(((shape - low) / (high - low)).clamp(1e-3, 1 - 1e-3))

        x0 = torch.cat([state.pose, state.translation_m, state.camera] + ([from_shape(state.shape)] if fit_shape else []), 1)
        rest_cache = None
        shared = False
        if not fit_shape:
            sets = self.point_sets(pairs["points"] if pairs is not None else None,
                                   anchor.points if anchor is not None else None)
            shared = bool((state.shape == state.shape[:1]).all())  # one shape for all: broadcast, no copies
            rest_cache = self.subset.rest(state.shape[:1] if shared else state.shape, sets)

        def unpack(x: torch.Tensor, owner: torch.Tensor) -> dict[str, torch.Tensor]:
            rows = {
                "root_init": state.root_init[owner],
                "pose": x[:, :POSE_SIZE],
                "translation": x[:, POSE_SIZE : POSE_SIZE + 3],
                "camera": x[:, POSE_SIZE + 3 : POSE_SIZE + 6],
                "shape": to_shape(x[:, POSE_SIZE + 6 :]) if fit_shape else state.shape[owner],
            }
            return rows

        def residual_fn(x: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
            cache = rest_cache
            if rest_cache is not None and not shared:
                cache = ([p[owner] for p in rest_cache[0]], rest_cache[1][owner])
            res = _scaled(self.residuals(targets, unpack(x, owner), pairs, weights, cache, anchor), group_scale, owner)
            return torch.cat(list(res.values()), 1)

        x, r, used = levenberg_marquardt(residual_fn, x0, iterations)
        rows = unpack(x, torch.arange(state.batch))
        return FitState(state.root_init, rows["pose"], rows["translation"], rows["camera"],
                        rows["shape"] if n_shape else state.shape, state.names), used, (r**2).sum(1)

    def fit_directions(self, targets: FitTargets, state: FitState, world: torch.Tensor, iterations: int) -> FitState:
        """Fit the poses so each candidate's 3D bone directions match its world keypoints (B, 33, 3)
        (camera-aligned frame = the world frame of a level camera), under the pose prior and limits."""
        goal = bone_directions(world.to(DTYPE))  # (B, bones, 3)
        t = _tensors(targets)
        sqrt_w = t["bone_sqrt_w"]
        shared = bool((state.shape == state.shape[:1]).all())
        rest_cache = self.subset.rest(state.shape[:1] if shared else state.shape, [self.landmark_points, self.sole_points])
        zero = torch.zeros(1, 3, dtype=DTYPE)

        def residual_fn(x: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
            rows = {"root_init": state.root_init[owner], "pose": x, "translation": zero.expand(len(owner), 3)}
            cache = rest_cache if shared else ([p[owner] for p in rest_cache[0]], rest_cache[1][owner])
            out = self.evaluate(rows, None, cache)
            diff = (bone_directions(out["landmarks"]) - goal[owner]) * sqrt_w[:, None]
            return torch.cat([
                diff.flatten(1),
                0.15 * prior_residuals(x, self.limits, t["joint_prior_scale"], t["prior_target"]),
                math.sqrt(self.weights.limits) * limit_residuals(out["rotations"], x, self.limits),
            ], 1)

        pose, _, _ = levenberg_marquardt(residual_fn, state.pose, iterations)
        return dataclasses.replace(state, pose=pose)

    # ---- silhouette correspondences ---------------------------------------------------------------

    def silhouette_pairs(self, state: FitState, targets: FitTargets, raster_scale: float = 0.5) -> dict | None:
        """Render candidate 0's full body, find its outline vertices and pair them with the mask outline
        both ways (each outline vertex to its nearest mask point, each mask point to its nearest outline
        vertex). Returns the outline point set, per-pair local vertex index, pixel targets and weights."""
        from scipy.spatial import cKDTree

        out, _ = full_body(self.body, state)
        uv, _ = cam.project(out.vertices_m.to(DTYPE), state.pitch_rad[:1], state.height_m[:1],
                            state.focal_px(targets.focal_px)[:1], targets.principal_px)
        uv = uv[0].numpy()
        width, height = targets.image_size
        small = (max(1, int(round(height * raster_scale))), max(1, int(round(width * raster_scale))))
        sil = rasterize_silhouette(uv * raster_scale, self.faces_np, small[0], small[1], closed=True)
        outline = outline_vertices(uv * raster_scale, sil, max_distance_px=2.0)
        on_photo = (uv[outline] >= 1.0).all(1) & (uv[outline, 0] < width - 1) & (uv[outline, 1] < height - 1)
        outline = outline[on_photo]  # beyond the frame the mask says nothing
        if outline.size == 0:
            return None
        rng = np.random.default_rng(0)
        if outline.size > MAX_OUTLINE_VERTICES:
            outline = np.sort(rng.choice(outline, MAX_OUTLINE_VERTICES, replace=False))
        mask_pts = targets.mask_outline_px
        if len(mask_pts) == 0:  # no usable mask: keypoints and priors only
            return None
        if len(mask_pts) > MAX_MASK_POINTS:
            mask_pts = mask_pts[np.sort(rng.choice(len(mask_pts), MAX_MASK_POINTS, replace=False))]
        out_uv = uv[outline]
        _, nearest_mask = cKDTree(mask_pts).query(out_uv)
        cols = np.clip(out_uv[:, 0].astype(int), 0, width - 1)
        rows = np.clip(out_uv[:, 1].astype(int), 0, height - 1)
        inside = targets.mask[rows, cols]
        w_model = np.where(inside, self.weights.silhouette_inside, self.weights.silhouette_outside) / outline.size
        _, nearest_vertex = cKDTree(out_uv).query(mask_pts)
        w_mask = np.full(len(mask_pts), self.weights.silhouette_inside / len(mask_pts))
        return {
            "points": self.subset.vertices(torch.from_numpy(outline)),
            "local": torch.from_numpy(np.concatenate([np.arange(outline.size), nearest_vertex])),
            "targets": torch.from_numpy(np.concatenate([mask_pts[nearest_mask], mask_pts])).to(DTYPE),
            "sqrt_w": torch.from_numpy(np.sqrt(np.concatenate([w_model, w_mask]))).to(DTYPE),
        }


def _anchor_residuals(out: dict[str, torch.Tensor], pitch: torch.Tensor, anchor: DepthAnchor, w: FitWeights) -> torch.Tensor:
    """(N, 3 (33 + K)) the anchor group: each landmark's and anchor vertex's camera-frame offset from the
    hips minus the network's (cm), over sqrt of the count: depth weighted ``anchor_depth``, the image plane
    ``anchor_plane``."""
    rotation = cam.world_to_camera_rotation(pitch)
    points = torch.cat([out["landmarks"], out["anchor"]], 1)
    diff = (relative_to_hips(torch.einsum("nij,nkj->nki", rotation, points)) - anchor.target_cam) * 100.0
    n = diff.shape[1]
    if anchor.weight is not None:
        diff = diff * anchor.weight.sqrt()[:, None]
    depth = diff[..., 2]
    if w.anchor_scale_cm > 0:  # Cauchy: held quadratically up to ~the scale, then only logarithmically, so
        c = w.anchor_scale_cm  # a limb the photo's 2D puts elsewhere can follow it (sqrt of c^2 log(1 + r^2/c^2))
        depth = torch.sign(depth) * c * torch.sqrt(torch.log1p((depth / c) ** 2))
    return torch.cat([math.sqrt(w.anchor_depth / n) * depth, math.sqrt(w.anchor_plane / n) * diff[..., :2].flatten(1)], 1)


def _scaled(res: dict[str, torch.Tensor], group_scale: dict[str, torch.Tensor] | None, owner: torch.Tensor) -> dict:
    """Residual groups with per-candidate multipliers applied (rows belong to candidates ``owner``)."""
    if group_scale:
        for name, scale in group_scale.items():
            if name in res:
                res[name] = res[name] * scale.to(res[name].dtype)[owner][:, None]
    return res


def _rows(state: FitState) -> dict[str, torch.Tensor]:
    return {"root_init": state.root_init, "pose": state.pose, "translation": state.translation_m,
            "camera": state.camera, "shape": state.shape}


def full_body(body: BodyModel, state: FitState, index: int = 0):
    """The full mesh of candidate ``index``: a ``munet.body.BodyOutput`` (batch of one, the body's dtype)
    and its local rotations (1, 24, 3, 3)."""
    dtype = body.dense_weights.dtype
    with torch.no_grad():
        i = slice(index, index + 1)
        rest_v, rest_j = body.rest(state.shape[i].to(dtype))
        rotations = compose_rotations(state.root_init[i].to(dtype), state.pose[i].to(dtype), rest_j)
        out = body.pose_rotations(rest_v, rest_j, rotations, state.translation_m[i].to(dtype))
    return out, rotations
