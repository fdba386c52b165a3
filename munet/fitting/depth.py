"""What each depth cue says about the legs, and which one the result follows: the report's ``depth``.

Cues (each votes on which knee/ankle is farther from the camera, where it can):

* ``ground_plane``: feet on the floor, seen from a camera above it: the foot whose floor contact is higher
  in the photo is the farther one (perspective).
* ``mediapipe_world``: the detector's metric world keypoints (Y = away from the camera).
* ``mediapipe_image_depth``: the detector's per-landmark relative depth.
* ``foot_direction``: heel -> toe in the photo: for a foot flat on the floor, a toe higher in the photo
  than its heel points away from the camera.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from munet.body.skeleton import SMPL24_INDEX as JOINT
from munet.detect import Detection
from munet.fitting.landmarks import LM
from munet.fitting.state import FitTargets
from munet.reconstruction import Camera
from munet.report import (CueAgreement, DepthCues, DepthReport, FootDirection, GroundPlaneVote, Hypothesis, LegDepths,
                          LegOrderVote, WithoutGround)


def _farther(left: float, right: float, tolerance: float) -> str:
    if abs(left - right) <= tolerance:
        return "same"
    return "left" if left > right else "right"


def cue_votes(detection: Detection, targets: FitTargets) -> DepthCues:
    """Each cue's vote on which leg reaches farther from the camera (``"left"``, ``"right"``, ``"same"``),
    with the numbers behind it; a cue that cannot see (feet unseen, a foot off the floor) stays None."""
    seen = detection.seen
    ground_plane = world_vote = image_depth_vote = directions = None
    feet_seen = all(seen[[LM[f"{s}_heel"], LM[f"{s}_foot_index"]]].all() for s in ("left", "right"))
    if feet_seen and all(targets.contact.values()):
        rows = {s: float(max(detection.keypoints_px[LM[f"{s}_heel"], 1], detection.keypoints_px[LM[f"{s}_foot_index"], 1]))
                for s in ("left", "right")}
        # the lower contact row in the photo is nearer; compare "height in the photo" = -row
        ground_plane = GroundPlaneVote(farther_foot=_farther(-rows["left"], -rows["right"], 4.0),
                                       contact_row_px={s: round(v, 1) for s, v in rows.items()})
    legs_seen = all(seen[[LM[f"{s}_knee"], LM[f"{s}_ankle"]]].all() for s in ("left", "right"))
    if legs_seen:
        world = detection.world_keypoints_m
        world_vote = LegOrderVote(
            farther_knee=_farther(world[LM["left_knee"], 1], world[LM["right_knee"], 1], 0.03),
            farther_ankle=_farther(world[LM["left_ankle"], 1], world[LM["right_ankle"], 1], 0.03))
        z = detection.keypoint_depth
        image_depth_vote = LegOrderVote(
            farther_knee=_farther(z[LM["left_knee"]], z[LM["right_knee"]], 0.02),
            farther_ankle=_farther(z[LM["left_ankle"]], z[LM["right_ankle"]], 0.02))
    if feet_seen:
        directions = {}
        for s in ("left", "right"):
            heel, toe = detection.keypoints_px[LM[f"{s}_heel"]], detection.keypoints_px[LM[f"{s}_foot_index"]]
            step = toe - heel
            directions[s] = FootDirection(heel_to_toe_px=tuple(round(float(v), 1) for v in step),
                                          toe_points="away" if step[1] < -2 else ("towards" if step[1] > 2 else "sideways"))
    return DepthCues(ground_plane, world_vote, image_depth_vote, directions)


def leg_depth_differences(fitter, targets: FitTargets, state) -> list[tuple[float, float]]:
    """Per candidate of a ``FitState``: (left - right knee depth, left - right ankle depth) in metres."""
    import torch

    from munet.fitting import camera as cam

    with torch.no_grad():
        _, joints = fitter.landmarks_and_joints(state)
        _, depth = cam.project(joints, state.pitch_rad, state.height_m, state.focal_px(targets.focal_px),
                               targets.principal_px)
    knee = depth[:, JOINT["left_knee"]] - depth[:, JOINT["right_knee"]]
    ankle = depth[:, JOINT["left_ankle"]] - depth[:, JOINT["right_ankle"]]
    return [(round(float(k), 3), round(float(a), 3)) for k, a in zip(knee, ankle)]


@dataclasses.dataclass(frozen=True)
class NoFloorFit:
    """The best candidate of the fit without the floor term: left - right knee and ankle depth (metres)."""

    left_knee_minus_right_knee_m: float
    left_ankle_minus_right_ankle_m: float
    hypothesis: str


def _leg_depths(joints_m: np.ndarray, root_rotation: np.ndarray, camera: Camera) -> LegDepths:
    """The result's leg depths (see ``LegDepths``) from its posed smpl24 joints and pelvis rotation."""
    _, depth = camera.project(joints_m.astype(np.float64))
    d = {n: round(float(depth[JOINT[n]]), 3) for n in ("left_hip", "right_hip", "left_knee", "right_knee",
                                                      "left_ankle", "right_ankle")}
    facing_world = root_rotation @ np.array([0.0, -1.0, 0.0])  # rest pose faces -Y
    facing_cam = camera.R_world_to_cam @ facing_world
    return LegDepths(
        left_hip_depth_m=d["left_hip"], right_hip_depth_m=d["right_hip"],
        left_knee_depth_m=d["left_knee"], right_knee_depth_m=d["right_knee"],
        left_ankle_depth_m=d["left_ankle"], right_ankle_depth_m=d["right_ankle"],
        left_knee_minus_right_knee_m=round(float(depth[JOINT["left_knee"]] - depth[JOINT["right_knee"]]), 3),
        left_ankle_minus_right_ankle_m=round(float(depth[JOINT["left_ankle"]] - depth[JOINT["right_ankle"]]), 3),
        torso_faces="away from the camera" if facing_cam[2] > 0 else "towards the camera",
        farther_knee=_farther(depth[JOINT["left_knee"]], depth[JOINT["right_knee"]], 0.03),
        farther_ankle=_farther(depth[JOINT["left_ankle"]], depth[JOINT["right_ankle"]], 0.03),
    )  # fmt: skip


