"""Loose garments that close round both legs: a skirt, a dress or a long coat.

**Detection** (``detect_garment``), from the photo's evidence, with explicit thresholds (the numbers go
into the report):

* *bridging*: at levels down the legs (leg coordinate u: 0 hip joint, 1 knee, 2 ankle) the segment
  between the two legs' projected axes; where the fitted body's own silhouette leaves a gap there of at
  least ``MIN_GAP_FRACTION`` of the person's height, the share of that gap the person mask fills
  (``BRIDGED_FILL``: bridged). Trousers leave the gap empty; a skirt fills it down to its hem.
* *hem*: the run of bridged levels from the first level with a gap; it ends at the hem (``hem_u``).
* *flare*: how far the mask reaches beyond the body's silhouette at the legs' outer sides (metres).
* the garment is loose when the run holds ``MIN_BRIDGED_LEVELS`` levels and either reaches the knee or
  flares ``MIN_FLARE_M`` over ``MIN_FLARED_LEVELS`` levels (a mini skirt above that reads as shorts);
  then its colour (CIE Lab, ``SAME_COLOUR_DE``): the torso's makes it a ``dress``, else a ``skirt`` (a long
  coat reads as a dress: the same surface; the colour cues cannot tell it from a long-sleeved dress).
  Without bridging: ``shorts`` when the shins are skin-coloured (like the face and hands, by hue:
  ``SKIN_LIGHTNESS_WEIGHT``) and unlike the thighs, else ``trousers``; with the legs out of the photo,
  ``unseen``.

**Geometry** (``munet.fitting.skirt.skirt_positions``): with the shared topology, the lower body's vertices
between the waist and the hem are re-placed in the rest pose on one surface round both legs, a cone-like skirt
about the vertical through the pelvis: each keeps its height (the skirt's parameter t, 0 at the waist, 1 at
the hem) and gets an angle. The lower torso wraps the whole circle; each leg's outer half maps onto its side
of the circle, and its inner half onto the middle plane between the legs (the two legs' inner halves meet
there, overlapping by ``munet.fitting.skirt.MIDDLE_OVERLAP_M``), so a horizontal section at mid-thigh encloses
one region round both legs. The radius at each height and angle is the support of the rest body's
lower body (its convex cross-section) plus clearance plus the measured flare, draped (never narrower than
above) and capped (``munet.fitting.skirt.SKIRT_MAX_FLARE_M``, DESIGN.md §7).

**Skinning** (``munet.fitting.skirt.blended_weights``): the skirt's vertices take weights blended towards half
the pelvis and a quarter of each hip, fully from the crotch down (``munet.fitting.skirt.skirt_blend``), so a
walking or sitting pose swings the skirt with the average of the thighs: nothing tears, the inner walls stay
together, the legs do not pull the cloth into themselves. The clothed surface then carries its own skin
(``ClothingResult.skin_dense``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from munet.fitting.clothing import ClothingResult, clothed_result

LEVELS_U = np.round(np.arange(0.1, 2.0001, 0.05), 3)
MIN_GAP_FRACTION = 0.02
"""A level counts as evidence when the body's silhouette leaves this much of the person's height between
the legs (a smaller gap is closed by any loose trouser leg)."""
BRIDGED_FILL = 0.8
MIN_BRIDGED_LEVELS = 5
MIN_FLARE_M = 0.04
MIN_FLARED_LEVELS = 9
"""A run that ends above the knee is a skirt only when it flares and spans this many levels (wide shorts
bridge the first few levels below the crotch too)."""
MIN_FRAMED_LEVELS = 8
"""With fewer leg levels inside the photo the legs are not seen: the garment is ``unseen``."""
MAX_REACH_M = 0.35
"""How far beyond the legs the flare is looked for."""
SAME_COLOUR_DE = 18.0
SKIN_DE = 22.0
SKIN_LIGHTNESS_WEIGHT = 0.3
"""Skin against skin is compared mostly by hue and chroma: a shin in shadow is far darker than the face."""
SHORTS_DE = 20.0
LOOSE = ("skirt", "dress")


@dataclasses.dataclass(frozen=True)
class GarmentDecision:
    """kind: ``trousers``, ``shorts``, ``skirt``, ``dress`` or ``unseen`` (legs out of the photo); hem_u: the hem's leg coordinate
    (None when not loose); flare_u / flare_m: (L,) levels and the mask's reach beyond the body there
    (metres, NaN where unmeasured); evidence: the numbers the decision used."""

    kind: str
    hem_u: float | None
    flare_u: np.ndarray
    flare_m: np.ndarray
    evidence: dict


@dataclasses.dataclass(frozen=True)
class _Photo:
    """The photo at half resolution: rgb (h, w, 3) uint8; mask and the body's silhouette (h, w) bool;
    scale: half-resolution pixels per photo pixel."""

    rgb: np.ndarray
    mask: np.ndarray
    body: np.ndarray
    scale: float


def _photo(rgb: np.ndarray, mask: np.ndarray, camera, posed_body: np.ndarray, faces: np.ndarray,
           scale: float = 0.5) -> _Photo:
    """The photo at half resolution with the body's silhouette (faces: those to render, e.g. the legs')."""
    import cv2

    from munet.geometry.raster import rasterize_silhouette

    height, width = mask.shape
    h, w = max(1, int(round(height * scale))), max(1, int(round(width * scale)))
    uv, _ = camera.project(posed_body.astype(np.float64))
    body = rasterize_silhouette(uv * scale, faces, h, w)
    small_mask = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    small_rgb = cv2.resize(np.ascontiguousarray(rgb[..., :3]), (w, h), interpolation=cv2.INTER_AREA)
    return _Photo(small_rgb, small_mask, body, scale)


def _polyline(points: np.ndarray, u: np.ndarray) -> np.ndarray:
    """(N, 2) points at coordinates u along a polyline through points (K, 2) (k + t on segment k)."""
    k = np.clip(np.floor(u).astype(np.int64), 0, len(points) - 2)
    t = (u - k)[:, None]
    return points[k] * (1 - t) + points[k + 1] * t


def _inside(photo: _Photo, points: np.ndarray) -> np.ndarray:
    h, w = photo.mask.shape
    return (points[:, 0] >= 0) & (points[:, 0] < w) & (points[:, 1] >= 0) & (points[:, 1] < h)


def _pixels(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    cols = np.clip(points[:, 0].astype(np.int64), 0, w - 1)
    rows = np.clip(points[:, 1].astype(np.int64), 0, h - 1)
    return image[rows, cols]


def _walk_out(image: np.ndarray, start: np.ndarray, direction: np.ndarray, steps: int) -> int:
    """Pixels from ``start`` along ``direction`` (unit, (2,)) until ``image`` is False (at most ``steps``)."""
    points = start[None] + np.arange(steps)[:, None] * direction[None]
    values = _pixels(image, points)
    return int(np.argmin(values)) if not values.all() else steps


def _levels(photo: _Photo, left: np.ndarray, right: np.ndarray, min_gap_px: float, metres_per_px: float):
    """Per level: (evidence, bridged, fill, excess_m) arrays over ``LEVELS_U`` from the legs' projected
    axes left / right (3, 2) (hip, knee, ankle; half-resolution pixels), and how many levels lie in the frame."""
    pl, pr = _polyline(left, LEVELS_U), _polyline(right, LEVELS_U)
    count = len(LEVELS_U)
    evidence, bridged = np.zeros(count, bool), np.zeros(count, bool)
    fill, excess = np.full(count, np.nan), np.full(count, np.nan)
    reach = int(MAX_REACH_M / max(metres_per_px, 1e-6)) + 2
    framed = 0
    for k in range(count):
        a, b = pl[k], pr[k]
        if not _inside(photo, np.stack([a, b])).all():
            continue
        framed += 1
        length = float(np.linalg.norm(b - a))
        if length < 2.0:
            continue
        n = max(int(length), 2)
        points = a + ((np.arange(n) + 0.5) / n)[:, None] * (b - a)
        gap = ~_pixels(photo.body, points)
        if gap.sum() * length / n >= min_gap_px:
            evidence[k] = True
            fill[k] = float(_pixels(photo.mask, points[gap]).mean())
            bridged[k] = fill[k] >= BRIDGED_FILL
        out = (a - b) / length
        sides = [_walk_out(photo.mask, a, out, reach) - _walk_out(photo.body, a, out, reach),
                 _walk_out(photo.mask, b, -out, reach) - _walk_out(photo.body, b, -out, reach)]
        excess[k] = max(float(np.mean(sides)), 0.0) * metres_per_px
    return evidence, bridged, fill, excess, framed


def _run(evidence: np.ndarray, bridged: np.ndarray) -> tuple[int, int, int]:
    """(first evidence level, last bridged level of the run from it, bridged levels in the run); -1s when
    the first level with evidence is not bridged."""
    levels = np.flatnonzero(evidence)
    if levels.size == 0 or not bridged[levels[0]]:
        return (int(levels[0]) if levels.size else -1), -1, 0
    last, count = int(levels[0]), 0
    for k in levels:
        if not bridged[k]:
            break
        last, count = int(k), count + 1
    return int(levels[0]), last, count


def detect_garment(rgb: np.ndarray, mask: np.ndarray, camera, posed_body: np.ndarray, faces: np.ndarray,
                   posed_joints: np.ndarray, joint_names: tuple[str, ...], regions, person_height_px: float,
                   facing_away: bool = False) -> GarmentDecision:
    """What the person wears on the legs, from the photo (rgb (H, W, 3) uint8, mask (H, W) bool), the fitted
    body (posed_body (V, 3), faces, posed_joints (24, 3) world metres) and its camera. person_height_px:
    the person's standing height in photo pixels."""
    legs = regions.lower_body | regions.feet
    photo = _photo(rgb, mask, camera, posed_body, faces[legs[faces].all(1)])
    index = {name: i for i, name in enumerate(joint_names)}
    joints_px, joints_depth = camera.project(posed_joints.astype(np.float64))
    joints_px = joints_px * photo.scale
    left = joints_px[[index["left_hip"], index["left_knee"], index["left_ankle"]]]
    right = joints_px[[index["right_hip"], index["right_knee"], index["right_ankle"]]]
    metres_per_px = float(joints_depth[index["pelvis"]]) / (float(np.mean(camera.focal_px)) * photo.scale)
    min_gap_px = MIN_GAP_FRACTION * person_height_px * photo.scale
    evidence, bridged, fill, excess, framed = _levels(photo, left, right, min_gap_px, metres_per_px)
    first, last, count = _run(evidence, bridged)
    run_flare = float(np.nanmedian(excess[first:last + 1])) if count else float("nan")
    loose = count >= MIN_BRIDGED_LEVELS and (LEVELS_U[last] >= 0.9 or (run_flare >= MIN_FLARE_M
                                                                          and count >= MIN_FLARED_LEVELS))
    colours = _colours(photo, joints_px, index, left, right, bridged, first, last, posed_body, camera, regions,
                       facing_away)
    facts = {"levels": len(LEVELS_U), "levels_in_frame": framed, "levels_with_gap": int(evidence.sum()),
             "bridged_levels": int(bridged.sum()),
             "first_gap_u": None if first < 0 else float(LEVELS_U[first]),
             "bridged_run": count, "run_end_u": None if last < 0 else float(LEVELS_U[last]),
             "run_flare_cm": None if not np.isfinite(run_flare) else round(run_flare * 100, 1),
             "min_gap_px": round(min_gap_px / photo.scale, 1), **colours}
    if loose:
        hem_u = float(min(LEVELS_U[last] + 0.025, 2.0))
        kind = _loose_kind(colours, hem_u)
        return GarmentDecision(kind, round(hem_u, 3), LEVELS_U.copy(), excess, {**facts, "hem_u": round(hem_u, 3)})
    if framed < MIN_FRAMED_LEVELS:  # the legs are out of the photo: nothing to tell
        return GarmentDecision("unseen", None, LEVELS_U.copy(), excess, facts)
    kind = "shorts" if _shorts(colours) else "trousers"
    return GarmentDecision(kind, None, LEVELS_U.copy(), excess, facts)


