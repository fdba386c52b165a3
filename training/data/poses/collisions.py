"""Self-intersection: capsules around bones, tested between parts that are not neighbours (the data
engine redraws poses that fail). Lengths in metres."""

from __future__ import annotations

import numpy as np
import torch

from training.data.poses.representation import J

# (name, start joint, end joint); the torso pieces are fat capsules
SEGMENTS = (
    ("pelvis", "pelvis", "spine1"), ("belly", "spine1", "spine2"), ("chest", "spine2", "spine3"),
    ("head", "neck", "head"),
    ("l_thigh", "left_hip", "left_knee"), ("r_thigh", "right_hip", "right_knee"),
    ("l_shin", "left_knee", "left_ankle"), ("r_shin", "right_knee", "right_ankle"),
    ("l_foot", "left_ankle", "left_foot"), ("r_foot", "right_ankle", "right_foot"),
    ("l_upper", "left_shoulder", "left_elbow"), ("r_upper", "right_shoulder", "right_elbow"),
    ("l_fore", "left_elbow", "left_wrist"), ("r_fore", "right_elbow", "right_wrist"),
    ("l_hand", "left_wrist", "left_hand"), ("r_hand", "right_wrist", "right_hand"),
)  # fmt: skip
SEGMENT_NAMES = tuple(s[0] for s in SEGMENTS)
# pairs allowed to touch or overlap (neighbours along the chain, and parts that meet at the hips/shoulders)
_ADJACENT = {
    ("pelvis", "belly"), ("belly", "chest"), ("chest", "head"), ("pelvis", "chest"), ("belly", "head"), ("pelvis", "l_thigh"), ("pelvis", "r_thigh"),
    ("l_thigh", "l_shin"), ("r_thigh", "r_shin"), ("l_shin", "l_foot"), ("r_shin", "r_foot"),
    ("chest", "l_upper"), ("chest", "r_upper"), ("l_upper", "l_fore"), ("r_upper", "r_fore"),
    ("l_fore", "l_hand"), ("r_fore", "r_hand"), ("belly", "l_thigh"), ("belly", "r_thigh"),
    ("l_thigh", "r_thigh"), ("l_hand", "r_hand"), ("head", "l_upper"), ("head", "r_upper"), ("belly", "l_upper"), ("belly", "r_upper"),
}  # fmt: skip
SEGMENT_PAIRS = tuple(
    (a, b) for a in range(len(SEGMENTS)) for b in range(a + 1, len(SEGMENTS))
    if (SEGMENT_NAMES[a], SEGMENT_NAMES[b]) not in _ADJACENT and (SEGMENT_NAMES[b], SEGMENT_NAMES[a]) not in _ADJACENT
)  # fmt: skip
SEGMENT_JOINTS = np.array([(J[s[1]], J[s[2]]) for s in SEGMENTS])


TORSO_SEGMENTS = ("pelvis", "belly", "chest")


def capsule_radii(rest_vertices: torch.Tensor, rest_joints: torch.Tensor, dense_weights: torch.Tensor,
                  quantile: float = 0.25, torso_quantile: float = 0.1) -> torch.Tensor:
    """(B, S) capsule radius per segment: a quantile of the distances from the vertices that the
    segment's start joint dominates (weight > 0.6) to the bone segment, in the rest pose (metres). The
    torso gets a low quantile, which keeps its capsules inside it (it is wider than it is deep)."""
    radii = []
    start = rest_joints[:, SEGMENT_JOINTS[:, 0]]  # (B, S, 3)
    end = rest_joints[:, SEGMENT_JOINTS[:, 1]]
    for s, (name, joint, _) in enumerate(SEGMENTS):
        members = torch.nonzero(dense_weights[:, J[joint]] > 0.6).squeeze(1)
        points = rest_vertices[:, members]  # (B, M, 3)
        d = _point_segment_distance(points, start[:, s, None], end[:, s, None])
        radii.append(torch.quantile(d, torso_quantile if name in TORSO_SEGMENTS else quantile, dim=1))
    return torch.stack(radii, 1)


def _point_segment_distance(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    ab = b - a
    t = (((p - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp(min=1e-12)).clamp(0.0, 1.0)
    return (p - (a + t[..., None] * ab)).norm(dim=-1)


def segment_distances(a0: torch.Tensor, a1: torch.Tensor, b0: torch.Tensor, b1: torch.Tensor) -> torch.Tensor:
    """Closest distance between segments [a0, a1] and [b0, b1], all (..., 3) -> (...,)."""
    d1, d2, r = a1 - a0, b1 - b0, a0 - b0
    a = (d1 * d1).sum(-1).clamp(min=1e-12)
    e = (d2 * d2).sum(-1).clamp(min=1e-12)
    f = (d2 * r).sum(-1)
    c = (d1 * r).sum(-1)
    b = (d1 * d2).sum(-1)
    denom = (a * e - b * b).clamp(min=1e-12)
    s = ((b * f - c * e) / denom).clamp(0.0, 1.0)
    t = (b * s + f) / e
    t_clamped = t.clamp(0.0, 1.0)
    s = torch.where(t != t_clamped, ((b * t_clamped - c) / a).clamp(0.0, 1.0), s)
    closest_a = a0 + s[..., None] * d1
    closest_b = b0 + t_clamped[..., None] * d2
    return (closest_a - closest_b).norm(dim=-1)


HAND_SEGMENTS = ("l_hand", "r_hand")


def capsule_intersections(posed_joints: torch.Tensor, radii: torch.Tensor, tolerance: float = 0.4,
                          hand_tolerance: float = 1.0) -> torch.Tensor:
    """(B,) bool: some non-neighbouring capsules overlap by more than ``tolerance`` x the thinner
    radius (soft tissue gives way: touching and light pressing are allowed); a hand may press in up to
    ``hand_tolerance`` x its radius (hands rest on, grip and tuck under other parts).

    posed_joints: (B, 24, 3) metres; radii: (B, S) from ``capsule_radii``.
    """
    pairs = torch.tensor(SEGMENT_PAIRS)
    seg = torch.from_numpy(SEGMENT_JOINTS)
    a0 = posed_joints[:, seg[pairs[:, 0], 0]]
    a1 = posed_joints[:, seg[pairs[:, 0], 1]]
    b0 = posed_joints[:, seg[pairs[:, 1], 0]]
    b1 = posed_joints[:, seg[pairs[:, 1], 1]]
    distance = segment_distances(a0, a1, b0, b1)  # (B, P)
    ra, rb = radii[:, pairs[:, 0]], radii[:, pairs[:, 1]]
    overlap = ra + rb - distance
    hand = torch.tensor([SEGMENT_NAMES[a] in HAND_SEGMENTS or SEGMENT_NAMES[b] in HAND_SEGMENTS for a, b in SEGMENT_PAIRS])
    allowed = torch.where(hand, hand_tolerance, tolerance) * torch.minimum(ra, rb)
    return (overlap > allowed).any(1)
