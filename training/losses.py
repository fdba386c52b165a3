"""MuNet's training losses. Weights live only in the config (``loss_weights``); every term is a pure
function of tensors.

Frames: predictions and targets are in the canonical camera frame (OpenCV axes, metres, pelvis at the
origin, ``munet.network.model``); 2D terms in normalised crop coordinates ([-1, 1] over the crop).

Resolution: the network's full mesh is a fixed blend of its finest graph level (1,229 vertices), so the
surfaces are supervised there -- against the ground truth blended down the same way (``Hierarchy.
downsample``) -- and every coarser level gets its own vertex term (deep supervision). Landmarks are
regressed exactly: the 33-landmark regressor composed with the finest level's upsampling.
"""

from __future__ import annotations

import dataclasses

import torch
from torch.nn import functional as F

from munet.geometry.mesh import face_normals_torch, vertex_normals_torch
from munet.geometry.projection import project_weak_perspective
from munet.network.model import MuNetOutput


@dataclasses.dataclass
class Targets:
    """body_levels: the true body at each graph level [(B, N_i, 3)], canonical frame, pelvis-relative;
    clothed: (B, N_last, 3) the true clothed surface at the finest level. landmarks_3d: (B, 33, 3) true
    landmarks (from the full mesh). landmarks_2d: (B, 33, 2) their perspective projections, normalised crop
    coords. camera: (B, 3) least-squares weak-perspective camera of the true joints. gt_mask: (B, 1, R, R)
    float clean clothed silhouette (blurred)."""

    body_levels: list[torch.Tensor]
    clothed: torch.Tensor
    landmarks_3d: torch.Tensor
    landmarks_2d: torch.Tensor
    camera: torch.Tensor
    gt_mask: torch.Tensor

    def to(self, device: torch.device | str) -> "Targets":
        return Targets([level.to(device, non_blocking=True) for level in self.body_levels],
                       *(t.to(device, non_blocking=True) for t in (self.clothed, self.landmarks_3d, self.landmarks_2d,
                                                                   self.camera, self.gt_mask)))


class Supervision:
    """What the losses need from the network's hierarchy, built once: the graph levels' down-blends (for
    the targets), the finest level's faces and edges, and the landmark regressor on the finest level.

    model: a ``MuNet``; regressor: ``munet.body.keypoints.MediaPipeRegressor`` (full mesh -> 33 landmarks).
    """

    def __init__(self, model, regressor):
        hierarchy = model.hierarchy
        self.down = [(torch.from_numpy(i), torch.from_numpy(w)) for i, w in hierarchy.downsample]
        self.faces = torch.from_numpy(hierarchy.levels[-2].faces)
        edges = torch.cat([self.faces[:, [0, 1]], self.faces[:, [1, 2]], self.faces[:, [2, 0]]])
        self.edges = torch.unique(torch.sort(edges, 1).values, dim=0)
        up_idx, up_w = (torch.from_numpy(a) for a in hierarchy.upsample[-1])
        detail = model.get_buffer(f"detail{len(hierarchy.levels) - 1}")
        # landmark l = sum_k r_lk (sum_j u_{i_lk, j} x_{idx_j} + detail_{i_lk})
        self.lm_indices = up_idx[regressor.indices]  # (33, K, 3)
        self.lm_weights = regressor.weights[..., None] * up_w[regressor.indices]
        self.lm_offset = torch.einsum("lk,lkc->lc", regressor.weights, detail[regressor.indices])
        self.regressor = regressor

    def to(self, device: torch.device | str) -> "Supervision":
        """Move every table to ``device`` (the model's); returns self."""
        self.down = [(i.to(device), w.to(device)) for i, w in self.down]
        self.faces, self.edges = self.faces.to(device), self.edges.to(device)
        self.lm_indices, self.lm_weights = self.lm_indices.to(device), self.lm_weights.to(device)
        self.lm_offset = self.lm_offset.to(device)
        self.regressor = self.regressor.to(device)
        return self

    def levels(self, full: torch.Tensor) -> list[torch.Tensor]:
        """(B, V, 3) full mesh -> [(B, N_i, 3)] at every graph level."""
        from munet.network.hierarchy import apply_blend

        return [apply_blend(i, w, full) for i, w in self.down]

    def finest(self, full: torch.Tensor) -> torch.Tensor:
        """(B, V, 3) full mesh -> (B, N_last, 3) the finest graph level only."""
        from munet.network.hierarchy import apply_blend

        return apply_blend(*self.down[-1], full)

    def landmarks(self, finest: torch.Tensor) -> torch.Tensor:
        """(B, N_last, 3) finest-level vertices -> (B, 33, 3) landmarks of the full mesh they blend to."""
        gathered = finest[:, self.lm_indices]  # (B, 33, K, 3, 3)
        return torch.einsum("lkj,blkjc->blc", self.lm_weights.to(finest.dtype), gathered) + self.lm_offset.to(finest.dtype)


