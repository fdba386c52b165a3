"""The evaluation benchmark: metrics on known cases, the harness end to end, the method adapters."""

from __future__ import annotations

import numpy as np
import pytest

from training.evaluation import metrics as M


def _rotation(axis: str, degrees: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    c, s = np.cos(a), np.sin(a)
    return {"x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]), "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[axis]  # fmt: skip


@pytest.fixture(scope="module")
def joints() -> np.ndarray:
    """A standing person's smpl24 joints in a camera frame (facing the camera, 3 m away)."""
    from training.data.poses import average_rest_joints

    world = average_rest_joints()[0].numpy()
    to_cam = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])  # faces the camera looking along +Y
    return world @ to_cam.T + np.array([0.1, 0.4, 3.0])


def test_pa_mpjpe_of_a_rotated_scaled_copy_is_zero(joints):
    moved = 1.3 * joints @ _rotation("y", 40).T @ _rotation("x", 15).T + np.array([0.5, -0.2, 1.0])
    assert M.pa_mpjpe_mm(moved, joints) < 1e-6
    assert M.mpjpe_mm(moved, joints) > 100.0, "MPJPE does not forgive rotation and scale"
    assert M.mpjpe_mm(joints + np.array([0.3, 0.1, -2.0]), joints) < 1e-9, "MPJPE is root-aligned"


def test_pve_is_root_aligned_and_in_millimetres(joints):
    vertices = joints[[0, 3, 6, 9]]
    shifted = vertices + 0.5
    assert M.pve_mm(shifted, vertices, joints[0] + 0.5, joints[0]) < 1e-9
    assert M.pve_mm(vertices + np.array([0.01, 0, 0]), vertices, joints[0], joints[0]) == pytest.approx(10.0)


def test_depth_order_of_a_mirrored_depth_is_low(joints):
    posed = joints.copy()
    posed[[4, 7, 10], 2] -= 0.4  # the left leg reaches towards the camera
    posed[[18, 20, 22], 2] += 0.3  # the left arm away from it
    accuracy, pairs = M.depth_order_accuracy(posed, posed)
    assert accuracy == 1.0 and pairs > 20
    mirrored = posed.copy()
    mirrored[:, 2] = 2 * posed[:, 2].mean() - posed[:, 2]
    assert M.depth_order_accuracy(mirrored, posed)[0] == 0.0
    flat = joints.copy()
    flat[:, 2] = 3.0
    assert np.isnan(M.depth_order_accuracy(flat, flat)[0]), "no pair is 10 cm apart in depth"


def test_depth_order_by_joint_points_at_the_joint_put_at_the_wrong_depth(joints):
    posed = joints.copy()
    posed[[4, 7, 10], 2] -= 0.4  # the left leg reaches towards the camera
    guess = posed.copy()
    guess[M.J["left_wrist"], 2] += 1.0  # the prediction sends one wrist far behind everything
    pairs, wrong = M.depth_order_by_joint(guess, posed)
    accuracy, counted = M.depth_order_accuracy(guess, posed)
    assert pairs.sum() == 2 * counted and wrong.sum() == 2 * round((1 - accuracy) * counted)
    assert wrong[M.J["left_wrist"]] == wrong.sum() / 2 > 0, "every wrong pair has the wrist in it"
    assert wrong[M.J["right_wrist"]] <= 1


def test_facing_accuracy(joints):
    centre = joints[0]
    turned = (joints - centre) @ _rotation("y", 180).T + centre  # seen from behind: vertical axis = camera y
    error, same_side = M.facing_error_deg(turned, joints)
    assert error == pytest.approx(180.0, abs=1e-6) and not same_side
    slightly = (joints - centre) @ _rotation("y", 20).T + centre
    error, same_side = M.facing_error_deg(slightly, joints)
    assert error == pytest.approx(20.0, abs=0.5) and same_side
    assert M.forward_direction(joints)[2] < -0.99, "a person facing the camera points along -z"


def test_point_to_mesh_matches_brute_force():
    rng = np.random.default_rng(0)
    vertices = rng.normal(size=(40, 3))
    faces = rng.integers(0, 40, size=(60, 3))
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]
    points = rng.normal(size=(50, 3)) * 1.5
    distance, _ = M.point_to_mesh(points, vertices, faces, candidates=len(faces))
    tri = vertices[faces]
    closest = M.closest_points_on_triangles(points[:, None], tri[None, :, 0], tri[None, :, 1], tri[None, :, 2])
    brute = np.linalg.norm(closest - points[:, None], axis=-1).min(1)
    assert np.allclose(distance, brute)


@pytest.fixture(scope="module")
def body_mesh(anny_body):
    import torch

    with torch.no_grad():
        vertices = anny_body().vertices_m[0].numpy().astype(np.float64)
    return vertices, anny_body.faces.numpy()


