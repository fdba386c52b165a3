"""Procedural clothing and hair as offsets on the body's own topology.

The clothed surface has the body's vertices and faces (DESIGN.md §3.1): ``clothed = body + offset``,
so skinning weights carry over exactly. Offsets are built in the posed space, per sample:

* **Layers along the normal.** Every garment (top, bottoms, outer coat or jacket, shoes, hair) covers
  a region defined by shape-independent per-vertex coordinates of the template (``ClothingAtlas``:
  position along the arm and the leg, height along the torso, scalp) with a hem or neckline, and adds
  a thickness there: base thickness + ease (looseness, largest where cloth hangs: lower torso, cuffs,
  trouser hems) + low-frequency wrinkles (a few random plane waves on the rest surface). Layers add
  up; every offset is >= 0 along the posed vertex normal, so the body lies inside the clothes.
* **Skirts, dresses and long coats bridge the legs.** Below the waist, their vertices are re-placed
  on a hanging cone-like surface around an axis that follows gravity: each vertex keeps its height
  along the skirt (from the rest pose) and gets an angle around the axis (outer half of each leg
  maps to that leg's side; the inner half folds onto the same arc as a coincident inner layer, so no
  triangle spans the gap between the legs). The radius at each height and angle is the larger of
  the style's flare and the support function of the posed lower body (its convex cross-section)
  plus clearance, made monotone down the skirt so it drapes over the widest part (hips, a knee
  stepping forward). The body inside the skirt is therefore always enclosed.

Offsets are capped by region (DESIGN.md §7: hair, loose skirts and coats may go far, a forearm may
not). All lengths are metres.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from munet.body.skeleton import SMPL24_INDEX, SMPL24_JOINTS
from munet.geometry.mesh import vertex_normals_torch as vertex_normals
from munet.fitting.regions import (ARM_CHAIN, ARM_L, ARM_R, HAND_L, HAND_R, HEAD, LEG_CHAIN, LEG_L, LEG_R, NECK, TORSO,
                                  limb_regions)

J = SMPL24_INDEX

# caps on the total offset by region, metres
CAP_M = {"torso": 0.10, "arm": 0.06, "leg": 0.07, "foot": 0.03, "hair": 0.09, "neck": 0.03}
SKIRT_MAX_FLARE_M = 0.35  # how far a skirt may stand beyond the body's support


@dataclasses.dataclass(frozen=True)
class ClothingAtlas:
    """Per-vertex coordinates of the template (average shape, rest pose), shape-independent.

    region: (V,) int64 region id (TORSO, HEAD, NECK, ARM_L/R, LEG_L/R, HAND_L/R).
    arm_u: (V,) position along the arm, 0 shoulder, 1 elbow, 2 wrist, 3 knuckles (-1 off the arm).
    leg_u: (V,) position along the leg, 0 hip joint, 1 knee, 2 ankle, 3 ball of the foot (negative
        above the hip joint; -1 off the leg).
    torso_s: (V,) height between the hip joints' level (0) and the neck joint (1), for every vertex.
    front: (V,) float, -(y - centre) / depth: > 0 on the front of the body.
    hair_cover: (V,) in [0, 1], the scalp (hairline lower at the back and sides).
    nape: (V,) in [0, 1], the back of the neck and upper back (where long hair falls).
    skirt_angle: (V,) radians around the skirt axis (0 = +X, -pi/2 = front, +pi/2 = back) for lower-body
        vertices; NaN elsewhere. The inner half of each leg folds onto its outer half.
    lower_body: (V,) bool, vertices a skirt may re-place (torso below the chest, legs).
    rest_m: (V, 3) float32 the template's rest positions (for wrinkle fields).
    """

    region: torch.Tensor
    arm_u: torch.Tensor
    leg_u: torch.Tensor
    torso_s: torch.Tensor
    front: torch.Tensor
    hair_cover: torch.Tensor
    nape: torch.Tensor
    skirt_angle: torch.Tensor
    lower_body: torch.Tensor
    rest_m: torch.Tensor


def _chain_coordinate(points: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """Project points (N, 3) onto the polyline through joints (K, 3): coordinate k + t on segment k."""
    best = np.full(len(points), np.inf)
    coord = np.zeros(len(points))
    for k in range(len(joints) - 1):
        a, b = joints[k], joints[k + 1]
        ab = b - a
        t = np.clip(((points - a) @ ab) / (ab @ ab), 0.0, 1.0)
        if k == 0:  # allow negative coordinates above the first joint
            t = np.minimum(((points - a) @ ab) / (ab @ ab), 1.0)
        d = np.linalg.norm(points - (a + np.clip(t, 0.0, 1.0)[:, None] * ab), axis=1)
        better = d < best - 1e-9
        best = np.where(better, d, best)
        coord = np.where(better, k + t, coord)
    return coord


def build_atlas(rest_vertices: np.ndarray, rest_joints: np.ndarray, dense_weights: np.ndarray) -> ClothingAtlas:
    """The atlas from one rest body (V, 3), its joints (24, 3) and skinning weights (V, 24), metres."""
    v = rest_vertices.astype(np.float64)
    jt = rest_joints.astype(np.float64)
    region = limb_regions(dense_weights, SMPL24_JOINTS)
    arm_u, leg_u = _limb_coordinates(v, jt, region)
    hip_z = 0.5 * (jt[J["left_hip"], 2] + jt[J["right_hip"], 2])
    torso_s = (v[:, 2] - hip_z) / (jt[J["neck"], 2] - hip_z)
    centre_y = np.median(v[region == TORSO, 1])
    front = -(v[:, 1] - centre_y) / 0.12
    hair_cover, nape = _scalp(v, jt, region)
    skirt_angle, lower = _skirt_angles(v, jt, region)
    return ClothingAtlas(
        region=torch.from_numpy(region),
        arm_u=torch.from_numpy(arm_u).float(),
        leg_u=torch.from_numpy(leg_u).float(),
        torso_s=torch.from_numpy(torso_s).float(),
        front=torch.from_numpy(front).float(),
        hair_cover=torch.from_numpy(hair_cover).float(),
        nape=torch.from_numpy(nape).float(),
        skirt_angle=torch.from_numpy(skirt_angle).float(),
        lower_body=torch.from_numpy(lower),
        rest_m=torch.from_numpy(v).float(),
    )


def _limb_coordinates(v: np.ndarray, jt: np.ndarray, region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(V,) positions along the arm (arms and hands) and along the leg (-1 elsewhere), see ``ClothingAtlas``."""
    arm_u = np.full(len(v), -1.0)
    leg_u = np.full(len(v), -1.0)
    for side, arm_id, hand_id, leg_id in (("left", ARM_L, HAND_L, LEG_L), ("right", ARM_R, HAND_R, LEG_R)):
        arm_joints = jt[[J[f"{side}_{p}"] for p in ARM_CHAIN]]
        members = np.flatnonzero((region == arm_id) | (region == hand_id))
        arm_u[members] = _chain_coordinate(v[members], arm_joints)
        leg_joints = jt[[J[f"{side}_{p}"] for p in LEG_CHAIN]]
        members = np.flatnonzero(region == leg_id)
        leg_u[members] = _chain_coordinate(v[members], leg_joints)
    return arm_u, leg_u


