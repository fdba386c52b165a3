"""The body-model layer: Anny build/load, the smpl24 mapping, skinning, fitting, keypoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from munet.body import SMPL24_PARENTS
from munet.body.skeleton import SMPL24_INDEX
from munet.body.limits import sample_plausible_poses
from munet.body.vertex_fit import fit_to_vertices

J = SMPL24_INDEX


def test_anny_loads_in_blender_frame(anny_body):
    out = anny_body()
    vertices = out.vertices_m[0]
    assert anny_body.num_vertices == 13718 and anny_body.faces.shape == (27420, 3)
    assert vertices.dtype == torch.float32
    assert abs(vertices[:, 2].min().item()) < 1e-6, "feet on z=0 in the rest pose"
    assert 1.5 < vertices[:, 2].max().item() < 1.8, "an average adult is ~1.6 m tall"
    joints = out.joints_m[0]
    assert joints[J["left_shoulder"], 0] > 0.1 > -0.1 > joints[J["right_shoulder"], 0], "person's left is +X"
    nose_y = vertices[vertices[:, 2] > 1.45, 1].min()
    assert nose_y < joints[J["head"], 1] - 0.05, "the face looks towards -Y"


def test_skin_weights_sum_to_one_and_are_sparse(anny_body):
    weights = anny_body.dense_weights
    assert weights.shape == (13718, 24)
    assert torch.allclose(weights.sum(1), torch.ones(13718), atol=1e-5)
    sparse = anny_body.skin_weights()
    assert np.allclose(sparse.weights.sum(1), 1.0, atol=1e-5)
    assert np.allclose(sparse.dense(24), weights.numpy(), atol=1e-6)
    assert tuple(anny_body.parents) == SMPL24_PARENTS


def test_zero_pose_returns_rest_mesh(anny_body):
    shape = torch.tensor([[0.2, 0.7, 0.4, 0.6, 0.3, 0.5]])
    rest_vertices, rest_joints = anny_body.rest(shape)
    out = anny_body(shape, torch.zeros(1, 24, 3))
    assert torch.allclose(out.vertices_m, rest_vertices, atol=1e-6)
    assert torch.allclose(out.joints_m, rest_joints, atol=1e-6)


def _ring(rest_vertices: torch.Tensor, rest_joint: torch.Tensor, axis: torch.Tensor, near: torch.Tensor) -> torch.Tensor:
    """The vertices of the limb (``near``) in the rest-pose cross-section through a joint,
    perpendicular to the bone ``axis``."""
    along = (rest_vertices - rest_joint) @ (axis / axis.norm())
    ring = near & (along.abs() < 0.015)
    assert ring.sum() >= 8, "no cross-section found around the joint"
    return ring


LIMB_CHECKS = [  # joint, child joint, limb joints whose vertices form the cross-section
    ("left_knee", "left_ankle", ("left_hip", "left_knee")),
    ("right_knee", "right_ankle", ("right_hip", "right_knee")),
    ("left_elbow", "left_wrist", ("left_shoulder", "left_elbow")),
    ("right_elbow", "right_wrist", ("right_shoulder", "right_elbow")),
    ("left_wrist", "left_hand", ("left_elbow", "left_wrist")),
    ("left_ankle", "left_foot", ("left_knee", "left_ankle")),
]


@pytest.mark.parametrize("seed", [None, 1, 2, 3])
def test_smpl24_joints_sit_inside_the_limbs(anny_body, seed):
    """Knees at the knees, elbows at the elbows, wrists at the wrists, hips in the hip sockets: each
    joint is the centre of the limb's cross-section through it, in the rest pose and posed."""
    shape = anny_body.default_shape
    rest_vertices, rest_joints = anny_body.rest(shape)
    pose = torch.zeros(1, 24, 3)
    if seed is not None:
        pose = sample_plausible_poses(1, rest_joints[0], torch.Generator().manual_seed(seed))
    out = anny_body.pose(rest_vertices, rest_joints, pose)
    vertices, joints = out.vertices_m[0], out.joints_m[0]
    weights = anny_body.dense_weights
    # posed, linear blend skinning thins the inside of a deeply bent knee or elbow: allow a little more
    tolerance = 0.03 if seed is None else 0.045
    for joint, child, limb in LIMB_CHECKS:
        near = weights[:, [J[n] for n in limb]].sum(1) > 0.5
        ring = _ring(rest_vertices[0], rest_joints[0, J[joint]], rest_joints[0, J[child]] - rest_joints[0, J[joint]], near)
        offset = (vertices[ring].mean(0) - joints[J[joint]]).norm().item()
        assert offset < tolerance, f"{joint} is {offset * 100:.1f} cm off the centre of its limb (seed {seed})"
    # hips in the sockets: inside the body between front and back, between the midline and the outer
    # surface, at the top of the thigh
    for side, sign in (("left", 1), ("right", -1)):
        hip = joints[J[f"{side}_hip"]]
        column = ((vertices[:, 0] - hip[0]).abs() < 0.02) & ((vertices[:, 2] - hip[2]).abs() < 0.02)
        front, back = vertices[column, 1].min(), vertices[column, 1].max()
        assert front + 0.03 < hip[1] < back - 0.03, f"{side} hip not inside the pelvis (seed {seed})"
        row = ((vertices[:, 1] - hip[1]).abs() < 0.02) & ((vertices[:, 2] - hip[2]).abs() < 0.02)
        assert (sign * vertices[row, 0]).max() > sign * hip[0] + 0.03, f"{side} hip outside the body (seed {seed})"
        hip = rest_joints[0, J[f"{side}_hip"]]
        assert 0.05 < sign * hip[0] < 0.14
        knee, pelvis = rest_joints[0, J[f"{side}_knee"]], rest_joints[0, J["pelvis"]]
        assert knee[2] + 0.3 < hip[2] <= pelvis[2] + 0.02


