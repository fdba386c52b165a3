"""The wire format on its own (no sockets): round trips, field checks, limits, import hygiene."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading

import msgpack
import numpy as np
import pytest

from backend import protocol as p
from tests.doubles.fake_engine import FakeEngine
from tests.doubles.processes import EXAMPLE_PHOTO, REPO


@pytest.fixture(scope="module")
def reconstruction():
    """A production-size munet Reconstruction from the synthetic engine (14k vertices, 1 MB texture)."""
    engine = FakeEngine()
    engine.load()
    return engine.reconstruct(EXAMPLE_PHOTO.read_bytes(), p.Options(), lambda *a: None, threading.Event())


def wire_copy(frames):
    """What the other side receives: independent bytes per frame."""
    return [bytes(f) for f in frames]


def roundtrip(message, expect="reply", **kw):
    return p.decode(wire_copy(p.encode(message)), expect=expect, **kw)


def header_of(message):
    frames = wire_copy(p.encode(message))
    return msgpack.unpackb(frames[0]), frames


def redo(header, frames):
    return [msgpack.packb(header), *frames[1:]]


def test_full_result_roundtrip(reconstruction):
    wire = p.ResultReconstruction.from_reconstruction(reconstruction)
    out = roundtrip(p.Result("r-1", wire))
    assert isinstance(out, p.Result) and out.id == "r-1"
    got = out.reconstruction
    for name in ("body", "clothed"):
        a, b = getattr(reconstruction, name), getattr(got, name)
        for field in ("rest_vertices_m", "posed_vertices_m", "faces", "uv_per_corner"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
        np.testing.assert_array_equal(a.skin.joint_indices, b.skin.joint_indices)
        np.testing.assert_array_equal(a.skin.weights, b.skin.weights)
        assert b.rest_vertices_m.dtype == np.float32 and b.faces.dtype == np.int32
        assert b.skin.joint_indices.dtype == np.int32 and b.uv_per_corner.shape == (len(b.faces), 3, 2)
    assert got.skeleton.joint_names == reconstruction.skeleton.joint_names
    np.testing.assert_array_equal(got.skeleton.parents, reconstruction.skeleton.parents)
    np.testing.assert_array_equal(got.skeleton.rest_joints_m, reconstruction.skeleton.rest_joints_m)
    np.testing.assert_array_equal(got.pose_axis_angle, reconstruction.pose_axis_angle)
    np.testing.assert_array_equal(got.camera.R_world_to_cam, reconstruction.camera.R_world_to_cam)
    assert got.camera.R_world_to_cam.dtype == np.float64
    assert got.camera.focal_px == tuple(reconstruction.camera.focal_px)
    assert got.camera.image_size == (1000, 1498)
    assert bytes(got.texture.image_bytes) == reconstruction.texture.image_bytes
    assert got.texture.mime_type == "image/png" and len(got.texture.image_bytes) > 900_000
    assert got.report == reconstruction.report.to_json() and got.body_model == "anny"
    assert not got.body.rest_vertices_m.flags.writeable  # zero-copy views into the frames


def test_result_without_optional_parts(reconstruction):
    bare = dataclasses.replace(reconstruction, clothed=None, texture=None,
                               body=dataclasses.replace(reconstruction.body, uv_per_corner=None))
    got = roundtrip(p.Result("r-2", p.ResultReconstruction.from_reconstruction(bare))).reconstruction
    assert got.clothed is None and got.texture is None and got.body.uv_per_corner is None


def test_encoding_is_zero_copy_and_little_endian(reconstruction):
    wire = p.ResultReconstruction.from_reconstruction(reconstruction)
    frames = p.encode(p.Result("r", wire))
    assert any(isinstance(f, memoryview) and f.obj is wire.body.rest_vertices_m for f in frames)
    big_endian = dataclasses.replace(wire, pose_axis_angle=wire.pose_axis_angle.astype(">f4") + 1)
    got = roundtrip(p.Result("r", big_endian)).reconstruction
    np.testing.assert_array_equal(got.pose_axis_angle, wire.pose_axis_angle + 1)


def test_report_numpy_values_become_plain(reconstruction):
    from munet.report import PlainReport

    report = PlainReport({"iou": np.float32(0.5), "n": np.int64(3), "xy": np.arange(2), "t": (1, 2)})
    rec = dataclasses.replace(reconstruction, report=report)
    got = roundtrip(p.Result("r", p.ResultReconstruction.from_reconstruction(rec))).reconstruction
    assert got.report == {"iou": 0.5, "n": 3, "xy": [0, 1], "t": [1, 2]}


@pytest.mark.parametrize("message", [
    p.Ping("a"), p.InfoRequest("b"), p.Cancel("c", target="x-1"),
    p.Reconstruct("d", image=EXAMPLE_PHOTO.read_bytes(), options=p.Options(skeleton="full", clothed=False), timeout_s=5.0),
])
def test_request_roundtrip(message):
    got = roundtrip(message, expect="request")
    assert type(got) is type(message) and got.id == message.id
    if isinstance(message, p.Reconstruct):
        assert bytes(got.image) == message.image and got.options == message.options and got.timeout_s == 5.0


@pytest.mark.parametrize("message", [
    p.Pong("a", worker="w", ready=True, running=1, queued=2, capacity=9, stats={"received": 4}),
    p.Info("b", server_version="0.1", worker="w", engine="e", device="cpu", ready=True, workers=2, queue_capacity=10,
           body_models=("anny",), skeletons=("smpl24", "full"), checkpoint={"id": "c1", "metrics": {"iou": 0.9}, "topology_hash": "ab12"},
           versions={"numpy": "1.26"}, limits={"max_image_bytes": 5}),
    p.Progress("c", stage="fit", fraction=0.5), p.Progress("c", stage="queued", fraction=0.0, position=3),
    p.Error("d", code="busy", message="full"), p.Error(None, code="bad_request", message="?"),
    p.CancelAck("e", target="d", found=True),
])
def test_reply_roundtrip(message):
    assert roundtrip(message) == message


def test_requests_and_replies_are_not_interchangeable():
    with pytest.raises(p.ProtocolError, match="type"):
        roundtrip(p.Pong("a"), expect="request")
    with pytest.raises(p.ProtocolError, match="type"):
        roundtrip(p.Ping("a"), expect="reply")


def test_options_mirror_reconstruct_options():
    from munet.reconstruction import ReconstructOptions

    defaults = ReconstructOptions()
    for field in dataclasses.fields(p.Options):
        assert getattr(p.Options(), field.name) == getattr(defaults, field.name), field.name
    for name, choices in p.Options.CHOICES.items():
        assert choices == ReconstructOptions.CHOICES[name]
    assert p.Options.MAX_REFINE_ITERATIONS == ReconstructOptions.MAX_REFINE_ITERATIONS


def test_error_codes_cover_munet_errors():
    import munet.errors as errors

    codes = {cls.code for cls in vars(errors).values() if isinstance(cls, type) and issubclass(cls, errors.MunetError)}
    assert codes <= set(p.ERROR_CODES)
    for code in ("unsupported_version", "busy", "timeout", "bad_request", "internal"):
        assert code in p.ERROR_CODES


def test_wrong_version_names_the_request():
    header, frames = header_of(p.Ping("abc"))
    header["v"] = 99
    with pytest.raises(p.ProtocolError) as err:
        p.decode(redo(header, frames))
    assert err.value.code == "unsupported_version" and err.value.request_id == "abc"


IMAGE = EXAMPLE_PHOTO.read_bytes()[:4096]


def _reconstruct_header():
    return header_of(p.Reconstruct("rq", image=IMAGE, options=p.Options(), timeout_s=3.0))


BAD_FIELDS = [
    ("id", 5), ("id", ""), ("id", "has space"), ("id", "x" * 200), ("type", "explode"), ("type", None),
    ("v", "1"), ("v", True), ("timeout_s", -1), ("timeout_s", "soon"), ("timeout_s", 1e9), ("progress", 1),
    ("options", []), ("options", {"skeleton": "spine"}), ("options", {"clothed": "yes"}),
    ("options", {"refine_iterations": 10_000}), ("options", {"refine_iterations": True}),
    ("options", {"device": "cuda"}), ("options", {"smpl_dir": "/etc"}), ("image", {"frame": 2, "nbytes": 4096}),
    ("image", {"frame": 1, "nbytes": 10}), ("image", {"frame": 1}), ("image", "bytes"), ("extra", 1),
]


@pytest.mark.parametrize("field,value", BAD_FIELDS)
def test_every_request_field_is_checked(field, value):
    header, frames = _reconstruct_header()
    header[field] = value
    with pytest.raises(p.ProtocolError) as err:
        p.decode(redo(header, frames))
    assert err.value.code in ("bad_request", "unsupported_version")


@pytest.mark.parametrize("missing", ["v", "type", "id", "image", "options", "timeout_s", "progress"])
def test_missing_fields_are_refused(missing):
    header, frames = _reconstruct_header()
    del header[missing]
    with pytest.raises(p.ProtocolError):
        p.decode(redo(header, frames))


def test_image_checks():
    with pytest.raises(p.ProtocolError) as err:
        roundtrip(p.Reconstruct("a", image=b"GIF? no, a text file"), expect="request")
    assert err.value.code == "bad_image"
    small = p.Limits(max_image_bytes=1000)
    with pytest.raises(p.ProtocolError) as err:
        roundtrip(p.Reconstruct("a", image=IMAGE), expect="request", limits=small)
    assert err.value.code == "image_too_large"
    for head in (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"RIFF\0\0\0\0WEBPVP8 ", b"BM", b"II*\0", b"GIF89a"):
        assert p.image_format(head + b"\0" * 16) is not None


def test_huge_declared_shape_is_refused_without_allocating(reconstruction):
    header, frames = header_of(p.Result("r", p.ResultReconstruction.from_reconstruction(reconstruction)))
    header["reconstruction"]["body"]["rest_vertices_m"]["shape"] = [2**40, 3]
    with pytest.raises(p.ProtocolError):
        p.decode(redo(header, frames), expect="reply")
    header["reconstruction"]["body"]["rest_vertices_m"]["shape"] = [2**62, 2**62]
    with pytest.raises(p.ProtocolError):
        p.decode(redo(header, frames), expect="reply")


@pytest.mark.parametrize("path,value", [
    (("body", "faces", "dtype"), "float32"),
    (("skeleton", "parents", "frame"), 2),  # the frame of rest_joints_m: used twice
    (("skeleton", "joint_names"), ["a"]),  # joint count no longer matches
    (("camera", "focal_px"), [1.0]),
    (("camera", "image_size"), [0, 10]),
    (("texture", "mime_type"), "text/html"),
    (("report",), [1, 2]),
    (("clothed", "skin_weights", "shape"), [1, 1]),
])
def test_result_fields_are_checked(reconstruction, path, value):
    header, frames = header_of(p.Result("r", p.ResultReconstruction.from_reconstruction(reconstruction)))
    node = header["reconstruction"]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(p.ProtocolError):
        p.decode(redo(header, frames), expect="reply")


def test_result_values_are_checked(reconstruction):
    wire = p.ResultReconstruction.from_reconstruction(reconstruction)
    bad_faces = dataclasses.replace(wire.body, faces=wire.body.faces + len(wire.body.rest_vertices_m))
    nan = wire.pose_axis_angle.copy()
    nan[0, 0] = np.nan
    bad_parents = dataclasses.replace(wire.skeleton, parents=np.arange(24, dtype=np.int32))
    for broken in (dataclasses.replace(wire, body=bad_faces), dataclasses.replace(wire, pose_axis_angle=nan),
                   dataclasses.replace(wire, skeleton=bad_parents)):
        with pytest.raises(p.ProtocolError):
            roundtrip(p.Result("r", broken))


def test_frame_accounting():
    frames = wire_copy(p.encode(p.Reconstruct("a", image=IMAGE)))
    with pytest.raises(p.ProtocolError, match="not referenced"):
        p.decode([*frames, b"extra"])
    with pytest.raises(p.ProtocolError):
        p.decode(frames[:1])  # truncated: the image frame is missing
    with pytest.raises(p.ProtocolError):
        p.decode([])
    with pytest.raises(p.ProtocolError, match="frames"):
        p.decode([frames[0]] + [b""] * 100)


@pytest.mark.parametrize("header", [
    b"", b"\xc1", b"\x91\x01", b"\xc4\x03abc",  # empty, reserved byte, a list, bin
    msgpack.packb({"v": 1, "type": "ping", "id": "a", 1: 2}),  # int key
    msgpack.packb(msgpack.ExtType(5, b"1234")),  # ext type
    msgpack.packb({"v": 1, "type": "ping", "id": msgpack.ExtType(1, b"x")}),
    b"\xd6\xff" + b"\0" * 4,  # timestamp ext
    b"\x91" * 5000,  # deep nesting
    b"\xdd\xff\xff\xff\xff",  # array declaring 4 billion items
    b"\xdf\xff\xff\xff\xff",  # map declaring 4 billion items
    b"\xdb\xff\xff\xff\xff",  # str declaring 4 GB
    msgpack.packb({"v": 1, "type": "ping", "id": "a"})[:-1],  # truncated
    msgpack.packb({"v": 1, "type": "ping", "id": "a"}) + b"\x00",  # trailing bytes
    b"\x81\xa1v\xa2\xff\xfe",  # invalid utf-8
])
def test_hostile_headers(header):
    with pytest.raises(p.ProtocolError):
        p.decode([header])


def test_random_mutations_raise_only_protocol_errors(reconstruction):
    """Bit flips, truncations and splices of valid messages: decode returns or raises ProtocolError."""
    rng = np.random.default_rng(1)
    small = dataclasses.replace(reconstruction, texture=None)
    seeds = [wire_copy(p.encode(m)) for m in (
        p.Reconstruct("a", image=IMAGE, timeout_s=2.0), p.Ping("b"), p.Cancel("c", target="a"),
        p.Result("d", p.ResultReconstruction.from_reconstruction(small)), p.Progress("e", "fit", 0.2),
    )]
    outcomes = {"decoded": 0, "refused": 0}
    for i in range(3000):
        frames = list(seeds[i % len(seeds)])
        header = bytearray(frames[0])
        for _ in range(rng.integers(1, 4)):
            op = rng.integers(4)
            if op == 0 and header:
                header[rng.integers(len(header))] ^= 1 << int(rng.integers(8))
            elif op == 1:
                header = header[: rng.integers(len(header) + 1)]
            elif op == 2 and header:
                header[rng.integers(len(header))] = int(rng.integers(256))
            elif op == 3 and len(frames) > 1:
                j = int(rng.integers(1, len(frames)))
                frames[j] = frames[j][: rng.integers(len(frames[j]) + 1)]
        frames[0] = bytes(header)
        try:
            p.decode(frames, expect="request" if i % len(seeds) < 3 else "reply")
            outcomes["decoded"] += 1
        except p.ProtocolError:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 2000


def test_protocol_module_imports_no_project_or_heavy_modules():
    code = ("import sys; sys.path.insert(0, 'backend'); import protocol; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'zmq', 'torch', 'bpy', 'munet', 'backend'}); "
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
