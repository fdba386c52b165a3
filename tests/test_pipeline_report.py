"""The typed reconstruction report (``munet.report``): its JSON is the contract with the CLI's ``--report``,
the NPZ's ``report_json`` and the server's ``report`` map, so its keys, their order and values are pinned
here without running the pipeline (tests/test_pipeline.py checks a real lunge report has the same keys)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from munet.report import (AlignmentReport, CameraReport, ClothedMeshReport, CueAgreement, DepthCues, DepthReport,
                          DetectorReport, FootDirection, GroundPlaneVote, Hypothesis, ImageReport, LegDepths,
                          LegOrderVote, MeshReport, NetworkReport, PlainReport, ReconstructionReport, SkeletonReport,
                          TextureReport, Timings, WithoutGround)

TOP_KEYS = ["method", "notes", "image", "detector", "facing", "feet_on_floor", "body_model", "shape",
            "standing_height_m", "skeleton", "body_mesh", "clothed_mesh", "camera", "timings_ms", "alignment", "depth",
            "unseen_parts", "texture", "network"]
"""The report's keys as the lunge reconstruction writes them (network last, only when the network ran)."""
ALIGNMENT_KEYS = ["body_iou", "clothed_iou", "keypoint_error_px", "keypoint_error_fraction", "keypoint_error_all_seen_px",
                  "keypoints_scored", "person_height_px", "model_keypoints_px"]
DEPTH_KEYS = ["final", "cues", "agreement", "hypotheses", "chosen_hypothesis", "deciding_cue", "without_ground", "summary"]
LEG_DEPTH_KEYS = ["left_hip_depth_m", "right_hip_depth_m", "left_knee_depth_m", "right_knee_depth_m", "left_ankle_depth_m",
                  "right_ankle_depth_m", "left_knee_minus_right_knee_m", "left_ankle_minus_right_ankle_m", "torso_faces",
                  "farther_knee", "farther_ankle"]


def _depth() -> DepthReport:
    final = LegDepths(4.0, 4.136, 4.234, 4.097, 3.949, 3.768, 0.137, 0.18, "away from the camera", "left", "left")
    cues = DepthCues(
        ground_plane=GroundPlaneVote("left", {"left": 1304.4, "right": 1381.5}),
        mediapipe_world=LegOrderVote("right", "left"),
        foot_direction={"left": FootDirection((-74.6, -3.6), "away"), "right": FootDirection((-47.1, 84.3), "towards")},
    )
    return DepthReport(
        final=final, cues=cues, agreement=CueAgreement(ground_plane=True, mediapipe_world=False),
        hypotheses=(Hypothesis("munet", 4.849, {"keypoints": 1.926, "ground": 0.001}),),
        chosen_hypothesis="munet", deciding_cue="ground_plane",
        without_ground=WithoutGround(-0.002, 0.012, "munet", True), summary="result: left knee and left ankle farther",
    )


def make_report(clothed: bool = True, network: bool = True) -> ReconstructionReport:
    """A report with the lunge's shape of data (numbers from examples/lunge.jpg)."""
    model_px = np.round(np.linspace(400.0, 1300.0, 66).reshape(33, 2), 1)
    return ReconstructionReport(
        method="network" if network else "fitting",
        notes=(),
        image=ImageReport(1000, 1498, "JPEG", 1),
        detector=DetectorReport((1000, 1498), 0.9241, (368.0, 682.0, 868.0, 1394.0), (), 33),
        facing="away from the camera",
        feet_on_floor={"left": True, "right": True},
        body_model="anny",
        shape={"gender": 0.0102, "age": 0.6905},
        standing_height_m=1.577,
        skeleton=SkeletonReport("smpl24", ("pelvis", "left_hip")),
        body_mesh=MeshReport(13718, 27420),
        clothed_mesh=ClothedMeshReport(13718, 27420, 0.0831, 0.0145) if clothed else None,
        camera=CameraReport(2218.31, 2161.33, "estimated", 9.71, 1.746),
        timings_ms=Timings({"detect": 131.9, "initialise": 201.1, "fit": 155.2}, 1812.5),
        alignment=AlignmentReport(0.7841, 0.9362 if clothed else None, 12.4, 0.01446, 13.22, 24, 858.0, model_px),
        depth=_depth(),
        unseen_parts=(),
        texture=TextureReport(592, 822, "image/jpeg"),
        network=NetworkReport("checkpoints/munet.safetensors", 18.41, {"gender": 0.0129}) if network else None,
    )


