"""The one triangle rasteriser: batched torch (CPU-fast), with numpy wrappers for single meshes.

Point-sampled at pixel centres, like every hardware rasteriser: pixel ``(row j, column i)`` is covered
when its centre ``(i + 0.5, j + 0.5)`` lies inside (or on the edge of) a triangle. Coordinates follow
``munet.reconstruction``: pixels, x right, y down, (0, 0) the top-left corner of the top-left pixel.
Triangles are filled whatever their winding (no back-face culling unless asked), and each on its own,
so overlapping triangles never cancel (unlike ``cv2.fillPoly``'s even-odd rule, DESIGN.md §7).

How: scanlines, vectorised over every triangle of every mesh in the batch at once. Each triangle
yields one (triangle, pixel row) pair per row of pixel centres its box spans; each pair intersects
the row's centre line with the triangle's edge half-planes, giving an exact run of pixel centres.
Coverage marks each run's ends and sums along the rows, so a silhouette costs triangles plus rows,
not pixels; a per-vertex value (``depth``) is enumerated per covered pixel, interpolated linearly in
screen space, and the smallest kept per pixel with ``scatter_reduce(amin)`` (the z-buffer wrapper
interpolates -1/z, which makes its depth perspective-correct). Each triangle's constants are float32
relative to its first pixel centre, so edges stay exact to ~1e-5 px on large photos too.

Speed (2 CPU cores, one torch thread, Anny's 27k triangles; ``rasterize_silhouette`` /
``rasterize_zbuffer``): ~8 / 12 ms at 250 x 375 px, ~35 / 100 ms at 1000 x 1500 px.
"""

from __future__ import annotations

import contextlib
import dataclasses

import numpy as np
import torch

EDGE_TOLERANCE = 1e-4
"""A pixel centre counts as inside a triangle when every edge function ``E = A x + B y + C`` (twice the
triangle's area times the centre's barycentric weight, pixels squared) is at least ``-EDGE_TOLERANCE``:
edges are included, and the hair-thin cracks a deformed mesh opens between neighbours stay filled."""


@dataclasses.dataclass
class Raster:
    """The output of ``rasterize``.

    mask: (B, H, W) bool, covered pixels.
    depth: (B, H, W) float32 camera depth (same units as the input depth) of the nearest surface,
        +inf where uncovered; None unless asked for.
    face_id: (B, H, W) int64 index of the nearest face, -1 where uncovered; None unless asked for.
    """

    mask: torch.Tensor
    depth: torch.Tensor | None = None
    face_id: torch.Tensor | None = None


@dataclasses.dataclass
class _Spans:
    """Runs of covered pixel centres, one per (triangle, pixel row) pair that covers any.

    line: (S,) int64 the run's raster row among the batch's B * H rows; column: (S,) int64 its first
    pixel column; count: (S,) int64 its length (>= 1, never past the row's end); owner: (S,)
    int64 index into the batch's B * F triangles; shading: (S, 4) float32 the interpolated per-vertex
    value at the first pixel, its change per pixel to the right, and the triangle's lowest and highest
    corner value (None without values).
    """

    line: torch.Tensor
    column: torch.Tensor
    count: torch.Tensor
    owner: torch.Tensor
    shading: torch.Tensor | None = None


def rasterize(
    points_px: torch.Tensor,
    faces: torch.Tensor,
    size: tuple[int, int],
    depth: torch.Tensor | None = None,
    want_face_id: bool = False,
    cull_backfaces: bool = False,
) -> Raster:
    """Rasterise a batch of meshes that share one face list.

    points_px: (B, V, 2) float, vertex positions in pixels (x right, y down).
    faces: (F, 3) int64 vertex indices.
    size: (width, height) of the raster in pixels.
    depth: (B, V) float camera depth per vertex (positive in front of the camera); needed for the depth
        buffer and face ids, ignored otherwise.
    want_face_id: also return the nearest face per pixel (requires ``depth``).
    cull_backfaces: drop triangles wound clockwise on screen (counter-clockwise seen from outside
        becomes clockwise in y-down pixels when the face points away from the camera). Correct for
        closed, consistently wound meshes only.
    """
    if points_px.ndim != 3 or points_px.shape[-1] != 2:
        raise ValueError(f"points_px must be (B, V, 2), got {tuple(points_px.shape)}")
    if faces.ndim != 2 or faces.shape[-1] != 3:
        raise ValueError(f"faces must be (F, 3), got {tuple(faces.shape)}")
    if want_face_id and depth is None:
        raise ValueError("face ids need per-vertex depth")
    width, height = int(size[0]), int(size[1])
    batch = points_px.shape[0]
    spans = _spans(points_px, faces.long(), width, height, depth, cull_backfaces)
    mask = _coverage(spans, batch, height, width)
    if depth is None:
        return Raster(mask)
    nearest, face_id = _nearest(spans, batch, height, width, faces.shape[0], want_face_id)
    return Raster(mask, nearest, face_id)


