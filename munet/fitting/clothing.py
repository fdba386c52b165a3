"""Clothing offsets: the clothed surface = the posed body pushed out along its normals, per vertex.

The offsets make the clothed silhouette match the person mask while staying

* **outside the body**: offsets are >= 0 along the outward normal;
* **smooth**: measured only on the silhouette outline, then spread over the surface by harmonic
  interpolation (repeated neighbour averaging with the measured vertices held) and a final smoothing;
* **within per-region caps** (``REGION_CAPS_M``): hair, skirts and coats may stand far off the body, a
  forearm or a hand may not, so the clothes cannot swallow a barbell or a mask error (DESIGN.md §7).

The clothed surface shares the body's topology, so its skinning weights are the body's, exactly. Its
rest-pose vertices are the posed ones pulled back through each vertex's skinning transform, so posing
the clothed rest surface with the same pose reproduces the fitted clothed surface.
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
FACE_CAP_M = 0.012
"""The front of the face (head vertices whose rest normal points forward) gets no hair."""


@dataclasses.dataclass
class ClothingResult:
    """offsets_m: (V,) float32 >= 0 along the posed normals; posed_vertices_m / rest_vertices_m: (V, 3)
    float32 clothed surface; caps_m: (V,) the per-vertex caps; rounds: outline measurements made."""

    offsets_m: np.ndarray
    posed_vertices_m: np.ndarray
    rest_vertices_m: np.ndarray
    caps_m: np.ndarray
    rounds: int


def region_caps(dense_weights: np.ndarray, joint_names: tuple[str, ...], rest_normals: np.ndarray) -> np.ndarray:
    """(V,) per-vertex offset caps (metres) from (V, 24) smpl24 skinning weights and rest normals (V, 3)."""
    caps = np.array([REGION_CAPS_M[name] for name in joint_names], np.float64)
    per_vertex = dense_weights @ caps
    head = dense_weights[:, joint_names.index("head")]
    face = (head > 0.5) & (rest_normals[:, 1] < -0.5)  # rest pose faces -Y
    return np.where(face, np.minimum(per_vertex, FACE_CAP_M), per_vertex)


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


def fit_clothing(posed_vertices: np.ndarray, rest_vertices: np.ndarray, faces: np.ndarray, camera: Camera,
                 mask: np.ndarray, caps_m: np.ndarray, skin_rotations: np.ndarray, rounds: int = 2,
                 shrink_rounds: int = 2,
                 raster_scale: float = 0.5, operator=None, spread_iterations: int = 60,
                 smooth_iterations: int = 4) -> ClothingResult:
    """Fit per-vertex normal offsets so the clothed silhouette fills the mask.

    posed_vertices, rest_vertices: (V, 3) the body posed and at rest, world frame; faces: (F, 3); camera:
    the fitted camera; mask: (H, W)
    bool person mask; caps_m: (V,) per-vertex caps; skin_rotations: (V, 3, 3) each vertex's blended LBS
    rotation (sum_j w_vj G_j), to pull offsets back to the rest pose; operator: optional cached
    ``mean_neighbour_operator(faces, V)``. rounds: measure-and-spread passes; shrink_rounds: then passes
    that only pull back outline vertices sticking out of the mask (inner surfaces, e.g. between the legs,
    become outline once grown).
    """
    num_vertices = posed_vertices.shape[0]
    operator = operator if operator is not None else mean_neighbour_operator(faces, num_vertices)
    normals = vertex_normals(posed_vertices, faces).astype(np.float64)
    height, width = mask.shape
    small_h, small_w = max(1, int(round(height * raster_scale))), max(1, int(round(width * raster_scale)))
    focal = float(np.mean(camera.focal_px))

    offsets = np.zeros(num_vertices)
    for round_index in range(rounds + shrink_rounds):
        shrinking = round_index >= rounds
        clothed = posed_vertices + offsets[:, None] * normals
        uv, depth = camera.project(clothed)
        in_view = (uv[:, 0] >= 2) & (uv[:, 0] < width - 2) & (uv[:, 1] >= 2) & (uv[:, 1] < height - 2) & (depth > 0)
        sil = rasterize_silhouette(uv * raster_scale, faces, small_h, small_w)
        outline = outline_vertices(uv * raster_scale, sil, max_distance_px=1.5)
        outline = outline[in_view[outline]]  # the mask says nothing beyond the frame
        if outline.size == 0:
            break
        # 2D normal direction of each outline vertex and how many pixels one metre along it moves it
        tip_uv, _ = camera.project(clothed[outline] + 0.01 * normals[outline])
        delta = (tip_uv - uv[outline]) / 0.01  # pixels per metre along the normal
        rate = np.linalg.norm(delta, axis=1)
        direction = delta / np.maximum(rate[:, None], 1e-9)
        rate = np.maximum(rate, 0.5 * focal / np.maximum(depth[outline], 1e-3))  # grazing normals: cap the gain
        px = np.clip(uv[outline], [0, 0], [width - 1, height - 1]).astype(np.int64)
        outside = ~mask[px[:, 1], px[:, 0]]
        room_px = np.maximum((caps_m[outline] - offsets[outline]) * rate, 0.0)
        grow_px = _needed_offsets(uv[outline], direction, mask, room_px)
        # outline points beyond the mask shrink back until they reach it, never inside the body
        shrink_px = _needed_offsets(uv[outline], -direction, ~mask, offsets[outline] * rate)
        measured = np.where(outside, offsets[outline] - shrink_px / rate, offsets[outline] + grow_px / rate)
        if shrinking:  # only pull back what sticks out of the mask, and its close neighbours
            start = offsets.copy()
            start[outline] = np.minimum(np.maximum(measured, 0.0), offsets[outline])
            held = np.zeros(num_vertices, bool)
            held[outline] = True
            offsets = np.minimum(offsets, smooth_field(start, operator, smooth_iterations * 2, keep=held))
            continue
        # what the photo cannot show keeps a thin default layer
        unseen = np.flatnonzero(~in_view)
        held_index = np.concatenate([outline, unseen])
        held_value = np.concatenate([np.maximum(measured, 0.0), np.minimum(UNSEEN_OFFSET_M, caps_m[unseen])])
        held = np.zeros(num_vertices, bool)
        held[held_index] = True
        # start every other vertex from its nearest held vertex on the rest body (parts stand apart in the
        # rest pose), then let diffusion smooth it
        _, nearest = cKDTree(rest_vertices[held_index]).query(rest_vertices)
        start = held_value[nearest]
        offsets = smooth_field(start, operator, spread_iterations, keep=held)
        offsets = smooth_field(offsets, operator, smooth_iterations)
        offsets = np.clip(offsets, 0.0, caps_m)

    posed_clothed = posed_vertices + offsets[:, None] * normals
    rest_offsets = np.linalg.solve(skin_rotations.astype(np.float64), (offsets[:, None] * normals)[..., None])[..., 0]
    return ClothingResult(
        offsets_m=offsets.astype(np.float32),
        posed_vertices_m=posed_clothed.astype(np.float32),
        rest_vertices_m=(rest_vertices + rest_offsets).astype(np.float32),
        caps_m=caps_m.astype(np.float32),
        rounds=rounds + shrink_rounds,
    )
