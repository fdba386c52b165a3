"""Shared helpers for the add-on tests (no tests here): install the built extension into a headless
bpy with a temporary user folder, a synthetic stick-figure result, numpy skinning, evaluated vertices,
backend processes, the Reconstruct operator's flow, and the one real reconstruction of the example photo
that all add-on test modules share (``lunge_character``)."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import pathlib
import sys
import tempfile
import time

import numpy as np
import pytest
from photos import IMAGES as SHARED_IMAGES

REPO = pathlib.Path(__file__).resolve().parents[1]
ADDON_MODULE = "bl_ext.user_default.munet_blender"
#: The example photo every clone has (the same file as tests/data/lunge.jpg).
EXAMPLE_PHOTO = REPO / "examples" / "lunge.jpg"
MOTIONS = REPO / "examples" / "motions"

SMPL24 = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle", "right_ankle",
    "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand",
)
PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
# A-pose joints, Blender frame (Z up, faces -Y, the person's left is +X); right side mirrors left.
_HALF = {"pelvis": (0, 0, 0.95), "spine1": (0, 0.01, 1.06), "spine2": (0, 0.01, 1.19), "spine3": (0, 0, 1.3),
         "neck": (0, 0.01, 1.5), "head": (0, -0.02, 1.6), "left_hip": (0.08, 0, 0.88), "left_knee": (0.1, -0.01, 0.49),
         "left_ankle": (0.1, 0.02, 0.08), "left_foot": (0.11, -0.1, 0.02), "left_collar": (0.07, 0, 1.42),
         "left_shoulder": (0.18, 0, 1.42), "left_elbow": (0.36, 0.01, 1.22), "left_wrist": (0.52, -0.01, 1.03),
         "left_hand": (0.56, -0.02, 0.97)}


def rest_joints() -> np.ndarray:
    out = []
    for name in SMPL24:
        if name.startswith("right_"):
            x, y, z = _HALF["left_" + name[6:]]
            out.append((-x, y, z))
        else:
            out.append(_HALF[name])
    return np.array(out, np.float32)


def axis_angle_to_matrix(aa: np.ndarray) -> np.ndarray:
    aa = np.asarray(aa, np.float64).reshape(-1, 3)
    angle = np.linalg.norm(aa, axis=1)
    k = aa / np.maximum(angle, 1e-12)[:, None]
    K = np.zeros((len(aa), 3, 3))
    K[:, 0, 1], K[:, 0, 2], K[:, 1, 2] = -k[:, 2], k[:, 1], -k[:, 0]
    K -= K.transpose(0, 2, 1)
    s, c = np.sin(angle)[:, None, None], np.cos(angle)[:, None, None]
    return np.eye(3) + s * K + (1 - c) * K @ K


def lbs(rest_v, joints, parents, pose_aa, root_t, idx, w) -> np.ndarray:
    """SMPL-convention skinning (the protocol's definition): (V, 3) posed vertices."""
    R = axis_angle_to_matrix(pose_aa)
    J = len(parents)
    G = np.zeros((J, 4, 4))
    for j in range(J):
        local = np.eye(4)
        local[:3, :3] = R[j]
        local[:3, 3] = joints[j] - (joints[parents[j]] if parents[j] >= 0 else 0)
        G[j] = local if parents[j] < 0 else G[parents[j]] @ local
    A = G.copy()
    A[:, :3, 3] -= np.einsum("jab,jb->ja", G[:, :3, :3], joints)
    T = np.einsum("vk,vkab->vab", w, A[idx])  # (V, 4, 4)
    return np.einsum("vab,vb->va", T[:, :3, :3], rest_v) + T[:, :3, 3] + root_t


def stick_figure(protocol, pose_aa=None, root_t=(0.0, 0.0, 0.0), per_bone: int = 40, texture: bytes | None = None):
    """A synthetic result: around every bone a ring of vertices skinned fully to that bone's joint."""
    joints = rest_joints().astype(np.float64)
    J = len(SMPL24)
    children = {p: c for c, p in reversed(list(enumerate(PARENTS))) if p >= 0}
    verts, faces, idx = [], [], []
    rng = np.random.default_rng(0)
    for j in range(J):
        tail = joints[children[j]] if j in children else joints[j] + (joints[j] - joints[PARENTS[j]]) * 0.5
        t = rng.uniform(0.2, 0.8, per_bone)[:, None]
        pts = joints[j] + t * (tail - joints[j]) + rng.normal(0, 0.015, (per_bone, 3))
        base = len(verts) * per_bone
        verts.append(pts)
        faces.append(base + np.stack([np.arange(per_bone - 2), np.arange(1, per_bone - 1), np.arange(2, per_bone)], 1))
        idx.append(np.full(per_bone, j))
    rest_v = np.concatenate(verts).astype(np.float32)
    faces = np.concatenate(faces).astype(np.int32)
    V = len(rest_v)
    joint_idx = np.stack([np.concatenate(idx), np.zeros(V, int)], 1).astype(np.int32)
    weights = np.stack([np.ones(V), np.zeros(V)], 1).astype(np.float32)
    pose = np.zeros((J, 3)) if pose_aa is None else np.asarray(pose_aa, np.float64)
    posed = lbs(rest_v, joints, np.array(PARENTS), pose, np.asarray(root_t), joint_idx, weights).astype(np.float32)
    uv = (rng.random((len(faces), 3, 2))).astype(np.float32)
    skin = protocol.ResultSkinWeights(joint_idx, weights)
    body = protocol.ResultSurface(rest_v, posed, faces, skin, uv)
    clothed = protocol.ResultSurface(rest_v * np.float32(1.02), posed * np.float32(1.0), faces, skin, uv)
    R = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # camera in front (-Y), looking +Y
    return protocol.ResultReconstruction(
        body=body, clothed=clothed,
        skeleton=protocol.ResultSkeleton("smpl24", SMPL24, np.array(PARENTS, np.int32), joints.astype(np.float32)),
        pose_axis_angle=pose.astype(np.float32), root_translation_m=np.asarray(root_t, np.float32),
        shape=np.zeros(11, np.float32), body_model="anny",
        camera=protocol.ResultCamera((1500.0, 1500.0), (500.0, 600.0), (1000, 1200), R, np.array([0.0, -0.9, 3.0])),
        texture=None if texture is None else protocol.ResultTexture(texture, "image/png", 4, 4),
        report={"engine": "test"},
    )


def png_bytes(width: int = 4, height: int = 4) -> bytes:
    import struct
    import zlib

    raw = b"".join(b"\x00" + bytes([200, 120, 90]) * width for _ in range(height))
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def evaluated_vertices(obj) -> np.ndarray:
    import bpy

    depsgraph = bpy.context.evaluated_depsgraph_get()
    depsgraph.update()
    ev = obj.evaluated_get(depsgraph)
    mesh = ev.to_mesh()
    co = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", co)
    ev.to_mesh_clear()
    return (np.array(obj.matrix_world) @ np.c_[co.reshape(-1, 3), np.ones(len(co) // 3)].T).T[:, :3]


_INSTALLED = {}


def installed_addon():
    """Build the zip, install it into a headless bpy with a temporary user folder; returns the module."""
    if "module" in _INSTALLED:
        return _INSTALLED["module"]
    if "bpy" not in sys.modules:
        os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="munet-blender-user-")
    try:
        import bpy
    except ImportError:
        pytest.skip("bpy (Blender as a Python module) is not installed")
    user = os.environ.get("BLENDER_USER_RESOURCES", "")
    if not user or not bpy.utils.resource_path("USER").startswith(user):
        pytest.skip("bpy was imported before BLENDER_USER_RESOURCES was set: refusing to install into the real user folder")
    sys.path.insert(0, str(REPO))
    import build_addon

    zip_path = build_addon.build()
    bpy.ops.wm.read_homefile(use_empty=True)
    result = bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default",
                                                       enable_on_install=True)
    assert result == {"FINISHED"}, result
    module = importlib.import_module(ADDON_MODULE)
    _INSTALLED["module"], _INSTALLED["zip"] = module, zip_path
    return module


def fresh_scene():
    import bpy

    addon = installed_addon()
    addon.jobs.Jobs.current = None
    bpy.ops.wm.read_homefile(use_empty=True)
    return bpy


def start_server(engine: str, timeout: float, **fake):
    """A started ``munet serve`` child process (``engine``: "real" or "fake")."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests.doubles.processes import ServerProcess

    server = ServerProcess(engine=engine, **fake)
    try:
        server.start(ready_timeout_s=timeout)
    except RuntimeError:
        server.cleanup()
        raise
    return server


def reconstruct(addon, endpoint: str, photo=EXAMPLE_PHOTO, limit_s: float = 600.0, **settings):
    """Run the operator and drive the poll function until the request ends; returns the panel state."""
    import bpy

    s = bpy.context.scene.munet
    s.photo_path, s.endpoint = str(photo), endpoint
    for key, value in settings.items():
        setattr(s, key, value)
    assert bpy.ops.munet.reconstruct() == {"FINISHED"}
    deadline = time.monotonic() + limit_s
    while addon.jobs.Jobs.current is not None and time.monotonic() < deadline:
        addon.jobs.poll(wait_s=0.2)
    assert addon.jobs.Jobs.current is None, "the request did not end in time"
    return bpy.context.window_manager.munet


@dataclasses.dataclass
class LungeCharacter:
    """The example photo reconstructed once by the real backend through the add-on's operator.

    blend: the scene right after the build, saved; result: the decoded ``ResultReconstruction`` the add-on
    built from; stage, message, build_s: the panel's state; seconds: request to built character;
    undo_left: what one Ctrl+Z right after the build left behind (names; empty when it removed it all)."""

    blend: pathlib.Path
    result: object
    stage: str
    message: str
    build_s: float
    seconds: float
    undo_left: list


_LUNGE: dict = {}


def lunge_character() -> LungeCharacter:
    """Reconstruct ``EXAMPLE_PHOTO`` with the real pipeline once per test session (a real ``munet serve``,
    stopped afterwards); skips only while ``munet.pipeline`` cannot be imported."""
    if "character" in _LUNGE:
        return _LUNGE["character"]
    if importlib.util.find_spec("munet.pipeline") is None:
        pytest.skip("munet.pipeline cannot be imported yet: the real-backend add-on test needs the pipeline")
    addon = installed_addon()
    server = start_server("real", 600)
    captured = []
    build = addon.scene.build_character

    def capture(rec, *args, **kwargs):
        captured.append(rec)
        return build(rec, *args, **kwargs)

    try:
        bpy = fresh_scene()
        addon.scene.build_character = capture
        start = time.perf_counter()
        st = reconstruct(addon, server.endpoint)
        seconds = time.perf_counter() - start
    finally:
        addon.scene.build_character = build
        server.cleanup()
    blend = pathlib.Path(tempfile.mkdtemp(prefix="munet-lunge-")) / "lunge.blend"
    if st.stage == "done":
        bpy.ops.wm.save_as_mainfile(filepath=str(blend), copy=True)
        bpy.ops.ed.undo()
    left = [c.name for c in bpy.data.collections] + [o.name for o in bpy.data.objects]
    _LUNGE["character"] = LungeCharacter(blend, captured[0] if captured else None, st.stage, st.message,
                                         st.last_build_s, seconds, left)
    return _LUNGE["character"]


def open_character(path):
    """Open a saved scene; returns (bpy, the armature, {mesh name: mesh object}) with the Body selected."""
    import bpy

    installed_addon()
    bpy.ops.wm.open_mainfile(filepath=str(path))
    arm = next(o for o in bpy.data.objects if o.type == "ARMATURE")
    meshes = {o.name: o for o in bpy.data.objects if o.type == "MESH" and o.parent == arm}
    for obj in bpy.context.view_layer.objects:
        obj.select_set(False)
    meshes["Body"].select_set(True)
    bpy.context.view_layer.objects.active = meshes["Body"]
    return bpy, arm, meshes