def _spans(points_px: torch.Tensor, faces: torch.Tensor, width: int, height: int, values: torch.Tensor | None,
           cull_backfaces: bool) -> _Spans:
    """The pixel runs of every triangle of the batch, with ``values`` interpolated when given."""
    num_faces = faces.shape[0]
    points = points_px.detach()
    # corner coordinates as flat (B * F,) arrays, in the input's precision
    xs, ys = points[..., 0].contiguous(), points[..., 1].contiguous()  # (B, V)
    x = [xs.index_select(1, faces[:, k]).reshape(-1) for k in range(3)]
    y = [ys.index_select(1, faces[:, k]).reshape(-1) for k in range(3)]
    # pixel indices whose centres may be inside: ceil(min - 0.5) .. floor(max - 0.5), clipped to the raster
    col0 = torch.ceil(torch.minimum(torch.minimum(x[0], x[1]), x[2]) - 0.5).clamp_(min=0)
    col1 = torch.floor(torch.maximum(torch.maximum(x[0], x[1]), x[2]) - 0.5).clamp_(max=width - 1)
    row0 = torch.ceil(torch.minimum(torch.minimum(y[0], y[1]), y[2]) - 0.5).clamp_(min=0)
    row1 = torch.floor(torch.maximum(torch.maximum(y[0], y[1]), y[2]) - 0.5).clamp_(max=height - 1)
    area = (x[1] - x[0]) * (y[2] - y[0]) - (x[2] - x[0]) * (y[1] - y[0])  # twice the signed area, > 0: clockwise
    keep = (col1 >= col0) & (row1 >= row0) & (area.abs() > 1e-12) & torch.isfinite(area)  # no NaN or inf corners
    if cull_backfaces:
        keep &= area < 0
    kept = torch.nonzero(keep).squeeze(1)  # (N,) indices into B * F
    col0, row0 = col0.index_select(0, kept), row0.index_select(0, kept)
    # corners relative to the box's first pixel centre, where float32 is plenty
    x = torch.stack([c.index_select(0, kept) for c in x], 1).sub_((col0 + 0.5)[:, None]).float()  # (N, 3)
    y = torch.stack([c.index_select(0, kept) for c in y], 1).sub_((row0 + 0.5)[:, None]).float()
    per_corner = None
    if values is not None:
        flat = values.detach().reshape(-1)
        base = torch.div(kept, num_faces, rounding_mode="floor") * values.shape[1]
        face = kept - torch.div(kept, num_faces, rounding_mode="floor") * num_faces
        per_corner = torch.stack([flat.index_select(0, base + faces[:, k].index_select(0, face)) for k in range(3)], 1)
    first = torch.stack([col0, row0], 1).float()
    extent = torch.stack([col1.index_select(0, kept) - col0, row1.index_select(0, kept) - row0], 1).float()
    table = _triangle_table(x, y, area.index_select(0, kept).float(), first, extent,
                            None if per_corner is None else per_corner.float())
    return _row_runs(table, kept, num_faces, height)


