"""Express a fitted smpl24 pose on Anny's full skeleton (104 bones).

Every Anny bone belongs to exactly one smpl24 joint (``munet.body.skeleton.ANNY_TO_SMPL24``: that joint
takes the bone's skinning weights). Giving each bone its joint's *global* rotation reproduces the smpl24
skinning exactly wherever a joint's first bone starts at the joint itself, which holds for every joint but
the toe and finger groups (their smpl24 joints sit at the mean of several bone heads); those differ by
the fitted toe/finger bend, a few millimetres. The posed full-skeleton mesh is recomputed with the full
model's own skinning, so the returned surface is always exactly LBS(rest, returned pose).
"""

from __future__ import annotations

import torch

from munet.body.base import BodyModel
from munet.body.skeleton import ANNY_TO_SMPL24, SMPL24_JOINTS


def bone_to_joint(full_body: BodyModel) -> list[int]:
    """For each bone of the full skeleton, the smpl24 joint index that owns its skinning weights."""
    owner = {}
    for j, joint in enumerate(SMPL24_JOINTS):
        for bone in ANNY_TO_SMPL24[joint][1]:
            owner[bone] = j
    missing = [b for b in full_body.joint_names if b not in owner]
    if missing:
        raise ValueError(f"bones without an smpl24 owner: {missing}")
    return [owner[b] for b in full_body.joint_names]


def full_local_rotations(full_body: BodyModel, smpl_global: torch.Tensor) -> torch.Tensor:
    """smpl24 global rotations (B, 24, 3, 3) -> the full skeleton's local rotations (B, 104, 3, 3)."""
    owner = torch.tensor(bone_to_joint(full_body))
    global_full = smpl_global[:, owner]  # (B, 104, 3, 3)
    parents = list(full_body.parents)
    parent_index = torch.tensor([max(p, 0) for p in parents])
    local = global_full[:, parent_index].transpose(-1, -2) @ global_full
    local[:, [j for j, p in enumerate(parents) if p < 0]] = global_full[:, [j for j, p in enumerate(parents) if p < 0]]
    return local