def test_to_json_round_trips_through_json_with_the_clients_keys():
    report = make_report()
    data = report.to_json()
    assert json.loads(json.dumps(data)) == data
    assert list(data) == TOP_KEYS
    assert list(data["alignment"]) == ALIGNMENT_KEYS
    assert list(data["depth"]) == DEPTH_KEYS and list(data["depth"]["final"]) == LEG_DEPTH_KEYS
    assert data["depth"]["without_ground"] == {"left_knee_minus_right_knee_m": -0.002, "left_ankle_minus_right_ankle_m": 0.012,
                                               "hypothesis": "munet", "changes_the_result": True}
    assert data["depth"]["cues"] == {
        "ground_plane": {"farther_foot": "left", "contact_row_px": {"left": 1304.4, "right": 1381.5}},
        "mediapipe_world": {"farther_knee": "right", "farther_ankle": "left"},
        "foot_direction": {"left": {"heel_to_toe_px": [-74.6, -3.6], "toe_points": "away"},
                           "right": {"heel_to_toe_px": [-47.1, 84.3], "toe_points": "towards"}},
    }  # a cue that did not vote is left out, not null
    assert data["depth"]["agreement"] == {"ground_plane": True, "mediapipe_world": False}
    assert data["depth"]["hypotheses"] == [{"name": "munet", "total": 4.849, "terms": {"keypoints": 1.926, "ground": 0.001}}]
    assert data["image"] == {"width": 1000, "height": 1498, "format": "JPEG", "exif_orientation": 1}
    assert data["detector"]["person_box_px"] == [368.0, 682.0, 868.0, 1394.0] and data["detector"]["unseen_parts"] == []
    assert data["camera"] == {"focal_px": 2218.31, "focal_prior_px": 2161.33, "focal_source": "estimated",
                              "pitch_deg": 9.71, "height_m": 1.746}
    assert data["clothed_mesh"]["max_offset_m"] == 0.0831 and data["texture"]["mime_type"] == "image/jpeg"
    assert data["network"] == {"checkpoint": "checkpoints/munet.safetensors", "forward_ms": 18.41, "shape": {"gender": 0.0129}}
    keypoints = data["alignment"]["model_keypoints_px"]
    assert len(keypoints) == 33 and all(len(p) == 2 and isinstance(p[0], float) for p in keypoints)
    assert data["timings_ms"] == {"detect": 131.9, "initialise": 201.1, "fit": 155.2, "total": 1812.5}
    assert data["skeleton"] == {"name": "smpl24", "joint_names": ["pelvis", "left_hip"]}


def test_absent_parts_are_null_or_left_out_as_before():
    data = make_report(clothed=False, network=False).to_json()
    assert "network" not in data and "clothed_iou" not in data["alignment"]
    assert data["clothed_mesh"] is None
    assert json.loads(json.dumps(data)) == data


def test_export_time_is_added_to_the_timings_and_the_total():
    report = make_report().with_export_ms(154.24)
    timings = report.to_json()["timings_ms"]
    assert list(timings)[-2:] == ["total", "export"]
    assert timings["export"] == 154.2 and timings["total"] == pytest.approx(1966.7)
    assert report.timings_ms.total_ms == timings["total"] and make_report().timings_ms.export_ms is None


def test_to_json_gives_a_fresh_copy():
    report = make_report()
    report.to_json()["timings_ms"]["total"] = -1.0
    report.to_json()["shape"]["age"] = -1.0
    assert report.timings_ms.total_ms == 1812.5 and report.shape["age"] == 0.6905
    plain = PlainReport({"engine": "fake", "timings_ms": {"total": 1.0}})
    plain.to_json()["timings_ms"]["total"] = 2.0
    assert plain.to_json() == {"engine": "fake", "timings_ms": {"total": 1.0}}
