"""Make the example motions in this folder: ``python examples/motions/make_motions.py`` (numpy only).

Each motion is an SMPL/AMASS-style ``.npz``: ``poses`` (T, 72) axis-angle per joint in SMPL's joint
order and SMPL's frame (Y up, the person faces +Z, their left is +X), relative to SMPL's T-pose rest;
``trans`` (T, 3) metres, the pelvis path for a body with SMPL's mean leg length (0.78 m);
``mocap_framerate`` 30; ``betas`` zeros; ``gender`` "neutral". The joint rotations come from simple
periodic gait/gesture curves; ``trans`` is solved so the supporting foot stays planted (no skating) for
the SMPL-proportioned skeleton below.
"""

from __future__ import annotations

import pathlib

import numpy as np

FPS = 30.0
NAMES = ("pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
         "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
         "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand",
         "right_hand")
PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
# An SMPL-like T-pose (SMPL frame, metres, feet on y=0); the right side mirrors the left. Legs 0.38 + 0.40 m.
_LEFT = {"pelvis": (0, 0.93, 0), "left_hip": (0.07, 0.84, 0), "left_knee": (0.10, 0.46, 0.01),
         "left_ankle": (0.10, 0.06, -0.03), "left_foot": (0.11, 0.01, 0.10), "spine1": (0, 1.04, -0.01),
         "spine2": (0, 1.17, 0.0), "spine3": (0, 1.23, 0.01), "neck": (0, 1.45, -0.02), "head": (0, 1.53, 0.03),
         "left_collar": (0.07, 1.37, -0.01), "left_shoulder": (0.17, 1.39, -0.02), "left_elbow": (0.43, 1.39, -0.03),
         "left_wrist": (0.68, 1.39, -0.03), "left_hand": (0.76, 1.39, -0.03)}
REST = np.array([(-_LEFT["left" + n[5:]][0], *_LEFT["left" + n[5:]][1:]) if n.startswith("right") else _LEFT[n]
                 for n in NAMES], np.float64)
J = {n: i for i, n in enumerate(NAMES)}


def rot(axis: str, angle) -> np.ndarray:
    """(T, 3, 3) rotations about the SMPL frame's x, y or z axis by ``angle`` (T,) radians."""
    a = np.atleast_1d(np.asarray(angle, np.float64))
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    rows = {"x": [o, z, z, z, c, -s, z, s, c], "y": [c, z, s, z, o, z, -s, z, c], "z": [c, -s, z, s, c, z, z, z, o]}
    return np.stack(rows[axis], -1).reshape(-1, 3, 3)


