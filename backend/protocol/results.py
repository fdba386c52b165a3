"""The result schema: ``ResultReconstruction`` and its parts, to and from their wire form.

Shapes, units and frames are in each class's docstring; the conventions they follow (Blender's world
frame, OpenCV's camera frame, SMPL-style joint frames, sparse skin weights, UVs v up) are stated once,
in the package docstring (``backend/protocol/__init__.py``), copied from ``munet/reconstruction.py``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .fields import ProtocolError, check_finite, check_int, check_keys, check_pair, check_plain, check_str, fail, to_plain
from .frames import FrameReader, FrameWriter


@dataclasses.dataclass(frozen=True)
class ResultSkinWeights:
    """joint_indices: (V, K) int32 into the skeleton's joints; weights: (V, K) float32, rows sum to 1."""

    joint_indices: np.ndarray
    weights: np.ndarray


@dataclasses.dataclass(frozen=True)
class ResultSurface:
    """A skinned triangle mesh (see the module docstring for frames).

    rest_vertices_m: (V, 3) float32, metres, world frame, rest pose (what a rig binds).
    posed_vertices_m: (V, 3) float32, metres, world frame, the reconstructed pose.
    faces: (F, 3) int32, counter-clockwise seen from outside.
    skin: (V, K) sparse weights.
    uv_per_corner: (F, 3, 2) float32 in [0, 1], v up, or None.
    """

    rest_vertices_m: np.ndarray
    posed_vertices_m: np.ndarray
    faces: np.ndarray
    skin: ResultSkinWeights
    uv_per_corner: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class ResultSkeleton:
    """name: "smpl24" or "full"; joint_names: (J,) parents first; parents: (J,) int32, -1 for the
    root; rest_joints_m: (J, 3) float32, metres, world frame."""

    name: str
    joint_names: tuple[str, ...]
    parents: np.ndarray
    rest_joints_m: np.ndarray


@dataclasses.dataclass(frozen=True)
class ResultCamera:
    """Pinhole camera, OpenCV camera frame. focal_px (fx, fy) and principal_point_px (cx, cy) in pixels
    of the photo; image_size (width, height); R_world_to_cam (3, 3) float64; t_world_to_cam_m (3,)
    float64, metres."""

    focal_px: tuple[float, float]
    principal_point_px: tuple[float, float]
    image_size: tuple[int, int]
    R_world_to_cam: np.ndarray
    t_world_to_cam_m: np.ndarray


@dataclasses.dataclass(frozen=True)
class ResultTexture:
    """Encoded image bytes (PNG or JPEG) for the clothed surface's material."""

    image_bytes: bytes | memoryview
    mime_type: str
    width: int
    height: int


TEXTURE_MIME_TYPES = ("image/png", "image/jpeg")


