"""A small batched triangle rasteriser in torch (CPU-fast): coverage masks, a depth buffer, face ids.

Point-sampled at pixel centres, like every hardware rasteriser: pixel ``(i, j)`` (column, row) is
covered when its centre ``(i + 0.5, j + 0.5)`` lies inside (or on the edge of) a triangle. Coordinates
follow ``munet/reconstruction.py``: pixels, x right, y down, (0, 0) the top-left corner of the
top-left pixel. Triangles are filled whatever their winding (no back-face culling unless asked), so
overlapping triangles never cancel (unlike ``cv2.fillPoly``'s even-odd rule, DESIGN.md §7).

How: scanlines, vectorised over every triangle of every mesh in the batch at once. Each triangle
yields one (triangle, pixel row) pair per row of pixel centres its box spans; each pair intersects
the row's centre line with the triangle's three edge half-planes, giving an exact interval of pixel
centres, which are then enumerated. Cost follows the number of triangles plus covered pixels, not
the boxes' area (slivers are cheap). Depth is interpolated linearly in screen space (fine for the
occlusion tests at this triangle size) and resolved with ``scatter_reduce(amin)``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch




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
    num_faces = faces.shape[0]
    pts = points_px.float()
    xa, ya = pts[:, faces[:, 0], 0], pts[:, faces[:, 0], 1]  # (B, F) each
    xb, yb = pts[:, faces[:, 1], 0], pts[:, faces[:, 1], 1]
    xc, yc = pts[:, faces[:, 2], 0], pts[:, faces[:, 2], 1]
    area = (xb - xa) * (yc - ya) - (xc - xa) * (yb - ya)  # (B, F), >0: clockwise on screen (y down)

    # bounding boxes in pixel indices whose centres may be inside: ceil(min - 0.5) .. floor(max - 0.5)
    ix0 = torch.ceil(torch.minimum(torch.minimum(xa, xb), xc) - 0.5).clamp_(min=0)
    ix1 = torch.floor(torch.maximum(torch.maximum(xa, xb), xc) - 0.5).clamp_(max=width - 1)
    iy0 = torch.ceil(torch.minimum(torch.minimum(ya, yb), yc) - 0.5).clamp_(min=0)
    iy1 = torch.floor(torch.maximum(torch.maximum(ya, yb), yc) - 0.5).clamp_(max=height - 1)
    keep = (ix1 >= ix0) & (iy1 >= iy0) & (area.abs() > 1e-12)
    if cull_backfaces:
        keep &= area < 0
    kept = torch.nonzero(keep.reshape(-1)).squeeze(1)  # (N,) indices into B*F

    # gather the kept triangles' corners (and depths) straight from the vertices
    need_depth = depth is not None
    image_of = torch.div(kept, num_faces, rounding_mode="floor")
    face_of = kept - image_of * num_faces
    flat_points = pts.reshape(-1, 2)
    base = image_of * points_px.shape[1]
    corner_index = [base + faces[:, k].index_select(0, face_of) for k in range(3)]
    (xa, ya), (xb, yb), (xc, yc) = (flat_points.index_select(0, i).unbind(1) for i in corner_index)
    ix0, ix1, iy0, iy1, area = (t.reshape(-1).index_select(0, kept) for t in (ix0, ix1, iy0, iy1, area))

    # per kept triangle: its pixel rows (first, count), the bounds of its pixel columns, and each edge
    # as a bound on x along a row: edge e is the half-plane A_e x + B_e y + C_e >= 0 (oriented inside
    # whatever the winding), i.e. x >= -(B_e y + C_e) / A_e when A_e > 0 (a left bound) and x <= ...
    # when A_e < 0 (a right bound); edges with A_e = 0 are horizontal and already bound the rows.
    # Each bound is written as a line in y: x = slope * y + offset (unused: +-inf offsets).
    sign = torch.sign(area)
    edges = (
        ((yb - yc) * sign, (xc - xb) * sign, (xb * yc - xc * yb) * sign),
        ((yc - ya) * sign, (xa - xc) * sign, (xc * ya - xa * yc) * sign),
        ((ya - yb) * sign, (xb - xa) * sign, (xa * yb - xb * ya) * sign),
    )  # (A, B, C) per edge; edge e is opposite vertex e, so w_e is vertex e's barycentric weight
    columns = [iy0, iy1 - iy0 + 1, ix0 + 0.5, ix1 + 0.5]
    inf = torch.tensor(float("inf"))
    for a_e, b_e, c_e in edges:
        safe = torch.where(a_e == 0, torch.ones_like(a_e), a_e)
        slope, offset = -b_e / safe, -c_e / safe
        left, right = a_e > 0, a_e < 0
        columns += [torch.where(left, slope, 0.0), torch.where(left, offset, -inf),
                    torch.where(right, slope, 0.0), torch.where(right, offset, inf)]  # fmt: skip
    if need_depth:  # screen-space depth plane z = P x + Q y + S from the barycentric weights
        flat_depth = depth.float().reshape(-1)
        zs = [flat_depth.index_select(0, i) for i in corner_index]
        total_w = area.abs().clamp(min=1e-12)
        for j in range(3):
            columns.append(sum(edges[k][j] * zs[k] for k in range(3)) / total_w)
    table = torch.stack(columns, dim=-1)  # (N, 16 or 19)

    # (triangle, pixel row) pairs: rows of small triangles by broadcasting, tall ones expanded
    rows_per = table[:, 1]
    pair_parts = []
    short = torch.nonzero(rows_per <= 3).squeeze(1)
    if len(short):
        offs = torch.arange(3, dtype=torch.float32)
        valid = offs < rows_per.index_select(0, short)[:, None]  # (S, 3)
        sel = torch.nonzero(valid.reshape(-1)).squeeze(1)
        pair_parts.append((short.index_select(0, torch.div(sel, 3, rounding_mode="floor")), offs.repeat(len(short)).index_select(0, sel)))
    tall = torch.nonzero(rows_per > 3).squeeze(1)
    if len(tall):
        counts = rows_per.index_select(0, tall).long()
        tri = torch.repeat_interleave(tall, counts)
        local = torch.arange(int(counts.sum())) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
        pair_parts.append((tri, local.float()))
    pair_tri = torch.cat([p[0] for p in pair_parts])
    rows = table.index_select(0, pair_tri)  # (P, C)
    py = rows[:, 0] + torch.cat([p[1] for p in pair_parts])
    cy = py + 0.5

    # the x-interval of the row's pixel centres inside the triangle
    lo = torch.maximum(rows[:, 2], torch.maximum(torch.maximum(
        rows[:, 4] * cy + rows[:, 5], rows[:, 8] * cy + rows[:, 9]), rows[:, 12] * cy + rows[:, 13]))
    hi = torch.minimum(rows[:, 3], torch.minimum(torch.minimum(
        rows[:, 6] * cy + rows[:, 7], rows[:, 10] * cy + rows[:, 11]), rows[:, 14] * cy + rows[:, 15]))
    first = torch.ceil(lo - 0.5)
    count = (torch.floor(hi - 0.5) - first + 1).clamp(min=0).long()
    live = torch.nonzero(count).squeeze(1)
    count = count.index_select(0, live)
    rep = torch.repeat_interleave(live, count)  # (M,) pair of each covered pixel
    step = (torch.arange(int(count.sum())) - torch.repeat_interleave(torch.cumsum(count, 0) - count, count)).float()
    px = first.index_select(0, rep) + step
    owner = kept.index_select(0, pair_tri.index_select(0, rep))  # (M,) index into B*F
    image = torch.div(owner, num_faces, rounding_mode="floor")
    pixel = image * (height * width) + py.index_select(0, rep).long() * width + px.long()
    mask = torch.zeros(batch * height * width, dtype=torch.bool)
    mask[pixel] = True
    mask = mask.reshape(batch, height, width)
    depth_buffer = None
    face_buffer = None
    if need_depth:
        plane = rows.index_select(0, rep)[:, 16:19]
        zs = plane[:, 0] * (px + 0.5) + plane[:, 1] * cy.index_select(0, rep) + plane[:, 2]
        depth_flat = torch.full((batch * height * width,), float("inf"))
        depth_flat.scatter_reduce_(0, pixel, zs, reduce="amin")
        depth_buffer = depth_flat.reshape(batch, height, width)
        if want_face_id:
            nearest = zs <= depth_flat.index_select(0, pixel)
            face_flat = torch.full((batch * height * width,), -1, dtype=torch.long)
            face_flat[pixel[nearest]] = owner[nearest] % num_faces
            face_buffer = face_flat.reshape(batch, height, width)
    return Raster(mask, depth_buffer, face_buffer)


# ---- numpy (TEMPORARY: becomes thin wrappers over rasterize) ----



_MAX_CANDIDATES = 1 << 21  # candidate pixels tested per chunk (memory ~ 100 MB peak at worst)


def _fragments(vertices_px: np.ndarray, faces: np.ndarray, height: int, width: int, need_barycentrics: bool):
    """Yield (face_ids (N,), rows (N,), cols (N,), barycentrics (N, 3) or None) for covered pixels, in chunks."""
    tri = vertices_px[faces]  # (F, 3, 2) float64
    lo = np.maximum(np.ceil(tri.min(axis=1) - 0.5), 0)  # first pixel whose centre can be inside
    hi = np.minimum(np.floor(tri.max(axis=1) - 0.5), [width - 1, height - 1])
    extent = (hi - lo + 1).astype(np.int64)  # (F, 2) pixels
    # Edge functions E_k(p) = a_k x + b_k y + c_k, positive inside (sign fixed by the winding), written
    # relative to the pixel centre of the box corner so the values stay small.
    x, y = tri[..., 0], tri[..., 1]
    nxt, prv = [1, 2, 0], [2, 0, 1]
    a = y[:, nxt] - y[:, prv]  # E_k is the edge opposite corner k
    b = x[:, prv] - x[:, nxt]
    area = a[:, 0] * (x[:, 0] - x[:, 1]) + b[:, 0] * (y[:, 0] - y[:, 1])
    ok = np.isfinite(area) & (np.abs(area) > 1e-12) & (extent > 0).all(1)
    sign = np.where(area < 0, -1.0, 1.0)[:, None]
    cx, cy = lo[:, 0:1] + 0.5, lo[:, 1:2] + 0.5
    e0 = (a * (cx - x[:, nxt]) + b * (cy - y[:, nxt])) * sign  # (F, 3) at the corner pixel centre
    a, b = a * sign, b * sign
    inv_area = 1.0 / np.where(ok, np.abs(area), 1.0)
    log_w = np.ceil(np.log2(np.maximum(extent[:, 0], 1))).astype(np.int64)
    log_h = np.ceil(np.log2(np.maximum(extent[:, 1], 1))).astype(np.int64)
    for lw in range(int(log_w[ok].max(initial=0)) + 1):
        for lh in range(int(log_h[ok].max(initial=0)) + 1):
            chosen = np.flatnonzero(ok & (log_w == lw) & (log_h == lh))
            if chosen.size == 0:
                continue
            sw, sh = 1 << lw, 1 << lh
            dx, dy = np.meshgrid(np.arange(sw), np.arange(sh), indexing="xy")
            dx, dy = dx.ravel().astype(np.float32), dy.ravel().astype(np.float32)
            per_chunk = max(1, _MAX_CANDIDATES // (sw * sh))
            for start in range(0, chosen.size, per_chunk):
                f = chosen[start : start + per_chunk]
                inside = (dx < extent[f, 0:1]) & (dy < extent[f, 1:2])
                for k in range(3):
                    ek = e0[f, k : k + 1].astype(np.float32) + a[f, k : k + 1].astype(np.float32) * dx
                    ek += b[f, k : k + 1].astype(np.float32) * dy
                    inside &= ek >= -1e-4
                t_idx, c_idx = np.nonzero(inside)
                face = f[t_idx]
                ddx, ddy = dx[c_idx].astype(np.float64), dy[c_idx].astype(np.float64)
                rows = lo[face, 1].astype(np.int64) + ddy.astype(np.int64)
                cols = lo[face, 0].astype(np.int64) + ddx.astype(np.int64)
                bary = None
                if need_barycentrics:
                    bary = (e0[face] + a[face] * ddx[:, None] + b[face] * ddy[:, None]) * inv_area[face, None]
                    bary = np.clip(bary, 0.0, 1.0)
                yield face, rows, cols, bary


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


def rasterize_silhouette(vertices_px: np.ndarray, faces: np.ndarray, height: int, width: int) -> np.ndarray:
    """The binary silhouette of a triangle mesh.

    vertices_px: (V, 2) float, pixel coordinates (x right, y down, corner convention).
    faces: (F, 3) int vertex indices (any winding).
    Returns (height, width) bool, True where a pixel centre lies in some triangle.
    """
    vertices_px, faces = _check(vertices_px, faces, height, width)
    out = np.zeros((height, width), bool)
    for _, rows, cols, _ in _fragments(vertices_px, faces, height, width, need_barycentrics=False):
        out[rows, cols] = True
    return out


def rasterize_zbuffer(
    vertices_px: np.ndarray, depth_m: np.ndarray, faces: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-surface rasterisation (a z-buffer), for visibility.

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
    in_front = (depth_m[faces] > 1e-9).all(1)
    face_index = np.flatnonzero(in_front)
    inv_depth = 1.0 / np.where(depth_m > 1e-9, depth_m, 1.0)
    face_ids = np.full(height * width, -1, np.int32)
    zbuf = np.full(height * width, np.inf)
    for f, rows, cols, bary in _fragments(vertices_px, faces[face_index], height, width, need_barycentrics=True):
        if f.size == 0:
            continue
        face = face_index[f]
        z = 1.0 / np.einsum("nk,nk->n", bary, inv_depth[faces[face]])
        pixel = rows * width + cols
        # keep the nearest fragment per pixel: sort by pixel + depth scaled into [0, 1), take each first
        order = np.argsort(pixel + z / (z.max() * 1.0001 + 1e-12), kind="stable")
        pixel, z, face = pixel[order], z[order], face[order]
        first = np.ones(pixel.size, bool)
        first[1:] = pixel[1:] != pixel[:-1]
        pixel, z, face = pixel[first], z[first], face[first]
        nearer = z < zbuf[pixel]
        zbuf[pixel[nearer]] = z[nearer]
        face_ids[pixel[nearer]] = face[nearer]
    return face_ids.reshape(height, width), zbuf.reshape(height, width).astype(np.float32)
