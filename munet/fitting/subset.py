"""Evaluate a body model on a few points only, for fast fitting.

A fit only needs the points its losses look at: the 33 landmarks, the foot soles, the silhouette
outline. A ``PointSet`` is either plain vertices, or points regressed from vertices by fixed convex
combinations (the landmarks). Both are posed exactly as the full model would pose them: linear blend
skinning is linear in ``w_vj * [v; 1]``, so a regressed point ``sum_k m_k LBS(v_k)`` equals
``sum_j T_j a_j`` with per-joint 4-vectors ``a_j = sum_k m_k w_kj [v_k; 1]`` and the joints' 3x4
transforms ``T_j``. ~100 points cost a hundredth of the 13.7k-vertex pass. Models without linear shape
blendshapes over vertices (e.g. SMPL) fall back to the full rest shape (still exact, slower).
"""

from __future__ import annotations

import dataclasses

import torch

from munet.body.base import BodyModel

FLOOR_CANDIDATE_HEIGHT_M = 0.006
"""Rest vertices this close to the floor (at the default shape) decide where the floor is for any shape."""


@dataclasses.dataclass
class PointSet:
    """N points on the body.

    Plain vertices (``mix`` None): support (N,) vertex ids; template (N, 3) rest positions of the template;
    blend (C, N * 3) their shape blendshapes; skin (N, J) skinning weights.
    Regressed points (``mix`` (N, S) rows summing to 1 over support (S,) vertex ids): template (N, J, 4)
    per-joint 4-vectors ``sum_k m_k w_kj [v_k; 1]`` of the template; blend (C, N * J * 3) their shape
    blendshapes; skin (N, J) the mixed weights (for reference). template/blend are None when the model has
    no linear shape blendshapes over vertices.
    """

    support: torch.Tensor
    mix: torch.Tensor | None
    template: torch.Tensor | None
    blend: torch.Tensor | None
    skin: torch.Tensor

    @property
    def size(self) -> int:
        return self.support.numel() if self.mix is None else self.mix.shape[0]

    @property
    def regressed(self) -> bool:
        return self.mix is not None


def tree_levels(parents: tuple[int, ...]) -> list[tuple[list[int], list[int]]]:
    """Group joints by depth in the tree: [(joints, their parents), ...] from the root's children down."""
    depth = [0] * len(parents)
    for j, p in enumerate(parents):
        depth[j] = 0 if p < 0 else depth[p] + 1
    levels = []
    for d in range(1, max(depth) + 1):
        joints = [j for j in range(len(parents)) if depth[j] == d]
        levels.append((joints, [parents[j] for j in joints]))
    return levels


def forward_kinematics_levels(rotations: torch.Tensor, rest_joints: torch.Tensor, parents: tuple[int, ...],
                              levels: list[tuple[list[int], list[int]]]) -> tuple[torch.Tensor, torch.Tensor]:
    """``munet.body.lbs.forward_kinematics`` computed one tree level at a time (fewer, larger ops).

    rotations: (B, J, 3, 3) local; rest_joints: (B, J, 3). Returns global rotations (B, J, 3, 3) and posed
    joints (B, J, 3), root at its rest position.
    """
    num = len(parents)
    global_rot: list[torch.Tensor | None] = [None] * num
    posed: list[torch.Tensor | None] = [None] * num
    global_rot[0] = rotations[:, 0]
    posed[0] = rest_joints[:, 0].expand(rotations.shape[0], 3)  # rest joints may have batch 1 (broadcast)
    for joints, pars in levels:
        parent_rot = torch.stack([global_rot[p] for p in pars], 1)  # (B, L, 3, 3)
        parent_pos = torch.stack([posed[p] for p in pars], 1)
        bones = rest_joints[:, joints] - rest_joints[:, pars]  # (B, L, 3)
        rot = parent_rot @ rotations[:, joints]
        pos = parent_pos + (parent_rot @ bones[..., None])[..., 0]
        for k, j in enumerate(joints):
            global_rot[j] = rot[:, k]
            posed[j] = pos[:, k]
    return torch.stack(global_rot, 1), torch.stack(posed, 1)


