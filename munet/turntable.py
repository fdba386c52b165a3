"""One image to judge a whole character: front, side, back and rest-pose views of the textured clothed surface.

``render_turntable(reconstruction, size)`` renders with the library's own rasteriser
(``munet.geometry.raster.rasterize``), no Blender: orthographic views about the vertical axis, each pixel
textured by interpolating the surface's per-corner UVs with its barycentric weights and sampling the
atlas bilinearly, lit by simple Lambert shading (a light over the viewer's shoulder, plus ambient).

Views: ``front``, ``side`` (the character's left) and ``back`` of the reconstructed pose, facing where the
body's root faces (not where the photo camera stood), and ``rest``: the rest pose from the front. All
four share one scale, so sizes compare.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
import torch

from munet.geometry.mesh import vertex_normals
from munet.geometry.raster import rasterize
from munet.geometry.rotations import axis_angle_to_matrix_np
from munet.reconstruction import Reconstruction, SkinnedSurface
from munet.texture.bake import sample_points

VIEWS = ("front", "side", "back", "rest")
BACKGROUND = (236, 236, 232)
UNTEXTURED = (180, 180, 176)
AMBIENT = 0.4
MARGIN = 0.06
"""Free border round the tallest view, as a fraction of the panel."""


def render_turntable(reconstruction: Reconstruction, size: int = 512) -> np.ndarray:
    """(size, 4 * size, 3) uint8 RGB: front, side, back and rest views side by side, labelled.

    Renders the clothed surface (the body when there is none), textured when the reconstruction has a
    texture and UVs, else flat grey.
    """
    if size < 64:
        raise ValueError(f"turntable panels must be at least 64 px, got {size}")
    surface = reconstruction.clothed if reconstruction.clothed is not None else reconstruction.body
    texture = _decode(reconstruction) if surface.uv_per_corner is not None else None
    front_yaw = _facing_yaw(reconstruction)
    views = [(surface.posed_vertices_m, front_yaw), (surface.posed_vertices_m, front_yaw + np.pi / 2),
             (surface.posed_vertices_m, front_yaw + np.pi), (surface.rest_vertices_m, -np.pi / 2)]
    projected = [_orthographic(np.asarray(v, np.float64), yaw) for v, yaw in views]
    extent = max(max(np.ptp(p[:, 0]), np.ptp(p[:, 1])) for p, _ in projected)
    scale = size * (1.0 - 2 * MARGIN) / max(extent, 1e-6)
    panels = []
    for name, (vertices, yaw), (screen, depth) in zip(VIEWS, views, projected):
        centre = (screen.max(0) + screen.min(0)) / 2
        px = (screen - centre) * scale + size / 2
        panel = _render(surface, np.asarray(vertices, np.float64), px, depth, size, texture, yaw)
        cv2.putText(panel, name, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (60, 60, 60), 1, cv2.LINE_AA)
        panels.append(panel)
    return np.concatenate(panels, axis=1)


def _decode(reconstruction: Reconstruction) -> np.ndarray | None:
    """The texture as (H, W, 3) uint8 RGB, or None."""
    if reconstruction.texture is None:
        return None
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(reconstruction.texture.image_bytes)).convert("RGB"))


def _facing_yaw(reconstruction: Reconstruction) -> float:
    """The azimuth (radians, about world Z) of the direction the posed body faces: the root rotation
    applied to the rest pose's forward, -Y."""
    rotation = axis_angle_to_matrix_np(np.asarray(reconstruction.pose_axis_angle[0], np.float64))
    forward = rotation @ np.array([0.0, -1.0, 0.0])
    if np.hypot(forward[0], forward[1]) < 1e-6:
        return -np.pi / 2
    return float(np.arctan2(forward[1], forward[0]))


def _view_axes(yaw: float) -> tuple[np.ndarray, np.ndarray]:
    """(toward the viewer, screen right) horizontal unit vectors for a viewer standing at azimuth ``yaw``."""
    toward = np.array([np.cos(yaw), np.sin(yaw), 0.0])
    right = np.cross([0.0, 0.0, 1.0], toward)
    return toward, right


def _orthographic(vertices: np.ndarray, yaw: float) -> tuple[np.ndarray, np.ndarray]:
    """Screen positions (V, 2) in metres (x right, y down) and depth (V,) (larger = farther)."""
    toward, right = _view_axes(yaw)
    screen = np.stack([vertices @ right, -vertices[:, 2]], 1)
    return screen, -(vertices @ toward)


def _render(surface: SkinnedSurface, vertices: np.ndarray, px: np.ndarray, depth: np.ndarray, size: int,
            texture: np.ndarray | None, yaw: float) -> np.ndarray:
    """(size, size, 3) uint8: one view, textured and Lambert-shaded over a plain background."""
    faces = surface.faces.astype(np.int64)
    raster = rasterize(torch.from_numpy(px[None].astype(np.float32)), torch.from_numpy(faces), (size, size),
                       depth=torch.from_numpy((depth - depth.min() + 1.0)[None].astype(np.float32)), want_face_id=True)
    face_id = raster.face_id[0].numpy().reshape(-1)
    pixel = np.flatnonzero(face_id >= 0)
    face = face_id[pixel]
    centres = np.stack([pixel % size + 0.5, pixel // size + 0.5], 1)
    bary = _barycentric(centres, px[faces[face]])
    if texture is not None:
        uv = np.einsum("nk,nkc->nc", bary, surface.uv_per_corner[face].astype(np.float64))
        height, width = texture.shape[:2]
        albedo = sample_points(texture, np.stack([uv[:, 0] * width, (1.0 - uv[:, 1]) * height], 1))
    else:
        albedo = np.broadcast_to(np.asarray(UNTEXTURED, np.float32), (len(pixel), 3))
    normals = np.einsum("nk,nkc->nc", bary, vertex_normals(vertices, faces)[faces[face]].astype(np.float64))
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-9)
    toward, right = _view_axes(yaw)
    light = toward + 0.5 * right + 0.6 * np.array([0.0, 0.0, 1.0])
    light /= np.linalg.norm(light)
    shade = AMBIENT + (1.0 - AMBIENT) * np.clip(normals @ light, 0.0, 1.0)
    image = np.empty((size * size, 3), np.float32)
    image[:] = BACKGROUND
    image[pixel] = albedo.astype(np.float32) * shade[:, None]
    return np.clip(image + 0.5, 0, 255).astype(np.uint8).reshape(size, size, 3)


def _barycentric(points: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """(N, 3) barycentric weights of (N, 2) points in (N, 3, 2) triangles, clipped and renormalised."""
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    v0, v1, v2 = b - a, c - a, points - a
    det = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    det = np.where(np.abs(det) < 1e-12, 1e-12, det)
    wb = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / det
    wc = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / det
    w = np.clip(np.stack([1.0 - wb - wc, wb, wc], 1), 0.0, 1.0)
    return w / np.maximum(w.sum(1, keepdims=True), 1e-12)
