"""munet.fitting: the solver, the pose parameterisation, point-subset posing, the full-skeleton rig,
clothing offsets, and the depth-hypothesis helpers. Real Anny throughout."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from munet.fitting.lm import levenberg_marquardt
from munet.fitting.pose import (
    FREE_JOINTS,
    HINGE_INDEX,
    POSE_SIZE,
    PoseLimits,
    compose_rotations,
    limit_residuals,
    pack_pose,
)


@pytest.fixture(scope="module")
def pipeline():
    from munet.pipeline import default_pipeline

    return default_pipeline()


@pytest.fixture(scope="module")
def fitter(pipeline):
    return pipeline._fitter("anny")


def _random_pose(rest_joints: torch.Tensor, batch: int, seed: int) -> torch.Tensor:
    from munet.body.limits import sample_plausible_poses

    return sample_plausible_poses(batch, rest_joints, torch.Generator().manual_seed(seed))


def test_levenberg_marquardt_solves_a_batched_curve_fit():
    t = torch.linspace(0, 2, 40, dtype=torch.float64)
    truth = torch.tensor([[2.0, -1.5], [0.5, 0.7]], dtype=torch.float64)
    data = truth[:, :1] * torch.exp(truth[:, 1:] * t)

    def residuals(x, owner):
        return x[:, :1] * torch.exp(x[:, 1:] * t) - data[owner]

    x, r, used = levenberg_marquardt(residuals, torch.ones(2, 2, dtype=torch.float64), iterations=100)
    assert torch.allclose(x, truth, atol=1e-5)
    assert used < 100  # stopped once settled
    assert (r**2).sum() < 1e-9


def test_pose_packing_and_limits():
    limits = PoseLimits(torch.float64)
    rest = torch.zeros(1, 24, 3, dtype=torch.float64)
    rest[0, 16:18] = torch.tensor([[0.2, 0.0, 1.3], [-0.2, 0.0, 1.3]], dtype=torch.float64)
    rest[0, 18:20] = torch.tensor([[0.45, 0.0, 1.1], [-0.45, 0.0, 1.1]], dtype=torch.float64)
    root = torch.eye(3, dtype=torch.float64)[None]
    zero = torch.zeros(1, POSE_SIZE, dtype=torch.float64)
    rotations = compose_rotations(root, zero, rest)
    assert torch.allclose(rotations, torch.eye(3, dtype=torch.float64).expand(1, 24, 3, 3))
    assert limit_residuals(rotations, zero, limits).abs().max() == 0  # hinges at 0 sit on their range's edge

    local = torch.zeros(1, 24, 3, dtype=torch.float64)
    local[0, FREE_JOINTS[0]] = torch.tensor([math.radians(60), 0, 0])  # left hip 60 deg backwards: beyond +30
    hinge = torch.tensor([[-0.2, 0.3, 0.1, 0.1]], dtype=torch.float64)  # left knee bent the wrong way
    pose = pack_pose(torch.zeros(1, 3, dtype=torch.float64), local, hinge)
    residual = limit_residuals(compose_rotations(root, pose, rest), pose, limits)
    assert residual[0, 0] == pytest.approx(math.radians(30), abs=1e-6)
    assert residual[0, -4] == pytest.approx(-0.2)  # the hinge excess, signed
    assert residual[0, -3:].abs().max() == 0
    # knees flex about +X (the shank swings backwards, +Y)
    knee = compose_rotations(root, pose, rest)[0, HINGE_INDEX[1]]
    assert (knee @ torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64))[1] > 0


def test_point_subsets_pose_exactly_like_the_full_model(fitter):
    body = fitter.body
    subset = fitter.subset
    shape = torch.tensor([[0.3, 0.6, 0.7, 0.4, 0.55, 0.5]])
    rest_v, rest_j = body.rest(shape)
    pose = _random_pose(rest_j[0], 3, seed=1)
    full = body.pose(rest_v, rest_j, pose, torch.tensor([[0.1, 2.0, 0.0]]).expand(3, 3))
    index = torch.arange(0, body.num_vertices, 37)
    sets = [subset.vertices(index), fitter.landmark_points]
    points, joints = subset.rest(shape.double().expand(3, -1), sets)
    from munet.geometry.rotations import axis_angle_to_matrix

    rotations = axis_angle_to_matrix(pose.double())
    translation = torch.tensor([[0.1, 2.0, 0.0]], dtype=torch.float64).expand(3, 3)
    (posed, landmarks), posed_j = subset.pose(points, sets, joints, rotations, translation)
    assert torch.allclose(posed.float(), full.vertices_m[:, index], atol=2e-5)
    assert torch.allclose(posed_j.float(), full.joints_m, atol=2e-5)
    # the regressed landmarks equal the regressor applied to the posed full mesh
    from munet.body.keypoints import MediaPipeRegressor

    exact = MediaPipeRegressor()(full.vertices_m)
    assert (landmarks.float() - exact).norm(dim=-1).max() < 1e-4


def test_full_skeleton_reproduces_the_smpl24_skinning(pipeline):
    from munet.fitting.rig import full_local_rotations

    body = pipeline._body("anny", "smpl24")
    full = pipeline._body("anny", "full")
    shape = torch.tensor([[0.5, 0.4, 0.6, 0.5, 0.5, 0.5]])
    rest_v, rest_j = body.rest(shape)
    rest_fv, rest_fj = full.rest(shape)
    pose = _random_pose(rest_j[0], 2, seed=3)
    pose[:, [10, 11, 22, 23]] = 0.0  # toes and fingers straight: then the mapping is exact
    out = body.pose(rest_v, rest_j, pose)
    local = full_local_rotations(full, out.global_rotations)
    out_full = full.pose_rotations(rest_fv, rest_fj, local)
    assert (out.vertices_m - out_full.vertices_m).norm(dim=-1).max() < 1e-4
    assert local.shape == (2, 104, 3, 3)


def test_leg_depth_flips_mirror_depth_only():
    from munet.fitting.landmarks import LM, flip_leg_depth

    rng = np.random.default_rng(0)
    world = rng.normal(size=(33, 3)).astype(np.float32)
    for segment in ("leg", "shank", "thigh"):
        flipped = flip_leg_depth(world, "left", segment)
        assert np.array_equal(flipped[:, [0, 2]], world[:, [0, 2]])
        assert np.array_equal(flipped[LM["right_knee"]], world[LM["right_knee"]])
    leg = flip_leg_depth(world, "left", "leg")
    hip_y = world[LM["left_hip"], 1]
    assert leg[LM["left_ankle"], 1] == pytest.approx(2 * hip_y - world[LM["left_ankle"], 1])
    with pytest.raises(ValueError):
        flip_leg_depth(world, "left", "arm")


def test_foot_contact_from_world_heights():
    from munet.fitting.landmarks import LM
    from munet.fitting.targets import foot_contact

    world = np.zeros((33, 3), np.float32)
    seen = np.ones(33, bool)
    for name in ("left_ankle", "left_heel", "left_foot_index", "right_ankle", "right_heel", "right_foot_index"):
        world[LM[name], 2] = -0.9
    assert foot_contact(world, seen) == {"left": True, "right": True}
    for name in ("right_ankle", "right_heel", "right_foot_index"):
        world[LM[name], 2] = -0.5  # right foot lifted 40 cm
    assert foot_contact(world, seen) == {"left": True, "right": False}
    assert foot_contact(world, np.zeros(33, bool)) == {"left": True, "right": True}  # unseen feet stand


def test_clothing_offsets_are_outside_capped_and_consistent(pipeline):
    """Clothing grown to fill a dilated silhouette: offsets >= 0, within caps, and posing the clothed rest
    surface with the body's pose gives back the clothed posed surface."""
    import cv2

    from munet.fitting import camera as cam
    from munet.fitting.clothing import fit_clothing, region_caps
    from munet.geometry import mean_neighbour_operator, rasterize_silhouette, silhouette_iou, vertex_normals
    from munet.reconstruction import Camera

    body = pipeline._body("anny", "smpl24")
    rest_v, rest_j = body.rest(body.default_shape)
    pose = _random_pose(rest_j[0], 1, seed=5)
    out = body.pose(rest_v, rest_j, pose, torch.tensor([[0.0, 3.0, 0.0]]))
    R, t = cam.camera_extrinsics(0.05, 1.0)
    camera = Camera((900.0, 900.0), (250.0, 300.0), (500, 600), R, t)
    faces = body.faces.numpy()
    posed = out.vertices_m[0].numpy()
    uv, _ = camera.project(posed.astype(np.float64))
    body_sil = rasterize_silhouette(uv, faces, 600, 500)
    mask = cv2.dilate(body_sil.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    dense = body.dense_weights.numpy()
    caps = region_caps(dense, tuple(body.joint_names), vertex_normals(rest_v[0].numpy(), faces))
    skin_rotations = np.einsum("vj,jab->vab", dense, out.global_rotations[0].numpy())
    result = fit_clothing(posed, rest_v[0].numpy(), faces, camera, mask, caps, skin_rotations,
                          operator=mean_neighbour_operator(faces, len(posed)))
    assert result.offsets_m.min() >= 0 and (result.offsets_m <= caps + 1e-6).all()
    clothed_sil = rasterize_silhouette(camera.project(result.posed_vertices_m.astype(np.float64))[0], faces, 600, 500)
    assert silhouette_iou(clothed_sil, mask) > silhouette_iou(body_sil, mask) + 0.05
    from munet.body.lbs import skin_vertices

    reposed = skin_vertices(torch.from_numpy(result.rest_vertices_m)[None], rest_j, out.global_rotations,
                            out.joints_m - torch.tensor([0.0, 3.0, 0.0]), body.dense_weights)[0] + torch.tensor([0.0, 3.0, 0.0])
    assert np.abs(reposed.numpy() - result.posed_vertices_m).max() < 1e-4
    # forearms and hands stay close to the body whatever the mask says
    forearm = dense[:, body.joint_names.index("left_wrist")] > 0.9
    assert result.offsets_m[forearm].max() <= 0.015
