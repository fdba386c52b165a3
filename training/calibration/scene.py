"""Photo-like renders of the data engine's people for the real detector: a colour per garment region,
Lambert shading, and a plausible background (a room with a wall and a floor, a gradient, smooth noise
or a solid colour, some with a texture), a little blur and sensor noise.

A plain one-colour render is missed more often and confuses front and back (DESIGN.md §6); a colour
per garment region (skin, hair, top or coat, bottoms, shoes) is enough for MediaPipe to behave as on
Blender renders. Garment regions come from the clothing atlas (where on the body a vertex lies) and the
cloth offset of the sample (whether a garment covers it).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import torch

from munet.geometry.mesh import face_normals_torch
from munet.geometry.projection import project_pinhole
from munet.geometry.raster import rasterize
from training.data import clothing

SKIN_TONES = np.array([[255, 224, 196], [241, 194, 160], [224, 172, 130], [198, 134, 96], [141, 85, 54], [95, 60, 40]], np.float32)
HAIR_TONES = np.array([[20, 15, 12], [60, 40, 25], [110, 75, 40], [180, 140, 90], [200, 190, 170], [130, 40, 20]], np.float32)
COVERED_M = 0.0008  # a vertex wears a garment when the clothed surface stands this far off the body
SKIN, HAIR, TOP, BOTTOM, SHOES = range(5)


@dataclasses.dataclass(frozen=True)
class Photo:
    """One render: rgb (H, W, 3) uint8; mask (H, W) bool the person's true silhouette; scale: render
    pixels per pixel of the engine's photo (the render is the engine's photo resized)."""

    rgb: np.ndarray
    mask: np.ndarray
    scale: float


def garment_regions(atlas: clothing.ClothingAtlas, offsets_m: np.ndarray) -> np.ndarray:
    """(V,) int region per vertex (SKIN, HAIR, TOP, BOTTOM, SHOES) from where it lies on the body and
    whether a garment covers it. offsets_m: (V,) distance of the clothed surface from the body, metres."""
    region = atlas.region.numpy()
    covered = offsets_m > COVERED_M
    head = np.isin(region, (clothing.HEAD, clothing.NECK))
    legs = np.isin(region, (clothing.LEG_L, clothing.LEG_R))
    lower_torso = (region == clothing.TORSO) & (atlas.torso_s.numpy() < 0.2)
    out = np.full(len(region), SKIN, np.int64)
    out[covered] = TOP
    out[covered & (legs | lower_torso)] = BOTTOM
    out[covered & legs & (atlas.leg_u.numpy() > 1.9)] = SHOES
    out[covered & head & (atlas.hair_cover.numpy() > 0.3)] = HAIR
    out[covered & (region == clothing.NECK) & (atlas.hair_cover.numpy() <= 0.3) & (atlas.nape.numpy() < 0.3)] = TOP
    return out


def palette(rng: np.random.Generator, has_outer: bool) -> np.ndarray:
    """(5, 3) float32 RGB 0-255 per region: a skin tone, a hair colour, garment colours (a coat is darker)."""
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.9, 1.05)
    hair = HAIR_TONES[rng.integers(len(HAIR_TONES))] * rng.uniform(0.8, 1.2)
    garments = rng.uniform(20, 240, (3, 3)).astype(np.float32)
    if has_outer:
        garments[0] *= 0.6
    return np.clip(np.vstack([skin, hair, garments]), 0, 255).astype(np.float32)


def background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """(H, W, 3) float32 0-255: a room (wall and floor at a horizon), a gradient, smooth noise or a solid
    colour; a third of them carry a texture (stripes, tiles or fine noise)."""
    kind = rng.choice(["room", "gradient", "noise", "solid"], p=[0.4, 0.25, 0.2, 0.15])
    c0, c1 = rng.uniform(30, 235, 3), rng.uniform(30, 235, 3)
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    if kind == "room":
        horizon = rng.uniform(0.45, 0.85)
        shade = 1.0 - 0.25 * np.abs(np.linspace(-1, 1, width, dtype=np.float32))[None, :, None]
        image = np.where(ys < horizon, c0 * shade, c1 * (0.8 + 0.2 * ys)) * np.ones((1, width, 1), np.float32)
    elif kind == "gradient":
        image = (c0 * (1 - ys) + c1 * ys) * np.ones((1, width, 1), np.float32)
    elif kind == "noise":
        field = cv2.resize(rng.random((6, 6)).astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
        image = c0 * (1 - field[..., None]) + c1 * field[..., None]
    else:
        image = np.broadcast_to(c0.astype(np.float32), (height, width, 3)).copy()
    if rng.random() < 0.33:
        image = image * _texture(rng, width, height)[..., None]
    return np.clip(image, 0, 255).astype(np.float32)


def _texture(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """(H, W) float32 multiplicative texture around 1."""
    kind = rng.integers(3)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    period = rng.uniform(8, 60)
    if kind == 0:  # stripes at an angle
        angle = rng.uniform(0, np.pi)
        return 1.0 + 0.15 * np.sign(np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)).astype(np.float32)
    if kind == 1:  # tiles
        return 1.0 + 0.12 * (((xx // period) + (yy // period)) % 2).astype(np.float32) - 0.06
    return 1.0 + 0.12 * rng.normal(0.0, 1.0, (height, width)).astype(np.float32)


def render_photo(
    rng: np.random.Generator, clothed_cam: torch.Tensor, faces: torch.Tensor, K: np.ndarray, image_size: tuple[int, int],
    regions: np.ndarray, colours: np.ndarray, max_side: int,
) -> Photo:
    """Render one person into a photo-like image.

    clothed_cam: (V, 3) metres, OpenCV camera frame; faces: (F, 3); K: (3, 3) intrinsics of the engine's
    photo of ``image_size`` (width, height); regions: (V,) region ids; colours: (5, 3) RGB 0-255. The
    render is the engine's photo scaled so its longer side is at most ``max_side``.
    """
    width, height = image_size
    scale = min(1.0, max_side / max(width, height))
    out_w, out_h = max(int(round(width * scale)), 8), max(int(round(height * scale)), 8)
    K_out = np.diag([out_w / width, out_h / height, 1.0]) @ K
    points = clothed_cam[None].float()
    px = project_pinhole(points, torch.from_numpy(K_out).float()[None])
    raster = rasterize(px, faces, (out_w, out_h), depth=points[..., 2], want_face_id=True, cull_backfaces=True)
    face_id = raster.face_id[0].numpy()
    mask = face_id >= 0
    normals = face_normals_torch(points, faces)[0].numpy()
    light = rng.normal(0.0, 0.3, 3) + np.array([-0.3, -0.5, -0.8])
    light /= np.linalg.norm(light)
    lambert = np.abs(normals @ light)  # two-sided: the surface is closed, only front faces show
    face_colour = colours[regions[faces[:, 0].numpy()]] * (0.35 + 0.65 * lambert[:, None])
    rgb = background(rng, out_w, out_h)
    rgb[mask] = face_colour[face_id[mask]]
    rgb = cv2.GaussianBlur(rgb, (0, 0), rng.uniform(0.5, 1.0))
    rgb += rng.normal(0.0, rng.uniform(1.0, 4.0), rgb.shape).astype(np.float32)
    return Photo(np.clip(np.round(rgb), 0, 255).astype(np.uint8), mask, float(out_w / width))
