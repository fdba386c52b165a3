"""Clothing offsets: the clothed surface = the rest body pushed out along its rest normals, per vertex,
then posed by the skin.

The offsets are *measured* in the photo's pose and *expressed and regularised* on the rest surface:

* **One field on the rest surface.** A vertex's clothed rest position is ``rest + d * n_rest`` with
  ``d >= 0`` and ``n_rest`` the body's rest normal, so no Clothed vertex lies inside the Body. Posing it
  by linear blend skinning moves it by ``M n_rest`` per metre of ``d`` (M: the vertex's blended LBS
  rotation), which is the direction the photo measures along; the posed and rest surfaces are one rig.
* **Measured only where the photo shows garment.** Each round renders the clothed surface, finds its
  outline vertices and measures how far each must move along its projected direction to reach the person
  mask's edge (grow inside the mask, shrink where it sticks out). The measurements are then pooled per
  ring of a limb or of the torso (``munet.fitting.regions``: bins along the arm, the leg, the torso's
  height): a ring's looseness is the median of its measured vertices, interpolated along the limb where
  a ring saw nothing. A raised arm's blob or a mask error next to one vertex cannot make a lump. Later
  rounds pool the residuals (measured minus current) the same way and add them, so the smoothed field
  converges on the measurements instead of staying where the smoothing left it. Every round also keeps what
  each outline vertex asks beyond its ring's value, within ``DETAIL_CAP_M``, as a smooth residual field
  (spread over the vertex's neighbourhood, then smoothed): one side of a limb follows the photo (a body
  fitted a little off the mask, a garment looser at the back) without swelling the other side as one
  number per ring would (``_pooled_update``).
* **Regularised per region on the rest mesh**: neighbour averaging (a uniform-Laplacian smoothing) blends
  the rings into each other; caps by region (``REGION_CAPS_M``; DESIGN.md §7: hair and skirts may go far,
  a forearm may not); the face keeps the Body's face (``FACE_CAP_M``), hands ``HAND_CAP_M``, shoes a
  small smooth layer (``FOOT_CAP_M``), the eye and mouth cavities none; then (``finish_offsets``, once the
  hair is in) a cap on the offset's slope over the rest surface (``GRADIENT_CAP``; ``HEAD_GRADIENT_CAP`` at
  the hairline) that cuts any remaining peak into a gentle cone. Where a garment covers the body, it
  bridges the body's small hollows (navel, the fold under the buttocks) instead of following them
  (``_bridge_hollows``).

Hair (``munet.fitting.hair``) and loose garments that close round both legs (``munet.fitting.garments``)
build on this field; the clothing stage (``munet.pipeline.stages.fit_clothes``) runs them in order.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.spatial import cKDTree

from munet.geometry.mesh import mean_neighbour_operator, outline_vertices, smooth_field, vertex_normals
from munet.geometry.raster import rasterize_silhouette
from munet.reconstruction import Camera

# Largest offset (metres) per smpl24 region; a vertex's cap blends these by its skinning weights.
REGION_CAPS_M = {
    "pelvis": 0.16, "left_hip": 0.22, "right_hip": 0.22, "spine1": 0.12, "spine2": 0.10, "spine3": 0.08,
    "left_knee": 0.12, "right_knee": 0.12, "left_ankle": 0.03, "right_ankle": 0.03, "left_foot": 0.02,
    "right_foot": 0.02, "neck": 0.05, "left_collar": 0.06, "right_collar": 0.06, "head": 0.10,
    "left_shoulder": 0.05, "right_shoulder": 0.05, "left_elbow": 0.025, "right_elbow": 0.025,
    "left_wrist": 0.012, "right_wrist": 0.012, "left_hand": 0.008, "right_hand": 0.008,
}  # fmt: skip
CAP_SMOOTHING_ITERATIONS = 15
"""Neighbour-averaging passes over the cap field, so caps change gradually between regions."""
UNSEEN_OFFSET_M = 0.01
"""Offset given to parts outside the photo (nothing says how loose the clothes are there)."""
FACE_CAP_M = 0.002
"""The face keeps the Body's face (issue 12: <= 3 mm at the 95th percentile)."""
HAND_CAP_M = 0.003
"""Hands stay bare (issue 12: <= 5 mm)."""
FOOT_CAP_M = 0.012
"""Shoes: a thin, smooth layer over the feet."""
GRADIENT_CAP = 0.35
"""Largest rise of the offset per metre along the rest surface (a garment has no sharp bumps)."""
HEAD_GRADIENT_CAP = 1.2
"""The same at the head: hair rises from the hairline within about a centimetre or two."""
RING_BINS = {"arm": np.linspace(-0.2, 2.2, 13), "leg": np.linspace(-0.6, 2.2, 15), "torso": np.linspace(-0.4, 1.2, 11)}
"""Bin edges of the rings, in each limb's coordinate (``BodyRegions.arm_u``, ``leg_u``, ``torso_s``)."""
RING_SMOOTHING_ITERATIONS = 12
"""Neighbour-averaging passes that blend the rings of adjacent limbs after pooling."""
DETAIL_CAP_M = 0.015
"""Largest residual (metres, either way) an outline vertex keeps beyond its ring's pooled value per round."""
DETAIL_SPREAD_ITERATIONS = 6
DETAIL_SMOOTHING_ITERATIONS = 2
"""The residual field: passes that spread it from the outline vertices (held) to their neighbourhood, then
free smoothing passes."""
HOLLOW_SMOOTHING_ITERATIONS = 8
"""Smoothing passes of the rest body whose rise over the body fills its hollows under a garment."""


