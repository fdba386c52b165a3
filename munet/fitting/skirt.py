"""The geometry and skin of a garment closed round both legs, in the rest pose, on the body's topology
(``munet.fitting.garments`` detects it and says how long and how flared; the module docstring there
describes the surface). Lengths are metres, world frame at rest (Z up, the person faces -Y).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from munet.reconstruction import SkinWeights

WAIST_S = 0.12
"""The waistband on the torso's height (0 hip joints, 1 neck joint)."""
CROTCH_BELOW_HIPS_M = 0.07
CLEARANCE_M = 0.01
SKIRT_MAX_FLARE_M = 0.35
MIDDLE_OVERLAP_M = 0.003
CROTCH_HALF_WIDTH_M = 0.05
"""Torso vertices this close to the pelvis' vertical in x and y, below the hip joints, are the crotch (they
stay put; the buttocks behind them go on the skirt)."""
HIP_BLEND_M = 0.1
"""Over this height below the hip joints a leg's outer half turns from its angle about the pelvis to its
angle about the thigh."""
"""The two legs' inner walls cross the middle plane by this much, so the skirt's section is one region."""
WAIST_BLEND_T = 0.15
"""Over this first part of the skirt its surface blends in from the clothed torso above."""
HEIGHTS, ANGLES = 24, 48
ARC_STRETCH = 1.2
"""Each leg's ring angles are stretched by this much, so its vertices nearest the front and back lines land
on them and the two halves of the skirt meet there without a notch."""
FLARE_RAMP_T = 0.3
"""The measured flare grows in over this first part of the skirt (none at the waistband)."""
SKIRT_TARGET = {"pelvis": 0.5, "left_hip": 0.25, "right_hip": 0.25}
"""The smpl24 weights the skirt's vertices blend towards."""


@dataclasses.dataclass(frozen=True)
class SkirtFrame:
    """The skirt at rest: centre (2,) its vertical axis (x, y); z_waist, z_hem, z_crotch heights (metres)."""

    centre: np.ndarray
    z_waist: float
    z_hem: float
    z_crotch: float

    @property
    def length(self) -> float:
        return max(self.z_waist - self.z_hem, 0.05)

    def t(self, z: np.ndarray) -> np.ndarray:
        """The skirt parameter of heights z: 0 at the waist, 1 at the hem."""
        return (self.z_waist - z) / self.length


def leg_height(rest_joints: np.ndarray, index: dict[str, int], u) -> np.ndarray:
    """Rest height (metres) of the leg coordinate u (0 hip joints, 1 knees, 2 ankles; the legs' mean)."""
    def mean_z(name: str) -> float:
        return 0.5 * float(rest_joints[index[f"left_{name}"], 2] + rest_joints[index[f"right_{name}"], 2])

    hip, knee, ankle = mean_z("hip"), mean_z("knee"), mean_z("ankle")
    u = np.asarray(u, np.float64)
    return np.where(u <= 1.0, hip + u * (knee - hip), knee + np.clip(u - 1.0, 0.0, 1.0) * (ankle - knee))


def skirt_frame(rest_joints: np.ndarray, joint_names: tuple[str, ...], hem_u: float) -> SkirtFrame:
    """The skirt's frame for a person's rest joints (24, 3) and the hem's leg coordinate."""
    index = {name: i for i, name in enumerate(joint_names)}
    hip_z = float(leg_height(rest_joints, index, 0.0))
    neck_z = float(rest_joints[index["neck"], 2])
    pelvis = rest_joints[index["pelvis"]]
    return SkirtFrame(centre=np.array([pelvis[0], pelvis[1]], np.float64), z_waist=hip_z + WAIST_S * (neck_z - hip_z),
                      z_hem=float(leg_height(rest_joints, index, hem_u)), z_crotch=hip_z - CROTCH_BELOW_HIPS_M)


def _support_table(points: np.ndarray, frame: SkirtFrame) -> np.ndarray:
    """(HEIGHTS, ANGLES) support function of the rest lower body (N, 3) per height bin and direction,
    spread to neighbouring directions and bins, draped (never narrower than anything above)."""
    t = frame.t(points[:, 2])
    keep = (t >= -0.05) & (t <= 1.05)
    rel = points[keep, :2] - frame.centre
    psi = np.linspace(-np.pi, np.pi, ANGLES + 1)[:-1]
    proj = rel[:, :1] * np.cos(psi) + rel[:, 1:] * np.sin(psi)  # (N, A)
    bins = np.clip(np.round(np.clip(t[keep], 0, 1) * (HEIGHTS - 1)).astype(np.int64), 0, HEIGHTS - 1)
    table = np.full((HEIGHTS, ANGLES), 0.05)
    np.maximum.at(table, bins, proj)
    table = np.maximum(table, np.maximum(np.roll(table, 1, 1), np.roll(table, -1, 1)) * np.cos(2 * np.pi / ANGLES))
    table = np.maximum(table, np.concatenate([table[:1], table[:-1]]))
    return np.maximum.accumulate(table, axis=0)