def _triangle_table(x: torch.Tensor, y: torch.Tensor, area: torch.Tensor, first: torch.Tensor, extent: torch.Tensor,
                    values: torch.Tensor | None) -> torch.Tensor:
    """(12 or 17, N) float32 per-triangle constants of the scanline walk, one row per constant.

    x, y: (N, 3) corners in pixels relative to the first pixel centre of each triangle's box, so centres
    sit at integer offsets (x', y'); area: (N,) twice the signed area; first: (N, 2) the box's first pixel
    column and row; extent: (N, 2) its last minus first; values: (N, 3) per-corner values or None.
    Rows: first row, row count, first column, last column offset; two left bounds and two right
    bounds on x' along a row, each a line x' = slope * y' + offset (an unused bound has an infinite
    offset); with values, the plane value = P x' + Q y' + S and the corners' lowest and highest value
    (a pixel admitted by the edge tolerance must not extrapolate a sliver's steep plane).
    """
    sign = torch.sign(area)
    planes, bounds = [], []
    for k in range(3):  # edge k is opposite corner k: E = A x + B y + C >= -EDGE_TOLERANCE inside
        i, j = (k + 1) % 3, (k + 2) % 3
        a_e = (y[:, i] - y[:, j]) * sign
        b_e = (x[:, j] - x[:, i]) * sign
        c_e = (x[:, i] * y[:, j] - x[:, j] * y[:, i]) * sign  # C / |area|: corner k's weight at (0, 0)
        planes.append((a_e, b_e, c_e))
        safe = torch.where(a_e == 0, torch.ones_like(a_e), a_e)
        bounds.append((-b_e / safe, -(c_e + EDGE_TOLERANCE) / safe))  # x' where E = -EDGE_TOLERANCE
    columns = [first[:, 1], extent[:, 1] + 1, first[:, 0], extent[:, 0]]
    # A > 0: a left bound x' >= slope y' + offset; A < 0: a right bound (<=); A = 0: horizontal, it only
    # bounds the rows. A triangle has one or two edges on each side.
    for side, unused in ((1.0, -torch.inf), (-1.0, torch.inf)):
        used = [a_e * side > 0 for a_e, _, _ in planes]
        one = _choose([used[0], used[1]], bounds[:2], bounds[2])  # the first used edge
        two = _choose([used[2] & (used[0] | used[1]), used[0] & used[1]], [bounds[2], bounds[1]],
                      (torch.zeros_like(sign), torch.full_like(sign, unused)))  # the second, if any
        columns += [*one, *two]
    if values is not None:
        total = area.abs().clamp(min=1e-12)
        for m in range(3):  # sum over corners of (edge coefficient m) x value / |area|
            columns.append(sum(planes[k][m] * values[:, k] for k in range(3)) / total)
        columns += [values.amin(1), values.amax(1)]
    return torch.stack(columns)


def _choose(conditions: list[torch.Tensor], options: list[tuple], fallback: tuple) -> tuple:
    """Per element, the (slope, offset) of the first option whose condition holds, else ``fallback``."""
    chosen = fallback
    for condition, option in zip(reversed(conditions), reversed(options)):
        chosen = tuple(torch.where(condition, o, c) for o, c in zip(option, chosen))
    return chosen


def _ramps(counts: torch.Tensor) -> torch.Tensor:
    """0, 1, .., c - 1 for each count c in (N,) int64, concatenated."""
    total = int(counts.sum())
    return torch.arange(total) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts, output_size=total)


_SHORT_ROWS = 3
"""Triangles spanning at most this many pixel rows (most of them) are walked by broadcasting over a
fixed set of rows; taller ones get one gathered table row per pixel row."""