def _loose_kind(colours: dict, hem_u: float) -> str:
    """``dress`` when the garment has the torso's colour, else ``skirt``. A long coat over a top of its own
    colour reads as a dress (the same surface round both legs): the arms' colours are reported, but a
    long-sleeved dress and a coat look alike to these cues, so ``long_coat`` is not guessed."""
    torso = colours.get("skirt_torso_de")
    return "dress" if torso is not None and torso <= SAME_COLOUR_DE else "skirt"


def _shorts(colours: dict) -> bool:
    shin_skin, thigh_shin = colours.get("shin_skin_de"), colours.get("thigh_shin_de")
    return shin_skin is not None and thigh_shin is not None and shin_skin <= SKIN_DE and thigh_shin >= SHORTS_DE


def _colours(photo: _Photo, joints_px: np.ndarray, index: dict, left: np.ndarray, right: np.ndarray,
             bridged: np.ndarray, first: int, last: int, posed_body: np.ndarray, camera, regions,
             facing_away: bool) -> dict:
    """Colour distances (CIE Lab Delta E) between the garment's parts: the skirt's (the filled gaps),
    the torso's, the arms', the thighs', the shins' and the face's skin."""
    import cv2

    lab = cv2.cvtColor(photo.rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)

    def median(points: np.ndarray, need_body: bool = False) -> np.ndarray | None:
        """Median Lab inside the mask (and the legs' silhouette, with ``need_body``) at points (N, 2)."""
        points = points[_inside(photo, points)]
        keep = _pixels(photo.mask, points) & (_pixels(photo.body, points) if need_body else True)
        return np.median(_pixels(lab, points[keep]), axis=0) if keep.sum() >= 5 else None

    def segment(a: str, b: str, lo: float, hi: float) -> np.ndarray:
        t = np.linspace(lo, hi, 12)[:, None]
        return np.concatenate([joints_px[index[f"{s}_{a}"]] * (1 - t) + joints_px[index[f"{s}_{b}"]] * t
                               for s in ("left", "right")])

    shoulders = 0.5 * (joints_px[index["left_shoulder"]] + joints_px[index["right_shoulder"]])
    t = np.linspace(0.25, 0.75, 16)[:, None]
    parts = {"torso": median(shoulders * (1 - t) + joints_px[index["pelvis"]] * t),
             "upper_arm": median(segment("shoulder", "elbow", 0.3, 0.7)),
             "forearm": median(segment("elbow", "wrist", 0.3, 0.7)),
             "thigh": median(np.concatenate([_polyline(leg, np.linspace(0.3, 0.7, 8)) for leg in (left, right)]), True),
             "shin": median(np.concatenate([_polyline(leg, np.linspace(1.3, 1.7, 8)) for leg in (left, right)]), True)}
    if last >= 0:
        pl, pr = _polyline(left, LEVELS_U), _polyline(right, LEVELS_U)
        ks = [k for k in range(first, last + 1) if bridged[k]]
        mids = np.concatenate([pl[ks] * (1 - s) + pr[ks] * s for s in (0.4, 0.5, 0.6)])
        parts["skirt"] = median(mids)
    skin = regions.hands | (regions.face if not facing_away else False)
    uv, _ = camera.project(posed_body[skin].astype(np.float64))
    parts["skin"] = median(uv * photo.scale)

    def de(a: str, b: str, lightness: float = 1.0):
        pa, pb = parts.get(a), parts.get(b)
        if pa is None or pb is None:
            return None
        return round(float(np.linalg.norm((pa - pb) * np.array([lightness, 1.0, 1.0]))), 1)

    return {"skirt_torso_de": de("skirt", "torso"), "skirt_upper_arm_de": de("skirt", "upper_arm"),
            "skirt_forearm_de": de("skirt", "forearm"), "thigh_shin_de": de("thigh", "shin"),
            "shin_skin_de": de("shin", "skin", SKIN_LIGHTNESS_WEIGHT)}