def to_axis_angle(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 3) axis-angle (via the quaternion, stable near 0 and pi)."""
    w = np.sqrt(np.maximum(1 + R[..., 0, 0] + R[..., 1, 1] + R[..., 2, 2], 1e-12)) / 2
    v = np.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1) / (4 * w[..., None])
    norm = np.linalg.norm(v, axis=-1)
    angle = 2 * np.arctan2(norm, w)
    return v * (angle / np.maximum(norm, 1e-12))[..., None]


def joints(local: np.ndarray) -> np.ndarray:
    """(T, 24, 3) joint positions (no translation) from (T, 24, 3, 3) local rotations (world-aligned)."""
    glob = local.copy()
    pos = np.zeros(local.shape[:2] + (3,))
    pos[:, 0] = REST[0]
    for j in range(1, 24):
        p = PARENTS[j]
        glob[:, j] = glob[:, p] @ local[:, j]
        pos[:, j] = pos[:, p] + glob[:, p] @ (REST[j] - REST[p])
    return pos


def curve(keys, g: np.ndarray, harmonics: int = 4) -> np.ndarray:
    """A smooth periodic curve through ``keys`` [(fraction of the cycle, degrees)] at fractions ``g``, radians
    (the piecewise-linear curve's first Fourier harmonics)."""
    x, y = np.array(keys, np.float64).T
    fine = np.linspace(0, 1, 256, endpoint=False)
    spectrum = np.fft.rfft(np.interp(fine, x, y))[: harmonics + 1] / len(fine)
    k = np.arange(harmonics + 1)
    phase = np.exp(2j * np.pi * np.outer(np.asarray(g) % 1.0, k))
    weights = np.where(k == 0, 1.0, 2.0)
    return np.radians((phase * spectrum * weights).real.sum(-1))


def planted_trans(local: np.ndarray, cycle: np.ndarray, stance_end: float) -> np.ndarray:
    """(T, 3) pelvis translation: the foot in stance keeps its horizontal place (the one that landed last
    while both are down; in flight the pelvis keeps its speed) and the lower ankle its rest height.

    cycle: (T, 2) the left and right legs' fractions of the gait cycle (0 = the heel lands)."""
    pos = joints(local)
    ankles = pos[:, [J["left_ankle"], J["right_ankle"]]]
    trans = np.zeros((len(local), 3))
    trans[:, 1] = REST[J["left_ankle"], 1] - ankles[:, :, 1].min(1)
    velocity = np.zeros(2)
    for t in range(1, len(local)):
        down = [s for s in (0, 1) if cycle[t, s] < stance_end and cycle[t - 1, s] <= cycle[t, s]]
        if down:
            s = min(down, key=lambda k: cycle[t, k])
            velocity = -(ankles[t, s] - ankles[t - 1, s])[[0, 2]]
        trans[t, [0, 2]] = trans[t - 1, [0, 2]] + velocity
    return trans


def blank(frames: int) -> np.ndarray:
    return np.tile(np.eye(3), (frames, 24, 1, 1))


WALK = {"hip": [(0, 25), (0.5, -12), (0.6, -8), (0.85, 28), (1, 25)],
        "knee": [(0, 5), (0.15, 18), (0.4, 5), (0.6, 38), (0.73, 62), (0.9, 20), (1, 5)],
        "ankle": [(0, 0), (0.1, -5), (0.4, 10), (0.6, -15), (0.75, 0), (1, 0)],
        "stance": 0.6, "period": 1.1, "arm": 0.9, "elbow": 15, "lean": 3, "yaw": 5}
RUN = {"hip": [(0, 35), (0.4, -15), (0.45, -12), (0.75, 45), (1, 35)],
       "knee": [(0, 15), (0.2, 40), (0.4, 20), (0.75, 105), (0.95, 25), (1, 15)],
       "ankle": [(0, 5), (0.2, 15), (0.4, -20), (0.7, 0), (1, 5)],
       "stance": 0.4, "period": 0.72, "arm": 1.2, "elbow": 80, "lean": 10, "yaw": 7}


def gait(seconds: float, style: dict) -> tuple[np.ndarray, np.ndarray]:
    """(T, 24, 3, 3) local rotations of a walk or run (``WALK`` or ``RUN``: joint curves in degrees over the
    cycle) and the (T, 3) translation that plants the feet."""
    t = np.arange(int(round(seconds * FPS)) + 1) / FPS
    local = blank(len(t))
    cycle = np.stack([t / style["period"] % 1.0, (t / style["period"] + 0.5) % 1.0], 1)
    for k, (side, sign) in enumerate((("left", 1.0), ("right", -1.0))):
        g = cycle[:, k]
        local[:, J[f"{side}_hip"]] = rot("x", -curve(style["hip"], g))      # flexion: the thigh forward
        local[:, J[f"{side}_knee"]] = rot("x", curve(style["knee"], g))     # flexion: the shin back
        local[:, J[f"{side}_ankle"]] = rot("x", -curve(style["ankle"], g))  # dorsiflexion: the toes up
        arm = style["arm"] * curve(style["hip"], cycle[:, 1 - k])           # with the other side's leg
        local[:, J[f"{side}_shoulder"]] = rot("x", -arm) @ rot("z", -sign * np.full_like(t, 1.2))
        local[:, J[f"{side}_elbow"]] = rot("y", -sign * (np.radians(style["elbow"]) + 0.3 * np.maximum(arm, 0)))
    yaw = np.radians(style["yaw"]) * np.cos(2 * np.pi * cycle[:, 0])
    lean = np.full_like(t, np.radians(style["lean"]))
    local[:, J["pelvis"]] = rot("y", -yaw)
    local[:, J["spine1"]] = rot("x", lean)
    local[:, J["spine3"]] = rot("y", 1.5 * yaw)
    return local, planted_trans(local, cycle, style["stance"])


def wave(seconds: float = 2.0) -> np.ndarray:
    """(T, 24, 3, 3) standing, raising the right arm and waving from the elbow."""
    t = np.arange(int(round(seconds * FPS)) + 1) / FPS
    local = blank(len(t))
    up = np.clip(t / 0.5, 0, 1)
    up = up * up * (3 - 2 * up)  # smoothstep
    waving = np.sin(2 * np.pi * 1.6 * np.maximum(t - 0.5, 0)) * (t > 0.5)
    local[:, J["left_shoulder"]] = rot("z", np.full_like(t, -1.2))
    local[:, J["left_elbow"]] = rot("y", np.full_like(t, -0.2))
    local[:, J["right_shoulder"]] = rot("z", 1.2 * (1 - up) - 0.4 * up)
    local[:, J["right_elbow"]] = rot("z", -(1.17 + 0.35 * waving) * up) @ rot("y", 0.25 * (1 - up))
    local[:, J["right_wrist"]] = rot("z", -0.25 * waving * up)
    sway = 0.04 * np.sin(2 * np.pi * t / 2.0)
    local[:, J["pelvis"]] = rot("z", sway)
    local[:, J["spine2"]] = rot("z", -sway)
    local[:, J["head"]] = rot("y", -0.15 * up)
    return local


def standing_trans(local: np.ndarray) -> np.ndarray:
    """(T, 3) for a motion in place: only the lower ankle kept at its rest height."""
    ankles = joints(local)[:, [J["left_ankle"], J["right_ankle"]], 1]
    return np.stack([np.zeros(len(local)), REST[J["left_ankle"], 1] - ankles.min(1), np.zeros(len(local))], 1)


def save(path: pathlib.Path, local: np.ndarray, trans: np.ndarray) -> None:
    poses = to_axis_angle(local).reshape(len(local), 72)
    np.savez(path, poses=poses.astype(np.float32), trans=trans.astype(np.float32),
             mocap_framerate=np.float64(FPS), betas=np.zeros(10, np.float32), gender=np.array("neutral"))
    print(f"{path.name}: {len(local)} frames at {FPS:g} fps")


def main() -> None:
    here = pathlib.Path(__file__).resolve().parent
    save(here / "walk.npz", *gait(2.0, WALK))
    save(here / "run.npz", *gait(1.5, RUN))
    local = wave(2.0)
    save(here / "wave.npz", local, standing_trans(local))


if __name__ == "__main__":
    main()