@dataclasses.dataclass
class ClothingResult:
    """The clothed surface.

    offsets_m: (V,) float32 >= 0 along the body's rest normals; posed_vertices_m / rest_vertices_m: (V, 3)
    float32 clothed surface (posed = the rest surface posed by the clothed skin); caps_m: (V,) per-vertex
    caps; rounds: outline measurements made. measured_index / measured_m: the last measurement of each
    outline vertex (its indices and the offset it asked for, metres). skin_dense: (V, J) float32 smpl24
    weights of the clothed surface where they differ from the body's (a skirt), else None; skirt_blend:
    (V,) float32 how far each vertex's weights moved towards the skirt's blend (None without a skirt);
    garments: what was detected (``munet.report.GarmentReport``) or None.
    """

    offsets_m: np.ndarray
    posed_vertices_m: np.ndarray
    rest_vertices_m: np.ndarray
    caps_m: np.ndarray
    rounds: int
    measured_index: np.ndarray | None = None
    measured_m: np.ndarray | None = None
    skin_dense: np.ndarray | None = None
    skirt_blend: np.ndarray | None = None
    garments: object | None = None


def region_caps(dense_weights: np.ndarray, joint_names: tuple[str, ...], rest_normals: np.ndarray,
                regions=None) -> np.ndarray:
    """(V,) per-vertex offset caps (metres) from (V, 24) smpl24 skinning weights and rest normals (V, 3);
    with ``regions`` (``munet.fitting.regions.BodyRegions``) the face, hands, feet and cavities get theirs."""
    caps = np.array([REGION_CAPS_M[name] for name in joint_names], np.float64)
    per_vertex = dense_weights @ caps
    if regions is None:
        head = dense_weights[:, joint_names.index("head")]
        face = (head > 0.5) & (rest_normals[:, 1] < -0.5)  # rest pose faces -Y
        return np.where(face, np.minimum(per_vertex, FACE_CAP_M), per_vertex)
    return part_caps(per_vertex, regions)


def part_caps(caps: np.ndarray, regions) -> np.ndarray:
    """(V,) the caps with the face, hands, feet (no toe into its neighbour: ``BodyRegions.foot_free_m``) and
    the eye/mouth cavities held to theirs."""
    caps = np.where(regions.face, np.minimum(caps, FACE_CAP_M), caps)
    caps = np.where(regions.hands, np.minimum(caps, HAND_CAP_M), caps)
    caps = np.where(regions.feet, np.minimum(caps, np.minimum(FOOT_CAP_M, CONTACT_SHARE * regions.foot_free_m)), caps)
    return np.where(regions.inner, 0.0, caps)


CONTACT_SHARE = 0.45
"""Where two limbs nearly touch at rest (the thighs, an arm and the torso or a thigh), each side's offset is
at most this share of the gap between them, so one limb's clothes never enter the other limb."""


