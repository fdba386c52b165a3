"""Bake the photo into a body model's UV atlas: the seen front from the photo, the unseen rest synthesised.

``bake_texture(photo_rgb, atlas, posed_vertices_m, camera, person_mask, size)`` -> ``BakedTexture``:

1. **Seen** (per vertex, then interpolated to texels): a vertex counts as seen when it passes the
   photo camera's z-buffer (``munet.geometry.raster.rasterize_zbuffer``, min-filtered so the edge of an
   occluder, e.g. a hand in front of the face, also hides what is just beside it), weighted down where its
   normal is grazing to the camera. Each texel samples the photo at its projection, weighted by the person
   mask eroded by ~1 % of the person's height, so no background pixel enters.
2. **Mirrored** (torso, limbs, hands, feet): a texel the photo does not show takes the photo at its
   mirror point (the front point with the same height and left-right position on the rest template,
   ``munet.texture.atlas``, followed into the pose), slightly darkened and blended with the smooth fill,
   so the back of a garment continues its front without reading as a pasted copy.
3. **Filled** per region (pull-push, ``munet.texture.fill``, restricted to the region's islands): what
   neither shows. The head fills its back and top from the seen hair (texels whose colour is far from
   the face's skin) or, on a bald head, from the seen scalp; its front (e.g. a face hidden by a hand) from
   the seen face. A region nothing of which is seen takes a fallback colour (hands: the face's skin).
4. **Padded**: texels outside every island take a pull-push extension of the islands' edges, so
   mip-mapping and bilinear sampling show no seams; then the image is upsampled to ``size``.

The work runs at an internal resolution of at most 1024² (half ``size`` above 2048): the photo rarely
holds more detail than that for a whole person, and the upsampled atlas costs little.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from munet.geometry.mesh import vertex_normals
from munet.geometry.raster import rasterize_zbuffer
from munet.reconstruction import Camera, Texture
from munet.texture.atlas import BODY, EYE, FOOT, HAND, HEAD, INNER, TexelMap, UVAtlas, texel_map
from munet.texture.fill import pull_push

DEFAULT_SIZE = 2048
SIZE_RANGE = (1024, 4096)
LOW_RESOLUTION = 512
"""The per-texel work (visibility, mirror, region fills) runs on a texel map this size (a quarter of the
atlas side above 2048); the photo itself is sampled at the full size."""
JPEG_QUALITY = 92
ERODE_FRACTION = 0.01
"""The person mask is eroded by this fraction of the person's height in the photo (at least 2 px)."""
ZBUFFER_SIDE_PX = 256
"""The visibility z-buffer is rendered with the person about this many pixels tall (at most the photo's
resolution)."""
OCCLUSION_TOLERANCE_M = 0.02
GRAZING_COS = (0.12, 0.45)
"""Seen weight ramps from 0 to 1 as the cosine between the normal and the view ray goes over this range."""
BACK_SHADE = 0.9
MIRROR_MIX = 0.8
"""A mirrored texel is this much the (darkened) mirrored photo and the rest the region's smooth fill."""
HAIR_CHROMA, HAIR_DARKER, HAIR_BRIGHTER = 0.035, 0.5, 1.6
"""A seen head texel counts as hair (or headwear) when its chromaticity (r, g over r + g + b) is this far
from the face's skin, or it is this many times darker or brighter than the skin."""
HAIR_RING = 0.35
"""The hair round the head is looked for this fraction of the head's size beside and above it."""
HAIR_MIN_TEXELS = 150
"""Seen scalp texels unlike the skin needed before the head's back continues them instead of the hair
round the head."""
FALLBACK_SKIN = (196, 152, 128)
INNER_COLOUR = (92, 42, 42)
EYE_COLOUR = (226, 222, 214)


@dataclasses.dataclass(frozen=True)
class BakedTexture:
    """texture: the JPEG atlas; uv_per_corner: (F, 3, 2) float32, the atlas layout, v up; image: (size,
    size, 3) uint8 RGB, row 0 = v 1; seen_fraction / mirrored_fraction: shares of the covered texels
    taken mainly from the photo / from their mirror point."""

    texture: Texture
    uv_per_corner: np.ndarray
    image: np.ndarray
    seen_fraction: float
    mirrored_fraction: float


