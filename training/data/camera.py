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


@dataclasses.dataclass(frozen=True)
class _Draw:
    """The random choices of one camera, drawn from the sample's own stream."""

    width: int
    height: int
    K: np.ndarray
    R: np.ndarray
    framing: int
    fill: float
    z_cut: float
    free_u: float
    free_v: float
    bottom_frac: float
    side: float
    side_cut: float
    head_cut: float


def _draw(rng: np.random.Generator, framing_weights: tuple[float, ...], cut_z: tuple[float, float]) -> _Draw:
    w_ratio, h_ratio = ASPECTS[rng.choice(len(ASPECTS), p=np.asarray(ASPECT_WEIGHTS) / sum(ASPECT_WEIGHTS))]
    long_side = int(rng.integers(720, 1921))
    scale = long_side / max(w_ratio, h_ratio)
    width, height = int(round(w_ratio * scale)), int(round(h_ratio * scale))
    focal = float(np.hypot(width, height)) * float(np.exp(rng.uniform(np.log(0.55), np.log(2.0))))
    cx = width / 2 + rng.normal(0, 0.005) * width
    cy = height / 2 + rng.normal(0, 0.005) * height
    K = np.array([[focal, 0.0, cx], [0.0, focal, cy], [0.0, 0.0, 1.0]])
    pitch = np.deg2rad(np.clip(rng.normal(4.0, 8.0), -20.0, 25.0))
    roll = np.deg2rad(np.clip(rng.normal(0.0, 2.5), -8.0, 8.0))
    framing = int(rng.choice(len(FRAMINGS), p=np.asarray(framing_weights) / sum(framing_weights)))
    return _Draw(
        width, height, K, camera_rotation(pitch, roll), framing,
        fill=rng.uniform(0.5, 0.92) if framing == 0 else rng.uniform(0.7, 0.98), z_cut=rng.uniform(*cut_z),
        free_u=rng.uniform(0.02, 0.98), free_v=rng.uniform(0.05, 0.95), bottom_frac=rng.uniform(0.98, 1.06),
        side=float(rng.choice((-1.0, 1.0))), side_cut=rng.uniform(0.12, 0.45), head_cut=rng.uniform(0.03, 0.12),
    )  # fmt: skip


def sample_cameras(
    rngs: list[np.random.Generator], points_world: np.ndarray, framing_weights: tuple[float, ...], cut_z: np.ndarray,
    iterations: int = 8,
) -> list[CameraDraw]:
    """A camera per person, framing them the way photos do.

    points_world: (B, N, 3) a subset of each clothed surface (metres, world frame).
    cut_z: (B, 2) (lowest, highest) world heights where a "cut_legs" frame may end (knee .. chest).
    The framing is solved for all samples at once: choose the distance so the framed part fills the
    drawn fraction of the photo, then move the camera sideways/up so its box lands where the layout
    wants it (repeated: perspective makes the box depend on both).
    """
    draws = [_draw(r, framing_weights, tuple(c)) for r, c in zip(rngs, cut_z)]
    layout = _Layout.of(draws)
    R = np.stack([d.R for d in draws])
    K = np.stack([d.K for d in draws])
    rotated = np.einsum("bij,bnj->bni", R, points_world)  # camera orientation, no translation yet
    framed = np.ones(rotated.shape[:2], bool)
    cut = layout.framing == 1
    framed[cut] = points_world[cut, :, 2] >= np.array([d.z_cut for d in draws])[cut, None]
    framed[~framed.any(1)] = True
    # first guess: back far enough that the framed part fits the drawn fill of the photo
    lo_y, hi_y = _extent(rotated[..., 1], framed)
    lo_x, hi_x = _extent(rotated[..., 0], framed)
    lo_z, hi_z = _extent(rotated[..., 2], framed)
    z_mid = _mean(rotated[..., 2], framed)
    focal = layout.focal
    fill = np.array([d.fill for d in draws])
    depth = np.maximum.reduce([
        focal * (hi_y - lo_y) / (fill * layout.height), focal * (hi_x - lo_x) / (0.95 * layout.width), np.full(len(draws), 0.5),
    ])  # fmt: skip
    t = np.zeros((len(draws), 3))
    t[:, 2] = depth + 0.5 * (hi_z - lo_z) - z_mid
    for _ in range(iterations):
        _reframe(t, rotated, framed, z_mid, layout)
    return [
        CameraDraw(K=K[b], R=R[b], t=t[b], image_size=(draws[b].width, draws[b].height), framing=int(layout.framing[b]))
        for b in range(len(draws))
    ]  # fmt: skip