def weak_perspective_fit(points: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Least-squares (s, tx, ty) with uv ~ s * points[..., :2] + t. points (B, N, 3), uv (B, N, 2) -> (B, 3)."""
    b, n, _ = points.shape
    ones = torch.ones(b, n, 1, dtype=points.dtype, device=points.device)
    zeros = torch.zeros_like(ones)
    rows = torch.cat([torch.cat([points[..., :1], ones, zeros], -1), torch.cat([points[..., 1:2], zeros, ones], -1)], 1)
    rhs = torch.cat([uv[..., :1], uv[..., 1:]], 1)
    return torch.linalg.lstsq(rows, rhs).solution[..., 0]


def edge_loss(pred: torch.Tensor, target: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Mean |edge length difference| (metres). edges (E, 2)."""
    lp = (pred[:, edges[:, 0]] - pred[:, edges[:, 1]]).norm(dim=-1)
    lt = (target[:, edges[:, 0]] - target[:, edges[:, 1]]).norm(dim=-1)
    return (lp - lt).abs().mean()


def normal_loss(pred: torch.Tensor, target: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Mean (1 - cos) between predicted and true face normals."""
    return (1 - (face_normals_torch(pred, faces) * face_normals_torch(target, faces)).sum(-1)).mean()


def chamfer(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Symmetric Chamfer distance (mean of nearest Euclidean distances both ways, metres). (B, N, 3), (B, M, 3)."""
    d = torch.cdist(a, b)
    return 0.5 * (d.min(2).values.mean() + d.min(1).values.mean())


def silhouette_loss(points: torch.Tensor, camera: torch.Tensor, gt_mask: torch.Tensor) -> torch.Tensor:
    """Projected points should land on the (blurred) true silhouette: mean (1 - mask at projection)."""
    uv = project_weak_perspective(points, camera)
    inside = F.grid_sample(gt_mask, uv[:, :, None, :], align_corners=False, padding_mode="zeros")[:, 0, :, 0]
    return (1 - inside).mean()


def inside_loss(body: torch.Tensor, clothed: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Body inside clothes: penalise clothed vertices behind the body surface along the body normal (metres)."""
    normals = vertex_normals_torch(body, faces)
    return F.relu(-((clothed - body) * normals).sum(-1)).mean()


def compute_losses(out: MuNetOutput, targets: Targets, weights: dict[str, float], supervision: Supervision,
                   chamfer_points: int, generator: torch.Generator | None = None,
                   ) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted total and each term's value (plus ``pve_m``, the finest level's mean vertex error, which
    is reported but carries no weight).

    Mutualistic (default): the clothed terms (``CLOTHED_TERMS``) back-propagate into the body stage, the
    camera and the shared encoder too (the silhouette through the camera, ``inside`` pushes the body
    out from under the clothes). When ``out.body_detached`` they reach the clothed stage's parameters
    only (``MuNet.forward(detach_body=True)`` detaches its inputs; the camera and body read here are
    detached as well)."""
    terms: dict[str, torch.Tensor] = {}
    faces, edges = supervision.faces, supervision.edges
    body, gt_body = out.body_levels[-1], targets.body_levels[-1]
    terms["body_vertices"] = (body - gt_body).abs().sum(-1).mean()
    coarse = [(p - t).abs().sum(-1).mean() for p, t in zip(out.body_levels[:-1], targets.body_levels[:-1])]
    terms["body_coarse"] = sum(coarse) / max(len(coarse), 1)
    lm_pred = supervision.landmarks(body)
    terms["joints_3d"] = (lm_pred - targets.landmarks_3d).norm(dim=-1).mean()
    # 2D: landmarks inside (or near) the crop only; partial views put some far outside it
    in_crop = (targets.landmarks_2d.abs().amax(-1) < 1.2).to(body.dtype)
    error_2d = (project_weak_perspective(lm_pred, out.camera) - targets.landmarks_2d).norm(dim=-1)
    terms["joints_2d"] = (error_2d * in_crop).sum() / in_crop.sum().clamp_min(1.0)
    # camera: scale in log space, translation robust (a cut-off pelvis may lie far outside the crop)
    terms["camera"] = ((out.camera[:, 0].log() - targets.camera[:, 0].log()).abs().mean()
                       + F.smooth_l1_loss(out.camera[:, 1:], targets.camera[:, 1:], beta=0.1))
    terms["body_edges"] = edge_loss(body, gt_body, edges)
    terms["body_normals"] = normal_loss(body, gt_body, faces)
    if out.clothed_finest is not None:
        clothed, gt_clothed = out.clothed_finest, targets.clothed
        terms["clothed_vertices"] = (clothed - gt_clothed).abs().sum(-1).mean()
        count = clothed.shape[1]
        pick_a = torch.randperm(count, generator=generator)[:chamfer_points]
        pick_b = torch.randperm(count, generator=generator)[:chamfer_points]
        terms["clothed_chamfer"] = chamfer(clothed[:, pick_a], gt_clothed[:, pick_b])
        terms["clothed_edges"] = edge_loss(clothed, gt_clothed, edges)
        terms["clothed_normals"] = normal_loss(clothed, gt_clothed, faces)
        # the detached ablation: the clothed terms move the clothed stage only (not the camera, not the body)
        camera, under = (out.camera.detach(), body.detach()) if out.body_detached else (out.camera, body)
        terms["silhouette"] = silhouette_loss(clothed[:, pick_a], camera, targets.gt_mask)
        terms["inside"] = inside_loss(under, clothed, faces)
    unknown = set(weights) - set(TERMS)
    if unknown:
        raise ValueError(f"unknown loss weights {sorted(unknown)}; known: {TERMS}")
    total = sum(weights.get(name, 0.0) * value for name, value in terms.items())
    values = {name: float(value.detach()) for name, value in terms.items()}
    values["pve_m"] = float((body - gt_body).detach().norm(dim=-1).mean())
    return total, values


CLOTHED_TERMS = ("clothed_vertices", "clothed_chamfer", "clothed_edges", "clothed_normals", "silhouette", "inside")
TERMS = ("body_vertices", "body_coarse", "joints_3d", "joints_2d", "camera", "body_edges", "body_normals", "clothed_vertices",
         "clothed_chamfer", "clothed_edges", "clothed_normals", "silhouette", "inside")