def dress(body, detected, refined, regions, field, hair, operator) -> ClothingResult:
    """The clothing stage's last step: the clothed surfaces of the offset field with hair
    (``munet.fitting.hair.HairResult``), the garment detected, and for a skirt, a dress or a long coat its
    surface round both legs and the clothed surface's own skin. The records are the pipeline's
    (``munet.pipeline.stages``: ``Detected``, ``Refined``); field: ``munet.fitting.clothing.OffsetField``."""
    from munet.fitting import skirt
    from munet.report import GarmentReport

    posed, rest = refined.posed_vertices_m, refined.rest_vertices_m
    joints = refined.posed.joints_m[0].numpy().astype(np.float64)
    decision = detect_garment(detected.image.rgb, detected.targets.mask, refined.camera, posed, refined.faces, joints,
                              tuple(body.joint_names), regions, float(detected.targets.scale_px),
                              bool(detected.targets.facing_away))
    result = clothed_result(field, posed, rest, hair.offsets_m)
    result.garments = GarmentReport.of(decision.kind, decision.hem_u, decision.evidence, hair.decision.kind,
                                       hair.decision.evidence)
    if decision.kind not in LOOSE:
        return result
    rest_joints = refined.posed.rest_joints_m[0].numpy().astype(np.float64)
    names = tuple(body.joint_names)
    placed, member, frame = skirt.skirt_positions(result.rest_vertices_m.astype(np.float64), rest.astype(np.float64),
                                                  rest_joints, names, regions, decision.hem_u, decision.flare_u,
                                                  decision.flare_m)
    blend = skirt.skirt_blend(rest[:, 2].astype(np.float64), member, frame)
    dense = skirt.blended_weights(body.dense_weights.numpy().astype(np.float64), blend, names)
    rotations = refined.posed.global_rotations[0].numpy().astype(np.float64)
    result.rest_vertices_m = placed.astype(np.float32)
    result.posed_vertices_m = skirt.pose_surface(placed, dense.astype(np.float64), rest_joints, rotations, joints)
    result.offsets_m = np.where(member, np.linalg.norm(placed - rest, axis=1), result.offsets_m).astype(np.float32)
    result.skin_dense, result.skirt_blend = dense, blend.astype(np.float32)
    return result