@dataclasses.dataclass(frozen=True)
class _Layout:
    """Per sample (B,): intrinsics (focal, cx, cy, photo width and height in pixels) and where the
    framing wants the person's box (``_Draw``'s choices; bottom in pixels)."""

    focal: np.ndarray
    cx: np.ndarray
    cy: np.ndarray
    width: np.ndarray
    height: np.ndarray
    framing: np.ndarray
    free_u: np.ndarray
    free_v: np.ndarray
    bottom: np.ndarray
    side: np.ndarray
    side_cut: np.ndarray
    head_cut: np.ndarray

    @staticmethod
    def of(draws: list[_Draw]) -> "_Layout":
        K = np.stack([d.K for d in draws])
        height = np.array([d.height for d in draws], np.float64)
        return _Layout(
            K[:, 0, 0], K[:, 0, 2], K[:, 1, 2], np.array([d.width for d in draws], np.float64), height,
            np.array([d.framing for d in draws]), np.array([d.free_u for d in draws]), np.array([d.free_v for d in draws]),
            np.array([d.bottom_frac for d in draws]) * height, np.array([d.side for d in draws]),
            np.array([d.side_cut for d in draws]), np.array([d.head_cut for d in draws]),
        )  # fmt: skip


def _extent(values: np.ndarray, framed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B,) min and max of (B, N) values over the framed points."""
    return np.where(framed, values, np.inf).min(1), np.where(framed, values, -np.inf).max(1)


def _mean(values: np.ndarray, framed: np.ndarray) -> np.ndarray:
    """(B,) mean of (B, N) values over the framed points (the depth reference; robust enough here)."""
    return np.where(framed, values, 0.0).sum(1) / framed.sum(1)


def _reframe(t: np.ndarray, rotated: np.ndarray, framed: np.ndarray, z_mid: np.ndarray, layout: _Layout) -> None:
    """One framing step, updating the translations ``t`` (B, 3) in place: project the framed points,
    step back (along the optical axis) where their box is too big for the framing, else move the camera
    so the box centre lands on the framing's target."""
    f, width, height, framing = layout.focal, layout.width, layout.height, layout.framing
    cam = rotated + t[:, None]
    u = f[:, None] * cam[..., 0] / cam[..., 2] + layout.cx[:, None]
    v = f[:, None] * cam[..., 1] / cam[..., 2] + layout.cy[:, None]
    u0, u1 = _extent(u, framed)
    v0, v1 = _extent(v, framed)
    box_w, box_h = u1 - u0, v1 - v0
    room_w, room_h = np.maximum(width - box_w, 0.0), np.maximum(height - box_h, 0.0)
    target_u = np.select(
        [framing == 0, framing == 2],
        [layout.free_u * room_w + box_w / 2, width / 2 + layout.side * (width / 2 - (box_w / 2 - layout.side_cut * box_w))],
        width / 2 + (layout.free_u - 0.5) * 0.4 * room_w,
    )
    target_v = np.select(
        [framing == 0, framing == 1, framing == 2],
        [layout.free_v * room_h + box_h / 2, layout.bottom - box_h / 2, height / 2 + (layout.free_v - 0.5) * 0.6 * room_h],
        box_h / 2 - layout.head_cut * box_h,
    )
    too_big = np.select(
        [framing == 0, framing == 1, framing == 2],
        [np.maximum(box_w / (0.98 * width), box_h / (0.98 * height)), np.maximum(box_w / (0.98 * width), box_h / (1.02 * height)),
         box_h / (0.95 * height)],
        np.maximum(box_w / (0.98 * width), box_h / (1.05 * height)),
    )  # fmt: skip
    z_ref = _mean(cam[..., 2], framed)
    back = too_big > 1.0  # step back, keeping the optical axis
    t[:, 2] = np.where(back, z_ref * too_big * 1.02 - z_mid, t[:, 2])
    t[:, 0] += np.where(back, 0.0, (target_u - (u0 + u1) / 2) * z_ref / f)
    t[:, 1] += np.where(back, 0.0, (target_v - (v0 + v1) / 2) * z_ref / f)
