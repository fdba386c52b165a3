"""Where on the body each vertex lies, for the clothed surface: body parts (face, scalp, hands, feet, the
mouth and eye cavities), positions along the limbs and the torso, and the angles a skirt wraps the legs by.

Computed once per body model on its template (average shape, rest pose), so they do not depend on the
person: the clothing fit (``munet.fitting.clothing``), hair (``munet.fitting.hair``) and loose garments
(``munet.fitting.garments``) read them. Parts come from Anny's UV-space body-part map
(``BodyModel.uv_part_map``) when the model has one, else from the skinning weights. The limb coordinates
and the scalp follow the synthetic data engine's clothing atlas (``training/data/clothing.py``: same
definitions, so the network's clothes and the photo's clothes speak of the same places). The limb ids
and ``limb_regions`` live here, and the data engine imports them.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from munet.geometry.mesh import vertex_normals

# limb ids (by the joint that dominates a vertex's skin), as the data engine's atlas
TORSO, HEAD, NECK, ARM_L, ARM_R, LEG_L, LEG_R, HAND_L, HAND_R = range(9)
ARM_CHAIN = ("shoulder", "elbow", "wrist", "hand")
LEG_CHAIN = ("hip", "knee", "ankle", "foot")
_INNER_PARTS = ("eye_back.L", "eye_front.L", "eye_back.R", "eye_front.R", "eye_cavity.L", "eye_cavity.R",
                "mouth_cavity", "tongue")
FACE_FRONT_NORMAL = -0.2
"""A head vertex below the hairline belongs to the face when its rest normal's Y (forward is -Y) is below this."""


@dataclasses.dataclass(frozen=True)
class BodyRegions:
    """Per-vertex facts of the body topology (V vertices), from the template.

    limb: (V,) int64 limb id (TORSO, HEAD, NECK, ARM_L/R, LEG_L/R, HAND_L/R). arm_u: (V,) along the arm,
    0 shoulder, 1 elbow, 2 wrist, 3 knuckles (-1 off the arms); leg_u: (V,) along the leg, 0 hip joint,
    1 knee, 2 ankle, 3 ball of the foot (-1 off the legs); torso_s: (V,) height between the hip joints'
    level (0) and the neck joint (1). face, hands, feet, inner (eye and mouth cavities, eyeballs, tongue):
    (V,) bool. scalp: (V,) in [0, 1], where hair grows (the hairline drops from the forehead to the nape);
    nape: (V,) in [0, 1], the back of the neck and the upper back, where long hair falls. lower_body: (V,)
    bool, the vertices a skirt may re-place; skirt_angle: (V,) radians around the skirt's axis (0 = +X,
    -pi/2 = front, +pi/2 = back), NaN off the lower body (each leg's inner half folds onto its outer half,
    as the data engine's skirts); leg_angle: (V,) radians around each leg's own axis (0 = outwards,
    +pi/2 = back, -pi/2 = front), NaN off the legs. foot_free_m: (V,) on the feet, the free space in front
    of each vertex along its normal (between the toes a few millimetres; inf elsewhere). rest_m: (V, 3)
    float64 template at rest;
    rest_joints_m: (J, 3); joint_names: the skeleton's.
    """

    limb: np.ndarray
    arm_u: np.ndarray
    leg_u: np.ndarray
    torso_s: np.ndarray
    face: np.ndarray
    hands: np.ndarray
    feet: np.ndarray
    inner: np.ndarray
    scalp: np.ndarray
    nape: np.ndarray
    lower_body: np.ndarray
    skirt_angle: np.ndarray
    leg_angle: np.ndarray
    foot_free_m: np.ndarray
    rest_m: np.ndarray
    rest_joints_m: np.ndarray
    joint_names: tuple[str, ...]

    def joint(self, name: str) -> np.ndarray:
        """(3,) the template's rest position of a joint, metres."""
        return self.rest_joints_m[self.joint_names.index(name)]


_CACHE: dict[int, tuple[object, BodyRegions]] = {}


def body_regions(body) -> BodyRegions:
    """The regions of a ``BodyModel`` (smpl24 skeleton): built once (~1 s) and cached under
    ``munet.paths.cache_dir()``, named by a hash of the model's template, weights and faces and of the code
    that builds them (a change of either rebuilds it); kept in memory per model instance."""
    cached = _CACHE.get(id(body))
    if cached is not None and cached[0] is body:
        return cached[1]
    regions = _load_or_build(body)
    _CACHE[id(body)] = (body, regions)
    return regions


def _load_or_build(body) -> BodyRegions:
    import pathlib

    from munet import paths
    from munet.fitting import clothing

    with torch.no_grad():
        rest_v, rest_j = body.rest(body.default_shape)
    rest, joints = rest_v[0].double().numpy(), rest_j[0].double().numpy()
    dense, faces, names = body.dense_weights.double().numpy(), body.faces.numpy(), tuple(body.joint_names)
    key = paths.content_hash("body-regions", rest.tobytes(), dense.tobytes(), faces.tobytes(), "/".join(names),
                             pathlib.Path(__file__).read_bytes(), pathlib.Path(clothing.__file__).read_bytes())
    path = paths.cache_dir() / f"body-regions-{key}.npz"
    if path.exists():
        try:
            with np.load(path) as stored:
                return BodyRegions(**{f.name: stored[f.name] for f in dataclasses.fields(BodyRegions)
                                      if f.name != "joint_names"}, joint_names=names)
        except (OSError, KeyError, ValueError):
            pass  # unreadable: rebuilt below
    regions = build_regions(rest, joints, dense, faces, names, _uv_parts(body))
    arrays = {f.name: getattr(regions, f.name) for f in dataclasses.fields(BodyRegions) if f.name != "joint_names"}
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)
    return regions