class SubsetBody:
    """Rest shape and posing of point sets (see the module docstring). body: read, never changed."""

    def __init__(self, body: BodyModel, dtype: torch.dtype = torch.float64):
        self.body = body
        self.dtype = dtype
        self.linear_shape = hasattr(body, "vertex_blendshapes") and hasattr(body, "blendshape_coefficients")
        self.dense_weights = body.dense_weights.to(dtype)
        if self.linear_shape:
            self.template_vertices = body.template_vertices.to(dtype)
            count = body.vertex_blendshapes.shape[0]
            # (V, C, 3): a point set gathers whole rows (the (C, V, 3) layout made each outline's gather ~10x slower)
            self.blendshapes_by_vertex = body.vertex_blendshapes.to(dtype).reshape(count, -1, 3).transpose(0, 1).contiguous()
            self.template_joints = body.template_joints.to(dtype)
            self.joint_blendshapes = body.joint_blendshapes.to(dtype)
        with torch.no_grad():
            rest_vertices, _ = body.rest(body.default_shape)
        floor = torch.nonzero(rest_vertices[0, :, 2] < FLOOR_CANDIDATE_HEIGHT_M).squeeze(1)
        self.floor = self.vertices(floor)
        self.levels = tree_levels(tuple(body.parents))

    def points(self, support: torch.Tensor, mix: torch.Tensor) -> PointSet:
        """Regressed points from support vertex ids (S,) and mixing weights (N, S)."""
        mix = mix.to(self.dtype)
        weights = self.dense_weights[support]  # (S, J)
        skin = mix @ weights
        template = blend = None
        if self.linear_shape:
            homogeneous = torch.cat([self.template_vertices[support], torch.ones(support.numel(), 1, dtype=self.dtype)], 1)
            template = torch.einsum("ns,sj,sc->njc", mix, weights, homogeneous)  # (N, J, 4)
            blend = torch.einsum("ns,sj,sqc->qnjc", mix, weights, self.blendshapes_by_vertex[support])
            blend = blend.reshape(blend.shape[0], -1)
        return PointSet(support, mix, template, blend, skin)

    def vertices(self, index: torch.Tensor) -> PointSet:
        """The point set of plain vertices ``index`` (N,)."""
        template = blend = None
        if self.linear_shape:
            template = self.template_vertices[index]
            blend = self.blendshapes_by_vertex[index].transpose(0, 1).reshape(self.blendshapes_by_vertex.shape[1], -1)
        return PointSet(index, None, template, blend, self.dense_weights[index])

    def rest(self, shape: torch.Tensor, sets: list[PointSet]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(B, S) shape -> for each set its rest form (plain: (B, N, 3) points; regressed: (B, N, J, 4)) and
        the rest joints (B, J, 3), feet on z = 0 (as ``body.rest``)."""
        body = self.body
        batch = shape.shape[0]
        if not self.linear_shape:
            vertices, joints = body.rest(shape.to(body.dense_weights.dtype))
            vertices, joints = vertices.to(self.dtype), joints.to(self.dtype)
            out = []
            for s in sets:
                picked = vertices[:, s.support]
                if s.regressed:
                    homogeneous = torch.cat([picked, torch.ones_like(picked[..., :1])], -1)
                    picked = torch.einsum("ns,sj,bsc->bnjc", s.mix, self.dense_weights[s.support], homogeneous)
                out.append(picked)
            return out, joints
        coefficients = body.blendshape_coefficients(shape.to(self.dtype))
        joints = self.template_joints + (coefficients @ self.joint_blendshapes).reshape(batch, -1, 3)
        floor_z = (self.floor.template[:, 2] + (coefficients @ self.floor.blend).reshape(batch, -1, 3)[..., 2]).min(1).values
        offset = torch.stack([torch.zeros_like(floor_z), torch.zeros_like(floor_z), -floor_z], -1)  # (B, 3)
        out = []
        for s in sets:
            if s.regressed:
                count, joints_n = s.template.shape[:2]
                moved = s.template[..., :3] + (coefficients @ s.blend).reshape(batch, count, joints_n, 3)
                moved = moved + offset[:, None, None, :] * s.template[..., 3:]  # each joint's share of the point
                out.append(torch.cat([moved, s.template[..., 3:].expand(batch, -1, -1, -1)], -1))
            else:
                out.append(s.template + (coefficients @ s.blend).reshape(batch, -1, 3) + offset[:, None])
        return out, joints + offset[:, None]

    def pose(self, rest: list[torch.Tensor], sets: list[PointSet], rest_joints: torch.Tensor, rotations: torch.Tensor,
             translation: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Pose each set's rest form (from ``rest``) with local rotations (B, J, 3, 3) and translation (B, 3):
        posed points (B, N_k, 3) per set and posed joints (B, J, 3). The rest forms and rest joints may have
        batch 1 (one shape shared by every candidate): they broadcast."""
        global_rotations, joints = forward_kinematics_levels(rotations, rest_joints, self.body.parents, self.levels)
        rotated = sum(global_rotations[..., k] * rest_joints[:, :, k : k + 1] for k in range(3))  # G_j @ J_j
        offsets = joints - rotated  # (B, J, 3)
        transforms = torch.cat([global_rotations, offsets[..., None]], -1)  # (B, J, 3, 4)
        flat = transforms.flatten(2)  # (B, J, 12) row-major: R row 0, t0, R row 1, t1, ...
        stacked = None
        posed = []
        for points, s in zip(rest, sets):
            if s.regressed:  # sum_j T_j a_j: one (n, J*4) x (J*4, 3) product per candidate
                batch = transforms.shape[0]
                if stacked is None:
                    stacked = transforms.transpose(-1, -2).reshape(batch, -1, 3)  # (B, J*4, 3)
                flat_points = points.reshape(points.shape[0], points.shape[1], -1)  # (B or 1, n, J*4)
                if flat_points.shape[0] == 1 and batch > 1:  # one shape for all: a single GEMM
                    out = flat_points[0] @ stacked.transpose(0, 1).reshape(flat_points.shape[2], -1)  # (n, B*3)
                    out = out.reshape(-1, batch, 3).transpose(0, 1)
                else:
                    out = flat_points @ stacked
            else:
                blended = torch.einsum("nj,bjc->bnc", s.skin, flat).reshape(flat.shape[0], -1, 3, 4)
                out = blended[..., 3] + sum(blended[..., k] * points[:, :, k : k + 1] for k in range(3))
            posed.append(out + translation[:, None])
        return posed, joints + translation[:, None]
