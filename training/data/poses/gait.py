"""Walking and running: an analytic gait cycle instead of key poses (the ``walk`` and ``run`` families)."""

from __future__ import annotations

import numpy as np


def gait_pose(phase: np.ndarray, run: np.ndarray, amplitude: np.ndarray) -> dict[str, np.ndarray]:
    """A walk or run cycle, analytically: angles (N,) per joint for phases in [0, 2 pi).

    phase 0: left leg forward (heel strike). run: (N,) bool. amplitude: (N,) scale in ~[0.7, 1.3].
    """
    s, c = np.sin(phase), np.cos(phase)
    hip_amp = np.where(run, 38.0, 22.0) * amplitude
    knee_swing = np.where(run, 95.0, 55.0) * amplitude
    knee_stance = np.where(run, 30.0, 8.0)
    arm_amp = np.where(run, 40.0, 18.0) * amplitude
    out: dict[str, np.ndarray] = {}
    left_hip = -hip_amp * c + np.where(run, -10.0, 0.0)  # forward at phase 0
    right_hip = hip_amp * c + np.where(run, -10.0, 0.0)
    # knee flexes in swing (leg moving forward): left swings during phase in (pi, 2 pi)
    left_knee = knee_stance + knee_swing * np.clip(-s, 0, None) ** 1.5
    right_knee = knee_stance + knee_swing * np.clip(s, 0, None) ** 1.5
    out["left_hip"] = np.stack([left_hip, np.full_like(s, 2.0), np.zeros_like(s)], -1)
    out["right_hip"] = np.stack([right_hip, np.full_like(s, -2.0), np.zeros_like(s)], -1)
    out["left_knee"], out["right_knee"] = left_knee, right_knee
    out["left_ankle"] = np.stack([8.0 * s, np.zeros_like(s), np.zeros_like(s)], -1)
    out["right_ankle"] = np.stack([-8.0 * s, np.zeros_like(s), np.zeros_like(s)], -1)
    # arms swing opposite to the legs; elbows bend more when running
    out["left_shoulder"] = np.stack([arm_amp * c - 4.0, np.full_like(s, 36.0), np.zeros_like(s)], -1)
    out["right_shoulder"] = np.stack([-arm_amp * c - 4.0, np.full_like(s, -36.0), np.zeros_like(s)], -1)
    elbow = np.where(run, 50.0, -18.0)
    out["left_elbow"] = elbow + np.where(run, 20.0, 12.0) * np.clip(-c, 0, None)
    out["right_elbow"] = elbow + np.where(run, 20.0, 12.0) * np.clip(c, 0, None)
    lean = np.where(run, 10.0, 2.0)
    out["pelvis"] = np.stack([lean, np.zeros_like(s), 5.0 * c * amplitude], -1)
    out["spine2"] = np.stack([np.zeros_like(s), np.zeros_like(s), -6.0 * c * amplitude], -1)
    return out