def test_rotating_left_elbow_moves_only_left_forearm(anny_body):
    pose = torch.zeros(1, 24, 3)
    pose[0, J["left_elbow"]] = torch.tensor([0.0, 0.0, 1.2])
    rest = anny_body()
    posed = anny_body(pose_axis_angle=pose)
    moved = (posed.vertices_m - rest.vertices_m)[0].norm(dim=-1)
    w = anny_body.dense_weights
    assert moved[w[:, J["left_elbow"]] > 0.9].mean() > 0.05
    assert moved[w[:, J["right_elbow"]] > 0.9].max() < 1e-6
    untouched = w[:, [J["left_elbow"], J["left_wrist"], J["left_hand"]]].sum(1) == 0
    assert moved[untouched].max() < 1e-6


def test_fitting_recovers_shape_and_pose(anny_body):
    generator = torch.Generator().manual_seed(7)
    errors = []
    for _ in range(3):
        shape = torch.rand(1, 6, generator=generator) * 0.8 + 0.1
        _, rest_joints = anny_body.rest(shape)
        pose = sample_plausible_poses(1, rest_joints[0], generator)
        translation = torch.randn(1, 3, generator=generator)
        with torch.no_grad():
            target = anny_body(shape, pose, translation).vertices_m
        fit = fit_to_vertices(anny_body, target)
        errors.append(fit.mean_error_m.item())
    assert np.mean(errors) < 0.005, f"mean vertex errors {np.round(np.array(errors) * 1000, 2)} mm"
    assert max(errors) < 0.008


def test_shape_alone_is_read_from_a_posed_rotated_body(anny_body):
    from munet.body.vertex_fit import fit_shape
    from munet.geometry.rotations import axis_angle_to_matrix

    generator = torch.Generator().manual_seed(3)
    shape = torch.rand(1, 6, generator=generator) * 0.8 + 0.1
    _, rest_joints = anny_body.rest(shape)
    pose = sample_plausible_poses(1, rest_joints[0], generator)
    with torch.no_grad():
        target = anny_body(shape, pose).vertices_m
    target = target @ axis_angle_to_matrix(torch.tensor([[0.3, -1.2, 0.4]]))[0].T + torch.tensor([0.5, 2.0, -1.0])
    fitted = fit_shape(anny_body, target)
    with torch.no_grad():
        error = (anny_body.rest(fitted)[0] - anny_body.rest(shape)[0]).norm(dim=-1).mean()
        average = (anny_body.rest(anny_body.default_shape)[0] - anny_body.rest(shape)[0]).norm(dim=-1).mean()
    assert float(error) < 0.25 * float(average) and float(error) < 0.01, (float(error), float(average))


def test_rest_vertices_at_a_few_ids_are_the_full_rest_body_up_to_a_translation(anny_body):
    """The shape fit measures distances on a few hundred vertices (``BodyModel.rest_vertices_at``): they
    must be the full rest body's, for any shape, and follow the shape's gradient."""
    index = torch.tensor([0, 17, 4000, 9000, anny_body.num_vertices - 1])
    rest_at = anny_body.rest_vertices_at(index)
    shapes = torch.rand(3, 6, generator=torch.Generator().manual_seed(5)).requires_grad_(True)
    few = rest_at(shapes)
    full = anny_body.rest(shapes)[0][:, index]
    offset = full - few
    assert torch.allclose(offset, offset[:, :1].expand_as(offset), atol=1e-5)  # one translation per body
    (few[:, 1:] - few[:, :1]).norm(dim=-1).sum().backward()
    assert shapes.grad is not None and float(shapes.grad.abs().sum()) > 0


def test_full_skeleton_has_anny_bones():
    from munet.body import load_body_model

    full = load_body_model("anny", skeleton="full")
    assert full.num_joints == 104 and "finger2-3.L" in full.joint_names
    assert torch.allclose(full.dense_weights.sum(1), torch.ones(full.num_vertices), atol=1e-5)
    rest = full()
    pose = torch.zeros(1, 104, 3)
    pose[0, full.joint_names.index("lowerarm01.L")] = torch.tensor([0.0, 0.0, 1.0])
    posed = full(pose_axis_angle=pose)
    fingertips = posed.joints_m[0, full.joint_names.index("finger2-3.L")]
    assert (fingertips - rest.joints_m[0, full.joint_names.index("finger2-3.L")]).norm() > 0.1


def test_mediapipe_regressor_places_landmarks(anny_body):
    from munet.body.keypoints import MEDIAPIPE_LANDMARKS, MediaPipeRegressor

    regressor = MediaPipeRegressor()
    out = anny_body()
    landmarks = regressor(out.vertices_m)[0]
    assert landmarks.shape == (33, 3) and len(MEDIAPIPE_LANDMARKS) == 33
    assert torch.allclose(regressor.weights.sum(1), torch.ones(33), atol=1e-5)
    L = {n: landmarks[i] for i, n in enumerate(MEDIAPIPE_LANDMARKS)}
    joints = {n: out.joints_m[0, i] for n, i in J.items()}
    for name in ("left_knee", "right_knee", "left_elbow", "left_wrist", "left_hip", "left_ankle"):
        assert (L[name] - joints[name]).norm() < 0.04, name
    assert L["nose"][2] > L["mouth_left"][2] > L["left_shoulder"][2]
    assert L["left_eye_outer"][0] > L["left_eye"][0] > L["left_eye_inner"][0] > 0
    assert L["left_foot_index"][1] < L["left_ankle"][1] < L["left_heel"][1], "toes forward (-Y), heel back"