def _row_runs(table: torch.Tensor, kept: torch.Tensor, num_faces: int, height: int) -> _Spans:
    """Intersect each triangle's pixel-row centre lines with it (see ``_triangle_table``): the non-empty
    runs of every (triangle, row) pair."""
    row_counts = table[1].long()
    offsets = torch.arange(_SHORT_ROWS)
    runs = _intersect(table[:, :, None], offsets[None, :].float())  # (N, SHORT_ROWS) each
    valid = (offsets[None, :] < row_counts[:, None]) & (row_counts[:, None] <= _SHORT_ROWS) & (runs[1] > 0)
    chosen = torch.nonzero(valid.reshape(-1)).squeeze(1)
    tri = torch.div(chosen, _SHORT_ROWS, rounding_mode="floor")
    parts = [(tri, chosen - tri * _SHORT_ROWS, [r.reshape((-1,) + r.shape[2:]).index_select(0, chosen) for r in runs])]
    tall = torch.nonzero(row_counts > _SHORT_ROWS).squeeze(1)
    if len(tall):
        counts = row_counts.index_select(0, tall)
        tri = torch.repeat_interleave(tall, counts, output_size=int(counts.sum()))
        row = _ramps(counts)
        runs = _intersect(table.index_select(1, tri), row.float())
        live = torch.nonzero(runs[1]).squeeze(1)
        parts.append((tri.index_select(0, live), row.index_select(0, live), [r.index_select(0, live) for r in runs]))
    tri, row = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    first, count = (torch.cat([p[2][k] for p in parts]) for k in range(2))
    owner = kept.index_select(0, tri)
    line = torch.div(owner, num_faces, rounding_mode="floor") * height + table[0].long().index_select(0, tri) + row
    column = table[2].long().index_select(0, tri) + first
    shading = torch.cat([p[2][2] for p in parts]) if table.shape[0] > 12 else None
    return _Spans(line, column, count, owner, shading)