def test_surface_metrics_zero_for_the_same_surface_and_one_centimetre_for_an_offset(body_mesh):
    import torch

    from munet.geometry.mesh import vertex_normals_torch as vertex_normals

    vertices, faces = body_mesh
    same = M.surface_metrics(vertices, vertices, faces, count=3000)
    assert same["chamfer_cm"] < 0.05 and same["p2s_cm"] < 0.05 and same["normal_consistency"] > 0.97
    normals = vertex_normals(torch.from_numpy(vertices)[None], torch.from_numpy(faces))[0].numpy()
    inflated = vertices + 0.01 * normals
    moved = M.surface_metrics(inflated, vertices, faces, count=3000)
    assert 0.8 < moved["chamfer_cm"] < 1.05 and 0.8 < moved["p2s_cm"] < 1.05


def test_iou():
    a = np.zeros((10, 10), bool)
    b = np.zeros((10, 10), bool)
    a[:5], b[:, :5] = True, True
    assert M.iou(a, a) == 1.0 and M.iou(a, b) == pytest.approx(25 / 75) and M.iou(a & False, b & False) == 1.0


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    import torch

    from training.data.config import DataConfig
    from training.data.generate import generate_dataset

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("testset")
    config = DataConfig(resolution=128, batch_size=4, shard_size=4, store_body_mask=True)
    generate_dataset(root, config, seed=2000003, count=4, workers=0)
    return root


def test_harness_oracle_is_perfect_and_floor_is_not(tiny_set):
    from training.evaluation import harness

    records = harness.run(str(tiny_set), ["oracle", "floor"], limit=4, workers=1, surface_points=2000)
    summary = harness.aggregate(records, ["oracle", "floor"])
    oracle = summary["oracle"]["all"]["metrics"]
    floor = summary["floor"]["all"]["metrics"]
    for key in ("mpjpe_mm", "pa_mpjpe_mm", "pve_mm", "kp2d_px"):
        assert oracle[key]["mean"] < 1e-3, key
        assert floor[key]["mean"] > 20, key
    # the truth's masks were rendered with back faces culled, predictions are rendered without: ~same
    assert oracle["chamfer_cm"]["mean"] < 0.1 and oracle["iou_clothed"]["mean"] > 0.998 and oracle["iou_body"]["mean"] > 0.998
    assert oracle["depth_order_acc"]["mean"] == 1.0 and oracle["facing_acc"]["mean"] == 1.0
    assert floor["iou_clothed"]["mean"] < 0.9
    text = harness.table(summary)
    assert "oracle (reference, uses truth)" in text and "PA-MPJPE mm" in text
    by_joint = summary["oracle"]["all"]["depth_order_by_joint"]
    assert len(by_joint) == 24 and all(v == 1.0 for v in by_joint.values() if v == v)
    assert "| left_ankle |" in harness.depth_order_table(summary)


def test_people_off_the_floor_are_their_own_subset():
    from training.data.engine import FAMILY_NAMES
    from training.evaluation import harness

    def record(family: str, error: float) -> dict:
        return {"framing": 0, "family": FAMILY_NAMES.index(family), "skirt": 0, "methods": {"m": {"pa_mpjpe_mm": error}}}

    records = [record("stand", 50.0), record("jump", 80.0), record("step", 100.0), record("walk", 60.0)]
    summary = harness.aggregate(records, ["m"])["m"]
    assert summary["off_floor"]["samples"] == 2 and summary["off_floor"]["metrics"]["pa_mpjpe_mm"]["mean"] == 90.0
    assert summary["all"]["samples"] == 4


def test_replayed_detection_matches_the_sample(tiny_set):
    """The adapter's Detection puts the crop's mask back into the photo where the crop reads it."""
    from munet.detect import CropParams, crop_image
    from training.data.dataset import ShardDataset
    from training.evaluation.methods import inputs_of

    sample = ShardDataset(tiny_set)[1]
    inputs = inputs_of(sample)
    detection = inputs.detection()
    width, height = inputs.image_size
    assert detection.mask.shape == (height, width)
    crop = CropParams(tuple(float(v) for v in sample["crop_center_px"]), float(sample["crop_side_px"]))
    again = crop_image(detection.mask, crop, sample["mask"].shape[0])
    inside = np.asarray(sample["gt_mask"], bool)
    assert np.abs(again - sample["mask"])[inside].mean() < 0.05
    assert np.array_equal(detection.seen, sample["seen"])
    x0, y0, x1, y1 = detection.person_box_px
    assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height


def test_fitting_method_runs_on_a_synthetic_sample(tiny_set):
    from training.data.dataset import ShardDataset
    from training.evaluation.harness import Scorer
    from training.evaluation.methods import inputs_of, make_method

    sample = ShardDataset(tiny_set)[0]
    method = make_method("fitting")
    prediction = method.predict(inputs_of(sample))
    assert prediction.body_vertices_cam.shape == (13718, 3) and prediction.body_joints_cam.shape == (24, 3)
    assert prediction.clothed_vertices_cam.shape == (13718, 3) and "total" in prediction.timings_ms
    scores = Scorer(surface_points=1000).score(sample, prediction, 0)
    assert scores["mpjpe_mm"] < 400 and scores["iou_clothed"] > 0.5 and scores["kp2d_height_pct"] < 10


def test_method_specs():
    from training.evaluation.methods import make_method

    assert make_method("oracle").name == "oracle"
    assert make_method("best=oracle").name == "best"
    with pytest.raises(ValueError, match="unknown method"):
        make_method("magic")
