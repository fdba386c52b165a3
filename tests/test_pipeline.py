"""munet.pipeline end to end on real photos with real MediaPipe and real Anny: alignment, depth, rig
consistency, partial bodies, options, cancellation. One pipeline and one reconstruction per photo
are shared by the whole module (the suite runs on 2 cores)."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from munet.errors import BadOptionsError, CancelledError, CheckpointError, NoPersonFoundError
from munet.reconstruction import Reconstruction, ReconstructOptions
from photos import real_photo
from test_pipeline_report import ALIGNMENT_KEYS, DEPTH_KEYS, LEG_DEPTH_KEYS, TOP_KEYS


@pytest.fixture(scope="module")
def pipeline():
    from munet.pipeline import default_pipeline

    return default_pipeline()


@pytest.fixture(scope="module")
def lunge(pipeline) -> Reconstruction:
    """The default method: the shipped network + refinement."""
    result = pipeline.reconstruct(real_photo("lunge.jpg"))
    assert result.report.method == "network"
    return result


@pytest.fixture(scope="module")
def lunge_fitting(pipeline) -> Reconstruction:
    return pipeline.reconstruct(real_photo("lunge.jpg"), ReconstructOptions(method="fitting"))


@pytest.fixture(params=["network", "fitting"])
def lunge_by_method(request, lunge, lunge_fitting) -> Reconstruction:
    return lunge if request.param == "network" else lunge_fitting


@pytest.fixture(scope="module")
def partial(pipeline) -> dict[str, Reconstruction]:
    return {name: pipeline.reconstruct(real_photo(name)) for name in ("astronaut.png", "grace_hopper.jpg")}


def _joint(reconstruction: Reconstruction, name: str) -> int:
    return reconstruction.skeleton.joint_names.index(name)


def _posed_joints(reconstruction: Reconstruction) -> np.ndarray:
    """Posed joint positions from the returned skeleton, pose and translation (forward kinematics)."""
    from munet.body.lbs import forward_kinematics
    from munet.geometry.rotations import axis_angle_to_matrix

    skeleton = reconstruction.skeleton
    rotations = axis_angle_to_matrix(torch.from_numpy(reconstruction.pose_axis_angle).double())[None]
    rest = torch.from_numpy(skeleton.rest_joints_m).double()[None]
    _, joints = forward_kinematics(rotations, rest, tuple(int(p) for p in skeleton.parents))
    return joints[0].numpy() + reconstruction.root_translation_m


def _lbs(reconstruction: Reconstruction, rest_vertices: np.ndarray) -> np.ndarray:
    """Pose a rest surface with the returned skeleton, pose, translation and sparse skin weights."""
    from munet.body.lbs import forward_kinematics, skin_vertices
    from munet.geometry.rotations import axis_angle_to_matrix

    skeleton = reconstruction.skeleton
    rotations = axis_angle_to_matrix(torch.from_numpy(reconstruction.pose_axis_angle).double())[None]
    rest_j = torch.from_numpy(skeleton.rest_joints_m).double()[None]
    global_rotations, joints = forward_kinematics(rotations, rest_j, tuple(int(p) for p in skeleton.parents))
    dense = torch.from_numpy(reconstruction.body.skin.dense(skeleton.num_joints)).double()
    posed = skin_vertices(torch.from_numpy(rest_vertices).double()[None], rest_j, global_rotations, joints, dense)
    return posed[0].numpy() + reconstruction.root_translation_m


def test_lunge_alignment_meets_the_targets(lunge_by_method):
    alignment = lunge_by_method.report.alignment
    assert alignment.clothed_iou >= 0.90
    assert alignment.keypoint_error_fraction <= 0.015
    assert alignment.body_iou > 0.6  # reported apart: clothes must not hide a bad body
    assert alignment.body_iou < alignment.clothed_iou


def test_lunge_depth_front_left_leg_away_from_camera(lunge_by_method):
    """The man faces away; his front (left) leg reaches away from the camera (DESIGN.md §7, issue 3)."""
    lunge = lunge_by_method
    joints = _posed_joints(lunge)
    _, depth = lunge.camera.project(joints.astype(np.float64))
    assert depth[_joint(lunge, "left_knee")] > depth[_joint(lunge, "right_knee")]
    assert depth[_joint(lunge, "left_ankle")] > depth[_joint(lunge, "right_ankle")] + 0.15
    # torso faces away: the pelvis' forward axis (rest: -Y) points away from the camera
    from scipy.spatial.transform import Rotation

    root = Rotation.from_rotvec(lunge.pose_axis_angle[0]).as_matrix()
    forward_cam = lunge.camera.R_world_to_cam @ (root @ np.array([0.0, -1.0, 0.0]))
    assert forward_cam[2] > 0.5
    depth_report = lunge.report.depth
    assert depth_report.final.torso_faces == "away from the camera"
    assert depth_report.agreement.ground_plane is True
    assert depth_report.cues.ground_plane.farther_foot == "left"
    # which cue won is explained: MediaPipe's world keypoints put the right knee farther
    assert depth_report.agreement.mediapipe_world is False
    if lunge.report.method == "fitting":
        # the refit without the floor term lands on a wrong-depth candidate, so the ground plane decided
        assert depth_report.deciding_cue == "ground_plane"
        assert depth_report.without_ground.changes_the_result is True
    else:  # the network reads the same wrong world keypoints yet gets the depth right, floor or not
        assert depth_report.deciding_cue in ("network", "ground_plane")
        # a lunge: the front shin stands about upright, so the front ankle is farther than the pelvis (issue 13)
        assert depth[_joint(lunge, "left_ankle")] > depth[_joint(lunge, "pelvis")] + 0.1


def test_reconstruction_is_a_consistent_rig(lunge):
    """Posed surfaces = LBS(rest surfaces) with the returned pose; feet on z = 0 at rest; shared topology."""
    body, clothed = lunge.body, lunge.clothed
    assert np.abs(_lbs(lunge, body.rest_vertices_m) - body.posed_vertices_m).max() < 1e-3
    assert np.abs(_lbs(lunge, clothed.rest_vertices_m) - clothed.posed_vertices_m).max() < 1e-3
    assert abs(float(body.rest_vertices_m[:, 2].min())) < 1e-4
    assert np.array_equal(body.faces, clothed.faces)
    assert lunge.skeleton.name == "smpl24" and lunge.skeleton.num_joints == 24
    assert lunge.pose_axis_angle.shape == (24, 3) and lunge.shape.shape == (6,)
    weights = body.skin.weights
    assert np.allclose(weights.sum(1), 1.0, atol=1e-5)
    # the clothed surface lies on or outside the body, along the normals
    offsets = np.linalg.norm(clothed.posed_vertices_m - body.posed_vertices_m, axis=1)
    assert offsets.max() < 0.25
    # posed feet stand on the floor
    assert abs(float(body.posed_vertices_m[:, 2].min())) < 0.02


def test_camera_projects_the_body_onto_the_person(lunge, pipeline):
    from munet.detect import load_image
    from munet.fitting.targets import person_mask
    from munet.geometry import rasterize_silhouette, silhouette_iou

    detection = pipeline.detector.detect(load_image(real_photo("lunge.jpg")))
    width, height = lunge.camera.image_size
    uv, depth = lunge.camera.project(lunge.clothed.posed_vertices_m.astype(np.float64))
    assert (depth > 0).all()
    sil = rasterize_silhouette(uv, lunge.clothed.faces, height, width)
    assert silhouette_iou(sil, person_mask(detection)) == pytest.approx(lunge.report.alignment.clothed_iou, abs=1e-3)


def test_report_has_the_issue_fields_and_is_json(lunge):
    report = json.loads(json.dumps(lunge.report.to_json()))
    assert list(report) == TOP_KEYS and list(report["alignment"]) == ALIGNMENT_KEYS  # what clients read
    assert list(report["depth"]) == DEPTH_KEYS and list(report["depth"]["final"]) == LEG_DEPTH_KEYS
    assert report["image"]["width"] == 1000 and report["image"]["height"] == 1498
    assert 0 < report["detector"]["confidence"] <= 1
    assert report["body_mesh"] == {"vertices": 13718, "faces": 27420}
    assert report["skeleton"]["name"] == "smpl24" and len(report["skeleton"]["joint_names"]) == 24
    for stage in ("detect", "initialise", "fit", "refine", "clothing", "texture", "total"):
        assert report["timings_ms"][stage] >= 0
    for key in ("clothed_iou", "body_iou", "keypoint_error_px", "keypoint_error_fraction"):
        assert key in report["alignment"]
    assert report["depth"]["summary"] and report["depth"]["hypotheses"]
    assert report["unseen_parts"] == []


@pytest.mark.parametrize("name", ["astronaut.png", "grace_hopper.jpg"])
def test_partial_body_gives_a_whole_standing_body_and_a_truthful_report(partial, name):
    reconstruction = partial[name]
    report = reconstruction.report
    assert "legs" in report.unseen_parts and "feet" in report.unseen_parts
    assert any("not seen in the photo" in note for note in report.notes)
    body = reconstruction.body
    assert body.posed_vertices_m.shape == (13718, 3)
    # whole and standing: feet on the floor, head up, upright
    assert abs(float(body.posed_vertices_m[:, 2].min())) < 0.03
    joints = _posed_joints(reconstruction)
    assert joints[_joint(reconstruction, "head"), 2] > 1.3
    # the unseen legs are the network's (no standing prior after it): a standing person's, knees at most
    # slightly bent (astronaut.png 29 degrees, grace_hopper.jpg 23), never a crouch
    knee_angles = [np.linalg.norm(reconstruction.pose_axis_angle[_joint(reconstruction, k)]) for k in ("left_knee", "right_knee")]
    assert max(knee_angles) < np.radians(40)
    assert report.alignment.clothed_iou > 0.85
    assert report.depth.summary.endswith("(legs as the network posed them)")
    # the hips the frame cuts off are not swollen by the few torso vertices measured at the frame's edge (an
    # arm beside them widens the mask there): astronaut.png's hip band had a 5.6 cm 95th percentile, 2.6 now
    assert "hips" in report.unseen_parts
    pelvis_z = reconstruction.skeleton.rest_joints_m[_joint(reconstruction, "pelvis"), 2]
    rest_z = body.rest_vertices_m[:, 2]
    hip_band = (rest_z > pelvis_z - 0.15) & (rest_z < pelvis_z + 0.05)
    offsets = np.linalg.norm(reconstruction.clothed.rest_vertices_m - body.rest_vertices_m, axis=1)
    assert np.percentile(offsets[hip_band], 95) < 0.04


def test_fitting_holds_unseen_legs_by_the_standing_prior(pipeline):
    """The fitting-only method has no network to pose the legs a portrait cuts off: its prior holds them
    straight, and the report says so."""
    reconstruction = pipeline.reconstruct(real_photo("astronaut.png"), ReconstructOptions(method="fitting", texture=False))
    knee_angles = [np.linalg.norm(reconstruction.pose_axis_angle[_joint(reconstruction, k)]) for k in ("left_knee", "right_knee")]
    assert max(knee_angles) < np.radians(25)
    assert reconstruction.report.depth.summary.endswith("(legs held by the standing prior)")


def test_full_skeleton(pipeline):
    reconstruction = pipeline.reconstruct(real_photo("lunge.jpg"), ReconstructOptions(skeleton="full", texture=False))
    assert reconstruction.skeleton.name == "full" and reconstruction.skeleton.num_joints == 104
    assert reconstruction.pose_axis_angle.shape == (104, 3)
    assert np.abs(_lbs(reconstruction, reconstruction.body.rest_vertices_m) - reconstruction.body.posed_vertices_m).max() < 1e-3
    assert np.abs(_lbs(reconstruction, reconstruction.clothed.rest_vertices_m)
                  - reconstruction.clothed.posed_vertices_m).max() < 1e-3
    assert reconstruction.texture is None and reconstruction.body.uv_per_corner is None
    assert reconstruction.report.skeleton.name == "full"


def test_progress_cancel_and_options(pipeline):
    stages = []
    pipeline.reconstruct(real_photo("grace_hopper.jpg"), ReconstructOptions(clothed=False, texture=False, refine_iterations=0),
                         progress=lambda stage, fraction: stages.append((stage, fraction)))
    names = [s for s, _ in stages]
    assert names[0] == "detect" and names[-1] == "done" and "clothing" not in names
    assert all(0.0 <= f <= 1.0 for _, f in stages) and [f for _, f in stages] == sorted(f for _, f in stages)

    cancel = threading.Event()
    cancel.set()
    with pytest.raises(CancelledError):
        pipeline.reconstruct(real_photo("grace_hopper.jpg"), cancel=cancel)
    with pytest.raises(CheckpointError):
        pipeline.reconstruct(real_photo("grace_hopper.jpg"), ReconstructOptions(checkpoint="model.safetensors"))
    with pytest.raises(BadOptionsError):
        pipeline.reconstruct(real_photo("grace_hopper.jpg"), ReconstructOptions(skeleton="hands"))
    if not torch.cuda.is_available():
        with pytest.raises(BadOptionsError, match="CUDA"):
            pipeline.reconstruct(real_photo("grace_hopper.jpg"), ReconstructOptions(device="cuda"))


def test_no_person_found(pipeline):
    blank = np.full((240, 320, 3), 200, np.uint8)
    with pytest.raises(NoPersonFoundError):
        pipeline.reconstruct(blank)


def test_info_is_json(pipeline):
    info = json.loads(json.dumps(pipeline.info()))
    assert "anny" in info["body_models"] and "full" in info["skeletons"]
    # the shipped network is available (and the default method)
    assert info["methods"] == ["fitting", "network"] and info["checkpoint"].endswith("munet.safetensors")


def test_smpl_body_model_from_user_files(pipeline, tmp_path):
    """body_model='smpl' runs the same pipeline on SMPL's topology (a synthetic file with the real
    structure: no real SMPL data exists here, so only the plumbing is checked, not the fit's quality)."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from smpl_synthetic import make_synthetic_smpl

    (tmp_path / "smpl").mkdir()
    make_synthetic_smpl(tmp_path / "smpl" / "SMPL_NEUTRAL.pkl")
    options = ReconstructOptions(body_model="smpl", smpl_dir=str(tmp_path), texture=False, refine_iterations=5)
    reconstruction = pipeline.reconstruct(real_photo("grace_hopper.jpg"), options)
    assert reconstruction.body_model == "smpl" and reconstruction.body.rest_vertices_m.shape == (6890, 3)
    assert reconstruction.shape.shape == (10,) and "beta0" in reconstruction.report.shape
    # pose correctives are baked into the returned rest surface, so plain LBS reproduces the posed one
    assert np.abs(_lbs(reconstruction, reconstruction.body.rest_vertices_m) - reconstruction.body.posed_vertices_m).max() < 1e-3
    with pytest.raises(BadOptionsError, match="smpl24"):
        pipeline.reconstruct(real_photo("grace_hopper.jpg"), ReconstructOptions(body_model="smpl", smpl_dir=str(tmp_path),
                                                                             skeleton="full"))


