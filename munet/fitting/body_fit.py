"""Fit the body (smpl24 pose, shape, placement) and the camera to one photo's keypoints, mask and depth cues.

Terms, each in a unit that means something (DESIGN.md §7: balance losses in meaningful units):

* ``keypoints``: 2D landmark error in % of the person's height, visibility-weighted, robust (Cauchy).
* ``silhouette``: outline vertices <-> mask outline, % of height, correspondences refreshed every few
  iterations from a rendered silhouette (only outline vertices are evaluated, DESIGN.md §7).
* ``ground``: feet that touch the floor touch z = 0 (cm); nothing below it. Under perspective, this is
  what makes the foot higher in the photo the farther one.
* ``world``: 3D bone directions from MediaPipe's world keypoints (a weak prior: its depth is unreliable).
* ``pose`` / ``limits``: small-angle prior, Euler joint limits and hinge ranges (radians^2).
* ``shape``: phenotypes stay near average. ``upright``: the spine stays within ~30 deg of vertical.
  ``camera``: pitch near level, camera above the floor.

Everything is batched: B candidate bodies (depth hypotheses) are fitted at once and the best kept.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from munet.body.base import BodyModel
from munet.body.keypoints import mediapipe_regressor_arrays
from munet.fitting import camera as cam
from munet.fitting.landmarks import BONE_FROM, BONE_TO, bone_weights, extend_with_midpoints
from munet.fitting.pose import JOINT, PoseParameters
from munet.fitting.state import BodyGuess, FitTargets
from munet.fitting.subset import SubsetBody
from munet.geometry.mesh import outline_vertices
from munet.geometry.raster import rasterize_silhouette


@dataclasses.dataclass(frozen=True)
class FitWeights:
    """Loss weights (each term is already in its natural unit, see the module docstring)."""

    keypoints: float = 1.0
    keypoint_robust_pct: float = 6.0  # Cauchy scale, % of height
    silhouette_outside: float = 0.6  # body outline beyond the mask
    silhouette_inside: float = 0.15  # mask outline beyond the body (clothes may explain it)
    silhouette_robust_pct: float = 4.0
    ground_contact: float = 1.0
    ground_penetration: float = 4.0
    world: float = 4.0
    pose: float = 4.0
    limits: float = 300.0
    shape: float = 20.0
    upright: float = 40.0
    upright_free_deg: float = 25.0
    camera_pitch: float = 2.0  # per (pitch / 30 deg)^2
    camera_height: float = 100.0  # per metre below 0.2 m, squared


@dataclasses.dataclass
class FitResult:
    """The fitted state of B candidates and their per-term losses (B,) at the end."""

    shape: torch.Tensor
    pose: PoseParameters
    translation_m: torch.Tensor
    pitch_rad: torch.Tensor
    height_m: torch.Tensor
    terms: dict[str, torch.Tensor]
    names: list[str]

    def total(self) -> torch.Tensor:
        return sum(self.terms.values())


def bone_directions(points: torch.Tensor) -> torch.Tensor:
    """(B, 33, 3) landmarks -> (B, len(BONES), 3) unit bone directions (``landmarks.BONES``)."""
    ext = extend_with_midpoints(points)
    d = ext[:, BONE_TO] - ext[:, BONE_FROM]
    return d / d.norm(dim=-1, keepdim=True).clamp_min(1e-6)


def direction_loss(points: torch.Tensor, goal_directions: torch.Tensor, bone_trust: torch.Tensor) -> torch.Tensor:
    """(B,) trust-weighted mean squared difference between the bone directions of (B, 33, 3) points and
    goal unit directions (B or 1, len(BONES), 3), both in the same frame; bone_trust (len(BONES),)."""
    diff = ((bone_directions(points) - goal_directions) ** 2).sum(-1)
    return (diff * bone_trust).sum(1) / bone_trust.sum().clamp_min(1e-6)


def _tensors(targets: FitTargets) -> dict[str, torch.Tensor]:
    """Torch views of the targets, computed once per targets object."""
    cache = targets.cache
    if not cache:
        cache["keypoints"] = torch.from_numpy(targets.keypoints_px)
        cache["keypoint_weights"] = torch.from_numpy(targets.keypoint_weights)
        cache["bone_trust"] = torch.from_numpy(bone_weights(targets.world_weights))
        cache["world_directions"] = bone_directions(torch.from_numpy(targets.world_m)[None])
    return cache


class BodyFitter:
    """Holds the body model and the fixed vertex subsets; fits guesses to targets."""

    def __init__(self, body: BodyModel, weights: FitWeights | None = None):
        self.body = body
        self.weights = weights or FitWeights()
        self.subset = SubsetBody(body)
        indices, lm_weights = mediapipe_regressor_arrays()
        support = np.unique(indices)
        mix = np.zeros((indices.shape[0], support.size), np.float32)
        np.add.at(mix, (np.repeat(np.arange(indices.shape[0]), indices.shape[1]), np.searchsorted(support, indices).ravel()),
                  lm_weights.ravel())
        self.landmark_points = self.subset.points(torch.from_numpy(support), torch.from_numpy(mix))
        with torch.no_grad():
            rest_vertices, _ = body.rest(body.default_shape)
        rest = rest_vertices[0]
        dense = body.dense_weights
        soles = []
        for side in ("left", "right"):
            foot = dense[:, JOINT[f"{side}_ankle"]] + dense[:, JOINT[f"{side}_foot"]]
            candidates = torch.nonzero((foot > 0.5) & (rest[:, 2] < 0.025)).squeeze(1)
            step = max(1, candidates.numel() // 48)
            soles.append(candidates[::step])
        self.sole_sizes = (soles[0].numel(), soles[1].numel())
        self.sole_points = self.subset.vertices(torch.cat(soles))
        self.faces_np = body.faces.numpy()

    # ---- model evaluation ---------------------------------------------------------------------

    def _shape(self, shape_logit: torch.Tensor) -> torch.Tensor:
        low, high = self.body.shape_bounds or (None, None)
        if low is None:
            return shape_logit
        return low + (high - low) * torch.sigmoid(shape_logit)

    def _shape_logit(self, shape: torch.Tensor) -> torch.Tensor:
        low, high = self.body.shape_bounds or (None, None)
        if low is None:
            return shape.clone()
        unit = ((shape - low) / (high - low)).clamp(1e-3, 1 - 1e-3)
        return torch.logit(unit)

    def evaluate(self, shape: torch.Tensor, pose: PoseParameters, translation: torch.Tensor,
                 extra: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Posed landmarks (B, 33, 3), soles, extra vertices (B, E, 3), joints (B, 24, 3), rotations."""
        sets = [self.landmark_points, self.sole_points]
        if extra is not None:
            sets.append(self.subset.vertices(extra))
        rest_points, rest_j = self.subset.rest(shape, sets)
        rotations = pose.rotations(rest_j)
        skin = torch.cat([s.skin for s in sets])
        posed, joints = self.subset.pose(torch.cat(rest_points, 1), skin, rest_j, rotations, translation)
        n_lm, (n_l, n_r) = self.landmark_points.size, self.sole_sizes
        return {
            "landmarks": posed[:, :n_lm],
            "sole_left": posed[:, n_lm : n_lm + n_l],
            "sole_right": posed[:, n_lm + n_l : n_lm + n_l + n_r],
            "extra": posed[:, n_lm + n_l + n_r :],
            "all": posed,
            "joints": joints,
            "rotations": rotations,
            "rest_joints": rest_j,
        }

    # ---- the loss -----------------------------------------------------------------------------

    def losses(self, targets: FitTargets, shape_logit: torch.Tensor, pose: PoseParameters, translation: torch.Tensor,
               pitch: torch.Tensor, height: torch.Tensor, silhouette_pairs=None, world_weight: float | None = None,
               ) -> dict[str, torch.Tensor]:
        """Per-term losses, each (B,)."""
        w = self.weights
        shape = self._shape(shape_logit)
        extra = None if silhouette_pairs is None else silhouette_pairs["vertices"]
        out = self.evaluate(shape, pose, translation, extra)
        terms: dict[str, torch.Tensor] = {}

        uv, depth = cam.project(out["landmarks"], pitch, height, targets.focal_px, targets.principal_px)
        t = _tensors(targets)
        kp, kw = t["keypoints"], t["keypoint_weights"]
        err_pct = (uv - kp).norm(dim=-1) / targets.scale_px * 100.0  # (B, 33)
        c = w.keypoint_robust_pct
        robust = c**2 * torch.log1p((err_pct / c) ** 2)
        terms["keypoints"] = w.keypoints * (robust * kw).sum(1) / kw.sum().clamp_min(1e-6)

        if silhouette_pairs is not None:
            terms["silhouette"] = self._silhouette_term(out["extra"], pitch, height, targets, silhouette_pairs)

        # ground: contact feet at z = 0 (soft minimum over the sole), nothing below the floor
        contact = []
        for side in ("left", "right"):
            z = out[f"sole_{side}"][..., 2]
            if targets.contact.get(side, False):
                contact.append((100.0 * z.min(dim=1).values) ** 2)  # the lowest sole point on the floor
        terms["ground"] = w.ground_contact * (sum(contact) if contact else torch.zeros_like(pitch))
        below = torch.relu(-out["all"][..., 2]) * 100.0
        terms["ground"] = terms["ground"] + w.ground_penetration * (below**2).mean(1)

        # world keypoint bone directions, compared in the camera-aligned frame
        ww = w.world if world_weight is None else world_weight
        if ww > 0:
            terms["world"] = ww * self._world_term(out["landmarks"], pitch, targets)

        terms["pose"] = w.pose * pose.prior()
        terms["limits"] = w.limits * pose.limit_penalty(out["rotations"])
        terms["shape"] = w.shape * ((shape - self.body.default_shape) ** 2).sum(1)
        spine = out["joints"][:, JOINT["neck"]] - out["joints"][:, JOINT["pelvis"]]
        cos_up = spine[:, 2] / spine.norm(dim=-1).clamp_min(1e-6)
        free = math.cos(math.radians(w.upright_free_deg))
        terms["upright"] = w.upright * torch.relu(free - cos_up) ** 2
        terms["camera"] = w.camera_pitch * (pitch / math.radians(30.0)) ** 2 + w.camera_height * torch.relu(0.2 - height) ** 2
        behind = torch.relu(0.5 - depth).sum(1)  # everything in front of the camera
        terms["camera"] = terms["camera"] + 100.0 * behind
        return terms

    def _world_term(self, landmarks: torch.Tensor, pitch: torch.Tensor, targets: FitTargets) -> torch.Tensor:
        rotation = cam.world_to_camera_rotation(pitch)  # world -> OpenCV camera
        cam_pts = torch.einsum("bij,bnj->bni", rotation, landmarks)
        aligned = torch.stack([cam_pts[..., 0], cam_pts[..., 2], -cam_pts[..., 1]], -1)  # camera-aligned Blender
        t = _tensors(targets)
        return direction_loss(aligned, t["world_directions"], t["bone_trust"])

    def fit_directions(self, targets: FitTargets, shape: torch.Tensor, pose: PoseParameters, world: torch.Tensor,
                       iterations: int) -> None:
        """Fit the pose (in place) so the body's 3D bone directions match world keypoints (B, 33, 3)
        (camera-aligned frame, level camera), under the pose prior and joint limits."""
        w = self.weights
        optimizer = torch.optim.Adam(
            [{"params": [pose.root_delta], "lr": 0.03}, {"params": [pose.local], "lr": 0.06},
             {"params": [pose.hinge], "lr": 0.08}], betas=(0.8, 0.95))
        zero = torch.zeros(pose.batch, 3, dtype=shape.dtype)
        goal = bone_directions(world.to(shape.dtype))
        trust = _tensors(targets)["bone_trust"]
        for _ in range(iterations):
            optimizer.zero_grad()
            out = self.evaluate(shape, pose, zero)
            loss = direction_loss(out["landmarks"], goal, trust)
            loss = loss + 0.02 * pose.prior() + w.limits * pose.limit_penalty(out["rotations"])
            loss.sum().backward()
            optimizer.step()

    def _silhouette_term(self, vertices: torch.Tensor, pitch, height, targets: FitTargets, pairs) -> torch.Tensor:
        w = self.weights
        uv, _ = cam.project(vertices, pitch, height, targets.focal_px, targets.principal_px)
        err = (uv[:, pairs["local"]] - pairs["targets"]).norm(dim=-1) / targets.scale_px * 100.0  # (B, P)
        c = w.silhouette_robust_pct
        robust = c**2 * torch.log1p((err / c) ** 2)
        return (robust * pairs["weights"]).sum(1) / pairs["weights"].sum().clamp_min(1e-6)

    # ---- silhouette correspondences ---------------------------------------------------------------

    def silhouette_pairs(self, shape: torch.Tensor, pose: PoseParameters, translation: torch.Tensor, pitch: torch.Tensor,
                         height: torch.Tensor, targets: FitTargets, raster_scale: float = 0.5) -> dict[str, torch.Tensor]:
        """Render the full body (batch item 0), find its outline vertices and pair them with the mask
        outline both ways. Returns vertex ids, per-pair local index, pixel targets and weights."""
        from scipy.spatial import cKDTree

        with torch.no_grad():
            rest_v, rest_j = self.body.rest(shape[:1])
            posed = self.body.pose_rotations(rest_v, rest_j, pose.rotations(rest_j)[:1], translation[:1])
            uv, _ = cam.project(posed.vertices_m, pitch[:1], height[:1], targets.focal_px, targets.principal_px)
        uv = uv[0].numpy().astype(np.float64)
        width, height_px = targets.image_size
        small = (max(1, int(round(height_px * raster_scale))), max(1, int(round(width * raster_scale))))
        sil = rasterize_silhouette(uv * raster_scale, self.faces_np, small[0], small[1])
        outline = outline_vertices(uv * raster_scale, sil, max_distance_px=2.0)
        if outline.size == 0:
            return None
        mask_pts = targets.mask_outline_px
        out_uv = uv[outline]
        # model -> mask: each outline vertex to its nearest mask outline point
        _, nearest_mask = cKDTree(mask_pts).query(out_uv)
        inside = targets.mask[np.clip(out_uv[:, 1].astype(int), 0, height_px - 1), np.clip(out_uv[:, 0].astype(int), 0, width - 1)]
        w_model = np.where(inside, self.weights.silhouette_inside, self.weights.silhouette_outside)
        # mask -> model: each mask outline point to its nearest outline vertex (mask beyond the body)
        _, nearest_vertex = cKDTree(out_uv).query(mask_pts)
        local = np.concatenate([np.arange(outline.size), nearest_vertex])
        target_px = np.concatenate([mask_pts[nearest_mask], mask_pts])
        pair_w = np.concatenate([w_model, np.full(len(mask_pts), self.weights.silhouette_inside)])
        # normalise the two directions to similar total weight
        pair_w[: outline.size] *= len(mask_pts) / max(outline.size, 1)
        return {
            "vertices": torch.from_numpy(outline),
            "local": torch.from_numpy(local),
            "targets": torch.from_numpy(target_px).float(),
            "weights": torch.from_numpy(pair_w).float(),
        }

    # ---- optimisation -------------------------------------------------------------------------

    def fit(self, targets: FitTargets, guess: BodyGuess | FitResult, iterations: int, silhouette: bool = False,
            refresh_every: int = 8, world_weight: float | None = None, lr_scale: float = 1.0,
            fit_shape: bool = True) -> FitResult:
        """Adam on all parameters of every candidate in the batch."""
        if isinstance(guess, FitResult):
            pose = guess.pose
            shape_logit = self._shape_logit(guess.shape).requires_grad_(fit_shape)
            translation = guess.translation_m.clone().requires_grad_(True)
            pitch = guess.pitch_rad.clone().requires_grad_(True)
            height = guess.height_m.clone().requires_grad_(True)
            names = guess.names
        else:
            pose = PoseParameters(guess.root_rotation, guess.local_pose, guess.hinge)
            shape_logit = self._shape_logit(guess.shape).requires_grad_(fit_shape)
            translation = guess.translation_m.clone().requires_grad_(True)
            pitch = guess.pitch_rad.clone().requires_grad_(True)
            height = guess.height_m.clone().requires_grad_(True)
            names = guess.names
        groups = [
            {"params": [pose.root_delta], "lr": 0.02 * lr_scale},
            {"params": [pose.local], "lr": 0.025 * lr_scale},
            {"params": [pose.hinge], "lr": 0.03 * lr_scale},
            {"params": [translation], "lr": 0.02 * lr_scale},
            {"params": [pitch], "lr": 0.01 * lr_scale},
            {"params": [height], "lr": 0.02 * lr_scale},
        ]
        if fit_shape:
            groups.append({"params": [shape_logit], "lr": 0.04 * lr_scale})
        optimizer = torch.optim.Adam(groups, betas=(0.8, 0.95))
        pairs = None
        for step in range(iterations):
            if silhouette and step % refresh_every == 0:
                pairs = self.silhouette_pairs(self._shape(shape_logit).detach(), pose, translation.detach(),
                                              pitch.detach(), height.detach(), targets)
            optimizer.zero_grad()
            terms = self.losses(targets, shape_logit, pose, translation, pitch, height, pairs, world_weight)
            loss = sum(terms.values()).sum()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            terms = self.losses(targets, shape_logit, pose, translation, pitch, height, pairs, world_weight)
        return FitResult(self._shape(shape_logit).detach(), pose, translation.detach(), pitch.detach(),
                         height.detach(), {k: v.detach() for k, v in terms.items()}, names)


def full_body(body: BodyModel, result: FitResult, index: int = 0):
    """The full mesh of candidate ``index``: a ``munet.body.BodyOutput`` (batch of one) and its local
    rotations (1, 24, 3, 3)."""
    with torch.no_grad():
        shape = result.shape[index : index + 1]
        rest_v, rest_j = body.rest(shape)
        pose = result.pose.select(index) if result.pose.batch > 1 else result.pose
        rotations = pose.rotations(rest_j)
        out = body.pose_rotations(rest_v, rest_j, rotations, result.translation_m[index : index + 1])
    return out, rotations
