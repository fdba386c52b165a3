"""Perspective cameras that frame the person the way photos do: mostly the whole person, sometimes cut
off by the frame (legs below the knees or the waist, a side, the top of the head).

Frames (``munet/reconstruction.py``): the world is Blender's (Z up, metres); the camera frame is
OpenCV's (x right, y down, z forward): ``x_cam = R @ X + t``, pixels ``u = fx x/z + cx``. With zero
pitch and roll the camera looks along world +Y, so a person with zero yaw faces it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

FRAMINGS = ("full", "cut_legs", "cut_side", "cut_head")
ASPECTS = ((3, 4), (4, 3), (9, 16), (16, 9), (1, 1), (2, 3), (3, 2))
ASPECT_WEIGHTS = (0.3, 0.15, 0.15, 0.08, 0.12, 0.12, 0.08)
# Blender world -> OpenCV camera looking along +Y with no pitch/roll: (X, Y, Z) -> (X, -Z, Y)
BASE_ROTATION = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


@dataclasses.dataclass(frozen=True)
class CameraDraw:
    """One sampled camera. K: (3, 3) float64 intrinsics of the full photo; R: (3, 3) world -> camera;
    t: (3,) metres; image_size: (width, height); framing: index into FRAMINGS."""

    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    image_size: tuple[int, int]
    framing: int


def rotation_x(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rotation_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def camera_rotation(pitch_down_rad: float, roll_rad: float) -> np.ndarray:
    """World -> camera rotation for a camera looking along +Y, tilted down by ``pitch_down_rad`` and
    rolled by ``roll_rad`` about its optical axis."""
    # rotating the camera frame about its x axis by -pitch tilts the optical axis towards -Z (down)
    return rotation_z(roll_rad) @ rotation_x(-pitch_down_rad) @ BASE_ROTATION


def sample_camera(
    rng: np.random.Generator, points_world: np.ndarray, framing_weights: tuple[float, ...] = (0.72, 0.16, 0.09, 0.03),
    cut_z: tuple[float, float] | None = None,
) -> CameraDraw:
    """A camera for one person.

    points_world: (N, 3) a subset of the clothed surface (metres, world frame).
    cut_z: (lowest, highest) world heights where a "cut_legs" frame may end (e.g. knee .. waist).
    """
    w_ratio, h_ratio = ASPECTS[rng.choice(len(ASPECTS), p=np.asarray(ASPECT_WEIGHTS) / sum(ASPECT_WEIGHTS))]
    long_side = int(rng.integers(720, 1921))
    scale = long_side / max(w_ratio, h_ratio)
    width, height = int(round(w_ratio * scale)), int(round(h_ratio * scale))
    diagonal = float(np.hypot(width, height))
    focal = diagonal * float(np.exp(rng.uniform(np.log(0.55), np.log(2.0))))
    cx = width / 2 + rng.normal(0, 0.005) * width
    cy = height / 2 + rng.normal(0, 0.005) * height
    K = np.array([[focal, 0.0, cx], [0.0, focal, cy], [0.0, 0.0, 1.0]])
    pitch = np.deg2rad(np.clip(rng.normal(4.0, 8.0), -20.0, 25.0))
    roll = np.deg2rad(np.clip(rng.normal(0.0, 2.5), -8.0, 8.0))
    R = camera_rotation(pitch, roll)
    framing = int(rng.choice(len(FRAMINGS), p=np.asarray(framing_weights) / sum(framing_weights)))

    framed = points_world
    if framing == 1 and cut_z is not None:
        z_cut = rng.uniform(*cut_z)
        framed = points_world[points_world[:, 2] >= z_cut]
    rotated = framed @ R.T  # camera orientation, no translation yet
    # target box of the framed points, as fractions of the image
    fill = rng.uniform(0.5, 0.92) if framing == 0 else rng.uniform(0.7, 0.98)
    extent_y = np.ptp(rotated[:, 1])
    extent_x = np.ptp(rotated[:, 0])
    # distance so the framed extent fills ``fill`` of the image height (or width if that binds)
    depth = max(focal * extent_y / (fill * height), focal * extent_x / (0.95 * width), 0.5) + np.ptp(rotated[:, 2]) * 0.5
    t = np.zeros(3)
    t[2] = depth - np.median(rotated[:, 2])
    # the layout, drawn once: where the framed box goes
    free_u, free_v = rng.uniform(0.02, 0.98), rng.uniform(0.05, 0.95)
    bottom_frac = rng.uniform(0.98, 1.06)
    side = rng.choice((-1.0, 1.0))
    side_cut, head_cut = rng.uniform(0.12, 0.45), rng.uniform(0.03, 0.12)
    for _ in range(8):
        cam = rotated + t
        u = focal * cam[:, 0] / cam[:, 2] + cx
        v = focal * cam[:, 1] / cam[:, 2] + cy
        box_w, box_h = np.ptp(u), np.ptp(v)
        if framing == 0:  # whole person inside
            target_u = free_u * max(width - box_w, 0.0) + box_w / 2
            target_v = free_v * max(height - box_h, 0.0) + box_h / 2
            too_big = max(box_w / (0.98 * width), box_h / (0.98 * height))
        elif framing == 1:  # the framed part ends at the bottom edge (or a little past it)
            target_u = width / 2 + (free_u - 0.5) * 0.4 * max(width - box_w, 0.0)
            target_v = height * bottom_frac - box_h / 2
            too_big = max(box_w / (0.98 * width), box_h / (1.02 * height))
        elif framing == 2:  # a side cut off
            target_u = width / 2 + side * (width / 2 - (box_w / 2 - side_cut * box_w))
            target_v = height / 2 + (free_v - 0.5) * 0.6 * max(height - box_h, 0.0)
            too_big = box_h / (0.95 * height)
        else:  # the top of the head cut off
            target_u = width / 2 + (free_u - 0.5) * 0.4 * max(width - box_w, 0.0)
            target_v = box_h / 2 - head_cut * box_h
            too_big = max(box_w / (0.98 * width), box_h / (1.05 * height))
        z_ref = np.median(cam[:, 2])
        if too_big > 1.0:  # step back, keeping the optical axis
            t[2] = z_ref * too_big * 1.02 - np.median(rotated[:, 2])
            continue
        t[0] += (target_u - (u.min() + u.max()) / 2) * z_ref / focal
        t[1] += (target_v - (v.min() + v.max()) / 2) * z_ref / focal
    return CameraDraw(K=K, R=R, t=t, image_size=(width, height), framing=framing)