def build_regions(rest_vertices: np.ndarray, rest_joints: np.ndarray, dense_weights: np.ndarray, faces: np.ndarray,
                  joint_names: tuple[str, ...], parts: dict[str, np.ndarray] | None = None) -> BodyRegions:
    """The regions from one rest body (V, 3), its joints (24, 3), smpl24 weights (V, 24), faces (F, 3) and
    optional per-vertex part masks {"head", "hands", "feet", "inner": (V,) bool} from a UV part map."""
    v, jt = rest_vertices.astype(np.float64), rest_joints.astype(np.float64)
    index = {name: i for i, name in enumerate(joint_names)}
    limb = limb_regions(dense_weights, joint_names)
    arm_u, leg_u = _limb_coordinates(v, jt, limb, index)
    hip_z = 0.5 * (jt[index["left_hip"], 2] + jt[index["right_hip"], 2])
    torso_s = (v[:, 2] - hip_z) / (jt[index["neck"], 2] - hip_z)
    scalp, nape = _scalp(v, jt, limb, index)
    if parts is None:
        parts = _weight_parts(dense_weights, index, leg_u, arm_u)
    normals = vertex_normals(v, faces)
    head = parts["head"] & ~parts["inner"]
    face = head & (scalp < 0.5) & (normals[:, 1] < FACE_FRONT_NORMAL) & (v[:, 2] > jt[index["neck"], 2])
    skirt_angle, leg_angle, lower = _skirt_angles(v, jt, limb, index)
    from munet.fitting.clothing import free_space

    foot_free = free_space(v, normals, parts["feet"])
    return BodyRegions(limb=limb, arm_u=arm_u, leg_u=leg_u, torso_s=torso_s, face=face, hands=parts["hands"],
                       feet=parts["feet"], inner=parts["inner"], scalp=scalp * ~parts["inner"], nape=nape,
                       lower_body=lower, skirt_angle=skirt_angle, leg_angle=leg_angle, foot_free_m=foot_free, rest_m=v, rest_joints_m=jt,
                       joint_names=tuple(joint_names))


def _uv_parts(body) -> dict[str, np.ndarray] | None:
    """Per-vertex part masks from the model's UV-space part map (None when it has none): a vertex takes the
    parts of the faces around it (a cavity wins over the head, a hand or foot over the body)."""
    part_map = getattr(body, "uv_part_map", None)
    uv_corners = getattr(body, "uv_per_corner", None)
    result = part_map() if callable(part_map) else None
    uv = uv_corners() if callable(uv_corners) else None
    if result is None or uv is None:
        return None
    image, colours = result
    height, width = image.shape[:2]
    centre = uv.mean(1)
    cols = np.clip(np.round(centre[:, 0] * width).astype(np.int64), 0, width - 1)
    rows = np.clip(np.round((1.0 - centre[:, 1]) * height).astype(np.int64), 0, height - 1)
    face_colour = image[rows, cols].astype(np.int64)
    faces = body.faces.numpy()
    num_vertices = int(body.template_vertices.shape[0]) if hasattr(body, "template_vertices") else int(faces.max()) + 1

    def vertices_of(names) -> np.ndarray:
        chosen = np.zeros(len(faces), bool)
        for name in names:
            if name in colours:
                chosen |= np.all(face_colour == np.asarray(colours[name]), axis=-1)
        mask = np.zeros(num_vertices, bool)
        mask[faces[chosen].ravel()] = True
        return mask

    return {"head": vertices_of(("head",)), "hands": vertices_of(("hand.L", "hand.R")),
            "feet": vertices_of(("foot.L", "foot.R")), "inner": vertices_of(_INNER_PARTS)}


def _weight_parts(dense: np.ndarray, index: dict[str, int], leg_u: np.ndarray,
                  arm_u: np.ndarray) -> dict[str, np.ndarray]:
    """Per-vertex part masks from the skinning weights alone (models without a UV part map)."""
    head = dense[:, index["head"]] > 0.5
    hands = (dense[:, index["left_hand"]] + dense[:, index["right_hand"]] > 0.5) | (arm_u > 2.15)
    feet = leg_u > 2.05
    return {"head": head, "hands": hands, "feet": feet, "inner": np.zeros(len(dense), bool)}