def _scalp(v: np.ndarray, jt: np.ndarray, region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(V,) hair cover: head vertices above a hairline that drops from the forehead to the nape; (V,)
    nape: the back of the neck and upper back, where long hair falls."""
    head = jt[J["head"]]
    back = np.clip((v[:, 1] - (head[1] - 0.06)) / 0.1, 0.0, 1.0)
    hairline = head[2] + 0.095 - 0.1 * back
    hair_cover = 1.0 / (1.0 + np.exp(-(v[:, 2] - hairline) / 0.006))
    hair_cover *= np.isin(region, (HEAD, NECK))
    nape = np.clip((v[:, 1] - (head[1] + 0.0)) / 0.05, 0.0, 1.0) * np.clip((v[:, 2] - (jt[J["spine3"], 2] - 0.05)) / 0.1, 0.0, 1.0)
    nape *= np.isin(region, (TORSO, NECK)) * (v[:, 2] < head[2] + 0.02)
    return hair_cover, nape


def _skirt_angles(v: np.ndarray, jt: np.ndarray, region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(V,) skirt angle (radians, NaN off the lower body) and (V,) bool lower body: legs by their ring
    angle around the thigh/shin axis (inner half folded), the lower torso by its angle around the pelvis."""
    skirt_angle = np.full(len(v), np.nan)
    chest_z = jt[J["spine2"], 2]
    lower = (v[:, 2] < chest_z) & np.isin(region, (TORSO, LEG_L, LEG_R))
    torso_lower = lower & (region == TORSO)
    pelvis = jt[J["pelvis"]]
    skirt_angle[torso_lower] = np.arctan2(v[torso_lower, 1] - pelvis[1], v[torso_lower, 0] - pelvis[0])
    for side, leg_id, sign in (("left", LEG_L, 1.0), ("right", LEG_R, -1.0)):
        members = np.flatnonzero(lower & (region == leg_id))
        leg_joints = jt[[J[f"{side}_{p}"] for p in ("hip", "knee", "ankle")]]
        # axis point at each vertex height: interpolate the joints by z
        zs = leg_joints[::-1, 2]
        axis_x = np.interp(v[members, 2], zs, leg_joints[::-1, 0])
        axis_y = np.interp(v[members, 2], zs, leg_joints[::-1, 1])
        theta = np.arctan2(v[members, 1] - axis_y, sign * (v[members, 0] - axis_x))  # 0 = outwards
        folded = np.where(np.abs(theta) <= np.pi / 2, theta, np.sign(theta) * (np.pi - np.abs(theta)))
        # stretch and clamp: the ring's vertices nearest the front and back lines land exactly on them,
        # so the two legs' halves meet there with no gap
        folded = np.clip(folded * 1.3, -np.pi / 2, np.pi / 2)
        skirt_angle[members] = folded if sign > 0 else np.pi - folded
    return np.where(np.isnan(skirt_angle), np.nan, np.angle(np.exp(1j * skirt_angle))), lower


# ------------------------------------------------------------------------------------------------
# Garment parameters
# ------------------------------------------------------------------------------------------------

TOP_TYPES = ("none", "tank", "tshirt", "longsleeve", "sweater")
BOTTOM_TYPES = ("shorts", "trousers", "leggings", "skirt", "dress")
OUTER_TYPES = ("none", "jacket", "coat")
HAIR_TYPES = ("bald", "short", "medium", "long", "bun")
# poses a hanging skirt model suits (sitting, kneeling, kicking would need cloth simulation)
SKIRT_FAMILIES = ("stand", "walk", "dance")


@dataclasses.dataclass
class ClothingParams:
    """Per-sample garment parameters, all (N,) numpy arrays (metres, or coordinates of the atlas).

    top: index into TOP_TYPES; sleeve: arm coordinate of the cuff; top_hem: torso_s of the hem;
    top_thick, top_ease: metres. bottom: index into BOTTOM_TYPES; leg_len: leg coordinate of the hem
    (trousers/shorts) or of the skirt's hem; waist: torso_s of the waistband; bottom_thick,
    bottom_ease; flare: skirt flare at the hem (metres beyond the body). outer: index into
    OUTER_TYPES; outer_len: leg coordinate of a coat's hem (< 0: above the hips); outer_thick,
    outer_ease. shoes: thickness; boots: leg coordinate where shoes start. hair: index into
    HAIR_TYPES; hair_thick, hair_len (long hair: how far down the back). wrinkle_amp: metres;
    wrinkle_seed: int seeds of the wrinkle fields.
    """

    top: np.ndarray
    sleeve: np.ndarray
    top_hem: np.ndarray
    top_thick: np.ndarray
    top_ease: np.ndarray
    bottom: np.ndarray
    leg_len: np.ndarray
    waist: np.ndarray
    bottom_thick: np.ndarray
    bottom_ease: np.ndarray
    flare: np.ndarray
    outer: np.ndarray
    outer_len: np.ndarray
    outer_thick: np.ndarray
    outer_ease: np.ndarray
    shoes: np.ndarray
    boots: np.ndarray
    hair: np.ndarray
    hair_thick: np.ndarray
    hair_len: np.ndarray
    wrinkle_amp: np.ndarray
    wrinkle_seed: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def take(self, index) -> "ClothingParams":
        return ClothingParams(**{k: v[index] for k, v in self.as_dict().items()})

    def has_skirt(self) -> np.ndarray:
        """(N,) bool: a skirt, a dress or a coat long enough to hang below the hips."""
        skirt = np.isin(self.bottom, (BOTTOM_TYPES.index("skirt"), BOTTOM_TYPES.index("dress")))
        return skirt | ((self.outer == OUTER_TYPES.index("coat")) & (self.outer_len > 0.15))


def sample_clothing(rng: np.random.Generator, families: list[str], female: np.ndarray, loose_bias: float = 0.0) -> ClothingParams:
    """Draw outfits for N samples. families: the pose family of each sample (skirts only where they
    make sense); female: (N,) in [0, 1] (Anny's gender phenotype: 1 = female) biases skirts and hair.
    loose_bias in [0, 1] raises the share of loose clothing (the held-out set uses 0.3)."""
    n = len(families)
    u = rng.random

    def choose(options: int, p: list[float], size: int) -> np.ndarray:
        p_arr = np.asarray(p, np.float64)
        return rng.choice(options, size=size, p=p_arr / p_arr.sum())

    top = choose(len(TOP_TYPES), [0.03, 0.12, 0.45, 0.25, 0.15], n)
    sleeve = np.select(
        [top == 0, top == 1, top == 2, top == 3, top == 4],
        [np.full(n, -1.0), np.full(n, -0.2), rng.uniform(0.25, 0.75, n), rng.uniform(1.6, 2.0, n), rng.uniform(1.85, 2.0, n)],
    )
    top_hem = rng.uniform(-0.3, 0.15, n)
    top_thick = np.where(top == 4, rng.uniform(0.008, 0.016, n), rng.uniform(0.003, 0.007, n))
    loose = np.clip(rng.beta(1.2, 2.5, n) + loose_bias * u(n), 0.0, 1.0)
    top_ease = loose * 0.05

    skirt_ok = np.array([f in SKIRT_FAMILIES for f in families]) & (u(n) < 0.2 + 0.55 * female)
    bottom = np.where(skirt_ok, choose(2, [0.55, 0.45], n) + 3, choose(3, [0.25, 0.6, 0.15], n))
    leg_len = np.select(
        [bottom == 0, bottom == 1, bottom == 2, bottom >= 3],
        [rng.uniform(0.25, 0.8, n), rng.uniform(1.75, 2.05, n), rng.uniform(1.5, 2.0, n), rng.uniform(0.35, 1.9, n)],
    )
    waist = rng.uniform(0.12, 0.32, n)
    bottom_thick = np.where(bottom == 2, rng.uniform(0.001, 0.003, n), rng.uniform(0.003, 0.008, n))
    bottom_ease = np.where(bottom == 2, 0.0, np.clip(rng.beta(1.3, 3.0, n) + loose_bias * u(n), 0, 1) * 0.05)
    flare = rng.uniform(0.0, 1.0, n) ** 1.5 * 0.3 + 0.01
    # a dress is one garment: no separate top hem
    top = np.where((bottom == 4) & (top <= 1), 2, top)

    outer = np.where(u(n) < 0.22 + 0.1 * loose_bias, choose(2, [0.6, 0.4], n) + 1, 0)
    hangs = np.array([f in SKIRT_FAMILIES for f in families])
    # a coat hangs below the hips (like a skirt) only in poses a hanging skirt suits; else it stops there
    outer_len = np.where(outer == 2, np.where(hangs, rng.uniform(0.2, 1.5, n), rng.uniform(-0.1, 0.1, n)),
                         rng.uniform(-0.25, 0.05, n))
    outer_thick = np.where(outer == 2, rng.uniform(0.01, 0.035, n), rng.uniform(0.006, 0.02, n))
    outer_ease = rng.uniform(0.0, 0.03, n)

    shoes = rng.uniform(0.004, 0.015, n)
    boots = np.where(u(n) < 0.2, rng.uniform(1.5, 1.9, n), 2.0)
    hair = np.where(
        female > 0.5, choose(len(HAIR_TYPES), [0.02, 0.15, 0.33, 0.35, 0.15], n), choose(len(HAIR_TYPES), [0.12, 0.55, 0.25, 0.06, 0.02], n)
    )
    hair_thick = np.select([hair == 0, hair == 1, hair == 2], [np.full(n, 0.0005), rng.uniform(0.004, 0.012, n), rng.uniform(0.012, 0.03, n)],
                           rng.uniform(0.015, 0.04, n))  # fmt: skip
    hair_len = rng.uniform(0.0, 1.0, n)
    wrinkle_amp = rng.uniform(0.1, 0.6, n)
    wrinkle_seed = rng.integers(0, 2**31 - 1, n)
    return ClothingParams(top, sleeve, top_hem, top_thick, top_ease, bottom, leg_len, waist, bottom_thick, bottom_ease,
                          flare, outer, outer_len, outer_thick, outer_ease, shoes, boots, hair, hair_thick, hair_len,
                          wrinkle_amp, wrinkle_seed)  # fmt: skip


# ------------------------------------------------------------------------------------------------
# Offsets
# ------------------------------------------------------------------------------------------------


def _step(x: torch.Tensor, edge: torch.Tensor, width: float = 0.04) -> torch.Tensor:
    """Smooth 0 -> 1 as x rises through edge (width in the coordinate's units)."""
    return torch.sigmoid((x - edge) / width)


def _wrinkles(rest: torch.Tensor, seeds: np.ndarray, waves: int = 6) -> torch.Tensor:
    """(B, V) smooth random fields in ~[-1, 1]: sums of plane waves (wavelengths 12-45 cm) on the rest
    template, one field per seed."""
    k_all, phase_all = [], []
    for seed in seeds:
        g = np.random.default_rng(int(seed))
        direction = g.normal(size=(waves, 3))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        k_all.append(direction * (2 * np.pi / g.uniform(0.12, 0.45, waves))[:, None])
        phase_all.append(g.uniform(0, 2 * np.pi, waves))
    k = torch.from_numpy(np.stack(k_all)).float()  # (B, W, 3)
    phase = torch.from_numpy(np.stack(phase_all)).float()  # (B, W)
    field = torch.sin(torch.einsum("vc,bwc->bvw", rest, k) + phase[:, None]).mean(-1) * math.sqrt(2.0 / waves) * 1.5
    return field.clamp(-1.0, 1.0)


def layer_offsets(atlas: ClothingAtlas, params: ClothingParams) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, V) offsets along the normal (metres, >= 0) from all layers except the skirt re-placement,
    and (B, V) the thickness of the layers under a skirt at each vertex (its clearance)."""
    col = _column
    region = atlas.region[None]
    torso_like = (region == TORSO)
    arm = (region == ARM_L) | (region == ARM_R)
    leg = (region == LEG_L) | (region == LEG_R)
    s, arm_u, leg_u = atlas.torso_s[None], atlas.arm_u[None], atlas.leg_u[None]
    wrinkle = _wrinkles(atlas.rest_m, params.wrinkle_seed)  # (B, V)

    # top: torso above the hem (including the upper thighs' flesh when the hem is low) and the arms
    # down to the cuff; the neck stays bare
    has_top = col(params.top > 0)
    top_cover = (torso_like | (leg & (leg_u < 0.6))).float() * _step(s, col(params.top_hem), 0.02)
    top_cover = top_cover + arm.float() * (1.0 - _step(arm_u, col(params.sleeve), 0.05))
    top_cover = top_cover.clamp(0, 1) * has_top
    # ease: more where cloth hangs (lower torso, towards the cuff), less on the shoulders
    drape = torch.where(arm, 0.4 + 0.6 * (arm_u / 2.0).clamp(0, 1), 0.3 + 0.7 * (1.0 - s).clamp(0, 1))
    amp = col(params.wrinkle_amp)
    top = top_cover * (col(params.top_thick) + col(params.top_ease) * drape * (1 + amp * wrinkle))

    # bottoms: trousers, shorts, leggings; skirts and dresses get their waistband here and are
    # re-placed below the waist by ``skirt_positions``
    trousers = col(params.bottom <= 2)
    below_waist = 1.0 - _step(s, col(params.waist), 0.02)
    bottom_cover = torso_like.float() * below_waist + leg.float() * (1.0 - _step(leg_u, col(params.leg_len), 0.04))
    bottom_cover = bottom_cover.clamp(0, 1)
    widen = 0.2 + 0.8 * (leg_u / 2.0).clamp(0, 1)
    bottom = bottom_cover * trousers * (col(params.bottom_thick) + col(params.bottom_ease) * widen * (1 + amp * wrinkle))
    dress = col(params.bottom >= 3)
    skirt_band = dress * torso_like.float() * below_waist * col(params.bottom_thick)

    # outer jacket or coat: like a long-sleeved top, over everything, down to its hem
    has_outer = col(params.outer > 0)
    outer_hem_s = np.where(params.outer_len < 0, params.outer_len, -0.3)
    outer_cover = (torso_like | (leg & (leg_u < 0.6))).float() * _step(s, col(outer_hem_s), 0.02)
    outer_cover = outer_cover + arm.float() * (1.0 - _step(arm_u, torch.full_like(col(params.sleeve), 1.95), 0.05))
    coat_legs = col(params.outer_len > 0) * leg.float() * (1.0 - _step(leg_u, col(params.outer_len), 0.04))
    outer_cover = (outer_cover + coat_legs).clamp(0, 1) * has_outer
    outer = outer_cover * (col(params.outer_thick) + col(params.outer_ease) * drape * (1 + amp * wrinkle))

    # shoes and boots
    shoes = leg.float() * _step(leg_u, col(params.boots), 0.03) * col(params.shoes)

    total = top + bottom + skirt_band + outer + shoes + _hair(atlas, params, wrinkle)
    total = torch.minimum(total, _caps(atlas)) * ~((region == HAND_L) | (region == HAND_R))
    # what lies under a skirt, for its clearance: the top over the hips, the waistband, a coat's layer
    under_skirt = top + skirt_band + bottom
    return total.clamp(min=0.0), under_skirt


def _column(x: np.ndarray) -> torch.Tensor:
    """(B,) per-sample parameter -> (B, 1) float32 tensor (broadcasts over vertices)."""
    return torch.from_numpy(np.asarray(x, np.float32))[:, None]


def _hair(atlas: ClothingAtlas, params: ClothingParams, wrinkle: torch.Tensor) -> torch.Tensor:
    """(B, V) hair thickness, metres: volume on the scalp; long hair also falls over the nape and upper
    back; a bun sits at the back of the head."""
    col = _column
    hair_type = params.hair
    scalp = atlas.hair_cover[None] * col(hair_type > 0)
    hair = scalp * col(params.hair_thick) * (1 + 0.3 * wrinkle)
    long_hair = col(hair_type == HAIR_TYPES.index("long")) * atlas.nape[None] * col(0.01 + 0.03 * params.hair_len)
    bun = col(hair_type == HAIR_TYPES.index("bun")) * scalp * _step(atlas.rest_m[None, :, 1], torch.tensor(0.0), 0.01) * 0.03
    return hair + long_hair + bun


def _caps(atlas: ClothingAtlas) -> torch.Tensor:
    """(1, V) cap on the total offset per vertex, metres (``CAP_M`` by region; feet below the ankle)."""
    region, leg_u = atlas.region[None], atlas.leg_u[None]
    arm = (region == ARM_L) | (region == ARM_R)
    leg = (region == LEG_L) | (region == LEG_R)
    caps = torch.where(arm, CAP_M["arm"], torch.where(leg, CAP_M["leg"], CAP_M["torso"]))
    caps = torch.where((region == HEAD) | (region == NECK), CAP_M["hair"], caps)
    return torch.where(leg & (leg_u > 2.0), CAP_M["foot"], caps)


def skirt_positions(
    posed: torch.Tensor, rest: torch.Tensor, joints: torch.Tensor, rest_joints: torch.Tensor,
    global_rotations: torch.Tensor, atlas: ClothingAtlas, params: ClothingParams, base_offsets: torch.Tensor,
    heights: int = 24, angles: int = 48,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Re-place the skirt vertices of the samples that wear a skirt, a dress or a long coat.

    posed, rest: (B, V, 3) body vertices; joints, rest_joints: (B, 24, 3); global_rotations:
    (B, 24, 3, 3); base_offsets: (B, V) layer thickness under the skirt (its clearance).
    Returns positions (B, V, 3) for the skirt vertices and a (B, V) bool mask of which vertices are
    skirt vertices (False everywhere for samples without a skirt).
    """
    out = posed.clone()
    mask = torch.zeros(posed.shape[:2], dtype=torch.bool)
    chosen = np.flatnonzero(params.has_skirt())
    if len(chosen) == 0:
        return out, mask
    lower = torch.nonzero(atlas.lower_body).squeeze(1)
    index = torch.from_numpy(chosen)
    positions, member = _skirt_subset(
        posed[index][:, lower], rest[index][:, lower], joints[index], rest_joints[index], global_rotations[index],
        atlas.skirt_angle[lower], params.take(chosen), base_offsets[index][:, lower], heights, angles,
    )
    sub = out[index]
    sub[:, lower] = torch.where(member[..., None], positions, sub[:, lower])
    out[index] = sub
    sub_mask = mask[index]
    sub_mask[:, lower] = member
    mask[index] = sub_mask
    return out, mask