@dataclasses.dataclass(frozen=True)
class ResultReconstruction:
    """The wire form of ``munet.reconstruction.Reconstruction``: the same field names and meanings.

    pose_axis_angle: (J, 3) float32 radians; root_translation_m: (3,) float32 metres;
    shape: (S,) float32 body-model shape parameters; body_model: "anny" or "smpl";
    report: JSON-like map (timings, alignment, what was not seen).
    """

    body: ResultSurface
    clothed: ResultSurface | None
    skeleton: ResultSkeleton
    pose_axis_angle: np.ndarray
    root_translation_m: np.ndarray
    shape: np.ndarray
    body_model: str
    camera: ResultCamera
    texture: ResultTexture | None
    report: dict[str, Any]

    @classmethod
    def from_reconstruction(cls, rec: Any) -> "ResultReconstruction":
        """Convert any object with ``munet.reconstruction.Reconstruction``'s attributes (duck-typed,
        munet is not imported), casting arrays to the wire dtypes (no copy when already right)."""
        sk, cam, tex = rec.skeleton, rec.camera, rec.texture
        return cls(
            body=_surface_from(rec.body),
            clothed=_surface_from(rec.clothed),
            skeleton=ResultSkeleton(
                str(sk.name), tuple(str(n) for n in sk.joint_names),
                np.asarray(sk.parents, np.int32), np.asarray(sk.rest_joints_m, np.float32),
            ),
            pose_axis_angle=np.asarray(rec.pose_axis_angle, np.float32),
            root_translation_m=np.asarray(rec.root_translation_m, np.float32),
            shape=np.asarray(rec.shape, np.float32).reshape(-1),
            body_model=str(rec.body_model),
            camera=ResultCamera(
                tuple(float(v) for v in cam.focal_px), tuple(float(v) for v in cam.principal_point_px),
                tuple(int(v) for v in cam.image_size),
                np.asarray(cam.R_world_to_cam, np.float64), np.asarray(cam.t_world_to_cam_m, np.float64),
            ),
            texture=None if tex is None else ResultTexture(tex.image_bytes, str(tex.mime_type), int(tex.width), int(tex.height)),
            report=to_plain(rec.report.to_json()),
        )

    # -- wire form

    def to_wire(self, out: FrameWriter) -> dict:
        sk, cam, tex = self.skeleton, self.camera, self.texture
        return {
            "body_model": self.body_model,
            "skeleton": {
                "name": sk.name,
                "joint_names": list(sk.joint_names),
                "parents": out.array(sk.parents, "int32", 1, "skeleton.parents"),
                "rest_joints_m": out.array(sk.rest_joints_m, "float32", 2, "skeleton.rest_joints_m"),
            },
            "pose_axis_angle": out.array(self.pose_axis_angle, "float32", 2, "pose_axis_angle"),
            "root_translation_m": out.array(self.root_translation_m, "float32", 1, "root_translation_m"),
            "shape": out.array(self.shape, "float32", 1, "shape"),
            "body": _surface_to_wire(self.body, out, "body"),
            "clothed": _surface_to_wire(self.clothed, out, "clothed"),
            "camera": {
                "focal_px": list(cam.focal_px),
                "principal_point_px": list(cam.principal_point_px),
                "image_size": list(cam.image_size),
                "R_world_to_cam": out.array(cam.R_world_to_cam, "float64", 2, "camera.R_world_to_cam"),
                "t_world_to_cam_m": out.array(cam.t_world_to_cam_m, "float64", 1, "camera.t_world_to_cam_m"),
            },
            "texture": None if tex is None else {
                "image": out.blob(tex.image_bytes),
                "mime_type": tex.mime_type,
                "width": tex.width,
                "height": tex.height,
            },
            "report": self.report,
        }

    @classmethod
    def from_wire(cls, value: Any, frames: FrameReader, where: str = "reconstruction") -> "ResultReconstruction":
        limits = frames.limits
        check_keys(value, where, ("body_model", "skeleton", "pose_axis_angle", "root_translation_m", "shape",
                                  "body", "clothed", "camera", "texture", "report"))
        body_model = check_str(value["body_model"], f"{where}.body_model", max_len=32)
        skeleton = _skeleton_from_wire(value["skeleton"], frames, f"{where}.skeleton")
        J = len(skeleton.joint_names)
        body = _surface_from_wire(value["body"], frames, f"{where}.body", J)
        clothed = None if value["clothed"] is None else _surface_from_wire(value["clothed"], frames, f"{where}.clothed", J)
        camera = _camera_from_wire(value["camera"], frames, f"{where}.camera")
        texture = None if value["texture"] is None else _texture_from_wire(value["texture"], frames, f"{where}.texture")
        report = value["report"]
        if not isinstance(report, dict):
            raise fail(f"{where}.report", "a map", report)
        return cls(
            body=body, clothed=clothed, skeleton=skeleton,
            pose_axis_angle=check_finite(frames.array(value["pose_axis_angle"], f"{where}.pose_axis_angle", "float32", (J, 3)), f"{where}.pose_axis_angle"),
            root_translation_m=check_finite(frames.array(value["root_translation_m"], f"{where}.root_translation_m", "float32", (3,)), f"{where}.root_translation_m"),
            shape=check_finite(frames.array(value["shape"], f"{where}.shape", "float32", (None,)), f"{where}.shape"),
            body_model=body_model, camera=camera, texture=texture,
            report=check_plain(report, f"{where}.report", limits),
        )


# --------------------------------------------------------------------------------------------------
# The parts, one function each way


def _surface_from(s: Any) -> ResultSurface | None:
    """A ``munet.reconstruction.SkinnedSurface``-like object (or None) in the wire dtypes."""
    if s is None:
        return None
    uv = getattr(s, "uv_per_corner", None)
    return ResultSurface(
        rest_vertices_m=np.asarray(s.rest_vertices_m, np.float32),
        posed_vertices_m=np.asarray(s.posed_vertices_m, np.float32),
        faces=np.asarray(s.faces, np.int32),
        skin=ResultSkinWeights(np.asarray(s.skin.joint_indices, np.int32), np.asarray(s.skin.weights, np.float32)),
        uv_per_corner=None if uv is None else np.asarray(uv, np.float32),
    )


def _surface_to_wire(s: ResultSurface | None, out: FrameWriter, where: str) -> dict | None:
    if s is None:
        return None
    return {
        "rest_vertices_m": out.array(s.rest_vertices_m, "float32", 2, f"{where}.rest_vertices_m"),
        "posed_vertices_m": out.array(s.posed_vertices_m, "float32", 2, f"{where}.posed_vertices_m"),
        "faces": out.array(s.faces, "int32", 2, f"{where}.faces"),
        "skin_joint_indices": out.array(s.skin.joint_indices, "int32", 2, f"{where}.skin_joint_indices"),
        "skin_weights": out.array(s.skin.weights, "float32", 2, f"{where}.skin_weights"),
        "uv_per_corner": None if s.uv_per_corner is None
        else out.array(s.uv_per_corner, "float32", 3, f"{where}.uv_per_corner"),
    }