def contact_caps(rest_vertices: np.ndarray, regions) -> np.ndarray:
    """(V,) caps from the gaps between limbs in the rest pose: each leg against the other, each arm (below
    the shoulder) and hand against the torso and the legs, and those against the arms (metres; inf where no
    other limb is near)."""
    from munet.fitting import regions as rg

    caps = np.full(len(rest_vertices), np.inf)
    arm = np.isin(regions.limb, (rg.ARM_L, rg.ARM_R, rg.HAND_L, rg.HAND_R)) & (regions.arm_u > 0.6)
    legs = np.isin(regions.limb, (rg.LEG_L, rg.LEG_R))
    torso = regions.limb == rg.TORSO
    pairs = [(regions.limb == rg.LEG_L, regions.limb == rg.LEG_R), (arm, torso | legs)]
    for a, b in pairs:
        for mine, other in ((a, b), (b, a)):
            distance, _ = cKDTree(rest_vertices[other]).query(rest_vertices[mine], distance_upper_bound=0.1)
            caps[mine] = np.minimum(caps[mine], CONTACT_SHARE * distance)
    return caps


def free_space(rest_vertices: np.ndarray, rest_normals: np.ndarray, members: np.ndarray, reach_m: float = 0.03,
               lateral_m: float = 0.005) -> np.ndarray:
    """(V,) the free space in front of each of ``members`` (V,) bool along its rest normal: the distance to
    the nearest body vertex within ``lateral_m`` of the normal's line, facing back, up to ``reach_m`` ahead
    (between the toes it is a few millimetres); inf elsewhere. Metres."""
    free = np.full(len(rest_vertices), np.inf)
    index = np.flatnonzero(members)
    if index.size == 0:
        return free
    pairs = cKDTree(rest_vertices).query_ball_point(rest_vertices[index], reach_m)
    source = np.repeat(index, [len(p) for p in pairs])
    target = np.concatenate([np.asarray(p, np.int64) for p in pairs])
    rel = rest_vertices[target] - rest_vertices[source]
    ahead = (rel * rest_normals[source]).sum(1)
    lateral = np.linalg.norm(rel - ahead[:, None] * rest_normals[source], axis=1)
    blocked = (ahead > 1e-4) & (lateral < lateral_m) & ((rest_normals[target] * rest_normals[source]).sum(1) < 0)
    np.minimum.at(free, source[blocked], ahead[blocked])
    return free


def _needed_offsets(points_px: np.ndarray, normals_px: np.ndarray, mask: np.ndarray, max_px: np.ndarray) -> np.ndarray:
    """How far (pixels) each outline point may move along its 2D normal before leaving the mask.

    points_px, normals_px (unit): (N, 2); mask: (H, W) bool; max_px: (N,) search limit. 0 for points
    already outside the mask.
    """
    height, width = mask.shape
    steps = np.arange(0, int(np.ceil(max_px.max(initial=0))) + 2, dtype=np.float64)  # (S,)
    samples = points_px[:, None, :] + steps[None, :, None] * normals_px[:, None, :]  # (N, S, 2)
    cols = np.clip(samples[..., 0].astype(np.int64), 0, width - 1)
    rows = np.clip(samples[..., 1].astype(np.int64), 0, height - 1)
    inside = mask[rows, cols]
    in_frame = (samples[..., 0] >= 0) & (samples[..., 0] < width) & (samples[..., 1] >= 0) & (samples[..., 1] < height)
    inside &= in_frame
    outside = ~inside
    first_out = np.where(outside.any(1), outside.argmax(1), steps.size - 1).astype(np.float64)
    return np.minimum(np.maximum(first_out - 0.5, 0.0), max_px)


@dataclasses.dataclass
class _Measurement:
    """One round's outline measurement: outline (N,) vertex indices and the offsets they ask for (N,),
    metres; unseen: (U,) vertices outside the photo's frame."""

    outline: np.ndarray
    wanted: np.ndarray
    unseen: np.ndarray