def _skirt_subset(
    posed: torch.Tensor, rest: torch.Tensor, joints: torch.Tensor, rest_joints: torch.Tensor,
    global_rotations: torch.Tensor, skirt_angle: torch.Tensor, params: ClothingParams, base_offsets: torch.Tensor,
    heights: int, angles: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``skirt_positions`` on samples that all wear one, restricted to the lower-body vertices (B, L)."""
    is_coat = torch.from_numpy((params.outer == OUTER_TYPES.index("coat")) & ~np.isin(params.bottom, (3, 4)))
    hem_u = torch.from_numpy(np.where(is_coat.numpy(), params.outer_len, params.leg_len).astype(np.float32))
    waist_s = torch.from_numpy(np.where(is_coat.numpy(), -0.1, params.waist).astype(np.float32))
    flare = torch.from_numpy(np.where(is_coat.numpy(), 0.3 * params.flare, params.flare).astype(np.float32))
    z_waist, length = _skirt_heights(rest_joints, waist_s, hem_u)
    t = (z_waist[:, None] - rest[..., 2]) / length[:, None]  # (B, V) 0 at the waist, 1 at the hem
    member = (t >= 0) & (t <= 1)
    origin, axis, e1, e2 = _hanging_frame(posed, joints, rest_joints, global_rotations, z_waist)
    support = _support_table(posed, origin, axis, e1, e2, length, base_offsets, heights, angles)
    # style: flare grows towards the hem on top of the waist's own radius, capped beyond the support
    grid_t = torch.linspace(0, 1, heights)[None, :, None]
    style = support[:, :1] + flare[:, None, None] * grid_t**1.3
    table = torch.minimum(torch.maximum(support, style), support + SKIRT_MAX_FLARE_M)
    angle = skirt_angle[None].expand(posed.shape[0], -1)
    radius = _lookup_radius(table, t, angle)
    direction = torch.cos(angle)[..., None] * e1[:, None] + torch.sin(angle)[..., None] * e2[:, None]
    placed = origin[:, None] + (t * length[:, None])[..., None] * axis[:, None] + radius[..., None] * direction
    return placed, member


def _skirt_heights(rest_joints: torch.Tensor, waist_s: torch.Tensor, hem_u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rest heights (B,) of the waist and the skirt's length (B,), metres, for each sample's own shape:
    the waist at torso height ``waist_s``, the hem at leg position ``hem_u`` (1 knee, 2 ankle)."""
    hip_z = 0.5 * (rest_joints[:, J["left_hip"], 2] + rest_joints[:, J["right_hip"], 2])
    neck_z = rest_joints[:, J["neck"], 2]
    z_waist = hip_z + waist_s * (neck_z - hip_z)
    knee_z = 0.5 * (rest_joints[:, J["left_knee"], 2] + rest_joints[:, J["right_knee"], 2])
    ankle_z = 0.5 * (rest_joints[:, J["left_ankle"], 2] + rest_joints[:, J["right_ankle"], 2])
    z_hem = torch.where(hem_u <= 1.0, hip_z + hem_u * (knee_z - hip_z), knee_z + (hem_u - 1.0).clamp(max=1.0) * (ankle_z - knee_z))
    return z_waist, (z_waist - z_hem).clamp(min=0.05)


def _hanging_frame(posed: torch.Tensor, joints: torch.Tensor, rest_joints: torch.Tensor, global_rotations: torch.Tensor,
                   z_waist: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The skirt's hanging frame (B, 3) each: origin at the posed waist, axis mostly along gravity, e1
    the pelvis' lateral axis made perpendicular to it, e2 = e1 x axis (at rest: +Y, the back)."""
    pelvis_rot = global_rotations[:, J["pelvis"]]  # (B, 3, 3)
    up = pelvis_rot[..., 2]
    origin = joints[:, J["pelvis"]] + up * (z_waist - rest_joints[:, J["pelvis"], 2])[:, None]
    gravity = posed.new_tensor([0.0, 0.0, -1.0]).expand(posed.shape[0], 3)
    axis = 0.75 * gravity - 0.25 * up
    axis = axis / axis.norm(dim=-1, keepdim=True)
    e1 = pelvis_rot[..., 0] - (pelvis_rot[..., 0] * axis).sum(-1, keepdim=True) * axis
    e1 = e1 / e1.norm(dim=-1, keepdim=True).clamp(min=1e-6)
    e2 = torch.linalg.cross(e1, axis, dim=-1)
    return origin, axis, e1, e2


def _support_table(posed: torch.Tensor, origin: torch.Tensor, axis: torch.Tensor, e1: torch.Tensor, e2: torch.Tensor,
                   length: torch.Tensor, base_offsets: torch.Tensor, heights: int, angles: int) -> torch.Tensor:
    """(B, heights, angles) support function of the posed lower body (legs, hips) plus clearance, per
    height bin down the skirt and direction around its axis, draped: never narrower than anything above."""
    batch = posed.shape[0]
    rel = posed - origin[:, None]
    h = (rel * axis[:, None]).sum(-1) / length[:, None]  # (B, V) in skirt lengths
    px = (rel * e1[:, None]).sum(-1)
    py = (rel * e2[:, None]).sum(-1)
    psi = torch.linspace(-math.pi, math.pi, angles + 1)[:-1]
    support_src = (h >= -0.05) & (h <= 1.05)  # (B, L)
    proj = px[..., None] * torch.cos(psi) + py[..., None] * torch.sin(psi)  # (B, V, A)
    clearance = base_offsets + 0.008
    proj = proj + clearance[..., None]
    bin_index = (h.clamp(0, 1) * (heights - 1)).round().long()
    table = torch.full((batch, heights, angles), -1.0)
    flat = (torch.arange(batch)[:, None] * heights + bin_index)  # (B, V)
    src = torch.where(support_src[..., None], proj, torch.full_like(proj, -1.0))
    table.view(batch * heights, angles).scatter_reduce_(
        0, flat.reshape(-1, 1).expand(-1, angles), src.reshape(-1, angles), reduce="amax"
    )
    # neighbouring directions (the support between sample directions) and bins; then drape
    table = torch.maximum(table, torch.maximum(table.roll(1, 2), table.roll(-1, 2)) * math.cos(2 * math.pi / angles))
    table = torch.maximum(table, torch.cat([table[:, :1], table[:, :-1]], 1))
    return torch.cummax(table, dim=1).values


def _lookup_radius(table: torch.Tensor, t: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """(B, V) radius: bilinear lookup of the (B, heights, angles) table at skirt position ``t`` (B, V)
    in [0, 1] and ``angle`` (B, V) radians (the table's angles span [-pi, pi))."""
    batch, heights, angles = table.shape
    a = (angle + math.pi) / (2 * math.pi) * angles
    a0 = torch.floor(a).long() % angles
    a1 = (a0 + 1) % angles
    fa = a - torch.floor(a)
    tt = t.clamp(0, 1) * (heights - 1)
    t0 = torch.floor(tt).long().clamp(0, heights - 1)
    t1 = (t0 + 1).clamp(max=heights - 1)
    ft = tt - t0
    rows = torch.arange(batch)[:, None]

    def lookup(ti: torch.Tensor, ai: torch.Tensor) -> torch.Tensor:
        return table[rows, ti, ai]

    return (
        (1 - ft) * ((1 - fa) * lookup(t0, a0) + fa * lookup(t0, a1))
        + ft * ((1 - fa) * lookup(t1, a0) + fa * lookup(t1, a1))
    )


def dress_bodies(
    posed: torch.Tensor, rest: torch.Tensor, joints: torch.Tensor, rest_joints: torch.Tensor,
    global_rotations: torch.Tensor, faces: torch.Tensor, atlas: ClothingAtlas, params: ClothingParams,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clothed vertices (B, V, 3) for posed bodies (B, V, 3) and which of them are skirt vertices
    (B, V) bool. Same topology as the body."""
    offsets, under_skirt = layer_offsets(atlas, params)
    normals = vertex_normals(posed, faces)
    clothed = posed + offsets[..., None] * normals
    skirt_xyz, skirt_mask = skirt_positions(posed, rest, joints, rest_joints, global_rotations, atlas, params, under_skirt)
    clothed = torch.where(skirt_mask[..., None], skirt_xyz, clothed)
    return clothed, skirt_mask
