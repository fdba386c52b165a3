"""A small batched triangle rasteriser in torch (CPU-fast): coverage masks, a depth buffer, face ids.

Point-sampled at pixel centres, like every hardware rasteriser: pixel ``(i, j)`` (column, row) is
covered when its centre ``(i + 0.5, j + 0.5)`` lies inside (or on the edge of) a triangle. Coordinates
follow ``munet/reconstruction.py``: pixels, x right, y down, (0, 0) the top-left corner of the
top-left pixel. Triangles are filled whatever their winding (no back-face culling unless asked), so
overlapping triangles never cancel (unlike ``cv2.fillPoly``'s even-odd rule, DESIGN.md §7).

How: every triangle enumerates the pixel centres of its bounding box (a few per triangle for meshes of
~1-pixel triangles, which is what a 14k-vertex body is at 256x256) and keeps those inside its three
edge functions. All triangles of all meshes in the batch are processed in one vectorised pass; depth
is resolved with ``scatter_reduce(amin)``. Depth is interpolated linearly in screen space (exact for
the occlusion tests we need at this triangle size).
"""

from __future__ import annotations

import dataclasses

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
    nx = ix1 - ix0 + 1
    ny = iy1 - iy0 + 1
    keep = (nx > 0) & (ny > 0) & (area.abs() > 1e-12)
    if cull_backfaces:
        keep &= area < 0
    kept = torch.nonzero(keep.reshape(-1)).squeeze(1)  # (N,) indices into B*F

    # edge functions w_e(x, y) = A_e x + B_e y + C_e, each >= 0 inside whatever the winding;
    # w_0 is the edge opposite vertex a (weight of a in barycentric terms), etc.
    def take(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(-1)[kept]

    xa, ya, xb, yb, xc, yc, area_k = (take(t) for t in (xa, ya, xb, yb, xc, yc, area))
    sign = torch.sign(area_k)
    coeff = torch.stack(
        [
            (yb - yc) * sign, (xc - xb) * sign, (xb * yc - xc * yb) * sign,
            (yc - ya) * sign, (xa - xc) * sign, (xc * ya - xa * yc) * sign,
            (ya - yb) * sign, (xb - xa) * sign, (xa * yb - xb * ya) * sign,
        ],
        dim=1,
    )  # (N, 9)  fmt: skip
    x_first, y_first = take(ix0), take(iy0)  # float pixel indices
    nx_k, ny_k = take(nx), take(ny)

    # small boxes (at most 2x2 pixel centres, the vast majority): a fixed 2x2 window, by broadcasting
    small = (nx_k <= 2) & (ny_k <= 2)
    s_idx = torch.nonzero(small).squeeze(1)
    offsets = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    c = coeff[s_idx]  # (S, 9)
    cx = x_first[s_idx, None] + (offsets[:, 0] + 0.5)  # (S, 4) pixel-centre coordinates
    cy = y_first[s_idx, None] + (offsets[:, 1] + 0.5)
    w_small = [c[:, 3 * e, None] * cx + c[:, 3 * e + 1, None] * cy + c[:, 3 * e + 2, None] for e in range(3)]
    inside = (w_small[0] >= 0) & (w_small[1] >= 0) & (w_small[2] >= 0)
    inside &= (offsets[:, 0] < nx_k[s_idx, None]) & (offsets[:, 1] < ny_k[s_idx, None])
    s_sel = torch.nonzero(inside.reshape(-1)).squeeze(1)
    s_tri = s_idx[s_sel // 4]
    s_px = cx.reshape(-1)[s_sel]
    s_py = cy.reshape(-1)[s_sel]

    # the rest: one candidate per (triangle, pixel centre in its box)
    l_idx = torch.nonzero(~small).squeeze(1)
    counts = (nx_k[l_idx] * ny_k[l_idx]).long()
    total = int(counts.sum())
    l_tri = torch.repeat_interleave(l_idx, counts)
    local = (torch.arange(total) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)).float()
    nx_l = nx_k[l_tri]
    row = torch.div(local, nx_l, rounding_mode="floor")
    l_px = x_first[l_tri] + (local - row * nx_l) + 0.5
    l_py = y_first[l_tri] + row + 0.5
    c = coeff[l_tri]
    w_large = [c[:, 3 * e] * l_px + c[:, 3 * e + 1] * l_py + c[:, 3 * e + 2] for e in range(3)]
    l_sel = torch.nonzero((w_large[0] >= 0) & (w_large[1] >= 0) & (w_large[2] >= 0)).squeeze(1)

    tri = torch.cat([s_tri, l_tri[l_sel]])  # (M,) index into kept triangles
    px = torch.cat([s_px, l_px[l_sel]]).long()  # centre - 0.5 truncates to the pixel index
    py = torch.cat([s_py, l_py[l_sel]]).long()
    owner = kept[tri]  # index into B*F
    pixel = torch.div(owner, num_faces, rounding_mode="floor") * (height * width) + py * width + px
    mask = torch.zeros(batch * height * width, dtype=torch.bool)
    mask[pixel] = True
    mask = mask.reshape(batch, height, width)
    depth_buffer = None
    face_buffer = None
    if depth is not None:
        w0 = torch.cat([w_small[0].reshape(-1)[s_sel], w_large[0][l_sel]])
        w1 = torch.cat([w_small[1].reshape(-1)[s_sel], w_large[1][l_sel]])
        w2 = torch.cat([w_small[2].reshape(-1)[s_sel], w_large[2][l_sel]])
        tri_depth = depth.float()[:, faces].reshape(-1, 3)[owner]  # (M, 3)
        z = (w0 * tri_depth[:, 0] + w1 * tri_depth[:, 1] + w2 * tri_depth[:, 2]) / (w0 + w1 + w2).clamp(min=1e-12)
        depth_flat = torch.full((batch * height * width,), float("inf"))
        depth_flat.scatter_reduce_(0, pixel, z, reduce="amin")
        depth_buffer = depth_flat.reshape(batch, height, width)
        if want_face_id:
            nearest = z <= depth_flat[pixel]
            face_flat = torch.full((batch * height * width,), -1, dtype=torch.long)
            face_flat[pixel[nearest]] = owner[nearest] % num_faces
            face_buffer = face_flat.reshape(batch, height, width)
    return Raster(mask, depth_buffer, face_buffer)