def _agreement(votes: DepthCues, final: LegDepths) -> CueAgreement:
    """Whether the result's leg depth order agrees with each cue that voted."""
    def agrees(vote: LegOrderVote | None) -> bool | None:
        if vote is None:
            return None
        return vote.farther_knee == final.farther_knee and vote.farther_ankle == final.farther_ankle

    ground = None if votes.ground_plane is None else votes.ground_plane.farther_foot == final.farther_ankle
    return CueAgreement(ground, agrees(votes.mediapipe_world), agrees(votes.mediapipe_image_depth))


def _summary(final: LegDepths, agreement: dict[str, bool], deciding: str | None, network: bool = False) -> str:
    summary = f"result: {final.farther_knee} knee and {final.farther_ankle} ankle farther, torso {final.torso_faces}; "
    if not agreement:  # unseen legs: the network's pose after the network, else the fit's standing prior
        held = "legs as the network posed them" if network else "legs held by the standing prior"
        return summary + f"no leg depth cue was visible ({held})"
    summary += f"agrees with {', '.join(k for k, v in agreement.items() if v) or 'no cue'}"
    if not all(agreement.values()):
        summary += f"; disagrees with {', '.join(k for k, v in agreement.items() if not v)}"
    if deciding == "ground_plane":
        summary += "; the ground plane decided it (without it the leg depth order changes)"
    elif deciding == "network":
        summary += "; the network's 3D decides it (the same without the ground plane)"
    elif deciding is not None:
        summary += "; the 2D fit with joint limits decides it even without the ground plane"
    return summary


def depth_report(detection: Detection, targets: FitTargets, joints_m: np.ndarray, root_rotation: np.ndarray,
                 camera: Camera, hypotheses: list[Hypothesis], chosen: str, without_ground: NoFloorFit | None = None,
                 network: bool = False) -> DepthReport:
    """The report's ``depth`` section.

    joints_m: (24, 3) posed smpl24 joints, world frame; root_rotation: (3, 3) the pelvis's global rotation;
    hypotheses: per depth hypothesis, its name and final loss terms; chosen: the kept hypothesis's name;
    without_ground: the fit without the floor term, when it ran; network: the fit started from (and stayed
    tied to) the network's 3D.
    """
    final = _leg_depths(joints_m, root_rotation, camera)
    votes = cue_votes(detection, targets)
    agreement = _agreement(votes, final)
    ablated, deciding = None, None
    if without_ground is not None:
        ablated_ankle = _farther(without_ground.left_ankle_minus_right_ankle_m, 0.0, 0.03)
        ablated_knee = _farther(without_ground.left_knee_minus_right_knee_m, 0.0, 0.03)
        changes = (ablated_ankle, ablated_knee) != (final.farther_ankle, final.farther_knee)
        ablated = WithoutGround(without_ground.left_knee_minus_right_knee_m,
                                without_ground.left_ankle_minus_right_ankle_m, without_ground.hypothesis, changes)
        deciding = "ground_plane" if changes else "network" if network else "keypoints_and_priors"
    ranked = sorted(hypotheses, key=lambda h: h.total)
    return DepthReport(
        final=final,
        cues=votes,
        agreement=agreement,
        hypotheses=tuple(Hypothesis(h.name, round(h.total, 3), {k: round(v, 3) for k, v in h.terms.items()})
                         for h in ranked),
        chosen_hypothesis=chosen,
        deciding_cue=deciding,
        without_ground=ablated,
        summary=_summary(final, agreement.voted(), deciding, network),
    )
