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
