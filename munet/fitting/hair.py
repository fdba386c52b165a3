"""Hair as part of the clothed surface: offsets on the head's vertices (the shared topology, skinned to the
head and neck like the rest of the head), from the head's silhouette in the photo.

Evidence: the clothing fit's outline measurements (``munet.fitting.clothing.OffsetField.wanted``) on the
head's hair-capable vertices (the scalp and the sides of the head, not the face) say how far the mask
reaches beyond the bald head: on top, at the sides, and beside the neck (long hair falls there). The
decision (``HairDecision``):

* ``none``: the top of the head shows the skin's colour (``BALD_DE``) and the mask ends near the bald
  head (``BALD_MAX_REACH_M``), or, without a colour, the mask ends at it (``HAIR_MIN_M``): no hair; the
  head's offsets stay within ``BALD_CAP_M``;
* ``short``: hair on the head only, its thickness spread over the scalp from the measured vertices;
* ``long``: as short, and the mask beside the neck stands ``LONG_HAIR_NECK_M`` or more off it, in the hair's
  colour (CIE Lab Delta E to the hair on the head at most ``HAIR_COLOUR_DE``; a collar or a hood beside the
  neck is another colour): hair falls behind the shoulders, so the back of the neck and the upper back (the
  ``nape``) carry a layer as thick as that evidence (capped, ``NAPE_CAP_M``) and the front of the neck stays
  thin;
* ``unseen``: no head outline in the photo (cut off, hidden): the pooled head offsets stay, capped.

Colour is the texture's business (``munet.texture``); this module gives geometry.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from munet.geometry.mesh import smooth_field

HAIR_MIN_M = 0.008
"""Below this much mask beyond the bald head (median on top and at the sides) the head is bald."""
LONG_HAIR_NECK_M = 0.025
"""From this much mask beside the neck (median of its outline measurements), the hair is long."""
HAIR_CAP_M = 0.10
BALD_CAP_M = 0.002
UNSEEN_HAIR_CAP_M = 0.03
NAPE_CAP_M = 0.05
NECK_WITH_LONG_HAIR_M = 0.012
"""The front and sides of the neck under long hair: a thin layer (the hair's volume goes behind)."""
SPREAD_ITERATIONS = 40
HAIR_COLOUR_DE = 25.0
BALD_DE = 18.0
"""The top of the head within this CIE Lab Delta E of the skin (face, or hands seen from behind) is bare."""
BALD_MAX_REACH_M = 0.01
"""...unless the mask stands this far beyond it (a hat or a hood the skin's colour)."""


@dataclasses.dataclass(frozen=True)
class HairDecision:
    """kind: ``"none"``, ``"short"``, ``"long"`` or ``"unseen"``; evidence: the numbers it used (cm and
    vertex counts)."""

    kind: str
    evidence: dict[str, float]


@dataclasses.dataclass(frozen=True)
class HairResult:
    """offsets_m: (V,) the offset field with the head's hair (metres, along the rest normals); caps_m: (V,)
    the caps with long hair's reach over the nape; decision."""

    offsets_m: np.ndarray
    caps_m: np.ndarray
    decision: HairDecision


@dataclasses.dataclass(frozen=True)
class HairPhoto:
    """What the colour checks read: rgb (H, W, 3) uint8 photo, its person mask (H, W) bool, its camera, the
    posed body (V, 3) and whether the person faces away (then the skin reference is the hands, not the face)."""

    rgb: np.ndarray
    mask: np.ndarray
    camera: object
    posed_vertices: np.ndarray
    facing_away: bool = False


def fit_hair(field, regions, operator, photo: HairPhoto | None = None) -> HairResult:
    """The offset field (``munet.fitting.clothing.OffsetField``) with hair on the head: regions: the
    topology's ``BodyRegions``; operator: its ``mean_neighbour_operator``; photo: for the colour checks
    (without it, the mask alone decides)."""
    from munet.fitting.regions import HEAD, NECK

    offsets = np.array(field.offsets_m, np.float64)
    head = (regions.limb == HEAD) | (regions.scalp > 0.5)
    hair_capable = head & ~regions.face & ~regions.inner
    decision = decide_hair(field, regions, hair_capable, photo)
    if decision.kind == "unseen":
        offsets[head] = np.minimum(offsets[head], UNSEEN_HAIR_CAP_M)
        return HairResult(offsets, field.caps_m, decision)
    if decision.kind == "none":
        offsets[head] = np.minimum(offsets[head], BALD_CAP_M)
        return HairResult(offsets, np.where(head, np.minimum(field.caps_m, BALD_CAP_M), field.caps_m), decision)
    hair = _hair_thickness(field, hair_capable, offsets, operator)
    weight = np.clip(regions.scalp + (hair_capable & (regions.scalp <= 0.5)), 0.0, 1.0)
    offsets[head] = np.minimum(hair[head] * weight[head], HAIR_CAP_M)
    if decision.kind == "long":
        neck = (regions.limb == NECK) & (regions.nape < 0.5)
        offsets[neck] = np.minimum(offsets[neck], NECK_WITH_LONG_HAIR_M)
        fall = min(decision.evidence["neck_cm"] / 100.0, NAPE_CAP_M)
        offsets = np.maximum(offsets, regions.nape * fall)
    caps = np.maximum(field.caps_m, np.where(regions.nape > 0, NAPE_CAP_M, 0.0))
    caps = np.where(regions.face | regions.inner, field.caps_m, np.where(head, HAIR_CAP_M, caps))
    return HairResult(np.minimum(offsets, caps), caps, decision)


def decide_hair(field, regions, hair_capable: np.ndarray, photo: HairPhoto | None = None) -> HairDecision:
    """The hair decision from the outline measurements on the head (top: rest normal up; sides: normal
    sideways) and beside the neck, and from the colours: the top of the head against the skin (a bald
    head is skin-coloured), what lies beside the neck against the hair."""
    from munet.fitting.regions import NECK

    wanted, normals = field.wanted, field.rest_normals
    measured = np.isfinite(wanted)
    top = measured & hair_capable & (normals[:, 2] > 0.5)
    sides = measured & hair_capable & (normals[:, 2] <= 0.5)
    neck = measured & (regions.limb == NECK)

    def median_cm(members: np.ndarray) -> float:
        return round(float(np.median(wanted[members])) * 100.0, 2) if members.sum() >= 3 else float("nan")

    evidence = {"top_cm": median_cm(top), "sides_cm": median_cm(sides), "neck_cm": median_cm(neck),
                "top_vertices": int(top.sum()), "side_vertices": int(sides.sum()), "neck_vertices": int(neck.sum())}
    head_cm = np.nanmax([evidence["top_cm"], evidence["sides_cm"], -1.0])
    if head_cm < 0:
        return HairDecision("unseen", evidence)
    scalp_skin = float("nan")
    if photo is not None:
        skin = regions.hands | (regions.face if not photo.facing_away else False)
        crown = hair_capable & (regions.scalp > 0.5) & (normals[:, 2] > 0.6)
        scalp_skin = _distance(_median_lab(photo, photo.posed_vertices[crown]),
                               _median_lab(photo, photo.posed_vertices[skin]))
        evidence["scalp_skin_de"] = scalp_skin
    if scalp_skin <= BALD_DE and head_cm < BALD_MAX_REACH_M * 100.0:
        return HairDecision("none", evidence)
    if not scalp_skin > BALD_DE and head_cm < HAIR_MIN_M * 100.0:  # colour unknown: the mask alone
        return HairDecision("none", evidence)
    if np.isfinite(evidence["neck_cm"]) and evidence["neck_cm"] >= LONG_HAIR_NECK_M * 100.0:
        if photo is not None:
            evidence["neck_hair_de"] = _distance(_halfway_lab(field, photo, top | sides),
                                                 _halfway_lab(field, photo, neck & (wanted >= 0.01)))
            if not evidence["neck_hair_de"] <= HAIR_COLOUR_DE:  # NaN (unmeasured) is not long hair either
                return HairDecision("short", evidence)
        return HairDecision("long", evidence)
    return HairDecision("short", evidence)


def _median_lab(photo: HairPhoto, points: np.ndarray) -> np.ndarray | None:
    """Median CIE Lab colour of the photo at world points (N, 3) inside the person mask (None with fewer
    than 3 such points)."""
    import cv2

    height, width = photo.rgb.shape[:2]
    uv, _ = photo.camera.project(np.asarray(points, np.float64))
    keep = (uv[:, 0] >= 0) & (uv[:, 0] < width) & (uv[:, 1] >= 0) & (uv[:, 1] < height)
    rows, cols = uv[keep, 1].astype(np.int64), uv[keep, 0].astype(np.int64)
    inside = photo.mask[rows, cols]
    if inside.sum() < 3:
        return None
    px = photo.rgb[rows[inside], cols[inside]][None].astype(np.float32) / 255.0
    return np.median(cv2.cvtColor(px, cv2.COLOR_RGB2LAB)[0], axis=0)


def _halfway_lab(field, photo: HairPhoto, members: np.ndarray) -> np.ndarray | None:
    """The median colour halfway into what the mask holds beyond the given outline vertices (V,) bool."""
    index = np.flatnonzero(members)
    return _median_lab(photo, photo.posed_vertices[index] + 0.5 * field.wanted[index, None] * field.direction[index])


def _distance(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """CIE Lab Delta E (NaN when either colour is unknown)."""
    return float("nan") if a is None or b is None else round(float(np.linalg.norm(a - b)), 1)


def _hair_thickness(field, hair_capable: np.ndarray, offsets: np.ndarray, operator) -> np.ndarray:
    """(V,) hair thickness over the head: the measured hair-capable vertices held, the rest of the head
    filled by diffusion from them (starting at their median), then lightly smoothed."""
    measured = np.isfinite(field.wanted) & hair_capable
    start = np.array(offsets, np.float64)
    start[hair_capable] = float(np.median(field.wanted[measured]))
    start[measured] = field.wanted[measured]
    spread = smooth_field(start, operator, SPREAD_ITERATIONS, keep=measured | ~hair_capable)
    return smooth_field(spread, operator, 3)
