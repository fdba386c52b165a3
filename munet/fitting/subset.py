"""Evaluate a body model on a few points only, for fast fitting.

A fit only needs the points its losses look at: the 33 landmarks, the foot soles, the silhouette
outline. A ``PointSet`` is any set of points written as fixed convex combinations of mesh vertices
(a vertex is the trivial one); each point is skinned as one "virtual vertex" whose rest position and
skinning weights are those combinations. For single vertices this equals the full model exactly; for a
regressed landmark it differs from regressing the posed mesh by well under a millimetre where its
support vertices are skinned alike (tests pin it). ~100 points cost a hundredth of the 13.7k-vertex pass.
Models without linear shape blendshapes over vertices (e.g. SMPL) fall back to the full rest shape.
"""

from __future__ import annotations

import dataclasses

import torch

from munet.body.base import BodyModel

FLOOR_CANDIDATE_HEIGHT_M = 0.006
"""Rest vertices this close to the floor (at the default shape) decide where the floor is for any shape."""


@dataclasses.dataclass
class PointSet:
    """N points as convex combinations of vertices: support (S,) vertex ids, mix (N, S) rows summing to 1.

    template: (N, 3) rest points of the template; blend: (C, N * 3) their shape blendshapes (or None when
    the model has none over vertices); skin: (N, J) skinning weights.
    """

    support: torch.Tensor
    mix: torch.Tensor | None
    template: torch.Tensor | None
    blend: torch.Tensor | None
    skin: torch.Tensor

    @property
    def size(self) -> int:
        return self.support.numel() if self.mix is None else self.mix.shape[0]


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
    posed[0] = rest_joints[:, 0]
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
            self.vertex_blendshapes = body.vertex_blendshapes.to(dtype).reshape(count, -1, 3)
            self.template_joints = body.template_joints.to(dtype)
            self.joint_blendshapes = body.joint_blendshapes.to(dtype)
        with torch.no_grad():
            rest_vertices, _ = body.rest(body.default_shape)
        floor = torch.nonzero(rest_vertices[0, :, 2] < FLOOR_CANDIDATE_HEIGHT_M).squeeze(1)
        self.floor = self.vertices(floor)
        self.levels = tree_levels(tuple(body.parents))

    def points(self, support: torch.Tensor, mix: torch.Tensor) -> PointSet:
        """A point set from support vertex ids (S,) and mixing weights (N, S)."""
        mix = mix.to(self.dtype)
        skin = mix @ self.dense_weights[support]
        template = blend = None
        if self.linear_shape:
            template = mix @ self.template_vertices[support]
            blend_vertices = self.vertex_blendshapes[:, support]  # (C, S, 3)
            blend = torch.einsum("ns,csk->cnk", mix, blend_vertices).reshape(blend_vertices.shape[0], -1)
        return PointSet(support, mix, template, blend, skin)

    def vertices(self, index: torch.Tensor) -> PointSet:
        """The point set of plain vertices ``index`` (N,)."""
        template = blend = None
        if self.linear_shape:
            template = self.template_vertices[index]
            blend = self.vertex_blendshapes[:, index].reshape(self.vertex_blendshapes.shape[0], -1)
        return PointSet(index, None, template, blend, self.dense_weights[index])

    def rest(self, shape: torch.Tensor, sets: list[PointSet]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(B, S) shape -> rest points (B, N_k, 3) for each set and rest joints (B, J, 3), feet on z = 0."""
        body = self.body
        batch = shape.shape[0]
        if not self.linear_shape:
            vertices, joints = body.rest(shape.to(body.dense_weights.dtype))
            vertices, joints = vertices.to(self.dtype), joints.to(self.dtype)
            picked = [vertices[:, s.support] for s in sets]
            return [p if s.mix is None else torch.einsum("ns,bsk->bnk", s.mix, p) for s, p in zip(sets, picked)], joints
        coefficients = body.blendshape_coefficients(shape.to(self.dtype))
        joints = self.template_joints + (coefficients @ self.joint_blendshapes).reshape(batch, -1, 3)
        floor_z = (self.floor.template[:, 2] + (coefficients @ self.floor.blend).reshape(batch, -1, 3)[..., 2]).min(1).values
        offset = torch.stack([torch.zeros_like(floor_z), torch.zeros_like(floor_z), -floor_z], -1)[:, None]
        points = [s.template + (coefficients @ s.blend).reshape(batch, -1, 3) + offset for s in sets]
        return points, joints + offset

    def pose(self, rest_points: torch.Tensor, skin: torch.Tensor, rest_joints: torch.Tensor, rotations: torch.Tensor,
             translation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Skin points: rest_points (B, N, 3) with weights skin (N, J), rest_joints (B, J, 3), local rotations
        (B, J, 3, 3), translation (B, 3) -> posed points (B, N, 3) and posed joints (B, J, 3)."""
        global_rotations, joints = forward_kinematics_levels(rotations, rest_joints, self.body.parents, self.levels)
        offsets = joints - torch.einsum("bjik,bjk->bji", global_rotations, rest_joints)  # (B, J, 3)
        transforms = torch.cat([global_rotations.flatten(2), offsets], 2)  # (B, J, 12)
        blended = torch.einsum("nj,bjc->bnc", skin, transforms)
        rotation = blended[..., :9].reshape(blended.shape[:2] + (3, 3))
        points = torch.einsum("bnik,bnk->bni", rotation, rest_points) + blended[..., 9:]
        return points + translation[:, None], joints + translation[:, None]