def _intersect(t: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """The run of pixel centres on row offset ``y`` of triangles ``t`` (``_triangle_table`` columns, each
    row broadcast against ``y``): its first column offset (int64), length (int64, 0 when empty) and, with values, the
    shading (value at the first pixel, step per pixel, lowest and highest corner value; float32, (..., 4))."""
    lo = torch.maximum(t[4] * y + t[5], t[6] * y + t[7]).clamp_(min=0.0)
    hi = torch.minimum(torch.minimum(t[8] * y + t[9], t[10] * y + t[11]), t[3])
    first = torch.ceil(lo)
    count = (torch.floor(hi) - first + 1).clamp_(min=0)
    out = [first.long(), count.long()]
    if t.shape[0] > 12:
        value = t[12] * first + t[13] * y + t[14]
        out.append(torch.stack(torch.broadcast_tensors(value, t[12], t[15], t[16]), -1))
    return out


def _coverage(spans: _Spans, batch: int, height: int, width: int) -> torch.Tensor:
    """(B, H, W) bool: +1 where each run starts, -1 just past its end, summed along the rows."""
    start = spans.line * (width + 1) + spans.column  # into (B * H, W + 1): room for the marks past a row's end
    marks = torch.zeros(batch * height * (width + 1), dtype=torch.int32)
    ones = torch.ones(start.shape, dtype=torch.int32)
    marks.index_add_(0, start, ones)
    marks.index_add_(0, start + spans.count, -ones)
    covered = marks.reshape(batch * height, width + 1).cumsum(1, dtype=torch.int32)[:, :width] > 0
    return covered.reshape(batch, height, width)


def _nearest(spans: _Spans, batch: int, height: int, width: int, num_faces: int, want_face_id: bool,
             ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The smallest interpolated value per pixel (B, H, W) float32 (+inf where empty) and, if asked,
    the face holding it (B, H, W) int64 (-1 where empty)."""
    total = int(spans.count.sum())
    which = torch.repeat_interleave(torch.arange(len(spans.count)), spans.count, output_size=total)  # (M,) run
    along = _ramps(spans.count)  # (M,) pixels from the run's start
    pixel = (spans.line * width + spans.column).index_select(0, which) + along
    shading = spans.shading.index_select(0, which)  # (M, 4)
    value = torch.minimum(torch.maximum(shading[:, 0] + shading[:, 1] * along, shading[:, 2]), shading[:, 3])
    nearest = torch.full((batch * height * width,), torch.inf)
    nearest.scatter_reduce_(0, pixel, value, reduce="amin")
    face_id = None
    if want_face_id:
        wins = torch.nonzero(value <= nearest.index_select(0, pixel)).squeeze(1)
        face_id = torch.full((batch * height * width,), -1, dtype=torch.long)
        face_id[pixel.index_select(0, wins)] = spans.owner.index_select(0, which.index_select(0, wins)) % num_faces
        face_id = face_id.reshape(batch, height, width)
    return nearest.reshape(batch, height, width), face_id


# ---- numpy wrappers for one mesh ----------------------------------------------------------------


@contextlib.contextmanager
def _one_torch_thread():
    """One mesh is a few dozen small tensor ops: extra torch threads only spin (badly so on a busy
    machine: ~6x slower with 2 threads on 2 loaded cores), so the wrappers run on one, like the fit
    (``munet.pipeline``'s ``fit_threads``)."""
    previous = torch.get_num_threads()
    if previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _check(vertices_px: np.ndarray, faces: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    vertices_px = np.asarray(vertices_px, dtype=np.float64)
    faces = np.asarray(faces)
    if vertices_px.ndim != 2 or vertices_px.shape[1] != 2:
        raise ValueError(f"vertices_px must be (V, 2) pixels, got {vertices_px.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
        raise ValueError(f"faces must be (F, 3) integer vertex indices, got {faces.shape} {faces.dtype}")
    if height <= 0 or width <= 0:
        raise ValueError(f"height and width must be positive, got {height}x{width}")
    return vertices_px, faces.astype(np.int64)


def rasterize_silhouette(vertices_px: np.ndarray, faces: np.ndarray, height: int, width: int,
                         closed: bool = False) -> np.ndarray:
    """The binary silhouette of a triangle mesh (``rasterize`` on one mesh).

    vertices_px: (V, 2) float, pixel coordinates (x right, y down, corner convention).
    faces: (F, 3) int vertex indices (any winding). closed: the mesh is closed and consistently wound (the
    body models' meshes and the clothed surface built on them): then only the faces of one projected
    orientation are drawn, about half, for the same silhouette. Along any line of sight through a closed
    surface the crossings alternate in orientation (in, out), so each orientation's faces cover every pixel
    the mesh covers.
    Returns (height, width) bool, True where a pixel centre lies in some triangle.
    """
    vertices_px, faces = _check(vertices_px, faces, height, width)
    if closed:
        a, b, c = vertices_px[faces[:, 0]], vertices_px[faces[:, 1]], vertices_px[faces[:, 2]]
        twice_area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
        faces = faces[twice_area > 0]
    with _one_torch_thread():
        spans = _spans(torch.from_numpy(vertices_px)[None], torch.from_numpy(faces), width, height, None, False)
        return _coverage(spans, 1, height, width)[0].numpy()


def rasterize_zbuffer(
    vertices_px: np.ndarray, depth_m: np.ndarray, faces: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-surface rasterisation (a z-buffer), for visibility (``rasterize`` on one mesh).

    vertices_px: (V, 2) float pixels; depth_m: (V,) float camera depth (> 0 in front of the camera);
    faces: (F, 3) int. Faces with a corner at depth <= 0 are skipped. Depth is interpolated
    perspective-correctly (1/z is linear in screen space).
    Returns face_ids (height, width) int32 (-1 where empty) and depth (height, width) float32
    (+inf where empty).
    """
    vertices_px, faces = _check(vertices_px, faces, height, width)
    depth_m = np.asarray(depth_m, dtype=np.float64)
    if depth_m.shape != (vertices_px.shape[0],):
        raise ValueError(f"depth_m must be ({vertices_px.shape[0]},), got {depth_m.shape}")
    face_index = np.flatnonzero((depth_m[faces] > 1e-9).all(1))
    minus_inverse = -1.0 / np.where(depth_m > 1e-9, depth_m, 1.0)  # smallest = nearest, linear on screen
    with _one_torch_thread():
        spans = _spans(torch.from_numpy(vertices_px)[None], torch.from_numpy(faces[face_index]), width, height,
                       torch.from_numpy(minus_inverse)[None], False)
        nearest, face_id = _nearest(spans, 1, height, width, len(face_index), want_face_id=True)
    nearest, face_id = nearest[0].numpy().astype(np.float64), face_id[0].numpy()
    face_ids = np.where(face_id >= 0, face_index[np.maximum(face_id, 0)] if face_index.size else -1, -1)
    with np.errstate(divide="ignore"):
        zbuf = np.where(np.isfinite(nearest), -1.0 / nearest, np.inf)
    return face_ids.astype(np.int32), zbuf.astype(np.float32)
