"""The installed add-on against a real backend process: operator, poll loop, errors, cancel, export, render.

The main test runs `munet serve` with the real pipeline once for all add-on test modules
(``test_addon_support.lunge_character``; skipped, with the reason, only while ``munet.pipeline`` cannot be
imported). The same operator flow also runs against the backend's test engine (``MUNET_TEST_ENGINE=fake``),
and every protocol error code comes from a tiny ROUTER that answers with it.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from test_addon_support import (EXAMPLE_PHOTO, REPO, SMPL24, evaluated_vertices, fresh_scene, installed_addon,
                                lunge_character, reconstruct, start_server)

zmq = pytest.importorskip("zmq")

PHOTO = EXAMPLE_PHOTO
OUT = REPO / "out"


@pytest.fixture(scope="module")
def addon():
    return installed_addon()


@pytest.fixture(scope="module")
def fake_server():
    server = start_server("fake", 60, stage_s=0.0)
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
def slow_server():
    server = start_server("fake", 60, stage_s=3.0)
    yield server
    server.cleanup()


def prefs(bpy):
    return bpy.context.preferences.addons["bl_ext.user_default.munet_blender"].preferences


def check_character(bpy, name: str = "lunge", joints=SMPL24):
    coll = bpy.data.collections[name]
    arms = [o for o in coll.objects if o.type == "ARMATURE"]
    assert len(arms) == 1
    arm = arms[0]
    assert sorted(b.name for b in arm.data.bones) == sorted(joints)
    meshes = {o.name: o for o in coll.objects if o.type == "MESH"}
    assert set(meshes) == {"Body", "Clothed"}
    for obj in meshes.values():
        assert obj.parent == arm
        assert sorted(g.name for g in obj.vertex_groups) == sorted(joints)
        assert [m.type for m in obj.modifiers] == ["ARMATURE"] and obj.modifiers[0].object == arm
        mat = obj.data.materials[0]
        images = [n.image for n in mat.node_tree.nodes if n.type == "TEX_IMAGE"]
        assert images and images[0] is not None and images[0].size[0] > 0
    cams = [o for o in coll.objects if o.type == "CAMERA"]
    assert len(cams) == 1 and cams[0].data.background_images[0].image is not None
    return arm, meshes


def _dominant(obj, joint: str) -> np.ndarray:
    """Vertices whose largest weight is on ``joint``."""
    names = [g.name for g in obj.vertex_groups]
    W = np.zeros((len(obj.data.vertices), len(names)))
    for v in obj.data.vertices:
        for g in v.groups:
            W[v.index, g.group] = g.weight
    return W.argmax(1) == names.index(joint)


def test_real_backend_lunge(addon):
    """The main test: the real pipeline reconstructs the lunge photo; the add-on builds a working rig."""
    lunge = lunge_character()
    assert lunge.stage == "done", lunge.message
    print(f"real backend: {lunge.message} (request to character {lunge.seconds:.1f} s)")
    assert lunge.undo_left == [], f"one undo left {lunge.undo_left}"  # one undo step removed it all
    import bpy

    bpy.ops.wm.open_mainfile(filepath=str(lunge.blend))
    arm, meshes = check_character(bpy)
    assert lunge.build_s < 1.0
    left = {n: _dominant(o, "left_elbow") for n, o in meshes.items()}
    right = {n: _dominant(o, "right_elbow") for n, o in meshes.items()}
    before = {n: evaluated_vertices(o) for n, o in meshes.items()}
    from mathutils import Quaternion

    arm.pose.bones["left_elbow"].rotation_quaternion = (
        arm.pose.bones["left_elbow"].rotation_quaternion @ Quaternion((1.0, 0.0, 0.0), 0.8))
    for name, obj in meshes.items():
        moved = np.linalg.norm(evaluated_vertices(obj) - before[name], axis=1)
        assert left[name].any() and right[name].any()
        assert moved[left[name]].mean() > 0.02, name
        assert moved[right[name]].max() < 1e-5, name
    _render_preview(bpy, "addon_preview_real.png")


def test_fake_backend_operator_flow_and_undo(addon, fake_server):
    bpy = fresh_scene()
    st = reconstruct(addon, fake_server.endpoint, limit_s=60)
    assert st.stage == "done", st.message
    check_character(bpy)
    assert "Built lunge" in st.message
    bpy.ops.ed.undo()
    assert "lunge" not in bpy.data.collections and not bpy.data.objects and not bpy.data.meshes


def test_test_connection_shows_info(addon, fake_server):
    bpy = fresh_scene()
    bpy.context.scene.munet.endpoint = fake_server.endpoint
    assert bpy.ops.munet.test_connection() == {"FINISHED"}
    assert "fake" in bpy.context.window_manager.munet.info and "protocol v1" in bpy.context.window_manager.munet.info


def _assert_failed_clean(bpy, st, *words):
    assert st.stage in ("failed", "cancelled"), (st.stage, st.message)
    for word in words:
        assert word in st.message, (word, st.message)
    assert not bpy.data.objects and not bpy.data.collections and not bpy.data.meshes and not bpy.data.images


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_backend_down(addon):
    bpy = fresh_scene()
    prefs(bpy).answer_timeout_s = 1.0
    try:
        endpoint = f"tcp://127.0.0.1:{_free_port()}"
        st = reconstruct(addon, endpoint, limit_s=10)
        _assert_failed_clean(bpy, st, "no answer", endpoint, "munet serve")
        with pytest.raises(RuntimeError, match="no answer"):  # an ERROR report raises in background mode
            bpy.ops.munet.test_connection()
        assert "Not connected" in bpy.context.window_manager.munet.info
    finally:
        prefs(bpy).answer_timeout_s = 10.0


def test_cancel_leaves_nothing(addon, slow_server):
    bpy = fresh_scene()
    s = bpy.context.scene.munet
    s.photo_path, s.endpoint = str(PHOTO), slow_server.endpoint
    assert bpy.ops.munet.reconstruct() == {"FINISHED"}
    deadline = time.monotonic() + 20
    while bpy.context.window_manager.munet.stage in ("sending", "queued") and time.monotonic() < deadline:
        addon.jobs.poll(wait_s=0.2)
    assert addon.jobs.Jobs.current is not None
    assert bpy.ops.munet.cancel() == {"FINISHED"}
    assert addon.jobs.Jobs.current is None
    _assert_failed_clean(bpy, bpy.context.window_manager.munet, "cancelled")


def test_no_photo_and_bad_photo(addon, tmp_path):
    bpy = fresh_scene()
    bpy.context.scene.munet.photo_path = ""
    with pytest.raises(RuntimeError, match="choose a photo"):  # an ERROR report raises in background mode
        bpy.ops.munet.reconstruct()
    assert "choose a photo" in bpy.context.window_manager.munet.message
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    bpy.context.scene.munet.photo_path = str(text)
    with pytest.raises(RuntimeError, match="not a JPEG"):
        bpy.ops.munet.reconstruct()
    assert "not a JPEG" in bpy.context.window_manager.munet.message
    assert addon.jobs.Jobs.current is None and not bpy.data.objects


class ErrorServer:
    """A ROUTER that answers every reconstruct with one progress and then what ``reply`` makes."""

    def __init__(self, protocol):
        self.protocol = protocol
        self.reply = None
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind("tcp://127.0.0.1:*")
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            if not self.sock.poll(50):
                continue
            ident, empty, *frames = self.sock.recv_multipart()
            msg = self.protocol.decode(frames, expect="request")
            if isinstance(msg, self.protocol.Reconstruct):
                progress = self.protocol.Progress(id=msg.id, stage="detect", fraction=0.1)
                self.sock.send_multipart([ident, b"", *self.protocol.encode(progress)])
                self.sock.send_multipart([ident, b"", *self.reply(msg.id)])

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture(scope="module")
def error_server(addon):
    server = ErrorServer(addon.protocol)
    yield server
    server.close()


ALL_CODES = [c for c in __import__("backend.protocol", fromlist=["ERROR_CODES"]).ERROR_CODES if c != "unreachable"]


@pytest.mark.parametrize("code", ALL_CODES)
def test_each_error_code_is_reported_and_leaves_nothing(addon, error_server, code):
    bpy = fresh_scene()
    p = addon.protocol
    error_server.reply = lambda rid: p.encode(p.Error(id=rid, code=code, message=f"server says {code}"))
    st = reconstruct(addon, error_server.endpoint, limit_s=10)
    _assert_failed_clean(bpy, st, code, f"server says {code}")


@pytest.mark.parametrize("kind", ["garbage", "version"])
def test_off_protocol_replies_are_reported(addon, error_server, kind):
    import msgpack

    bpy = fresh_scene()
    if kind == "garbage":
        error_server.reply = lambda rid: [b"\xc1not msgpack"]
        words = ("off the protocol",)
    else:
        error_server.reply = lambda rid: [msgpack.packb({"v": 99, "type": "result", "id": rid})]
        words = ("version 99", "update the add-on")
    st = reconstruct(addon, error_server.endpoint, limit_s=10)
    _assert_failed_clean(bpy, st, *words)


# ---------------------------------------------------------------------------------------------------
# Export round trips and a rendered preview of the character built through the backend


@pytest.fixture(scope="module")
def character_blend(addon, fake_server, tmp_path_factory):
    """The character from the backend (the real pipeline when it exists, else the test engine), saved."""
    bpy = fresh_scene()
    endpoint = fake_server.endpoint
    st = reconstruct(addon, endpoint, limit_s=60)
    assert st.stage == "done", st.message
    path = tmp_path_factory.mktemp("blend") / "character.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path), copy=True)
    return path


@pytest.mark.parametrize("fmt", ["fbx", "glb"])
def test_export_and_reimport_keeps_armature_and_skin(addon, character_blend, tmp_path, fmt):
    import bpy

    bpy.ops.wm.open_mainfile(filepath=str(character_blend))
    out = tmp_path / f"character.{fmt}"
    if fmt == "fbx":
        bpy.ops.export_scene.fbx(filepath=str(out), add_leaf_bones=False, use_selection=False,
                                 object_types={"ARMATURE", "MESH"})
    else:
        bpy.ops.export_scene.gltf(filepath=str(out), export_format="GLB", export_skins=True,
                                  export_all_influences=True, use_selection=False)
    assert out.stat().st_size > 100_000
    bpy.ops.wm.read_homefile(use_empty=True)
    if fmt == "fbx":
        bpy.ops.import_scene.fbx(filepath=str(out))
    else:
        bpy.ops.import_scene.gltf(filepath=str(out))
    arms = [o for o in bpy.data.objects if o.type == "ARMATURE"]
    meshes = [o for o in bpy.data.objects if o.type == "MESH" and o.name in ("Body", "Clothed")]  # glTF adds a bone-shape sphere
    assert len(arms) == 1 and len(meshes) == 2
    assert set(SMPL24) <= {b.name for b in arms[0].data.bones}
    for obj in meshes:
        assert any(m.type == "ARMATURE" and m.object == arms[0] for m in obj.modifiers)
        assert set(SMPL24) <= {g.name for g in obj.vertex_groups}
        assert sum(len(v.groups) > 0 for v in obj.data.vertices) == len(obj.data.vertices)


RENDER_SCRIPT = r"""
import sys, bpy
blend, out, engine = sys.argv[1:4]
bpy.ops.wm.open_mainfile(filepath=blend)
scene = bpy.context.scene
cams = [o for o in scene.objects if o.type == "CAMERA"]
scene.camera = cams[0]
scene.render.engine = engine
scene.render.resolution_percentage = max(1, round(100 * 512 / max(scene.render.resolution_x, scene.render.resolution_y)))
if engine == "CYCLES":
    scene.cycles.device = "CPU"; scene.cycles.samples = 16
