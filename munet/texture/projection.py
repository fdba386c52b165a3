"""Project the photo onto the visible front of a surface: per-corner UVs + a texture image.

The texture is the photo cropped around the person (at most ``MAX_TEXTURE_SIDE`` pixels a side) with a
plain band below it, filled with the person's median colour. Faces the camera sees (front-facing and
winning the z-buffer) get the photo pixels they cover; every other face maps all three corners to the
middle of the plain band, so unseen regions read as one calm colour instead of smeared garbage.

UV convention (``munet.reconstruction.SkinnedSurface``): (0, 0) is the bottom-left of the image, v up.
"""

from __future__ import annotations

import dataclasses
import io

import cv2
import numpy as np

from munet.geometry.raster import rasterize_zbuffer
from munet.reconstruction import Camera, Texture

MAX_TEXTURE_SIDE = 1024
FILL_BAND_PX = 32
CROP_MARGIN = 0.05
JPEG_QUALITY = 92
VISIBILITY_SCALE = 0.5
"""The z-buffer for visibility is rendered at this fraction of the photo's resolution."""


@dataclasses.dataclass(frozen=True)
class ProjectedTexture:
    """texture: the encoded image; uv_per_corner: (F, 3, 2) float32; visible_faces: (F,) bool; fill_rgb."""

    texture: Texture
    uv_per_corner: np.ndarray
    visible_faces: np.ndarray
    fill_rgb: tuple[int, int, int]


def visible_faces(vertices_m: np.ndarray, faces: np.ndarray, camera: Camera, scale: float = VISIBILITY_SCALE) -> np.ndarray:
    """(F,) bool: faces that face the camera and own at least one pixel of the z-buffer, or whose three
    corners pass the depth test (small faces that own no pixel centre)."""
    width, height = camera.image_size
    small_w, small_h = max(1, int(round(width * scale))), max(1, int(round(height * scale)))
    uv, depth = camera.project(vertices_m.astype(np.float64))
    face_ids, zbuf = rasterize_zbuffer(uv * scale, depth, faces, small_h, small_w)
    owns = np.zeros(len(faces), bool)
    owns[np.unique(face_ids[face_ids >= 0])] = True
    cam_vertices = vertices_m @ camera.R_world_to_cam.T + camera.t_world_to_cam_m
    tri = cam_vertices[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    front = (normal * tri.mean(1)).sum(1) < 0  # outward normal points back at the camera centre
    px = np.clip((uv * scale).astype(np.int64), 0, [small_w - 1, small_h - 1])
    vertex_ok = depth <= zbuf[px[:, 1], px[:, 0]] + 0.02  # within 2 cm of the nearest surface there
    corners_ok = vertex_ok[faces].all(1)
    return front & (owns | corners_ok)


def project_texture(rgb: np.ndarray, vertices_m: np.ndarray, faces: np.ndarray, camera: Camera,
                    box_px: tuple[float, float, float, float], person_mask: np.ndarray | None = None) -> ProjectedTexture:
    """Texture a posed surface from the photo it was fitted to.

    rgb: (H, W, 3) uint8 photo; vertices_m: (V, 3) posed surface, world frame; faces: (F, 3); camera: the
    fitted camera; box_px: (x0, y0, x1, y1) person box in photo pixels; person_mask: optional (H, W) bool,
    for the fill colour.
    """
    height, width = rgb.shape[:2]
    visible = visible_faces(vertices_m, faces, camera)
    uv, _ = camera.project(vertices_m.astype(np.float64))
    # crop: the person box plus a margin, grown to cover every visible corner
    corners = uv[faces[visible]].reshape(-1, 2) if visible.any() else np.zeros((0, 2))
    x0, y0, x1, y1 = box_px
    if len(corners):
        x0, y0 = min(x0, corners[:, 0].min()), min(y0, corners[:, 1].min())
        x1, y1 = max(x1, corners[:, 0].max()), max(y1, corners[:, 1].max())
    margin = CROP_MARGIN * max(x1 - x0, y1 - y0)
    cx0, cy0 = int(max(np.floor(x0 - margin), 0)), int(max(np.floor(y0 - margin), 0))
    cx1, cy1 = int(min(np.ceil(x1 + margin), width)), int(min(np.ceil(y1 + margin), height))
    if cx1 <= cx0 or cy1 <= cy0:
        cx0, cy0, cx1, cy1 = 0, 0, width, height
    crop = rgb[cy0:cy1, cx0:cx1]
    scale = min(1.0, MAX_TEXTURE_SIDE / max(crop.shape[:2]))
    if scale < 1.0:
        crop = cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))),
                          interpolation=cv2.INTER_AREA)
    crop_h, crop_w = crop.shape[:2]

    if person_mask is not None and person_mask.any():
        fill = np.median(rgb[person_mask], axis=0)
    else:
        fill = np.median(crop.reshape(-1, 3), axis=0)
    fill_rgb = tuple(int(v) for v in np.clip(fill, 0, 255))
    tex_h = crop_h + FILL_BAND_PX
    image = np.empty((tex_h, crop_w, 3), np.uint8)
    image[:crop_h] = crop
    image[crop_h:] = fill_rgb

    # photo pixel -> texture pixel -> (u, v) with v up
    tex_xy = (uv - np.array([cx0, cy0])) * (np.array([crop_w, crop_h]) / np.array([cx1 - cx0, cy1 - cy0]))
    tex_xy = np.clip(tex_xy, 0.5, [crop_w - 0.5, crop_h - 0.5])
    vertex_uv = np.stack([tex_xy[:, 0] / crop_w, 1.0 - tex_xy[:, 1] / tex_h], 1)
    uv_per_corner = vertex_uv[faces]  # (F, 3, 2)
    fill_uv = np.array([0.5, 0.5 * FILL_BAND_PX / tex_h])  # middle of the band (v up: the band is at the bottom)
    uv_per_corner[~visible] = fill_uv

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    texture = Texture(image_bytes=buffer.getvalue(), mime_type="image/jpeg", width=crop_w, height=tex_h)
    return ProjectedTexture(texture, uv_per_corner.astype(np.float32), visible, fill_rgb)