def test_mirrored_lunge_mirrors_the_depth(pipeline):
    """The same photo flipped left-right: now the person's right leg is the front one reaching away."""
    from PIL import Image

    mirrored = np.asarray(Image.open(real_photo("lunge.jpg")))[:, ::-1].copy()
    reconstruction = pipeline.reconstruct(mirrored, ReconstructOptions(texture=False, clothed=False))
    joints = _posed_joints(reconstruction)
    _, depth = reconstruction.camera.project(joints.astype(np.float64))
    assert depth[_joint(reconstruction, "right_knee")] > depth[_joint(reconstruction, "left_knee")]
    assert depth[_joint(reconstruction, "right_ankle")] > depth[_joint(reconstruction, "left_ankle")] + 0.15
    assert reconstruction.report.depth.final.torso_faces == "away from the camera"


def test_a_second_refinement_thread_changes_the_speed_not_the_result(pipeline, monkeypatch):
    """The refinement may use a second core: the reconstruction is the same either way, and a busy
    2-core machine keeps it on one thread unless its other core is idle."""
    from munet.pipeline import runner

    options = ReconstructOptions(texture=False, clothed=False)
    results = {}
    try:
        for threads in (1, 2):
            pipeline.refine_threads = threads
            results[threads] = pipeline.reconstruct(real_photo("lunge.jpg"), options)
    finally:
        pipeline.refine_threads = "auto"
    assert np.allclose(results[1].body.posed_vertices_m, results[2].body.posed_vertices_m, rtol=0.0, atol=1e-6)

    if sys.platform.startswith("linux"):  # the idle time is read from /proc/stat
        assert runner.idle_cpu_seconds() > 0.0
    monkeypatch.setattr(runner.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(runner.time, "process_time", lambda: 10.3)  # this process: one core for 0.3 s
    idle = {"now": 100.0}
    monkeypatch.setattr(runner, "idle_cpu_seconds", lambda: idle["now"])
    idle["now"] = 100.0 + 0.9 * 0.3  # the other core idle: a second thread
    assert runner.refine_thread_count(100.0, 10.0, 0.3) == 2
    idle["now"] = 100.0 + 0.1 * 0.3  # another job on it: one
    assert runner.refine_thread_count(100.0, 10.0, 0.3) == 1
    monkeypatch.setattr(runner.time, "process_time", lambda: 10.55)  # our own detector's threads on it: two
    assert runner.refine_thread_count(100.0, 10.0, 0.3) == 2
    monkeypatch.setattr(runner, "idle_cpu_seconds", lambda: None)  # unknown: only many-core machines
    assert runner.refine_thread_count(None, 10.0, 0.3) == 1
    monkeypatch.setattr(runner.os, "cpu_count", lambda: 8)
    assert runner.refine_thread_count(None, 10.0, 0.3) == 2