def limb_regions(dense_weights: np.ndarray, joint_names: tuple[str, ...]) -> np.ndarray:
    """(V,) int64 limb id (TORSO, HEAD, NECK, ARM_L/R, LEG_L/R, HAND_L/R) of each vertex, from the joint
    that dominates its skinning weights (V, J) over the skeleton's ``joint_names``."""
    table = np.full(len(joint_names), TORSO, np.int64)
    for j, name in enumerate(joint_names):
        side, _, part = name.partition("_")
        if name == "head":
            table[j] = HEAD
        elif name == "neck":
            table[j] = NECK
        elif part == "hand":
            table[j] = HAND_L if side == "left" else HAND_R
        elif part in ARM_CHAIN:
            table[j] = ARM_L if side == "left" else ARM_R
        elif part in LEG_CHAIN:
            table[j] = LEG_L if side == "left" else LEG_R
    return table[dense_weights.argmax(1)]


def _chain_coordinate(points: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """Project points (N, 3) onto the polyline through joints (K, 3): coordinate k + t on segment k
    (negative above the first joint)."""
    best = np.full(len(points), np.inf)
    coord = np.zeros(len(points))
    for k in range(len(joints) - 1):
        a, b = joints[k], joints[k + 1]
        ab = b - a
        t = ((points - a) @ ab) / (ab @ ab)
        t = np.minimum(t, 1.0) if k == 0 else np.clip(t, 0.0, 1.0)
        d = np.linalg.norm(points - (a + np.clip(t, 0.0, 1.0)[:, None] * ab), axis=1)
        better = d < best - 1e-9
        best = np.where(better, d, best)
        coord = np.where(better, k + t, coord)
    return coord


def _limb_coordinates(v: np.ndarray, jt: np.ndarray, limb: np.ndarray,
                      index: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """(V,) positions along the arm (arms and hands) and along the leg (-1 elsewhere)."""
    arm_u, leg_u = np.full(len(v), -1.0), np.full(len(v), -1.0)
    for side, arm_id, hand_id, leg_id in (("left", ARM_L, HAND_L, LEG_L), ("right", ARM_R, HAND_R, LEG_R)):
        members = np.flatnonzero((limb == arm_id) | (limb == hand_id))
        arm_u[members] = _chain_coordinate(v[members], jt[[index[f"{side}_{p}"] for p in ARM_CHAIN]])
        members = np.flatnonzero(limb == leg_id)
        leg_u[members] = _chain_coordinate(v[members], jt[[index[f"{side}_{p}"] for p in LEG_CHAIN]])
    return arm_u, leg_u


def _scalp(v: np.ndarray, jt: np.ndarray, limb: np.ndarray, index: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """(V,) scalp cover above a hairline that drops from the forehead to the nape; (V,) nape weight."""
    head = jt[index["head"]]
    back = np.clip((v[:, 1] - (head[1] - 0.06)) / 0.1, 0.0, 1.0)
    hairline = head[2] + 0.095 - 0.1 * back
    scalp = 1.0 / (1.0 + np.exp(-(v[:, 2] - hairline) / 0.006))
    scalp *= np.isin(limb, (HEAD, NECK))
    nape = (np.clip((v[:, 1] - head[1]) / 0.05, 0.0, 1.0)
            * np.clip((v[:, 2] - (jt[index["spine3"], 2] - 0.05)) / 0.1, 0.0, 1.0))
    nape *= np.isin(limb, (TORSO, NECK)) * (v[:, 2] < head[2] + 0.02)
    return scalp, nape


def _skirt_angles(v: np.ndarray, jt: np.ndarray, limb: np.ndarray,
                  index: dict[str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(V,) skirt angle (NaN off the lower body), (V,) leg angle (NaN off the legs) and (V,) bool lower
    body: the legs by their angle around the thigh/shin axis (for the skirt angle, the inner half folded
    onto the outer half), the lower torso by its angle around the pelvis."""
    angle, leg_angle = np.full(len(v), np.nan), np.full(len(v), np.nan)
    lower = (v[:, 2] < jt[index["spine2"], 2]) & np.isin(limb, (TORSO, LEG_L, LEG_R))
    torso_lower = lower & (limb == TORSO)
    pelvis = jt[index["pelvis"]]
    angle[torso_lower] = np.arctan2(v[torso_lower, 1] - pelvis[1], v[torso_lower, 0] - pelvis[0])
    for side, leg_id, sign in (("left", LEG_L, 1.0), ("right", LEG_R, -1.0)):
        members = np.flatnonzero(lower & (limb == leg_id))
        leg = jt[[index[f"{side}_{p}"] for p in ("hip", "knee", "ankle")]]
        zs = leg[::-1, 2]
        axis_x = np.interp(v[members, 2], zs, leg[::-1, 0])
        axis_y = np.interp(v[members, 2], zs, leg[::-1, 1])
        theta = np.arctan2(v[members, 1] - axis_y, sign * (v[members, 0] - axis_x))  # 0 = outwards
        leg_angle[members] = theta
        folded = np.where(np.abs(theta) <= np.pi / 2, theta, np.sign(theta) * (np.pi - np.abs(theta)))
        folded = np.clip(folded * 1.3, -np.pi / 2, np.pi / 2)
        angle[members] = folded if sign > 0 else np.pi - folded
    return np.where(np.isnan(angle), np.nan, np.angle(np.exp(1j * angle))), leg_angle, lower
