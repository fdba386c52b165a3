"""Fit a body model's shape and pose to target vertices of the same topology.

Turns free-form vertices (the network's prediction, or synthetic ground truth) into the rig: shape +
per-joint rotations + translation. Three steps, all batched:

1. **Shape first**: distances between vertices that one joint moves rigidly do not change with pose,
   so the shape is fitted to them alone, in the rest pose, with no skinning.
2. **Analytic pose**: walking the kinematic tree, each joint's world rotation is the
   Procrustes (Kabsch) rotation between the rest-pose and target positions of the vertices it
   dominates; local rotations follow from the parents'.
3. **Refinement**: L-BFGS on shape (through a logit when the shape is box-bounded), pose and
   translation, minimising the mean squared vertex distance.
"""

from __future__ import annotations

import dataclasses

import torch

from munet.body.base import BodyModel
from munet.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle


@dataclasses.dataclass
class VertexFit:
    """shape (B, S); pose_axis_angle (B, J, 3); translation_m (B, 3); vertices_m (B, V, 3) fitted;
    mean_error_m (B,) mean vertex distance to the target. All but shape are None for a shape-only fit."""

    shape: torch.Tensor
    pose_axis_angle: torch.Tensor | None
    translation_m: torch.Tensor | None
    vertices_m: torch.Tensor | None
    mean_error_m: torch.Tensor | None