def bake_texture(photo_rgb: np.ndarray, atlas: UVAtlas, posed_vertices_m: np.ndarray, camera: Camera,
                 person_mask: np.ndarray | None, size: int = DEFAULT_SIZE) -> BakedTexture:
    """Bake a texture atlas for a posed surface from the photo it was fitted to.

    photo_rgb: (H, W, 3) uint8; atlas: ``munet.texture.atlas.uv_atlas(body)``; posed_vertices_m: (V, 3)
    float32, metres, world frame, the surface on ``atlas.faces`` (clothed or body); camera: the fitted
    camera; person_mask: (H, W) bool or None (then the surface's own silhouette); size: atlas side in
    pixels, in ``SIZE_RANGE``.
    """
    if not SIZE_RANGE[0] <= int(size) <= SIZE_RANGE[1]:
        raise ValueError(f"texture size must be in [{SIZE_RANGE[0]}, {SIZE_RANGE[1]}], got {size}")
    size = int(size)
    texels = texel_map(atlas, max(LOW_RESOLUTION, size // 4))
    views = vertex_views(np.asarray(posed_vertices_m, np.float64), atlas.faces, camera)
    photo = _photo_with_mask(photo_rgb, person_mask, views)
    layers = _texel_layers(texels, views, photo)
    seen_a = np.clip(layers.seen_w / 0.5, 0.0, 1.0)[:, None]
    mirror_a = np.clip(layers.mirror_w / 0.5, 0.0, 1.0)[:, None] * (1.0 - seen_a)
    fill = _region_fills(texels, layers, lambda: _hair_colour(photo, views, atlas))
    back = fill + mirror_a * MIRROR_MIX * (BACK_SHADE * layers.mirror_rgb - fill)
    image = _assemble(np.ascontiguousarray(photo_rgb, np.uint8), texels, layers, back, size)
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding of the texture atlas failed")
    texture = Texture(image_bytes=encoded.tobytes(), mime_type="image/jpeg", width=size, height=size)
    return BakedTexture(texture, atlas.uv_per_corner, image, float((seen_a > 0.5).mean()),
                        float((mirror_a > 0.5).mean()))


@dataclasses.dataclass(frozen=True)
class TexelLayers:
    """Per covered texel of a ``TexelMap`` (T texels): seen_xy (T, 2) float32 photo pixels; seen_rgb,
    mirror_rgb (T, 3) float32 the photo there and at the mirror point; seen_w, mirror_w (T,) float32 in
    [0, 1] how much to trust them (visibility x grazing x eroded mask)."""

    seen_xy: np.ndarray
    seen_rgb: np.ndarray
    seen_w: np.ndarray
    mirror_rgb: np.ndarray
    mirror_w: np.ndarray


def _texel_layers(texels: TexelMap, views: "VertexViews", photo: np.ndarray) -> TexelLayers:
    per_vertex = np.concatenate([views.xy, views.weight[:, None]], 1)  # (V, 3)
    seen = np.einsum("tk,tkc->tc", texels.bary, per_vertex[texels.vertex])
    mirror = np.einsum("tk,tkc->tc", texels.mirror_bary, per_vertex[texels.mirror_vertex])
    seen_rgba = sample_points(photo, seen[:, :2])
    mirror_rgba = sample_points(photo, mirror[:, :2])
    mirror_ok = np.isin(texels.region, (BODY, HAND, FOOT))
    return TexelLayers(
        seen_xy=seen[:, :2], seen_rgb=seen_rgba[:, :3], seen_w=seen[:, 2] * seen_rgba[:, 3] / 255.0,
        mirror_rgb=mirror_rgba[:, :3],
        mirror_w=mirror[:, 2] * mirror_rgba[:, 3] / 255.0 * mirror_ok)


def _assemble(photo: np.ndarray, texels: TexelMap, layers: TexelLayers, back: np.ndarray, size: int) -> np.ndarray:
    """(size, size, 3) uint8 RGB atlas. The photo is sampled texel by texel at full size through the
    upsampled low-resolution map of photo positions (full detail), over the upsampled synthesised colour,
    with the upsampled seen weight (visibility x grazing x eroded mask; a low-resolution texel is about a
    photo pixel). Outside the islands, a pull-push extension of their edges (the positions, hence the
    photo, and the synthesised colour), so bilinear and mip-mapped sampling shows no seams."""
    low = texels.resolution
    seen_a = np.clip(layers.seen_w / 0.5, 0.0, 1.0)
    final = seen_a[:, None] * layers.seen_rgb + (1.0 - seen_a[:, None]) * back
    channels = np.zeros((low * low, 5), np.float32)
    channels[texels.texel] = np.concatenate([layers.seen_xy - 0.5, final], 1)  # OpenCV: pixel centres at integers
    inside = np.zeros(low * low, np.float32)
    inside[texels.texel] = 1.0
    padded = pull_push(channels.reshape(low, low, 5), inside.reshape(low, low), skip_levels=1).reshape(-1, 5)
    padded[texels.texel] = channels[texels.texel]  # the islands keep their own values, unblurred
    behind = padded[:, 2:]
    behind[texels.texel] = back  # inside the islands: what shows where the photo does not
    behind = np.clip(behind.reshape(low, low, 3) + 0.5, 0, 255).astype(np.uint8)
    weight = np.zeros(low * low, np.float32)
    weight[texels.texel] = seen_a
    grow = (size, size)
    xy = cv2.resize(np.ascontiguousarray(padded[:, :2].reshape(low, low, 2)), grow, interpolation=cv2.INTER_LINEAR)
    seen_w = cv2.resize(weight.reshape(low, low), grow, interpolation=cv2.INTER_LINEAR)
    rgb = cv2.remap(photo, xy, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    behind = cv2.resize(behind, grow, interpolation=cv2.INTER_LINEAR)
    return cv2.blendLinear(rgb, behind, seen_w, 1.0 - seen_w)


@dataclasses.dataclass(frozen=True)
class VertexViews:
    """How the photo camera sees each vertex. xy: (V, 2) float32 photo pixels; weight: (V,) float32 in
    [0, 1], 0 where hidden (z-buffer) or behind the camera, ramping up from grazing; person_height_px: the
    height of the part of the surface inside the photo; silhouette: (h, w) bool the surface's silhouette on the
    z-buffer's grid,
    ``scale`` times the photo's size."""

    xy: np.ndarray
    weight: np.ndarray
    person_height_px: float
    silhouette: np.ndarray
    scale: float


def vertex_views(posed: np.ndarray, faces: np.ndarray, camera: Camera) -> VertexViews:
    """Per-vertex photo position and seen weight (z-buffer visibility x grazing) of a posed surface."""
    xy, depth = camera.project(posed)
    width, height = camera.image_size
    in_front = depth > 1e-3
    rows = np.clip(xy[in_front, 1], 0, height) if in_front.any() else np.array([0.0, height])
    extent = max(rows.max() - rows.min(), 1.0)  # the part inside the photo (a portrait shows half a body)
    normals = vertex_normals(posed, faces).astype(np.float64)
    centre = -camera.R_world_to_cam.T @ camera.t_world_to_cam_m
    ray = centre - posed
    cos = (normals * ray).sum(1) / np.maximum(np.linalg.norm(ray, axis=1), 1e-9)
    # only faces turned towards the camera can be the nearest surface of a closed mesh: half the work
    tri = posed[faces]
    facing = (np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]) * (centre - tri[:, 0])).sum(1) > 0
    scale = min(1.0, ZBUFFER_SIDE_PX / max(extent, 1.0))
    small_w, small_h = max(1, int(round(width * scale))), max(1, int(round(height * scale)))
    _, zbuf = rasterize_zbuffer(xy * scale, depth, faces[facing], small_h, small_w)
    zbuf = cv2.erode(zbuf, np.ones((3, 3), np.uint8))  # an occluder's edge hides what lies just beside it
    px = np.clip((xy * scale).astype(np.int64), 0, [small_w - 1, small_h - 1])
    visible = in_front & (depth <= zbuf[px[:, 1], px[:, 0]] + OCCLUSION_TOLERANCE_M)
    grazing = np.clip((cos - GRAZING_COS[0]) / (GRAZING_COS[1] - GRAZING_COS[0]), 0.0, 1.0)
    return VertexViews(xy.astype(np.float32), (visible * grazing).astype(np.float32), float(extent),
                       np.isfinite(zbuf), scale)


def _photo_with_mask(photo_rgb: np.ndarray, person_mask: np.ndarray | None, views: VertexViews) -> np.ndarray:
    """(H, W, 4) uint8: the photo with the eroded person mask (0 or 255) as a 4th channel."""
    height, width = photo_rgb.shape[:2]
    if person_mask is None:
        mask = np.full((height, width), 255, np.uint8)
    else:
        mask = np.asarray(person_mask, bool).astype(np.uint8) * 255
        radius = max(2, int(round(ERODE_FRACTION * views.person_height_px)))
        mask = cv2.erode(mask, np.ones((2 * radius + 1, 2 * radius + 1), np.uint8))
    return cv2.merge([np.ascontiguousarray(photo_rgb, np.uint8), mask])


def sample_points(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Bilinear samples (N, C) float32 of an (H, W, C) uint8 image at (N, 2) pixel positions (corner
    convention: (0, 0) is the top-left corner of the top-left pixel); 0 outside the image."""
    n = len(xy)
    cols = 1024
    rows = max(1, -(-n // cols))
    grid = np.zeros((rows * cols, 2), np.float32)
    grid[:n] = xy - 0.5  # OpenCV samples pixel centres at integer positions
    grid = grid.reshape(rows, cols, 2)
    out = cv2.remap(image, grid[..., 0], grid[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out.reshape(rows * cols, -1)[:n].astype(np.float32)


def _group_fill(texels: TexelMap, select: np.ndarray, colour: np.ndarray, weight: np.ndarray,
                fallback: np.ndarray) -> np.ndarray:
    """(n, 3) pull-push fill at the ``select``ed texels from their own known ``colour`` / ``weight`` only
    (the other islands do not bleed in); ``fallback`` where they know (almost) nothing."""
    index = np.flatnonzero(select)
    if index.size == 0:
        return np.zeros((0, 3), np.float32)
    w = weight[index]
    if w.sum() < 4.0:
        return np.broadcast_to(np.asarray(fallback, np.float32), (index.size, 3)).copy()
    flat = texels.texel[index]
    rows, cols = flat // texels.resolution, flat % texels.resolution
    r0, c0 = rows.min(), cols.min()
    shape = (rows.max() - r0 + 1, cols.max() - c0 + 1)
    crop = np.zeros((*shape, 3), np.float32)
    crop_w = np.zeros(shape, np.float32)
    crop[rows - r0, cols - c0] = colour[index]
    crop_w[rows - r0, cols - c0] = w
    return pull_push(crop, crop_w, skip_levels=1)[rows - r0, cols - c0]


def _region_fills(texels: TexelMap, layers: TexelLayers, hair_round_head) -> np.ndarray:
    """(T, 3) float32 smooth per-region fill (see the module docstring, step 3), from the seen photo and,
    where that is missing, the darkened mirror."""
    seen_rgb, seen_w, mirror_w = layers.seen_rgb, layers.seen_w, layers.mirror_w
    known_w = seen_w + (1.0 - seen_w) * mirror_w
    known = (seen_rgb * seen_w[:, None] + BACK_SHADE * layers.mirror_rgb * ((1.0 - seen_w) * mirror_w)[:, None]) \
        / np.maximum(known_w, 1e-6)[:, None]
    region = texels.region
    fill = np.zeros_like(known)
    seen = seen_w > 0.5
    skin = _skin_colour(texels, seen_rgb, seen)
    person = np.median(seen_rgb[seen], 0) if seen.any() else skin
    low = seen & (region == BODY) & (texels.template_m[:, 2] < 0.25)
    shoes_fallback = np.median(seen_rgb[low], 0) if low.sum() > 20 else person
    sole = texels.template_normal[:, 2] < -0.6
    for select, fallback in ((region == BODY, person), (region == HAND, skin), (region == EYE, EYE_COLOUR),
                             (region == INNER, INNER_COLOUR), ((region == FOOT) & sole, shoes_fallback),
                             ((region == FOOT) & ~sole, shoes_fallback)):  # soles and uppers apart
        fill[select] = _group_fill(texels, select, known, known_w, fallback)
    fill[region == HEAD] = _head_fill(texels, seen_rgb, seen_w, skin, hair_round_head)
    return fill


def _skin_colour(texels: TexelMap, seen_rgb: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """(3,) the person's skin: the median of the seen face (cheeks, nose, forehead), else of the seen
    hands, else ``FALLBACK_SKIN``."""
    region = texels.region
    for select in ((region == HEAD) & (texels.template_normal[:, 1] < -0.75), region == HAND):
        select = select & seen
        if select.sum() > 20:
            return np.median(seen_rgb[select], 0)
    return np.asarray(FALLBACK_SKIN, np.float32)


def _unlike_skin(rgb: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """(N,) bool: colours that are not the skin in light or shadow: another chromaticity (grey, blond or
    coloured hair, headwear), or far darker or brighter (dark hair)."""
    total = rgb.sum(1) + 1.0
    skin_total = float(skin.sum()) + 1.0
    chroma = np.linalg.norm(rgb[:, :2] / total[:, None] - skin[None, :2] / skin_total, axis=1)
    ratio = total / skin_total
    return (chroma > HAIR_CHROMA) | (ratio < HAIR_DARKER) | (ratio > HAIR_BRIGHTER)


def _hair_colour(photo: np.ndarray, views: VertexViews, atlas: UVAtlas) -> np.ndarray | None:
    """(3,) median colour of the person-mask pixels round the head (beside and above it) that the surface
    does not cover: the hair or headwear the body model lacks; None when there are too few (a bald head,
    or hair lying on the scalp)."""
    head = np.unique(atlas.faces[atlas.face_region == HEAD])
    if head.size == 0:
        return None
    small_h, small_w = views.silhouette.shape
    points = views.xy[head] * views.scale
    (x0, y0), (x1, y1) = points.min(0), points.max(0)
    grow_x, grow_y = HAIR_RING * (x1 - x0), HAIR_RING * (y1 - y0)
    c0, c1 = int(max(0, x0 - grow_x)), int(min(small_w, x1 + grow_x + 1))
    r0, r1 = int(max(0, y0 - grow_y)), int(min(small_h, y1 + 1))
    if c1 <= c0 or r1 <= r0:
        return None
    rows = slice(int(r0 / views.scale), int(np.ceil(r1 / views.scale)))
    crop = photo[rows, int(c0 / views.scale) : int(np.ceil(c1 / views.scale))]
    small = cv2.resize(crop, (c1 - c0, r1 - r0), interpolation=cv2.INTER_AREA)
    ring = (small[..., 3] > 200) & ~views.silhouette[r0:r1, c0:c1]
    if ring.sum() < max(8, 0.05 * (x1 - x0) * (y1 - y0)):
        return None
    return np.median(small[..., :3][ring], 0).astype(np.float32)


def _head_fill(texels: TexelMap, seen_rgb: np.ndarray, seen_w: np.ndarray, skin: np.ndarray,
               hair_round_head) -> np.ndarray:
    """(n_head, 3): the head's front fills from the seen skin of the head; its top, sides and back from the
    hair seen on the scalp (above the brow, the sides and back: colours unlike the skin) where there is enough,
    else the hair round the head
    (``hair_round_head()``, see ``_hair_colour``), shaded darker towards the nape, else (a bald head) from
    the seen scalp."""
    head = texels.region == HEAD
    normal = texels.template_normal[head]
    rgb, weight = seen_rgb[head], seen_w[head]
    seen = weight > 0.1
    not_skin = _unlike_skin(rgb, skin)
    eyes = texels.template_m[texels.region == EYE, 2]
    brow = eyes.mean() + 0.02 if eyes.size else np.inf
    scalp = seen & ((normal[:, 1] > -0.2) | (texels.template_m[head, 2] > brow))  # back, sides, above the brow
    on_scalp = scalp & not_skin
    front = _group_fill(texels, head, seen_rgb, _scatter(head, np.where(seen & ~not_skin, weight, 0.0)), skin)
    hair_colour = None if on_scalp.sum() >= HAIR_MIN_TEXELS else hair_round_head()
    if hair_colour is not None:
        behind = hair_colour[None] * (0.85 + 0.15 * normal[:, 2:3])
    else:
        sources = on_scalp if on_scalp.sum() >= HAIR_MIN_TEXELS else scalp
        colour = np.median(rgb[sources], 0) if sources.any() else skin
        behind = _group_fill(texels, head, seen_rgb, _scatter(head, np.where(sources, weight, 0.0)), colour)
    towards_back = np.clip((normal[:, 1:2] + 0.6) / 0.5, 0.0, 1.0)
    return front + towards_back * (behind - front)


def _scatter(select: np.ndarray, values: np.ndarray) -> np.ndarray:
    """A full-length array: ``values`` at the ``select``ed places, 0 elsewhere."""
    out = np.zeros(select.shape, np.asarray(values).dtype)
    out[select] = values
    return out