def _skeleton_from_wire(value: Any, frames: FrameReader, where: str) -> ResultSkeleton:
    """Names, a parents-before-children tree and the rest joints."""
    limits = frames.limits
    sk = check_keys(value, where, ("name", "joint_names", "parents", "rest_joints_m"))
    names = sk["joint_names"]
    if not isinstance(names, list) or not 1 <= len(names) <= limits.max_joints:
        raise fail(f"{where}.joint_names", f"a list of 1 to {limits.max_joints} names", names)
    names = tuple(check_str(n, f"{where}.joint_names[{i}]", max_len=64) for i, n in enumerate(names))
    J = len(names)
    parents = frames.array(sk["parents"], f"{where}.parents", "int32", (J,))
    if parents[0] != -1 or np.any(parents[1:] < 0) or np.any(parents[1:] >= np.arange(1, J)):
        raise ProtocolError(f"{where}.parents: joint 0 must be the root (-1) and every parent must precede its child")
    return ResultSkeleton(
        check_str(sk["name"], f"{where}.name", max_len=32), names, parents,
        check_finite(frames.array(sk["rest_joints_m"], f"{where}.rest_joints_m", "float32", (J, 3)), f"{where}.rest_joints_m"),
    )


def _surface_from_wire(s: Any, frames: FrameReader, w: str, J: int) -> ResultSurface:
    """A surface whose skin weights index ``J`` joints."""
    limits = frames.limits
    check_keys(s, w, ("rest_vertices_m", "posed_vertices_m", "faces", "skin_joint_indices", "skin_weights", "uv_per_corner"))
    rest = check_finite(frames.array(s["rest_vertices_m"], f"{w}.rest_vertices_m", "float32", (None, 3)), f"{w}.rest_vertices_m")
    V = rest.shape[0]
    if not 1 <= V <= limits.max_vertices:
        raise ProtocolError(f"{w}: {V} vertices, expected 1 to {limits.max_vertices}")
    posed = check_finite(frames.array(s["posed_vertices_m"], f"{w}.posed_vertices_m", "float32", (V, 3)), f"{w}.posed_vertices_m")
    faces = frames.array(s["faces"], f"{w}.faces", "int32", (None, 3))
    if faces.size and (faces.min() < 0 or faces.max() >= V):
        raise ProtocolError(f"{w}.faces: vertex indices must lie in [0, {V})")
    idx = frames.array(s["skin_joint_indices"], f"{w}.skin_joint_indices", "int32", (V, None))
    K = idx.shape[1]
    if not 1 <= K <= limits.max_influences:
        raise ProtocolError(f"{w}.skin_joint_indices: {K} influences, expected 1 to {limits.max_influences}")
    if idx.min() < 0 or idx.max() >= J:
        raise ProtocolError(f"{w}.skin_joint_indices: joint indices must lie in [0, {J})")
    weights = check_finite(frames.array(s["skin_weights"], f"{w}.skin_weights", "float32", (V, K)), f"{w}.skin_weights")
    uv = None
    if s["uv_per_corner"] is not None:
        uv = check_finite(frames.array(s["uv_per_corner"], f"{w}.uv_per_corner", "float32", (faces.shape[0], 3, 2)), f"{w}.uv_per_corner")
    return ResultSurface(rest, posed, faces, ResultSkinWeights(idx, weights), uv)


def _camera_from_wire(value: Any, frames: FrameReader, where: str) -> ResultCamera:
    cam = check_keys(value, where, ("focal_px", "principal_point_px", "image_size", "R_world_to_cam", "t_world_to_cam_m"))
    return ResultCamera(
        check_pair(cam["focal_px"], f"{where}.focal_px", float, 1e-6, 1e9),
        check_pair(cam["principal_point_px"], f"{where}.principal_point_px", float, -1e9, 1e9),
        check_pair(cam["image_size"], f"{where}.image_size", int, 1, 1 << 20),
        check_finite(frames.array(cam["R_world_to_cam"], f"{where}.R_world_to_cam", "float64", (3, 3)), f"{where}.R_world_to_cam"),
        check_finite(frames.array(cam["t_world_to_cam_m"], f"{where}.t_world_to_cam_m", "float64", (3,)), f"{where}.t_world_to_cam_m"),
    )


def _texture_from_wire(value: Any, frames: FrameReader, where: str) -> ResultTexture:
    tex = check_keys(value, where, ("image", "mime_type", "width", "height"))
    return ResultTexture(
        frames.blob(tex["image"], f"{where}.image", frames.limits.max_buffer_bytes),
        check_str(tex["mime_type"], f"{where}.mime_type", choices=TEXTURE_MIME_TYPES),
        check_int(tex["width"], f"{where}.width", 1, 1 << 16),
        check_int(tex["height"], f"{where}.height", 1, 1 << 16),
    )