else:
    scene.display.shading.light = "STUDIO"; scene.display.shading.color_type = "TEXTURE"
world = bpy.data.worlds.new("w"); scene.world = world
light = bpy.data.objects.new("sun", bpy.data.lights.new("sun", "SUN")); scene.collection.objects.link(light)
light.rotation_euler = (0.6, 0.2, 0.4)
scene.render.film_transparent = False
scene.render.filepath = out
bpy.ops.render.render(write_still=True)
print("rendered", out)
"""


def _render_preview(bpy, name: str) -> pathlib.Path:
    """Render the current scene from its photo camera in a subprocess (Workbench, else Cycles CPU)."""
    import tempfile

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="munet-render-"))
    blend = tmp / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend), copy=True)
    script = tmp / "render.py"
    script.write_text(RENDER_SCRIPT)
    OUT.mkdir(exist_ok=True)
    out = OUT / name
    out.unlink(missing_ok=True)
    for engine in ("BLENDER_WORKBENCH", "CYCLES"):
        done = subprocess.run([sys.executable, str(script), str(blend), str(out), engine],
                              capture_output=True, text=True, timeout=240)
        if done.returncode == 0 and out.is_file():
            break
    assert out.is_file(), done.stderr[-2000:]
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def test_rendered_preview_shows_the_character(addon, character_blend):
    import bpy

    bpy.ops.wm.open_mainfile(filepath=str(character_blend))
    out = _render_preview(bpy, "addon_preview.png")
    image = bpy.data.images.load(str(out))
    pixels = np.array(image.pixels[:]).reshape(image.size[1], image.size[0], 4)[..., :3]
    assert pixels.std() > 0.02  # not a blank frame
    print(f"preview: {out}")
