"""Linear blend skinning with world-aligned joint frames (the SMPL convention), as pure functions.

Conventions are those of ``munet.reconstruction``: every joint's frame is axis-aligned with the world
in the rest pose; ``pose_axis_angle[:, j]`` rotates joint ``j`` relative to its parent. Rotation
conversions live in ``munet.geometry.rotations``.
"""

from __future__ import annotations

import torch


def forward_kinematics(
    rotations: torch.Tensor, rest_joints: torch.Tensor, parents: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chain local rotations into world transforms.

    rotations: (B, J, 3, 3) local rotations (world-aligned joint frames).
    rest_joints: (B, J, 3) rest joint positions, metres.
    parents: (J,) parent indices, -1 for the root, parents before children.
    Returns (global_rotations (B, J, 3, 3), posed_joints (B, J, 3)); the root joint stays at its rest
    position (translation is added by the caller).
    """
    global_rotations = [rotations[:, 0]]
    posed_joints = [rest_joints[:, 0]]
    for j in range(1, len(parents)):
        p = parents[j]
        bone = (rest_joints[:, j] - rest_joints[:, p])[..., None]  # (B, 3, 1)
        global_rotations.append(global_rotations[p] @ rotations[:, j])
        posed_joints.append(posed_joints[p] + (global_rotations[p] @ bone)[..., 0])
    return torch.stack(global_rotations, 1), torch.stack(posed_joints, 1)


def skin_vertices(
    rest_vertices: torch.Tensor,
    rest_joints: torch.Tensor,
    global_rotations: torch.Tensor,
    posed_joints: torch.Tensor,
    dense_weights: torch.Tensor,
) -> torch.Tensor:
    """Linear blend skinning.

    rest_vertices: (B, V, 3); rest_joints, posed_joints: (B, J, 3); global_rotations: (B, J, 3, 3);
    dense_weights: (V, J), rows summing to 1. Returns (B, V, 3) posed vertices.
    Each joint maps v -> G_j (v - J_j^rest) + J_j^posed; vertices blend those maps linearly.
    """
    translation = posed_joints - torch.einsum("bjik,bjk->bji", global_rotations, rest_joints)  # (B, J, 3)
    transforms = torch.cat([global_rotations.flatten(2), translation], dim=2)  # (B, J, 12)
    blended = torch.einsum("vj,bjc->bvc", dense_weights, transforms)  # (B, V, 12)
    rotation = blended[..., :9].reshape(blended.shape[:2] + (3, 3))
    return torch.einsum("bvik,bvk->bvi", rotation, rest_vertices) + blended[..., 9:]