def _measure(posed: np.ndarray, direction: np.ndarray, offsets: np.ndarray, faces: np.ndarray, camera: Camera,
             mask: np.ndarray, caps_m: np.ndarray, raster_scale: float) -> _Measurement:
    """Render the clothed surface ``posed + offsets * direction`` and measure its outline against the mask."""
    height, width = mask.shape
    small_h, small_w = max(1, int(round(height * raster_scale))), max(1, int(round(width * raster_scale)))
    focal = float(np.mean(camera.focal_px))
    clothed = posed + offsets[:, None] * direction
    uv, depth = camera.project(clothed)
    in_view = (uv[:, 0] >= 2) & (uv[:, 0] < width - 2) & (uv[:, 1] >= 2) & (uv[:, 1] < height - 2) & (depth > 0)
    sil = rasterize_silhouette(uv * raster_scale, faces, small_h, small_w, closed=True)
    outline = outline_vertices(uv * raster_scale, sil, max_distance_px=1.5)
    outline = outline[in_view[outline]]  # the mask says nothing beyond the frame
    unseen = np.flatnonzero(~in_view)
    if outline.size == 0:
        return _Measurement(outline, np.zeros(0), unseen)
    # 2D direction of each outline vertex's move and how many pixels one metre of offset moves it
    tip_uv, _ = camera.project(clothed[outline] + 0.01 * direction[outline])
    delta = (tip_uv - uv[outline]) / 0.01
    rate = np.linalg.norm(delta, axis=1)
    unit = delta / np.maximum(rate[:, None], 1e-9)
    rate = np.maximum(rate, 0.5 * focal / np.maximum(depth[outline], 1e-3))  # grazing directions: cap the gain
    px = np.clip(uv[outline], [0, 0], [width - 1, height - 1]).astype(np.int64)
    outside = ~mask[px[:, 1], px[:, 0]]
    room_px = np.maximum((caps_m[outline] - offsets[outline]) * rate, 0.0)
    grow_px = _needed_offsets(uv[outline], unit, mask, room_px)
    shrink_px = _needed_offsets(uv[outline], -unit, ~mask, offsets[outline] * rate)
    wanted = np.where(outside, offsets[outline] - shrink_px / rate, offsets[outline] + grow_px / rate)
    return _Measurement(outline, np.maximum(wanted, 0.0), unseen)


@dataclasses.dataclass
class OffsetField:
    """The fitted offsets before the clothed surfaces are built: offsets_m (V,) >= 0 along rest_normals
    (V, 3); direction (V, 3): the posed move per metre of offset (M n_rest); wanted (V,): each vertex's
    latest outline measurement (NaN: never on the outline); caps_m (V,); rounds made."""

    offsets_m: np.ndarray
    rest_normals: np.ndarray
    direction: np.ndarray
    wanted: np.ndarray
    caps_m: np.ndarray
    rounds: int


def fit_offsets(posed_vertices: np.ndarray, rest_vertices: np.ndarray, faces: np.ndarray, camera: Camera,
                mask: np.ndarray, caps_m: np.ndarray, skin_rotations: np.ndarray, rounds: int = 3,
                raster_scale: float = 0.5, operator=None, spread_iterations: int = 60, smooth_iterations: int = 4,
                regions=None, initial_m: np.ndarray | None = None, rest_normals: np.ndarray | None = None
                ) -> OffsetField:
    """Fit per-vertex offsets along the rest normals so the posed clothed silhouette fills the mask.

    posed_vertices, rest_vertices: (V, 3) the body posed and at rest, world frame; faces: (F, 3); camera:
    the fitted camera; mask: (H, W) bool person mask; caps_m: (V,) per-vertex caps; skin_rotations:
    (V, 3, 3) each vertex's blended LBS rotation (sum_j w_vj G_j); operator: optional cached
    ``mean_neighbour_operator(faces, V)``; regions: ``munet.fitting.regions.BodyRegions`` of the topology
    (rings, face, hands, feet; without it the measurements spread by harmonic interpolation, no rings);
    initial_m: (V,) starting offsets (the network's), metres; rest_normals: (V, 3) the rest body's vertex
    normals when the caller has them. rounds: measure-and-pool passes; each measures growth and shrinkage
    alike (with regions: ``_pooled_update``).
    """
    num_vertices = posed_vertices.shape[0]
    operator = operator if operator is not None else mean_neighbour_operator(faces, num_vertices)
    if rest_normals is None:
        rest_normals = vertex_normals(rest_vertices, faces)
    rest_normals = np.asarray(rest_normals, np.float64)
    direction = np.einsum("vab,vb->va", skin_rotations.astype(np.float64), rest_normals)
    offsets = np.zeros(num_vertices) if initial_m is None else np.clip(initial_m, 0.0, caps_m)
    wanted = np.full(num_vertices, np.nan)  # the latest measurement of each vertex
    for round_index in range(rounds):
        measured = _measure(posed_vertices, direction, offsets, faces, camera, mask, caps_m, raster_scale)
        if measured.outline.size == 0:
            break
        wanted[measured.outline] = measured.wanted
        if regions is not None:
            field = _pooled_update(measured, offsets, regions, operator, first=round_index == 0)
        else:
            field = _spread(wanted, measured.unseen, rest_vertices, caps_m, operator, spread_iterations)
            field = smooth_field(field, operator, smooth_iterations)
        offsets = np.clip(field, 0.0, caps_m)
    if regions is None:  # with regions, ``finish_offsets`` does this once the hair is in
        offsets = _limit_slope(offsets, rest_vertices, faces, _gradient_caps(None, num_vertices))
    return OffsetField(offsets, rest_normals, direction, wanted, np.asarray(caps_m, np.float64), rounds)


