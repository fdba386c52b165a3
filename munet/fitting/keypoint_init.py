"""Initialisers: where the fit starts. The ``Initialiser`` protocol and the keypoint one (MediaPipe's world keypoints).

An initialiser takes the ``FitTargets`` and the ``BodyFitter`` and returns a ``FitState`` with one or
more candidates (B >= 1); the fit refines all of them and keeps the best. The network initialiser
(``munet.fitting.network_init``) returns its own prediction as a single candidate.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np
import torch

from munet.fitting.body_fit import DTYPE, BodyFitter, FitState
from munet.fitting.landmarks import LEGS, LM, flip_leg_depth, torso_frame
from munet.fitting.pose import hinge_init_from_degrees, pack_pose
from munet.fitting.state import FitTargets


class Initialiser(Protocol):
    """Anything that proposes starting bodies for the fit."""

    name: str

    def __call__(self, targets: FitTargets, fitter: BodyFitter) -> FitState: ...


LEG_FLIPS = ("leg", "shank")
"""Depth alternatives tried per seen leg, one leg at a time, besides MediaPipe's own guess."""


def depth_hypotheses(targets: FitTargets, flips: tuple[str, ...] = LEG_FLIPS) -> tuple[list[str], np.ndarray]:
    """MediaPipe's world keypoints and their leg-depth mirror images: names (B,) and (B, 33, 3).

    Each seen leg (knee and ankle seen) gets each alternative in turn, the other leg kept as MediaPipe has
    it; unseen legs keep MediaPipe's guess (the prior holds them anyway).
    """
    names, variants = ["mediapipe"], [targets.world_m.copy()]
    for side in ("left", "right"):
        knee, ankle = LM[LEGS[side][0]], LM[LEGS[side][1]]
        if not (targets.world_weights[knee] > 0 and targets.world_weights[ankle] > 0):
            continue
        for flip in flips:
            names.append(f"flip_{side}_{flip}")
            variants.append(flip_leg_depth(targets.world_m, side, flip))
    return names, np.stack(variants)


class WorldKeypointInitialiser:
    """Pose from MediaPipe's world keypoints (3D bone directions), placement from the 2D keypoints.

    For every depth hypothesis: the root rotation from the torso frame, the pose by a short fit of the
    body's 3D bone directions, then the translation by linear least squares on the 2D keypoints (level
    camera), and the camera height that puts the lowest foot on the floor.
    """

    name = "world_keypoints"

    def __init__(self, iterations: int = 8, flips: tuple[str, ...] = LEG_FLIPS):
        self.iterations = iterations
        self.flips = flips

    def __call__(self, targets: FitTargets, fitter: BodyFitter) -> FitState:
        names, worlds = depth_hypotheses(targets, self.flips)
        batch = len(names)
        roots = torch.from_numpy(np.stack([torso_frame(w) for w in worlds])).to(DTYPE)
        hinge = hinge_init_from_degrees(batch, dtype=DTYPE)
        pose = pack_pose(torch.zeros(batch, 3, dtype=DTYPE), torch.zeros(batch, 24, 3, dtype=DTYPE), hinge)
        state = FitState(root_init=roots, pose=pose, translation_m=torch.zeros(batch, 3, dtype=DTYPE),
                         camera=torch.zeros(batch, 3, dtype=DTYPE), shape=fitter.shape_prior(targets).expand(batch, -1).clone(),
                         names=names)
        state = fitter.fit_directions(targets, state, torch.from_numpy(worlds), self.iterations)
        with torch.no_grad():
            out = fitter.evaluate({"root_init": state.root_init, "pose": state.pose, "translation": state.translation_m,
                                   "shape": state.shape})
        translation, height = _place(out["landmarks"].numpy(), out["all"][..., 2].numpy(), targets)
        zero = torch.zeros(batch, dtype=DTYPE)
        camera = torch.stack([zero, torch.from_numpy(height).to(DTYPE), zero], 1)
        return dataclasses.replace(state, translation_m=torch.from_numpy(translation).to(DTYPE), camera=camera)


def _place(landmarks: np.ndarray, heights: np.ndarray, targets: FitTargets) -> tuple[np.ndarray, np.ndarray]:
    """Translation (B, 3) and camera height (B,) for bodies posed at the origin, camera level.

    With pitch 0, camera frame = (X + Tx, -(Z + U), Y + Ty) where U = Tz - camera height; the 2D keypoints
    give a linear system in (Tx, Ty, U). Then Tz puts the lowest subset vertex on the floor.
    """
    f = targets.focal_px
    cx, cy = targets.principal_px
    kp = targets.keypoints_px.astype(np.float64)
    w = np.sqrt(np.maximum(targets.keypoint_weights.astype(np.float64), 0.0))
    translations, cam_heights = [], []
    for b in range(landmarks.shape[0]):
        X, Y, Z = landmarks[b].astype(np.float64).T
        du, dv = kp[:, 0] - cx, kp[:, 1] - cy
        zeros = np.zeros_like(du)
        rows_u = np.stack([np.full_like(du, f), -du, zeros], 1)
        rows_v = np.stack([zeros, -dv, np.full_like(dv, -f)], 1)
        A = np.concatenate([rows_u * w[:, None], rows_v * w[:, None]])
        rhs = np.concatenate([(du * Y - f * X) * w, (dv * Y + f * Z) * w])
        (tx, ty, u), *_ = np.linalg.lstsq(A, rhs, rcond=None)
        tz = -float(heights[b].min())
        translations.append([tx, ty, tz])
        cam_heights.append(tz - u)
    return np.asarray(translations), np.asarray(cam_heights)


def default_initialiser() -> Initialiser:
    """The initialiser of method "fitting" (and of "network" where no checkpoint ships)."""
    return WorldKeypointInitialiser()


__all__ = ["Initialiser", "WorldKeypointInitialiser", "default_initialiser", "depth_hypotheses"]