def _radius(table: np.ndarray, t: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Bilinear lookup of the (HEIGHTS, ANGLES) table at skirt parameters t and angles (radians)."""
    a = (np.angle(np.exp(1j * angle)) + np.pi) / (2 * np.pi) * ANGLES
    a0 = np.floor(a).astype(np.int64) % ANGLES
    a1 = (a0 + 1) % ANGLES
    fa = a - np.floor(a)
    tt = np.clip(t, 0, 1) * (HEIGHTS - 1)
    t0 = np.clip(np.floor(tt).astype(np.int64), 0, HEIGHTS - 1)
    t1 = np.minimum(t0 + 1, HEIGHTS - 1)
    ft = tt - t0
    return ((1 - ft) * ((1 - fa) * table[t0, a0] + fa * table[t0, a1])
            + ft * ((1 - fa) * table[t1, a0] + fa * table[t1, a1]))


def _flare_profile(frame: SkirtFrame, rest_joints: np.ndarray, joint_names: tuple[str, ...], flare_u: np.ndarray,
                   flare_m: np.ndarray) -> np.ndarray:
    """(HEIGHTS,) flare beyond the body's support down the skirt, from the measured reach of the mask beyond
    the body (levels flare_u, metres flare_m; NaN unmeasured), draped and capped."""
    index = {name: i for i, name in enumerate(joint_names)}
    known = np.isfinite(flare_m)
    grid = np.linspace(0.0, 1.0, HEIGHTS)
    if not known.any():
        return np.zeros(HEIGHTS)
    t_levels = frame.t(leg_height(rest_joints, index, flare_u[known]))
    order = np.argsort(t_levels)
    profile = np.interp(grid, t_levels[order], flare_m[known][order], left=0.0)
    profile *= np.clip(grid / FLARE_RAMP_T, 0.0, 1.0)  # no flare at the waistband
    return np.clip(np.maximum.accumulate(profile), 0.0, SKIRT_MAX_FLARE_M)


def skirt_positions(base: np.ndarray, body: np.ndarray, rest_joints: np.ndarray, joint_names: tuple[str, ...],
                    regions, hem_u: float, flare_u: np.ndarray, flare_m: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, SkirtFrame]:
    """The clothed rest surface (V, 3) with the skirt's vertices re-placed, which vertices they are (V,)
    bool, and the skirt's frame.

    base: (V, 3) the clothed rest surface without the skirt (the skirt blends into it at the waist); body:
    (V, 3) the rest body (the skirt stands ``CLEARANCE_M`` plus the flare beyond its support); regions: the
    topology's ``BodyRegions``; hem_u, flare_u / flare_m: from the detection (``GarmentDecision``).
    """
    from munet.fitting.regions import LEG_L, LEG_R

    frame = skirt_frame(rest_joints, joint_names, hem_u)
    index = {name: i for i, name in enumerate(joint_names)}
    hip_z = float(leg_height(rest_joints, index, 0.0))
    t = frame.t(body[:, 2])
    member = regions.lower_body & (t >= 0.0) & (t <= 1.0) & ~regions.feet
    # the crotch (torso between the legs, below the hip joints) stays on the body: the legs' inner walls meet
    # in the middle plane there
    member &= ~(~np.isin(regions.limb, (LEG_L, LEG_R)) & (body[:, 2] < hip_z)
                & (np.abs(body[:, 0] - frame.centre[0]) < CROTCH_HALF_WIDTH_M)
                & (np.abs(body[:, 1] - frame.centre[1]) < CROTCH_HALF_WIDTH_M))
    table = _support_table(body[regions.lower_body & ~regions.feet], frame)
    table = np.minimum(table + CLEARANCE_M + _flare_profile(frame, rest_joints, joint_names, flare_u, flare_m)[:, None],
                       table + SKIRT_MAX_FLARE_M)
    table = np.maximum.accumulate(table, axis=0)
    out = base.astype(np.float64).copy()
    z = frame.z_waist - np.clip(t, 0, 1) * frame.length
    torso = member & ~np.isin(regions.limb, (LEG_L, LEG_R))
    rel = body[:, :2] - frame.centre
    angle = np.arctan2(rel[:, 1], rel[:, 0])
    out[torso] = _on_circle(frame, table, t[torso], angle[torso], z[torso])
    for limb, sign in ((LEG_L, 1.0), (LEG_R, -1.0)):
        legs = member & (regions.limb == limb)
        theta = regions.leg_angle[legs]
        outer = np.abs(theta) <= np.pi / 2
        # round the hips the outer half keeps its own angle about the pelvis (the torso's continuation); lower
        # down it takes its angle about the thigh, so each leg's outer half spans its side of the skirt
        down = np.clip((hip_z - body[legs, 2]) / HIP_BLEND_M, 0.0, 1.0)
        stretched = np.clip(theta * ARC_STRETCH, -np.pi / 2, np.pi / 2)
        mapped = stretched if sign > 0 else np.pi - stretched
        phi = angle[legs] + down * np.angle(np.exp(1j * (mapped - angle[legs])))
        placed = _on_circle(frame, table, t[legs], phi, z[legs])
        s = (np.mod(theta, 2 * np.pi) - np.pi / 2) / np.pi  # inner half: 0 at the back, 1 at the front
        s = (s - 0.5) * ARC_STRETCH + 0.5  # the ring's vertices nearest the front and back meet the arcs' ends
        back = frame.centre[1] + _radius(table, t[legs], np.full(legs.sum(), np.pi / 2))
        front = frame.centre[1] - _radius(table, t[legs], np.full(legs.sum(), -np.pi / 2))
        middle = np.stack([np.full(legs.sum(), frame.centre[0] - sign * MIDDLE_OVERLAP_M),
                           back + np.clip(s, 0, 1) * (front - back), z[legs]], 1)
        out[legs] = np.where(outer[:, None], placed, middle)
    blend = np.clip(t / WAIST_BLEND_T, 0.0, 1.0)[:, None]
    out = np.where(member[:, None], (1 - blend) * base + blend * out, base)
    return out, member, frame


def _on_circle(frame: SkirtFrame, table: np.ndarray, t: np.ndarray, angle: np.ndarray, z: np.ndarray) -> np.ndarray:
    r = _radius(table, t, angle)
    return np.stack([frame.centre[0] + r * np.cos(angle), frame.centre[1] + r * np.sin(angle), z], 1)


def skirt_blend(rest_z: np.ndarray, member: np.ndarray, frame: SkirtFrame) -> np.ndarray:
    """(V,) how far each skirt vertex's weights move towards ``SKIRT_TARGET``: 0 at the waist, 1 from the
    crotch down; 0 off the skirt."""
    ramp = np.clip((frame.z_waist - rest_z) / max(frame.z_waist - frame.z_crotch, 1e-3), 0.0, 1.0)
    return np.where(member, ramp, 0.0)


def target_weights(joint_names: tuple[str, ...]) -> np.ndarray:
    """(J,) ``SKIRT_TARGET`` on a skeleton: smpl24 by name, Anny's full skeleton by the bones the smpl24
    joints sit at (``munet.body.skeleton.ANNY_TO_SMPL24``)."""
    from munet.body.skeleton import ANNY_TO_SMPL24

    target = np.zeros(len(joint_names))
    for joint, weight in SKIRT_TARGET.items():
        name = joint if joint in joint_names else ANNY_TO_SMPL24[joint][0][0]
        target[joint_names.index(name)] += weight
    return target


def blended_weights(dense: np.ndarray, blend: np.ndarray, joint_names: tuple[str, ...]) -> np.ndarray:
    """(V, J) float32 skin of the clothed surface: each row moved by ``blend`` (V,) towards the skirt's target."""
    return ((1.0 - blend[:, None]) * dense + blend[:, None] * target_weights(joint_names)[None]).astype(np.float32)


def sparse_skin(dense: np.ndarray) -> SkinWeights:
    """Dense (V, J) weights as ``SkinWeights`` (every influence kept, rows renormalised)."""
    k = int((dense > 0).sum(1).max())
    order = np.argsort(-dense, axis=1)[:, :k]
    weights = np.take_along_axis(dense, order, axis=1)
    weights = weights / weights.sum(1, keepdims=True)
    order = np.where(weights > 0, order, 0)
    return SkinWeights(joint_indices=order.astype(np.int32), weights=weights.astype(np.float32))


def pose_surface(rest: np.ndarray, dense: np.ndarray, rest_joints: np.ndarray, rotations: np.ndarray,
                 posed_joints: np.ndarray) -> np.ndarray:
    """Linear blend skinning in numpy: rest (V, 3), dense (V, J), rest_joints / posed_joints (J, 3) world,
    rotations (J, 3, 3) global -> (V, 3) float32 posed."""
    translation = posed_joints - np.einsum("jab,jb->ja", rotations, rest_joints)
    rotation = np.einsum("vj,jab->vab", dense, rotations)
    return (np.einsum("vab,vb->va", rotation, rest) + dense @ translation).astype(np.float32)