def finish_offsets(field: OffsetField, offsets_m: np.ndarray, caps_m: np.ndarray, regions, rest_vertices: np.ndarray,
                   faces: np.ndarray, operator) -> np.ndarray:
    """(V,) the final offsets: the body's hollows bridged under garments, every peak cut to the slope caps
    (``GRADIENT_CAP``, ``HEAD_GRADIENT_CAP`` round the head), within ``caps_m`` (V,)."""
    bridged = np.maximum(offsets_m, _bridge_hollows(rest_vertices, field.rest_normals, offsets_m, regions, operator))
    limited = _limit_slope(np.minimum(bridged, caps_m), rest_vertices, faces, _gradient_caps(regions, len(offsets_m)))
    return np.clip(limited, 0.0, caps_m)


def clothed_result(field: OffsetField, posed_vertices: np.ndarray, rest_vertices: np.ndarray,
                   offsets_m: np.ndarray | None = None) -> ClothingResult:
    """The clothed surfaces of an offset field (or of ``offsets_m`` (V,) along its normals instead)."""
    offsets = field.offsets_m if offsets_m is None else offsets_m
    held = np.isfinite(field.wanted)
    return ClothingResult(
        offsets_m=offsets.astype(np.float32),
        posed_vertices_m=(posed_vertices + offsets[:, None] * field.direction).astype(np.float32),
        rest_vertices_m=(rest_vertices + offsets[:, None] * field.rest_normals).astype(np.float32),
        caps_m=field.caps_m.astype(np.float32),
        rounds=field.rounds,
        measured_index=np.flatnonzero(held),
        measured_m=field.wanted[held].astype(np.float32),
    )


def fit_clothing(posed_vertices: np.ndarray, rest_vertices: np.ndarray, faces: np.ndarray, camera: Camera,
                 mask: np.ndarray, caps_m: np.ndarray, skin_rotations: np.ndarray, rounds: int = 3,
                 shrink_rounds: int = 0, raster_scale: float = 0.5, operator=None, spread_iterations: int = 60,
                 smooth_iterations: int = 4, regions=None, initial_m: np.ndarray | None = None) -> ClothingResult:
    """``fit_offsets`` (``rounds + shrink_rounds`` rounds) and its clothed surfaces (``clothed_result``)."""
    field = fit_offsets(posed_vertices, rest_vertices, faces, camera, mask, caps_m, skin_rotations,
                        rounds + shrink_rounds, raster_scale, operator, spread_iterations, smooth_iterations,
                        regions, initial_m)
    return clothed_result(field, posed_vertices, rest_vertices)