def _kabsch(source: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Rotation R (B, 3, 3) minimising sum w |R s - t|^2 for centred (B, N, 3) point sets."""
    covariance = torch.einsum("n,bni,bnj->bij", weights, target, source)
    u, _, vh = torch.linalg.svd(covariance)
    det = torch.det(u @ vh)
    fix = torch.ones_like(u[..., 0])
    fix[:, 2] = det.sign()
    return u @ torch.diag_embed(fix) @ vh


def initial_pose(body: BodyModel, rest_vertices: torch.Tensor, rest_joints: torch.Tensor,
                 target_vertices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Kabsch walk down the tree: (B, J, 3, 3) local rotations and (B, 3) translation."""
    weights = body.dense_weights
    batch = target_vertices.shape[0]
    rest_vertices = rest_vertices.expand(batch, -1, -1)
    global_rotations: list[torch.Tensor] = []
    for j, parent in enumerate(body.parents):
        w = weights[:, j]
        members = torch.nonzero(w > 0.85).squeeze(1)
        if members.numel() < 12:
            members = torch.nonzero(w > 0.4).squeeze(1)
        if members.numel() >= 6:
            mw = w[members]
            src = rest_vertices[:, members]
            dst = target_vertices[:, members]
            src_c = src - (mw[:, None] * src).sum(1, keepdim=True) / mw.sum()
            dst_c = dst - (mw[:, None] * dst).sum(1, keepdim=True) / mw.sum()
            rotation = _kabsch(src_c, dst_c, mw)
        else:
            rotation = global_rotations[parent] if parent >= 0 else torch.eye(3).expand(batch, 3, 3)
        global_rotations.append(rotation)
    global_rotations_t = torch.stack(global_rotations, 1)
    parents = torch.tensor([max(p, 0) for p in body.parents])
    local = global_rotations_t[:, parents].transpose(-1, -2) @ global_rotations_t
    local[:, 0] = global_rotations_t[:, 0]
    posed = body.pose_rotations(rest_vertices, rest_joints, local)
    translation = (target_vertices - posed.vertices_m).mean(1)
    return local, translation


def rigid_pairs(body: BodyModel, per_joint: int = 24, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Vertex pairs (P,), (P,) that move rigidly together: both dominated (weight > 0.85) by one joint.

    Their distances do not change with pose, so they measure shape alone.
    """
    generator = torch.Generator().manual_seed(seed)
    first, second = [], []
    for j in range(body.num_joints):
        members = torch.nonzero(body.dense_weights[:, j] > 0.85).squeeze(1)
        if members.numel() < 4:
            continue
        chosen = members[torch.randperm(members.numel(), generator=generator)[:per_joint]]
        a, b = torch.triu_indices(chosen.numel(), chosen.numel(), offset=1)
        first.append(chosen[a])
        second.append(chosen[b])
    return torch.cat(first), torch.cat(second)


def _fit_shape_to_distances(body: BodyModel, target: torch.Tensor, to_shape, shape_param: torch.Tensor,
                            iterations: int) -> None:
    """L-BFGS on the shape alone, matching pose-invariant distances within rigid parts. In place."""
    first, second = rigid_pairs(body)
    target_distances = (target[:, first] - target[:, second]).norm(dim=-1)
    used, pair_ends = torch.unique(torch.cat([first, second]), return_inverse=True)  # only these vertices matter
    first_used, second_used = pair_ends[: first.numel()], pair_ends[first.numel() :]
    rest_at = body.rest_vertices_at(used)
    optimizer = torch.optim.LBFGS([shape_param], lr=1.0, max_iter=iterations, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        rest_vertices = rest_at(to_shape(shape_param))
        distances = (rest_vertices[:, first_used] - rest_vertices[:, second_used]).norm(dim=-1)
        loss = ((distances - target_distances) ** 2).mean() * 1e4
        loss.backward()
        return loss

    optimizer.step(closure)


def fit_shape(body: BodyModel, target_vertices_m: torch.Tensor, iterations: int = 30) -> torch.Tensor:
    """The shape (B, S) of target vertices (B, V, 3) in any pose and frame: step 1 alone (the distances
    within rigid parts do not change with pose or placement)."""
    return fit_to_vertices(body, target_vertices_m, iterations=0, shape_iterations=iterations, pose=False).shape


def fit_to_vertices(body: BodyModel, target_vertices_m: torch.Tensor, iterations: int = 30,
                    shape_iterations: int = 30, shape_init: torch.Tensor | None = None, pose: bool = True) -> VertexFit:
    """Recover shape, pose and translation from target vertices (B, V, 3) in the model's topology.
    pose=False stops after the shape (the other fields are then None)."""
    if target_vertices_m.shape[1:] != (body.num_vertices, 3):
        raise ValueError(f"target vertices must be (B, {body.num_vertices}, 3), got {tuple(target_vertices_m.shape)}")
    target = target_vertices_m.detach().to(body.dense_weights.dtype)
    batch = target.shape[0]
    if shape_init is None:
        # start just off the default: Anny's phenotype blend is piecewise linear with a kink at 0.5,
        # where a one-sided gradient can vanish
        shape_init = body.default_shape.expand(batch, -1) * (0.94 if body.shape_bounds is not None else 1.0)
    shape0 = shape_init.detach()
    bounds = body.shape_bounds
    if bounds is not None:
        low, high = bounds
        unit = ((shape0 - low) / (high - low)).clamp(1e-3, 1 - 1e-3)
        shape_param = torch.logit(unit).clone().requires_grad_(True)

        def to_shape(p):
            return low + (high - low) * torch.sigmoid(p)
    else:
        shape_param = shape0.clone().requires_grad_(True)

        def to_shape(p):
            return p

    if shape_iterations:
        _fit_shape_to_distances(body, target, to_shape, shape_param, shape_iterations)
    if not pose:
        return VertexFit(to_shape(shape_param).detach(), None, None, None, None)
    with torch.no_grad():
        rest_vertices, rest_joints = body.rest(to_shape(shape_param))
        pose0, translation0 = initial_pose(body, rest_vertices, rest_joints, target)

    # refine rotations as small corrections R0 @ exp(delta): well conditioned even near |angle| = pi
    delta = torch.zeros(batch, body.num_joints, 3, dtype=target.dtype, requires_grad=True)
    translation = translation0.clone().requires_grad_(True)

    def rotations():
        return pose0 @ axis_angle_to_matrix(delta)

    optimizer = torch.optim.LBFGS([shape_param, delta, translation], lr=1.0, max_iter=iterations,
                                  history_size=20, line_search_fn="strong_wolfe", tolerance_grad=1e-9,
                                  tolerance_change=1e-12)

    def closure():
        optimizer.zero_grad()
        rest_vertices, rest_joints = body.rest(to_shape(shape_param))
        out = body.pose_rotations(rest_vertices, rest_joints, rotations(), translation)
        loss = ((out.vertices_m - target) ** 2).sum(-1).mean() * 1e4  # cm^2
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        shape = to_shape(shape_param)
        rest_vertices, rest_joints = body.rest(shape)
        final_rotations = rotations()
        out = body.pose_rotations(rest_vertices, rest_joints, final_rotations, translation)
        error = (out.vertices_m - target).norm(dim=-1).mean(1)
    pose = matrix_to_axis_angle(final_rotations)
    return VertexFit(shape.detach(), pose.detach(), translation.detach(), out.vertices_m, error)
