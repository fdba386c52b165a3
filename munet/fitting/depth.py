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

import numpy as np

from munet.detect import Detection
from munet.fitting.landmarks import LM
from munet.body.skeleton import SMPL24_INDEX as JOINT
from munet.fitting.state import FitTargets
from munet.reconstruction import Camera


def _farther(left: float, right: float, tolerance: float) -> str:
    if abs(left - right) <= tolerance:
        return "same"
    return "left" if left > right else "right"


def cue_votes(detection: Detection, targets: FitTargets) -> dict:
    """Each cue's vote on which leg reaches farther from the camera (``"left"``, ``"right"``, ``"same"``),
    with the numbers behind it; a cue that cannot see (feet unseen, a foot off the floor) is left out."""
    seen = detection.seen
    votes: dict[str, dict] = {}
    feet_seen = all(seen[[LM[f"{s}_heel"], LM[f"{s}_foot_index"]]].all() for s in ("left", "right"))
    if feet_seen and all(targets.contact.values()):
        rows = {s: float(max(detection.keypoints_px[LM[f"{s}_heel"], 1], detection.keypoints_px[LM[f"{s}_foot_index"], 1]))
                for s in ("left", "right")}
        # the lower contact row in the photo is nearer; compare "height in the photo" = -row
        votes["ground_plane"] = {
            "farther_foot": _farther(-rows["left"], -rows["right"], 4.0),
            "contact_row_px": {s: round(v, 1) for s, v in rows.items()},
        }
    legs_seen = all(seen[[LM[f"{s}_knee"], LM[f"{s}_ankle"]]].all() for s in ("left", "right"))
    if legs_seen:
        world = detection.world_keypoints_m
        votes["mediapipe_world"] = {
            "farther_knee": _farther(world[LM["left_knee"], 1], world[LM["right_knee"], 1], 0.03),
            "farther_ankle": _farther(world[LM["left_ankle"], 1], world[LM["right_ankle"], 1], 0.03),
        }
        z = detection.keypoint_depth
        votes["mediapipe_image_depth"] = {
            "farther_knee": _farther(z[LM["left_knee"]], z[LM["right_knee"]], 0.02),
            "farther_ankle": _farther(z[LM["left_ankle"]], z[LM["right_ankle"]], 0.02),
        }
    if feet_seen:
        directions = {}
        for s in ("left", "right"):
            heel, toe = detection.keypoints_px[LM[f"{s}_heel"]], detection.keypoints_px[LM[f"{s}_foot_index"]]
            step = toe - heel
            directions[s] = {"heel_to_toe_px": [round(float(v), 1) for v in step],
                             "toe_points": "away" if step[1] < -2 else ("towards" if step[1] > 2 else "sideways")}
        votes["foot_direction"] = directions
    return votes


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


def depth_report(detection: Detection, targets: FitTargets, joints_m: np.ndarray, root_rotation: np.ndarray,
                 camera: Camera, hypotheses: list[dict], chosen: str, without_ground: dict | None = None,
                 network: bool = False) -> dict:
    """The report's ``depth`` section.

    joints_m: (24, 3) posed smpl24 joints, world frame; root_rotation: (3, 3) the pelvis's global rotation;
    hypotheses: per depth hypothesis, its name and final loss terms; chosen: the kept hypothesis's name;
    network: the fit started from (and stayed tied to) the network's 3D.
    """
    _, depth = camera.project(joints_m.astype(np.float64))
    names = ("left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")
    final = {f"{n}_depth_m": round(float(depth[JOINT[n]]), 3) for n in names}
    facing_world = root_rotation @ np.array([0.0, -1.0, 0.0])  # rest pose faces -Y
    facing_cam = camera.R_world_to_cam @ facing_world
    final["left_knee_minus_right_knee_m"] = round(float(depth[JOINT["left_knee"]] - depth[JOINT["right_knee"]]), 3)
    final["left_ankle_minus_right_ankle_m"] = round(float(depth[JOINT["left_ankle"]] - depth[JOINT["right_ankle"]]), 3)
    final["torso_faces"] = "away from the camera" if facing_cam[2] > 0 else "towards the camera"
    final_knee = _farther(depth[JOINT["left_knee"]], depth[JOINT["right_knee"]], 0.03)
    final_ankle = _farther(depth[JOINT["left_ankle"]], depth[JOINT["right_ankle"]], 0.03)
    final["farther_knee"], final["farther_ankle"] = final_knee, final_ankle

    votes = cue_votes(detection, targets)
    agreement = {}
    if "ground_plane" in votes:
        agreement["ground_plane"] = votes["ground_plane"]["farther_foot"] == final_ankle
    for cue in ("mediapipe_world", "mediapipe_image_depth"):
        if cue in votes:
            agreement[cue] = votes[cue]["farther_knee"] == final_knee and votes[cue]["farther_ankle"] == final_ankle

    ranked = sorted(hypotheses, key=lambda h: h["total"])
    deciding = None
    if without_ground is not None:
        ablated_ankle = _farther(without_ground["left_ankle_minus_right_ankle_m"], 0.0, 0.03)
        ablated_knee = _farther(without_ground["left_knee_minus_right_knee_m"], 0.0, 0.03)
        without_ground["changes_the_result"] = (ablated_ankle, ablated_knee) != (final_ankle, final_knee)
        deciding = ("ground_plane" if without_ground["changes_the_result"]
                    else "network" if network else "keypoints_and_priors")
    summary = f"result: {final_knee} knee and {final_ankle} ankle farther, torso {final['torso_faces']}; "
    if not agreement:
        summary += "no leg depth cue was visible (legs held by the standing prior)"
    else:
        summary += f"agrees with {', '.join(k for k, v in agreement.items() if v) or 'no cue'}"
        if not all(agreement.values()):
            summary += f"; disagrees with {', '.join(k for k, v in agreement.items() if not v)}"
        if deciding == "ground_plane":
            summary += "; the ground plane decided it (without it the leg depth order changes)"
        elif deciding == "network":
            summary += "; the network's 3D decides it (the same without the ground plane)"
        elif deciding is not None:
            summary += "; the 2D fit with joint limits decides it even without the ground plane"
    return {
        "final": final,
        "cues": votes,
        "agreement": agreement,
        "hypotheses": [{"name": h["name"], "total": round(h["total"], 3),
                        "terms": {k: round(v, 3) for k, v in h["terms"].items()}} for h in ranked],
        "chosen_hypothesis": chosen,
        "deciding_cue": deciding,
        "without_ground": without_ground,
        "summary": summary,
    }