def _spread(wanted: np.ndarray, unseen: np.ndarray, rest_vertices: np.ndarray, caps_m: np.ndarray, operator,
            iterations: int) -> np.ndarray:
    """Harmonic interpolation of the measured offsets (and a thin layer where the photo shows nothing):
    every other vertex starts from its nearest held vertex on the rest body, then diffusion smooths it."""
    measured = np.flatnonzero(np.isfinite(wanted))
    held_index = np.concatenate([measured, unseen])
    held_value = np.concatenate([wanted[measured], np.minimum(UNSEEN_OFFSET_M, caps_m[unseen])])
    held = np.zeros(len(wanted), bool)
    held[held_index] = True
    _, nearest = cKDTree(rest_vertices[held_index]).query(rest_vertices)
    return smooth_field(held_value[nearest], operator, iterations, keep=held)


def _pooled_update(measured: _Measurement, offsets: np.ndarray, regions, operator, first: bool) -> np.ndarray:
    """(V,) the offsets (metres, before the caps) after one round's measurement of the outline. The first
    round pools the measured offsets per ring (``_ring_field``); later rounds pool the residuals (measured
    minus current offsets) and add them to the current field, so the smoothed field converges on the
    measurements. Each round then adds what each outline vertex still asks beyond its ring (within
    ``DETAIL_CAP_M``), spread over its neighbourhood and smoothed: a smooth residual field that lets one
    side of a limb follow the photo without swelling the other. offsets: (V,) current; operator: the
    topology's ``mean_neighbour_operator``."""
    num_vertices = len(offsets)
    base = np.zeros(num_vertices) if first else offsets
    outline = measured.outline
    residual = np.full(num_vertices, np.nan)
    residual[outline] = measured.wanted - base[outline]
    pooled = _ring_field(residual, measured.unseen, regions, offsets if first else np.zeros(num_vertices),
                         UNSEEN_OFFSET_M if first else 0.0)
    detail = np.zeros(num_vertices)
    detail[outline] = np.clip(residual[outline] - pooled[outline], -DETAIL_CAP_M, DETAIL_CAP_M)
    held = np.zeros(num_vertices, bool)
    held[outline] = True
    detail = smooth_field(smooth_field(detail, operator, DETAIL_SPREAD_ITERATIONS, keep=held), operator,
                          DETAIL_SMOOTHING_ITERATIONS)
    return base + smooth_field(pooled, operator, RING_SMOOTHING_ITERATIONS) + detail


def _ring_field(wanted: np.ndarray, unseen: np.ndarray, regions, current: np.ndarray,
                unseen_value: float = UNSEEN_OFFSET_M) -> np.ndarray:
    """(V,) offsets pooled per ring: each limb's (arms, legs, torso) vertices binned along the limb, a bin's
    value the median of its measured vertices, bins without any interpolated along the limb (a limb with
    none keeps its current median, or ``unseen_value`` when it lies outside the photo). The neck and
    head take their own measured median (hair: ``munet.fitting.hair``); hands and feet theirs too. The same
    pooling serves the later rounds' corrections (wanted: measured minus current; current: zeros;
    unseen_value: 0)."""
    from munet.fitting import regions as rg

    out = np.array(current, np.float64)
    unseen_mask = np.zeros(len(wanted), bool)
    unseen_mask[unseen] = True
    groups = [((rg.ARM_L,), regions.arm_u, "arm"), ((rg.ARM_R,), regions.arm_u, "arm"),
              ((rg.LEG_L,), regions.leg_u, "leg"), ((rg.LEG_R,), regions.leg_u, "leg"),
              ((rg.TORSO,), regions.torso_s, "torso")]
    for limbs, coordinate, kind in groups:
        members = np.isin(regions.limb, limbs) & ~regions.feet & ~regions.hands
        out[members] = _rings(coordinate[members], wanted[members], unseen_mask[members], current[members],
                              RING_BINS[kind], unseen_value)
    for members in (regions.limb == rg.NECK, regions.limb == rg.HEAD, regions.hands, regions.feet):
        values = wanted[members]
        seen = values[np.isfinite(values)]
        if seen.size:
            out[members] = float(np.median(seen))
        elif unseen_mask[members].mean() > 0.5:
            out[members] = unseen_value
    return out


