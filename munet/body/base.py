"""The one interface every body model implements (Anny by default, SMPL from the user's files)."""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import torch

from munet.body import lbs
from munet.geometry.rotations import axis_angle_to_matrix
from munet.reconstruction import Skeleton, SkinWeights


@dataclasses.dataclass
class BodyOutput:
    """A batch of posed bodies, world frame (Blender: metres, Z up, faces -Y).

    vertices_m: (B, V, 3) posed vertices.  joints_m: (B, J, 3) posed joints.
    rest_vertices_m: (B, V, 3) and rest_joints_m: (B, J, 3): the same shapes in the rest pose.
    global_rotations: (B, J, 3, 3) world rotation of each joint frame.
    """

    vertices_m: torch.Tensor
    joints_m: torch.Tensor
    rest_vertices_m: torch.Tensor
    rest_joints_m: torch.Tensor
    global_rotations: torch.Tensor


class BodyModel(torch.nn.Module):
    """A shape-and-pose body model with a fixed topology and skeleton.

    Subclasses fill the buffers ``faces`` (F, 3) int64 and ``dense_weights`` (V, J) float32, set
    ``name``, ``skeleton_name``, ``joint_names``, ``parents``, ``num_shape_params`` and
    ``default_shape`` and implement ``rest(shape)``. Everything else is shared.

    Shape parameters are model-specific (Anny: phenotypes in [0, 1]; SMPL: betas). Pose is (B, J, 3)
    axis-angle in world-aligned joint frames (see ``munet.reconstruction``).
    """

    name: str
    skeleton_name: str
    joint_names: tuple[str, ...]
    parents: tuple[int, ...]
    num_shape_params: int
    faces: torch.Tensor
    dense_weights: torch.Tensor
    default_shape: torch.Tensor
    shape_bounds: tuple[float, float] | None = None  # box constraint on shape values, if any

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def num_vertices(self) -> int:
        return self.dense_weights.shape[0]

    def rest(self, shape: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, S) shape -> rest vertices (B, V, 3) and rest joints (B, J, 3), feet on z=0."""
        raise NotImplementedError

    def rest_vertices_at(self, index: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """(N,) vertex ids -> a function (B, S) shape -> (B, N, 3) those rest vertices, metres, up to one
        translation per body (models linear in their blendshapes skip the floor placement, which needs every
        vertex, and evaluate only these vertices): for measures within the body, e.g. distances, repeated
        over many shapes. Differentiable."""
        return lambda shape: self.rest(shape)[0][:, index]

    def pose(
        self,
        rest_vertices_m: torch.Tensor,
        rest_joints_m: torch.Tensor,
        pose_axis_angle: torch.Tensor,
        translation_m: torch.Tensor | None = None,
    ) -> BodyOutput:
        """Pose given rest geometry (lets callers cache the rest shape while it is frozen)."""
        if pose_axis_angle.shape[-2:] != (self.num_joints, 3):
            raise ValueError(f"pose must be (B, {self.num_joints}, 3) axis-angle, got {tuple(pose_axis_angle.shape)}")
        return self.pose_rotations(rest_vertices_m, rest_joints_m, axis_angle_to_matrix(pose_axis_angle), translation_m)

    def pose_rotations(
        self,
        rest_vertices_m: torch.Tensor,
        rest_joints_m: torch.Tensor,
        rotations: torch.Tensor,
        translation_m: torch.Tensor | None = None,
    ) -> BodyOutput:
        """Like ``pose`` with (B, J, 3, 3) local rotation matrices instead of axis-angle."""
        batch = rotations.shape[0]
        rest_vertices_m = rest_vertices_m.expand(batch, -1, -1)
        rest_joints_m = rest_joints_m.expand(batch, -1, -1)
        global_rotations, joints = lbs.forward_kinematics(rotations, rest_joints_m, self.parents)
        vertices = lbs.skin_vertices(rest_vertices_m, rest_joints_m, global_rotations, joints, self.dense_weights)
        if translation_m is not None:
            vertices = vertices + translation_m[:, None]
            joints = joints + translation_m[:, None]
        return BodyOutput(vertices, joints, rest_vertices_m, rest_joints_m, global_rotations)

    def forward(
        self,
        shape: torch.Tensor | None = None,
        pose_axis_angle: torch.Tensor | None = None,
        translation_m: torch.Tensor | None = None,
    ) -> BodyOutput:
        """(B, S) shape, (B, J, 3) pose, (B, 3) translation -> posed body. None means default/zero."""
        batch = next((t.shape[0] for t in (shape, pose_axis_angle, translation_m) if t is not None), 1)
        if shape is None:
            shape = self.default_shape.expand(batch, -1)
        if shape.shape[-1] != self.num_shape_params:
            raise ValueError(f"shape must be (B, {self.num_shape_params}), got {tuple(shape.shape)}")
        if pose_axis_angle is None:
            pose_axis_angle = self.default_shape.new_zeros(batch, self.num_joints, 3)
        rest_vertices, rest_joints = self.rest(shape)
        return self.pose(rest_vertices, rest_joints, pose_axis_angle, translation_m)

    # ---- numpy views for export and the wire -------------------------------------------------

    def uv_per_corner(self) -> np.ndarray | None:
        """(F, 3, 2) float32 UV layout per face corner, in [0, 1], v up (``munet.reconstruction``), or None
        when the model ships no UVs (SMPL here)."""
        return None

    def uv_part_map(self) -> tuple[np.ndarray, dict[str, tuple[int, int, int]]] | None:
        """A body-part map in UV space: ((H, W, 3) uint8 image, v down, {part: RGB}), or None."""
        return None

    def skin_weights(self, max_influences: int | None = None) -> SkinWeights:
        """Sparse weights, rows sum to 1. K = ``max_influences``, or by default as many as the most
        influenced vertex has (every influence kept)."""
        dense = self.dense_weights.detach().cpu().numpy()
        k = int((dense > 0).sum(1).max()) if max_influences is None else min(max_influences, dense.shape[1])
        order = np.argsort(-dense, axis=1)[:, :k]
        weights = np.take_along_axis(dense, order, axis=1)
        dropped = 1.0 - weights.sum(1)
        if np.abs(dropped).max() > 1e-4:
            raise ValueError(f"more than {max_influences} influences on some vertices (dropped {dropped.max():.3g})")
        weights = weights / weights.sum(1, keepdims=True)
        order = np.where(weights > 0, order, 0)
        return SkinWeights(joint_indices=order.astype(np.int32), weights=weights.astype(np.float32))

    def skeleton(self, rest_joints_m: torch.Tensor | np.ndarray) -> Skeleton:
        """The skeleton of one shape: rest_joints_m (J, 3) or (1, J, 3)."""
        joints = rest_joints_m.detach().cpu().numpy() if torch.is_tensor(rest_joints_m) else rest_joints_m
        return Skeleton(
            name=self.skeleton_name,
            joint_names=tuple(self.joint_names),
            parents=np.asarray(self.parents, np.int32),
            rest_joints_m=np.asarray(joints, np.float32).reshape(-1, 3),
        )
