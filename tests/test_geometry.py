"""munet.geometry: the rasteriser (against OpenCV's per-triangle fill), the z-buffer, mesh utilities, metrics."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from munet.geometry import (
    keypoint_error,
    mask_outline,
    mean_neighbour_operator,
    outline_vertices,
    rasterize_silhouette,
    rasterize_zbuffer,
    silhouette_iou,
    smooth_field,
    vertex_normals,
)


def _sphere(radius=1.0):
    import trimesh

    mesh = trimesh.creation.icosphere(subdivisions=3, radius=radius)
    return np.asarray(mesh.vertices), np.asarray(mesh.faces)


def _opencv_fill(vertices_px: np.ndarray, faces: np.ndarray, height: int, width: int) -> np.ndarray:
    out = np.zeros((height, width), np.uint8)
    points = np.round((vertices_px - 0.5) * 16).astype(np.int32)  # cv2 pixel centres are integers
    for tri in faces:
        cv2.fillConvexPoly(out, points[tri], 1, lineType=cv2.LINE_8, shift=4)
    return out.astype(bool)


def test_silhouette_matches_opencv_per_triangle_fill():
    rng = np.random.default_rng(0)
    vertices, faces = _sphere()
    vertices = vertices @ np.linalg.qr(rng.normal(size=(3, 3)))[0]
    uv = vertices[:, :2] * 40 + np.array([60.3, 50.7])
    ours = rasterize_silhouette(uv, faces, 100, 120)
    reference = _opencv_fill(uv, faces, 100, 120)
    # same area up to the boundary pixels (OpenCV's fill rule is a little more generous on edges)
    assert silhouette_iou(ours, reference) > 0.97
    area = np.pi * 40**2
    assert abs(ours.sum() - area) / area < 0.02


def test_overlapping_triangles_do_not_cancel():
    """The even-odd pitfall of cv2.fillPoly (DESIGN.md §7): overlaps must stay filled."""
    vertices = np.array([[10, 10], [90, 10], [10, 90], [20, 20], [95, 20], [20, 95]], float)
    faces = np.array([[0, 1, 2], [3, 4, 5]])
    sil = rasterize_silhouette(vertices, faces, 100, 100)
    assert sil[30, 30]  # inside both triangles
    both = rasterize_silhouette(vertices, faces[:1], 100, 100) | rasterize_silhouette(vertices, faces[1:], 100, 100)
    assert np.array_equal(sil, both)


def test_winding_and_pixel_centres():
    square = np.array([[2.0, 2.0], [6.0, 2.0], [6.0, 6.0], [2.0, 6.0]])
    ccw = np.array([[0, 1, 2], [0, 2, 3]])
    sil = rasterize_silhouette(square, ccw, 8, 8)
    assert np.array_equal(sil, rasterize_silhouette(square, ccw[:, ::-1], 8, 8))
    assert sil.sum() == 16 and sil[2:6, 2:6].all()  # centres 2.5 .. 5.5


def test_large_triangle_and_empty_input():
    big = np.array([[-100.0, -100.0], [5000.0, -100.0], [-100.0, 5000.0]])
    assert rasterize_silhouette(big, np.array([[0, 1, 2]]), 50, 60).all()
    empty = rasterize_silhouette(np.zeros((0, 2)), np.zeros((0, 3), int), 5, 5)
    assert not empty.any()
    ids, depth = rasterize_zbuffer(np.zeros((0, 2)), np.zeros(0), np.zeros((0, 3), int), 5, 5)
    assert (ids == -1).all() and np.isinf(depth).all()


def test_zbuffer_keeps_the_nearest_surface():
    tri = np.array([[5.0, 5.0], [60.0, 5.0], [5.0, 60.0]])
    vertices = np.concatenate([tri, tri + 2.0])
    faces = np.array([[0, 1, 2], [3, 4, 5]])
    depth = np.array([2.0, 2.0, 2.0, 1.0, 1.0, 1.0])
    ids, zbuf = rasterize_zbuffer(vertices, depth, faces, 64, 64)
    assert ids[20, 20] == 1 and zbuf[20, 20] == pytest.approx(1.0)
    ids, zbuf = rasterize_zbuffer(vertices, depth[::-1].copy(), faces, 64, 64)
    assert ids[20, 20] == 0 and zbuf[20, 20] == pytest.approx(1.0)
    assert ids[0, 0] == -1 and np.isinf(zbuf[0, 0])


def test_zbuffer_interpolates_depth_perspective_correctly():
    vertices = np.array([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]])
    depth = np.array([1.0, 3.0, 1.0])
    _, zbuf = rasterize_zbuffer(vertices, depth, np.array([[0, 1, 2]]), 100, 100)
    # along the top edge 1/z is linear in x: at x = 50, 1/z = (1 + 1/3) / 2
    assert zbuf[0, 49] == pytest.approx(1.0 / (1.0 - (49.5 / 100) * (2.0 / 3.0)), rel=1e-3)


def test_rasteriser_checks_its_inputs():
    with pytest.raises(ValueError, match=r"\(V, 2\)"):
        rasterize_silhouette(np.zeros((3, 3)), np.array([[0, 1, 2]]), 5, 5)
    with pytest.raises(ValueError, match=r"\(F, 3\)"):
        rasterize_silhouette(np.zeros((3, 2)), np.array([0, 1, 2]), 5, 5)
    with pytest.raises(ValueError, match="depth_m"):
        rasterize_zbuffer(np.zeros((3, 2)), np.zeros(2), np.array([[0, 1, 2]]), 5, 5)


def test_vertex_normals_point_outwards():
    vertices, faces = _sphere(2.0)
    normals = vertex_normals(vertices, faces)
    assert np.allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-5)
    assert (np.einsum("ij,ij->i", normals, vertices / 2.0) > 0.99).all()


def test_outline_vertices_lie_on_the_silhouette_rim():
    vertices, faces = _sphere()
    uv = vertices[:, :2] * 40 + 50
    sil = rasterize_silhouette(uv, faces, 100, 100)
    rim = outline_vertices(uv, sil)
    radius = np.linalg.norm(vertices[rim, :2], axis=1)
    assert rim.size > 20 and radius.min() > 0.85 and radius.mean() > 0.97


def test_outline_vertices_match_a_search_over_every_vertex():
    """The band prefilter changes nothing: the same vertices as the plain nearest-vertex search, off-image
    vertices and candidate subsets included."""
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(3)
    for trial in range(60):
        height, width = (int(v) for v in rng.integers(20, 90, 2))
        sil = np.zeros((height, width), np.uint8)
        for _ in range(int(rng.integers(1, 4))):
            centre = (int(rng.integers(-5, width + 5)), int(rng.integers(-5, height + 5)))
            axes = (int(rng.integers(3, 30)), int(rng.integers(3, 30)))
            cv2.ellipse(sil, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        points = rng.uniform(-12, max(height, width) + 12, (int(rng.integers(50, 1500)), 2))
        distance = float(rng.choice([1.0, 1.5, 2.0, 3.3]))
        candidates = None if trial % 2 else np.sort(rng.choice(len(points), len(points) // 2, replace=False))
        eroded = cv2.erode(sil, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
        rows, cols = np.nonzero(sil & (1 - eroded))
        index = np.arange(len(points)) if candidates is None else candidates
        expected = np.zeros(0, np.int64)
        if rows.size:
            gap, nearest = cKDTree(points[index]).query(np.stack([cols + 0.5, rows + 0.5], 1))
            expected = np.unique(index[nearest[gap <= distance]])
        assert np.array_equal(outline_vertices(points, sil.astype(bool), candidates, distance), expected)


def test_a_closed_mesh_silhouette_from_one_orientation_is_the_whole_silhouette():
    """``closed=True`` draws about half the faces for the same pixels: overlapping, non-convex closed
    meshes (two interpenetrating spheres and a torus) seen in perspective from many directions."""
    import trimesh
    from scipy.spatial.transform import Rotation

    parts = [trimesh.creation.icosphere(subdivisions=3, radius=0.5),
             trimesh.creation.icosphere(subdivisions=3, radius=0.4).apply_translation([0.5, 0.1, 0.0]),
             trimesh.creation.torus(major_radius=0.6, minor_radius=0.15).apply_translation([-0.3, -0.4, 0.2])]
    mesh = trimesh.util.concatenate(parts)
    for seed in range(12):
        points = mesh.vertices @ Rotation.random(random_state=seed).as_matrix().T + [0.0, 0.0, 3.0]
        uv = 150.0 * points[:, :2] / points[:, 2:] + [60.0, 50.0]
        full = rasterize_silhouette(uv, mesh.faces, 100, 120)
        assert full.sum() > 500
        assert np.array_equal(rasterize_silhouette(uv, mesh.faces, 100, 120, closed=True), full)
    # not for open meshes: a hemisphere seen from inside shows only its back faces
    bowl = trimesh.creation.icosphere(subdivisions=3)
    bowl = bowl.submesh([np.flatnonzero(bowl.triangles_center[:, 2] < 0)], append=True)
    uv = 150.0 * bowl.vertices[:, :2] / (bowl.vertices[:, 2:] + 3.0) + [60.0, 50.0]
    one_side = rasterize_silhouette(uv, bowl.faces, 100, 120, closed=True).sum()
    assert one_side < rasterize_silhouette(uv, bowl.faces, 100, 120).sum()


def test_mask_outline_and_frame_edges():
    mask = np.zeros((20, 20), bool)
    mask[5:20, 5:15] = True  # cut by the bottom edge
    inner = mask_outline(mask)
    with_border = mask_outline(mask, include_image_border=True)
    bottom = lambda pts: (pts[:, 1] == 19.5) & (pts[:, 0] > 6) & (pts[:, 0] < 14)  # noqa: E731
    assert not bottom(inner).any() and bottom(with_border).sum() == 8


def test_smoothing_keeps_held_values_and_fills_between():
    vertices, faces = _sphere()
    operator = mean_neighbour_operator(faces, len(vertices))
    held = np.abs(vertices[:, 2]) > 0.9
    values = np.where(vertices[:, 2] > 0, 1.0, 0.0)
    out = smooth_field(values, operator, 200, keep=held)
    assert np.allclose(out[held], values[held])
    middle = np.abs(vertices[:, 2]) < 0.05
    assert 0.3 < out[middle].mean() < 0.7


def test_metrics():
    a = np.zeros((10, 10), bool)
    b = np.zeros((10, 10), bool)
    a[:, :5] = True
    b[:, 2:7] = True
    assert silhouette_iou(a, b) == pytest.approx(30 / 70)
    assert silhouette_iou(a, a.astype(np.float32)) == 1.0
    assert silhouette_iou(np.zeros((3, 3), bool), np.zeros((3, 3), bool)) == 1.0
    assert keypoint_error(np.array([[0.0, 0.0], [3.0, 4.0]]), np.zeros((2, 2)), np.array([1.0, 1.0])) == 2.5
    assert np.isnan(keypoint_error(np.zeros((2, 2)), np.zeros((2, 2)), np.zeros(2)))


# ---- the batched rasteriser, checked against a brute-force point-in-triangle test ----------------


def _brute_force(points_px: np.ndarray, depth: np.ndarray, faces: np.ndarray, height: int, width: int):
    """Per pixel centre: covered (every edge function >= -EDGE_TOLERANCE), the nearest linearly
    interpolated depth (clamped to the triangle's corner range), and (F, H * W) every face's depth there
    (+inf where it does not cover the pixel), by testing every triangle."""
    from munet.geometry.raster import EDGE_TOLERANCE

    cols, rows = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    p = np.stack([cols.ravel(), rows.ravel()], 1)
    tri, z = points_px[faces], depth[faces]
    area = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    edges = []
    for i, j in ((1, 2), (2, 0), (0, 1)):
        a, b = tri[:, i], tri[:, j]
        edges.append(((a[:, 1] - b[:, 1])[:, None] * p[:, 0] + (b[:, 0] - a[:, 0])[:, None] * p[:, 1]
                      + (a[:, 0] * b[:, 1] - b[:, 0] * a[:, 1])[:, None]) * np.sign(area)[:, None])  # fmt: skip
    edges = np.stack(edges, -1)  # (F, P, 3)
    inside = (edges >= -EDGE_TOLERANCE).all(-1) & (np.abs(area) > 1e-12)[:, None]
    value = np.einsum("fpk,fk->fp", edges, z) / np.abs(area)[:, None]
    value = np.clip(value, z.min(1)[:, None], z.max(1)[:, None])
    candidates = np.where(inside, value, np.inf)  # (F, P)
    return inside.any(0).reshape(height, width), candidates.min(0).reshape(height, width), candidates


def test_rasterize_matches_brute_force_and_is_batch_independent():
    import torch

    from munet.geometry import rasterize

    rng = np.random.default_rng(1)
    vertices, faces = _sphere()
    meshes = []
    for _ in range(3):  # random rotations, squashed to slivers here and there, some corners off-raster
        rotated = vertices @ np.linalg.qr(rng.normal(size=(3, 3)))[0] * np.array([1.0, 0.4, 1.0])
        meshes.append(np.concatenate([rotated[:, :2] * 30 + rng.uniform(5, 40, 2), rotated[:, 2:] + 3.0], 1))
    points = torch.tensor(np.stack(meshes)[..., :2])
    depth = torch.tensor(np.stack(meshes)[..., 2])
    faces_t = torch.from_numpy(faces)
    batched = rasterize(points, faces_t, (48, 40), depth=depth, want_face_id=True)
    for k, mesh in enumerate(meshes):
        covered, nearest, per_face = _brute_force(mesh[:, :2], mesh[:, 2], faces, 40, 48)
        assert np.array_equal(batched.mask[k].numpy(), covered)
        assert np.allclose(batched.depth[k].numpy()[covered], nearest[covered], atol=1e-5)
        assert np.isinf(batched.depth[k].numpy()[~covered]).all() and (batched.face_id[k].numpy()[~covered] == -1).all()
        one = rasterize(points[k : k + 1], faces_t, (48, 40), depth=depth[k : k + 1], want_face_id=True)
        assert torch.equal(one.mask[0], batched.mask[k]) and torch.equal(one.depth[0], batched.depth[k])
        # each covered pixel's face holds the nearest depth there
        pixel = np.flatnonzero(covered)
        chosen = batched.face_id[k].numpy().ravel()[pixel]
        assert np.allclose(per_face[chosen, pixel], nearest.ravel()[pixel], atol=1e-5)


def test_numpy_wrappers_are_the_batched_rasteriser():
    import torch

    from munet.geometry import rasterize

    rng = np.random.default_rng(2)
    vertices, faces = _sphere()
    vertices = vertices @ np.linalg.qr(rng.normal(size=(3, 3)))[0]
    uv, depth = vertices[:, :2] * 25 + 30.3, vertices[:, 2] + 2.5
    raster = rasterize(torch.tensor(uv)[None], torch.from_numpy(faces), (64, 56))
    assert np.array_equal(rasterize_silhouette(uv, faces, 56, 64), raster.mask[0].numpy())
    ids, zbuf = rasterize_zbuffer(uv, depth, faces, 56, 64)
    assert np.array_equal(ids >= 0, raster.mask[0].numpy())
    # the z-buffer sees the near hemisphere: depth below the centre's, perspective-correct within 1 mm
    assert (zbuf[ids >= 0] <= 2.5 + 1e-3).all()


def test_large_photo_edges_stay_exact():
    """Float32 at ~1500 px must not move edges: a pixel-aligned square far from the origin."""
    square = np.array([[1402.0, 1203.0], [1406.0, 1203.0], [1406.0, 1207.0], [1402.0, 1207.0]])
    sil = rasterize_silhouette(square, np.array([[0, 1, 2], [0, 2, 3]]), 1300, 1500)
    assert sil.sum() == 16 and sil[1203:1207, 1402:1406].all()
    offset = square + np.array([0.5 - 1e-3, 0.0])  # centres at 1402.5 .. now just inside the left edge
    assert rasterize_silhouette(offset, np.array([[0, 1, 2], [0, 2, 3]]), 1300, 1500).sum() == 16


# ---- one home each: rotations, projection, hinge axes, normals ----------------------------------


def test_rotations_round_trip():
    import torch

    from munet.geometry.rotations import (
        axis_angle_to_matrix,
        axis_angle_to_matrix_np,
        euler_xyz_to_matrix,
        matrix_to_axis_angle,
        matrix_to_euler_xyz,
    )

    g = torch.Generator().manual_seed(0)
    euler = (torch.rand(50, 3, generator=g, dtype=torch.float64) - 0.5) * torch.tensor([6.0, 3.0, 6.0], dtype=torch.float64)
    rotation = euler_xyz_to_matrix(euler)
    rx = axis_angle_to_matrix(torch.stack([euler[:, 0], 0 * euler[:, 0], 0 * euler[:, 0]], -1))
    rz = axis_angle_to_matrix(torch.stack([0 * euler[:, 2], 0 * euler[:, 2], euler[:, 2]], -1))
    assert torch.allclose(rotation @ rx.transpose(1, 2), rz @ euler_xyz_to_matrix(euler * torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)))
    assert torch.allclose(matrix_to_euler_xyz(rotation, eps=0.0), euler, atol=1e-9)
    axis_angle = matrix_to_axis_angle(rotation)
    assert torch.allclose(axis_angle_to_matrix(axis_angle), rotation, atol=1e-9)
    assert np.allclose(axis_angle_to_matrix_np(axis_angle.numpy()), rotation.numpy(), atol=1e-9)
    zero = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    axis_angle_to_matrix(zero).sum().backward()
    assert torch.isfinite(zero.grad).all()


def test_pinhole_projection_torch_and_numpy_agree():
    import torch

    from munet.geometry.projection import project_pinhole

    K = np.array([[500.0, 0.0, 320.0], [0.0, 480.0, 240.0], [0.0, 0.0, 1.0]])
    points = np.array([[0.1, -0.2, 2.0], [0.0, 0.0, 4.0], [0.3, 0.1, 0.0]])
    expected = np.array([[345.0, 192.0], [320.0, 240.0]])
    assert np.allclose(project_pinhole(points, K)[:2], expected)
    assert np.isfinite(project_pinhole(points, K)).all()  # depth clamped, not divided by zero
    batched = project_pinhole(torch.tensor(points)[None].repeat(2, 1, 1), torch.tensor(K)[None].repeat(2, 1, 1))
    assert batched.shape == (2, 3, 2) and np.allclose(batched[1].numpy(), project_pinhole(points, K))


def test_hinge_axes_are_batched_unit_flexion_axes():
    import torch

    from munet.body.limits import HINGE_JOINT_NAMES, hinge_axes
    from munet.body.skeleton import SMPL24_INDEX, SMPL24_JOINTS

    assert [SMPL24_JOINTS[i] for i in SMPL24_INDEX.values()] == list(SMPL24_INDEX)
    joints = torch.randn(2, 3, 24, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    axes = hinge_axes(joints)
    assert axes.shape == (2, 3, 4, 3) and torch.allclose(axes.norm(dim=-1), torch.ones(2, 3, 4, dtype=torch.float64))
    assert torch.equal(hinge_axes(joints[1, 2]), axes[1, 2])
    knee = HINGE_JOINT_NAMES.index("left_knee")
    assert torch.equal(axes[..., knee, :], torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64).expand(2, 3, 3))
    elbow = HINGE_JOINT_NAMES.index("right_elbow")
    upper = joints[..., SMPL24_INDEX["right_elbow"], :] - joints[..., SMPL24_INDEX["right_shoulder"], :]
    assert torch.allclose((axes[..., elbow, :] * upper).sum(-1), torch.zeros(2, 3, dtype=torch.float64), atol=1e-12)


def test_torch_normals_match_numpy_and_have_gradients():
    import torch

    from munet.geometry import face_normals_torch, vertex_normals_torch

    vertices, faces = _sphere()
    v = torch.tensor(vertices)[None].repeat(2, 1, 1)
    f = torch.from_numpy(faces)
    assert np.allclose(vertex_normals_torch(v, f)[1].numpy(), vertex_normals(vertices, faces), atol=1e-6)
    face = face_normals_torch(v, f)[0].numpy()
    assert np.allclose(np.linalg.norm(face, axis=1), 1.0) and (np.einsum("ij,ij->i", face, vertices[faces].mean(1)) > 0).all()
    tetrahedron = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.1, 0.0], [0.2, 1.0, 0.1], [0.1, 0.2, 1.0]], dtype=torch.float64)
    tetrahedron_faces = torch.tensor([[0, 2, 1], [0, 3, 2], [0, 1, 3], [1, 2, 3]])
    assert torch.autograd.gradcheck(lambda x: vertex_normals_torch(x[None], tetrahedron_faces),
                                    (tetrahedron.requires_grad_(),))