def _rings(coordinate: np.ndarray, wanted: np.ndarray, unseen: np.ndarray, current: np.ndarray,
           edges: np.ndarray, unseen_value: float) -> np.ndarray:
    """One limb's pooled offsets (N,) from its vertices' coordinates along it, measurements (NaN: none),
    unseen flags and current offsets."""
    centres = 0.5 * (edges[1:] + edges[:-1])
    which = np.clip(np.digitize(coordinate, edges) - 1, 0, len(centres) - 1)
    values = np.full(len(centres), np.nan)
    for b in range(len(centres)):
        inside = which == b
        seen = wanted[inside & np.isfinite(wanted)]
        if inside.any() and unseen[inside].mean() > 0.5:  # a ring mostly beyond the frame: its few measured
            values[b] = unseen_value  # vertices sit at the frame's edge, where an arm or the cut mask swells them
        elif seen.size >= 2:
            values[b] = np.median(seen)
    known = np.isfinite(values)
    if not known.any():
        return np.full(len(coordinate), float(np.median(current)) if len(current) else 0.0)
    return np.interp(coordinate, centres[known], values[known])


def _gradient_caps(regions, num_vertices: int) -> np.ndarray:
    """(V,) the largest offset slope allowed at each vertex (the head's hair may rise faster)."""
    if regions is None:
        return np.full(num_vertices, GRADIENT_CAP)
    from munet.fitting.regions import HEAD

    return np.where((regions.limb == HEAD) | (regions.scalp > 0.05) | (regions.nape > 0.05), HEAD_GRADIENT_CAP,
                    GRADIENT_CAP)


@dataclasses.dataclass(frozen=True)
class _EdgeTable:
    """The rest mesh's directed edges grouped by source vertex: sources (S,) unique sources, starts (S,)
    where each group begins in targets (E,), and the sorted (E,) source of each directed edge."""

    sources: np.ndarray
    starts: np.ndarray
    edge_source: np.ndarray
    targets: np.ndarray


_EDGE_CACHE: dict[tuple, _EdgeTable] = {}


def _edge_table(faces: np.ndarray) -> _EdgeTable:
    key = (faces.shape, hash(faces.tobytes()))
    table = _EDGE_CACHE.get(key)
    if table is None:
        f = np.asarray(faces, np.int64)
        pairs = np.unique(np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1), axis=0)
        directed = np.concatenate([pairs, pairs[:, ::-1]])
        directed = directed[np.argsort(directed[:, 0], kind="stable")]
        sources, starts = np.unique(directed[:, 0], return_index=True)
        table = _EDGE_CACHE.setdefault(key, _EdgeTable(sources, starts, directed[:, 0], directed[:, 1]))
    return table


def _limit_slope(offsets: np.ndarray, rest_vertices: np.ndarray, faces: np.ndarray, slope: np.ndarray,
                 passes: int = 30) -> np.ndarray:
    """The largest field below ``offsets`` whose rise along every rest-mesh edge is at most ``slope`` times
    the edge's length: peaks become cones, valleys stay. offsets, slope: (V,)."""
    table = _edge_table(faces)
    src, dst = table.edge_source, table.targets
    limit = 0.5 * (slope[src] + slope[dst]) * np.linalg.norm(rest_vertices[src] - rest_vertices[dst], axis=1)
    out = np.array(offsets, np.float64)
    for _ in range(passes):
        lowest = np.minimum.reduceat(out[dst] + limit, table.starts)
        lowered = lowest < out[table.sources] - 1e-9
        if not lowered.any():
            break
        out[table.sources[lowered]] = lowest[lowered]
    return out


def _bridge_hollows(rest_vertices: np.ndarray, rest_normals: np.ndarray, offsets: np.ndarray, regions,
                    operator) -> np.ndarray:
    """(V,) offsets that fill the body's small hollows (navel, the fold under the buttocks) where a garment
    covers them: the rise of a smoothed rest body over the body along the normal, weighted by how much
    garment covers the vertex (none on bare skin, full from 5 mm of offset)."""
    from munet.fitting.regions import HEAD, NECK

    smoothed = smooth_field(rest_vertices, operator, HOLLOW_SMOOTHING_ITERATIONS)
    rise = np.maximum(((smoothed - rest_vertices) * rest_normals).sum(1), 0.0)
    covered = np.clip(offsets / 0.005, 0.0, 1.0)
    bare = regions.face | regions.hands | regions.feet | regions.inner | np.isin(regions.limb, (HEAD, NECK))
    return np.where(bare, 0.0, offsets + rise * covered)
