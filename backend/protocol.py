"""The MuNet wire format: the one source of truth for every message between a client and the backend.

This module moves no bytes: it turns typed messages into ZeroMQ frames and frames back into typed,
checked messages. It imports only the standard library, ``msgpack`` and ``numpy`` (never ``zmq``,
``torch``, ``bpy`` or ``munet``), and no other module of this package, so the Blender add-on ships a
copy of this very file and imports it as a sibling module. PROTOCOL.md is the prose guide; this
docstring is the reference.

Frames
------
A message is a ZeroMQ multipart message::

    [routing envelope ...] [b""] [header] [buffer 1] [buffer 2] ...

* The routing envelope and the empty delimiter frame belong to ZeroMQ's REQ/ROUTER envelope
  convention: a DEALER client sends ``[b"", header, *buffers]``, the server's ROUTER socket prepends
  the client's routing id (a broker prepends its own id too), and replies come back with the same
  envelope. ``encode``/``decode`` handle only the part after the delimiter.
* ``header`` is one msgpack map (at most ``Limits.max_header_bytes``) with at least
  ``{"v": PROTOCOL_VERSION, "type": <message type>, "id": <request id>}``.
* Every array and every blob (photo, texture) travels in its own frame, referenced from the header by
  index (the header is frame 0, buffers are 1, 2, ...): an array as
  ``{"frame": i, "dtype": "float32", "shape": [V, 3]}`` (raw C-order **little-endian** bytes, exactly
  ``prod(shape) * itemsize`` long), a blob as ``{"frame": i, "nbytes": n}``. Each buffer frame is
  referenced exactly once. No other binary data appears inside the header (msgpack ``bin`` and
  ``ext`` types are refused).

Messages (``type``: fields; every field is checked, unknown fields are refused)
-------------------------------------------------------------------------------
Client to server:

* ``ping``: nothing. Answered at once with ``pong``, even while reconstructions run.
* ``info``: nothing. Answered with ``info_reply``.
* ``reconstruct``: ``image`` (blob: JPEG, PNG, WebP, BMP, TIFF or GIF bytes), ``options`` (map, see
  ``Options``), ``timeout_s`` (number or nil: the server gives up after this many seconds),
  ``progress`` (bool: send progress messages). Answered by zero or more ``progress`` messages and then
  exactly one ``result`` or one ``error`` carrying the same ``id``.
* ``cancel``: ``target`` (the id of an earlier ``reconstruct`` of the same client). Answered by
  ``cancel_ack``; the cancelled request itself ends with an ``error`` of code ``cancelled``.

Server to client (``id`` repeats the request's id; it is nil only in an ``error`` about a message
whose id could not be read):

* ``pong``: ``worker`` (str), ``ready`` (bool: the model is loaded), ``running``, ``queued``,
  ``capacity`` (ints), ``stats`` (map str -> int: counters of received, replied, rejected, dropped).
* ``info_reply``: see ``Info``.
* ``progress``: ``stage`` (str), ``fraction`` (0..1 of the whole request), ``position`` (int or nil:
  place in the queue while ``stage == "queued"``). The server repeats the latest progress every
  ``KEEPALIVE_S`` seconds so a client can tell a silent server from a slow one.
* ``result``: ``reconstruction`` (see ``ResultReconstruction``).
* ``error``: ``code`` (one of ``ERROR_CODES``), ``message`` (for people).
* ``cancel_ack``: ``target`` (str), ``found`` (bool: the target was queued or running here).

Conventions of the result (copied from ``munet/reconstruction.py``, which owns them)
-------------------------------------------------------------------------------------
* **World frame = Blender's**: metres, right-handed, Z up, the person faces -Y, feet on z=0 in the
  rest pose; the person's left is +X in the rest pose.
* **Joint frames**: every joint's local frame is axis-aligned with the world in the rest pose (the
  SMPL convention). ``pose_axis_angle[j]`` (radians) is the rotation of joint ``j`` relative to its
  parent, expressed in those world-aligned axes; joint 0 (the root) carries the global orientation.
  Skinning: ``G_j = G_parent(j) @ [R_j | t_j]`` and a vertex moves by ``sum_k w_k G_k (v - J_k)``;
  ``root_translation_m`` is added after posing. A Blender pose bone whose rest orientation (armature
  space) is ``B`` gets the local rotation ``B^T R_j B``.
* **Camera frame = OpenCV's**: x right, y down, z forward. A world point ``X`` maps to
  ``x_cam = R_world_to_cam @ X + t_world_to_cam_m`` and to pixels ``u = fx * x/z + cx,
  v = fy * y/z + cy``, (0, 0) being the top-left corner of the top-left pixel.
* **Skin weights** are sparse: ``K`` influences per vertex, padded with weight 0 and joint 0; each row
  sums to 1. ``joint_indices`` index ``skeleton.joint_names``.
* **UVs** per face corner in [0, 1], v up ((0, 0) is the bottom-left of the texture).

Decoded arrays are read-only views into the received frames (no copy): copy them to modify them.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from typing import Any, ClassVar

import msgpack
import numpy as np

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS = (1,)

#: The server repeats a request's latest progress at least this often (seconds).
KEEPALIVE_S = 1.0

#: Stable error codes and what each means. The first block mirrors ``munet.errors``.
ERROR_CODES: dict[str, str] = {
    "bad_image": "the photo is not an image, is corrupt or has no pixels",
    "image_too_large": "the photo has more bytes or pixels than the server accepts",
    "no_person_found": "no person was found in the photo",
    "smpl_files_missing": "SMPL was asked for but the server has no SMPL model files",
    "bad_checkpoint": "the server's checkpoint is missing or corrupt",
    "bad_request": "the message is malformed or a field is missing or out of range",
    "cancelled": "the client cancelled the request",
    "internal": "a bug in the server: the message says where to look",
    "unsupported_version": "the message's protocol version is not one this server speaks",
    "busy": "the server's queue is full: retry later",
    "timeout": "the request ran past its timeout",
    "shutting_down": "the server is stopping: retry once it is back",
    "unreachable": "(client side only) no answer from the server within the timeout",
}

#: Image formats accepted by their leading bytes (the server refuses anything else as ``bad_image``).
_IMAGE_SIGNATURES: tuple[tuple[str, bytes, int], ...] = (
    ("jpeg", b"\xff\xd8\xff", 0),
    ("png", b"\x89PNG\r\n\x1a\n", 0),
    ("gif", b"GIF87a", 0),
    ("gif", b"GIF89a", 0),
    ("bmp", b"BM", 0),
    ("tiff", b"II*\x00", 0),
    ("tiff", b"MM\x00*", 0),
    ("webp", b"WEBP", 8),  # after b"RIFF" + 4 size bytes
)

_ID_RE = re.compile(r"^[\x21-\x7e]{1,128}$")  # printable ASCII, no spaces
_CODE_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

# dtype names on the wire -> numpy little-endian dtypes
_DTYPES = {
    "uint8": np.dtype("<u1"),
    "int32": np.dtype("<i4"),
    "uint32": np.dtype("<u4"),
    "float32": np.dtype("<f4"),
    "float64": np.dtype("<f8"),
}


@dataclasses.dataclass(frozen=True)
class Limits:
    """What a decoder accepts. The defaults are generous for real results and small for attacks."""

    max_header_bytes: int = 8 << 20
    max_frames: int = 64
    max_image_bytes: int = 40 << 20
    max_buffer_bytes: int = 512 << 20
    max_str_len: int = 1 << 20
    max_list_len: int = 100_000
    max_map_len: int = 10_000
    max_depth: int = 32
    max_joints: int = 4096
    max_vertices: int = 10_000_000
    max_influences: int = 64
    max_timeout_s: float = 3600.0

    def as_dict(self) -> dict[str, int | float]:
        return dataclasses.asdict(self)


DEFAULT_LIMITS = Limits()


class ProtocolError(ValueError):
    """A message that breaks the protocol. ``code`` is ``bad_request`` or ``unsupported_version`` (or
    ``bad_image`` / ``image_too_large`` for a photo refused on sight); ``request_id`` is the message's
    id when it could be read, so the server can still address its error reply."""

    def __init__(self, message: str, *, code: str = "bad_request", request_id: str | None = None):
        super().__init__(message)
        self.code = code
        self.request_id = request_id


# --------------------------------------------------------------------------------------------------
# Field checks (pure functions; ``where`` names the field in error messages)


def _fail(where: str, expected: str, value: Any) -> ProtocolError:
    shown = type(value).__name__ if not isinstance(value, (int, float, str)) else repr(value)[:40]
    return ProtocolError(f"field {where!r} must be {expected}, got {shown}")


def _keys(mapping: Any, where: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
    if not isinstance(mapping, dict):
        raise _fail(where, "a map", mapping)
    missing = [k for k in required if k not in mapping]
    if missing:
        raise ProtocolError(f"{where}: missing field(s) {', '.join(missing)}")
    unknown = [k for k in mapping if k not in required and k not in optional]
    if unknown:
        raise ProtocolError(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))[:200]}")
    return mapping


def _str(value: Any, where: str, *, max_len: int = 256, choices: tuple[str, ...] | None = None) -> str:
    if not isinstance(value, str) or len(value) > max_len:
        raise _fail(where, f"a string of at most {max_len} characters", value)
    if choices is not None and value not in choices:
        raise ProtocolError(f"field {where!r} is {value[:40]!r}, not one of {', '.join(choices)}")
    return value


def _int(value: Any, where: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _fail(where, f"an integer in [{lo}, {hi}]", value)
    return value


def _float(value: Any, where: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise _fail(where, f"a number in [{lo}, {hi}]", value)
    return float(value)


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(where, "true or false", value)
    return value


def _request_id(value: Any, where: str = "id") -> str:
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise _fail(where, "1-128 printable ASCII characters without spaces", value)
    return value


def _plain(value: Any, where: str, limits: Limits, depth: int = 0) -> Any:
    """Check a JSON-like value (nil, bool, int, float, str, list, map with str keys)."""
    if depth > limits.max_depth:
        raise ProtocolError(f"{where}: nested deeper than {limits.max_depth}")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        for i, item in enumerate(value):
            _plain(item, f"{where}[{i}]", limits, depth + 1)
        return value
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise _fail(f"{where} key", "a string", key)
            _plain(item, f"{where}.{key}", limits, depth + 1)
        return value
    raise _fail(where, "JSON-like (nil, bool, number, string, list, map)", value)


def to_plain(value: Any, depth: int = 0) -> Any:
    """Convert a report-like value to msgpack-able plain data: numpy scalars and small arrays become
    Python numbers and lists, tuples become lists; anything else becomes its ``str`` (logged)."""
    if depth > DEFAULT_LIMITS.max_depth:
        raise ValueError("report nested too deeply")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [to_plain(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {str(k): to_plain(v, depth + 1) for k, v in value.items()}
    log.warning("report value of type %s sent as its string", type(value).__name__)
    return str(value)


def image_format(data: bytes | memoryview) -> str | None:
    """The image format named by ``data``'s leading bytes, or None when it is not a known image."""
    head = bytes(data[:16])
    for name, signature, offset in _IMAGE_SIGNATURES:
        if head[offset : offset + len(signature)] == signature and (name != "webp" or head[:4] == b"RIFF"):
            return name
    return None


# --------------------------------------------------------------------------------------------------
# Buffers: arrays and blobs in frames of their own


class _FrameWriter:
    """Collects buffer frames while a header is built; ``frames[0]`` is reserved for the header."""

    def __init__(self) -> None:
        self.frames: list[bytes | memoryview] = [b""]

    def array(self, value: Any, dtype: str, ndim: int, where: str) -> dict:
        arr = np.ascontiguousarray(value, dtype=_DTYPES[dtype])  # no copy when already right
        if arr.ndim != ndim:
            raise ValueError(f"{where}: expected {ndim} dimensions, got shape {arr.shape}")
        self.frames.append(memoryview(arr).cast("B") if arr.size else b"")
        return {"frame": len(self.frames) - 1, "dtype": dtype, "shape": list(arr.shape)}

    def blob(self, data: bytes | memoryview) -> dict:
        view = memoryview(data).cast("B") if not isinstance(data, bytes) else data
        self.frames.append(view)
        return {"frame": len(self.frames) - 1, "nbytes": len(view)}


class _FrameReader:
    """Hands out the buffer frames a header references, each once, checking sizes against the refs."""

    def __init__(self, frames: list[memoryview], limits: Limits) -> None:
        self.frames = frames
        self.limits = limits
        self.used = [False] * len(frames)
        self.used[0] = True

    def _take(self, index: Any, where: str) -> memoryview:
        _int(index, f"{where}.frame", 1, len(self.frames) - 1)
        if self.used[index]:
            raise ProtocolError(f"{where}: frame {index} is referenced twice")
        self.used[index] = True
        return self.frames[index]

    def array(self, ref: Any, where: str, dtype: str, shape: tuple[int | None, ...]) -> np.ndarray:
        """Read an array ref; ``shape`` gives the expected dims (None = any size up to the limits)."""
        _keys(ref, where, ("frame", "dtype", "shape"))
        _str(ref["dtype"], f"{where}.dtype", choices=(dtype,))
        dims = ref["shape"]
        if not isinstance(dims, list) or len(dims) != len(shape):
            raise _fail(f"{where}.shape", f"a list of {len(shape)} integers", dims)
        for i, (got, want) in enumerate(zip(dims, shape)):
            lo, hi = (0, self.limits.max_vertices * 4) if want is None else (want, want)
            _int(got, f"{where}.shape[{i}]", lo, hi)
        buf = self._take(ref["frame"], where)
        itemsize = _DTYPES[dtype].itemsize
        nbytes = math.prod(dims) * itemsize
        if nbytes > self.limits.max_buffer_bytes or nbytes != len(buf):
            raise ProtocolError(f"{where}: shape {dims} of {dtype} needs {nbytes} bytes, its frame has {len(buf)}")
        return np.frombuffer(buf, dtype=_DTYPES[dtype]).reshape(dims)

    def blob(self, ref: Any, where: str, max_bytes: int) -> memoryview:
        _keys(ref, where, ("frame", "nbytes"))
        nbytes = _int(ref["nbytes"], f"{where}.nbytes", 0, 1 << 62)
        if nbytes > max_bytes:
            raise ProtocolError(f"{where}: {nbytes} bytes is more than the {max_bytes} allowed", code="image_too_large")
        buf = self._take(ref["frame"], where)
        if len(buf) != nbytes:
            raise ProtocolError(f"{where}: declares {nbytes} bytes, its frame has {len(buf)}")
        return buf

    def check_all_used(self) -> None:
        unused = [i for i, used in enumerate(self.used) if not used]
        if unused:
            raise ProtocolError(f"frames {unused[:8]} are not referenced by the header")


# --------------------------------------------------------------------------------------------------
# Reconstruction options and the result


@dataclasses.dataclass(frozen=True)
class Options:
    """Reconstruction options a client may choose (the same names, defaults and choices as
    ``munet.reconstruction.ReconstructOptions``; the device, the checkpoint and SMPL's directory are
    the server's settings, never a client's)."""

    body_model: str = "anny"
    skeleton: str = "smpl24"
    clothed: bool = True
    method: str = "network"
    refine_iterations: int = 40
    texture: bool = True

    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {
        "body_model": ("anny", "smpl"),
        "skeleton": ("smpl24", "full"),
        "method": ("network", "fitting"),
    }
    MAX_REFINE_ITERATIONS: ClassVar[int] = 1000

    def to_wire(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_wire(cls, value: Any, where: str = "options") -> "Options":
        names = tuple(f.name for f in dataclasses.fields(cls))
        _keys(value, where, (), names)
        for name, choices in cls.CHOICES.items():
            if name in value:
                _str(value[name], f"{where}.{name}", choices=choices)
        for name in ("clothed", "texture"):
            if name in value:
                _bool(value[name], f"{where}.{name}")
        if "refine_iterations" in value:
            _int(value["refine_iterations"], f"{where}.refine_iterations", 0, cls.MAX_REFINE_ITERATIONS)
        return cls(**value)

    def validate(self) -> "Options":
        """Raise ProtocolError when a field is out of range (for options built in code)."""
        return Options.from_wire(self.to_wire())


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

        def surface(s: Any) -> ResultSurface | None:
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

        sk, cam, tex = rec.skeleton, rec.camera, rec.texture
        return cls(
            body=surface(rec.body),
            clothed=surface(rec.clothed),
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
            report=to_plain(dict(rec.report or {})),
        )

    # -- wire form

    def to_wire(self, out: _FrameWriter) -> dict:
        def surface(s: ResultSurface | None, where: str) -> dict | None:
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
            "body": surface(self.body, "body"),
            "clothed": surface(self.clothed, "clothed"),
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
    def from_wire(cls, value: Any, frames: _FrameReader, where: str = "reconstruction") -> "ResultReconstruction":
        limits = frames.limits
        _keys(value, where, ("body_model", "skeleton", "pose_axis_angle", "root_translation_m", "shape",
                             "body", "clothed", "camera", "texture", "report"))
        body_model = _str(value["body_model"], f"{where}.body_model", max_len=32)

        # skeleton: names, a parents-before-children tree, rest joints
        sk = _keys(value["skeleton"], f"{where}.skeleton", ("name", "joint_names", "parents", "rest_joints_m"))
        names = sk["joint_names"]
        if not isinstance(names, list) or not 1 <= len(names) <= limits.max_joints:
            raise _fail(f"{where}.skeleton.joint_names", f"a list of 1 to {limits.max_joints} names", names)
        names = tuple(_str(n, f"{where}.skeleton.joint_names[{i}]", max_len=64) for i, n in enumerate(names))
        J = len(names)
        parents = frames.array(sk["parents"], f"{where}.skeleton.parents", "int32", (J,))
        if parents[0] != -1 or np.any(parents[1:] < 0) or np.any(parents[1:] >= np.arange(1, J)):
            raise ProtocolError(f"{where}.skeleton.parents: joint 0 must be the root (-1) and every parent must precede its child")
        skeleton = ResultSkeleton(
            _str(sk["name"], f"{where}.skeleton.name", max_len=32), names, parents,
            _finite(frames.array(sk["rest_joints_m"], f"{where}.skeleton.rest_joints_m", "float32", (J, 3)), f"{where}.skeleton.rest_joints_m"),
        )

        def surface(s: Any, name: str) -> ResultSurface:
            w = f"{where}.{name}"
            _keys(s, w, ("rest_vertices_m", "posed_vertices_m", "faces", "skin_joint_indices", "skin_weights", "uv_per_corner"))
            rest = _finite(frames.array(s["rest_vertices_m"], f"{w}.rest_vertices_m", "float32", (None, 3)), f"{w}.rest_vertices_m")
            V = rest.shape[0]
            if not 1 <= V <= limits.max_vertices:
                raise ProtocolError(f"{w}: {V} vertices, expected 1 to {limits.max_vertices}")
            posed = _finite(frames.array(s["posed_vertices_m"], f"{w}.posed_vertices_m", "float32", (V, 3)), f"{w}.posed_vertices_m")
            faces = frames.array(s["faces"], f"{w}.faces", "int32", (None, 3))
            if faces.size and (faces.min() < 0 or faces.max() >= V):
                raise ProtocolError(f"{w}.faces: vertex indices must lie in [0, {V})")
            idx = frames.array(s["skin_joint_indices"], f"{w}.skin_joint_indices", "int32", (V, None))
            K = idx.shape[1]
            if not 1 <= K <= limits.max_influences:
                raise ProtocolError(f"{w}.skin_joint_indices: {K} influences, expected 1 to {limits.max_influences}")
            if idx.min() < 0 or idx.max() >= J:
                raise ProtocolError(f"{w}.skin_joint_indices: joint indices must lie in [0, {J})")
            weights = _finite(frames.array(s["skin_weights"], f"{w}.skin_weights", "float32", (V, K)), f"{w}.skin_weights")
            uv = None
            if s["uv_per_corner"] is not None:
                uv = _finite(frames.array(s["uv_per_corner"], f"{w}.uv_per_corner", "float32", (faces.shape[0], 3, 2)), f"{w}.uv_per_corner")
            return ResultSurface(rest, posed, faces, ResultSkinWeights(idx, weights), uv)

        body = surface(value["body"], "body")
        clothed = None if value["clothed"] is None else surface(value["clothed"], "clothed")

        cam = _keys(value["camera"], f"{where}.camera", ("focal_px", "principal_point_px", "image_size", "R_world_to_cam", "t_world_to_cam_m"))
        camera = ResultCamera(
            _pair(cam["focal_px"], f"{where}.camera.focal_px", float, 1e-6, 1e9),
            _pair(cam["principal_point_px"], f"{where}.camera.principal_point_px", float, -1e9, 1e9),
            _pair(cam["image_size"], f"{where}.camera.image_size", int, 1, 1 << 20),
            _finite(frames.array(cam["R_world_to_cam"], f"{where}.camera.R_world_to_cam", "float64", (3, 3)), f"{where}.camera.R_world_to_cam"),
            _finite(frames.array(cam["t_world_to_cam_m"], f"{where}.camera.t_world_to_cam_m", "float64", (3,)), f"{where}.camera.t_world_to_cam_m"),
        )

        texture = None
        if value["texture"] is not None:
            tex = _keys(value["texture"], f"{where}.texture", ("image", "mime_type", "width", "height"))
            texture = ResultTexture(
                frames.blob(tex["image"], f"{where}.texture.image", limits.max_buffer_bytes),
                _str(tex["mime_type"], f"{where}.texture.mime_type", choices=TEXTURE_MIME_TYPES),
                _int(tex["width"], f"{where}.texture.width", 1, 1 << 16),
                _int(tex["height"], f"{where}.texture.height", 1, 1 << 16),
            )

        report = value["report"]
        if not isinstance(report, dict):
            raise _fail(f"{where}.report", "a map", report)
        return cls(
            body=body, clothed=clothed, skeleton=skeleton,
            pose_axis_angle=_finite(frames.array(value["pose_axis_angle"], f"{where}.pose_axis_angle", "float32", (J, 3)), f"{where}.pose_axis_angle"),
            root_translation_m=_finite(frames.array(value["root_translation_m"], f"{where}.root_translation_m", "float32", (3,)), f"{where}.root_translation_m"),
            shape=_finite(frames.array(value["shape"], f"{where}.shape", "float32", (None,)), f"{where}.shape"),
            body_model=body_model, camera=camera, texture=texture,
            report=_plain(report, f"{where}.report", limits),
        )


def _finite(arr: np.ndarray, where: str) -> np.ndarray:
    if arr.size and not np.isfinite(arr).all():
        raise ProtocolError(f"{where}: contains NaN or infinity")
    return arr


def _pair(value: Any, where: str, kind: type, lo: float, hi: float) -> tuple:
    if not isinstance(value, list) or len(value) != 2:
        raise _fail(where, "a list of 2 numbers", value)
    check = _int if kind is int else _float
    return tuple(check(v, f"{where}[{i}]", lo, hi) for i, v in enumerate(value))


# --------------------------------------------------------------------------------------------------
# Messages


@dataclasses.dataclass(frozen=True)
class Message:
    """Base of every message: ``id`` ties replies to their request."""

    TYPE: ClassVar[str] = ""
    FIELDS: ClassVar[tuple[str, ...]] = ()
    id: str | None

    def _to_wire(self, out: _FrameWriter) -> dict:
        return {}

    @classmethod
    def _from_wire(cls, header: dict, frames: _FrameReader) -> "Message":
        return cls(id=header["id"])


@dataclasses.dataclass(frozen=True)
class Ping(Message):
    TYPE: ClassVar[str] = "ping"


@dataclasses.dataclass(frozen=True)
class InfoRequest(Message):
    TYPE: ClassVar[str] = "info"


@dataclasses.dataclass(frozen=True)
class Reconstruct(Message):
    """image: encoded photo bytes; timeout_s: seconds the server may spend (None: its default)."""

    TYPE: ClassVar[str] = "reconstruct"
    FIELDS: ClassVar[tuple[str, ...]] = ("image", "options", "timeout_s", "progress")
    image: bytes | memoryview = b""
    options: Options = Options()
    timeout_s: float | None = None
    progress: bool = True

    def _to_wire(self, out: _FrameWriter) -> dict:
        return {"image": out.blob(self.image), "options": self.options.to_wire(),
                "timeout_s": self.timeout_s, "progress": self.progress}

    @classmethod
    def _from_wire(cls, header: dict, frames: _FrameReader) -> "Reconstruct":
        limits = frames.limits
        image = frames.blob(header["image"], "image", limits.max_image_bytes)
        if image_format(image) is None:
            raise ProtocolError("the photo is not a JPEG, PNG, WebP, BMP, TIFF or GIF image", code="bad_image")
        timeout = header["timeout_s"]
        return cls(
            id=header["id"], image=image, options=Options.from_wire(header["options"]),
            timeout_s=None if timeout is None else _float(timeout, "timeout_s", 1e-3, limits.max_timeout_s),
            progress=_bool(header["progress"], "progress"),
        )


@dataclasses.dataclass(frozen=True)
class Cancel(Message):
    TYPE: ClassVar[str] = "cancel"
    FIELDS: ClassVar[tuple[str, ...]] = ("target",)
    target: str = ""

    def _to_wire(self, out: _FrameWriter) -> dict:
        return {"target": self.target}

    @classmethod
    def _from_wire(cls, header: dict, frames: _FrameReader) -> "Cancel":
        return cls(id=header["id"], target=_request_id(header["target"], "target"))


@dataclasses.dataclass(frozen=True)
class Pong(Message):
    TYPE: ClassVar[str] = "pong"
    FIELDS: ClassVar[tuple[str, ...]] = ("worker", "ready", "running", "queued", "capacity", "stats")
    worker: str = ""
    ready: bool = False
    running: int = 0
    queued: int = 0
    capacity: int = 0
    stats: dict[str, int] = dataclasses.field(default_factory=dict)

    def _to_wire(self, out: _FrameWriter) -> dict:
        return {"worker": self.worker, "ready": self.ready, "running": self.running, "queued": self.queued,
                "capacity": self.capacity, "stats": dict(self.stats)}

    @classmethod
    def _from_wire(cls, header: dict, frames: _FrameReader) -> "Pong":
        stats = header["stats"]
        if not isinstance(stats, dict) or len(stats) > 256:
            raise _fail("stats", "a map of at most 256 counters", stats)
        for key, count in stats.items():
            _str(key, "stats key", max_len=64)
            _int(count, f"stats.{key}", 0, 1 << 62)
        return cls(
            id=header["id"], worker=_str(header["worker"], "worker"), ready=_bool(header["ready"], "ready"),
            running=_int(header["running"], "running", 0, 1 << 20), queued=_int(header["queued"], "queued", 0, 1 << 20),
            capacity=_int(header["capacity"], "capacity", 0, 1 << 20), stats=stats,
        )


@dataclasses.dataclass(frozen=True)
class Info(Message):
    """What a server runs. versions: package -> version; checkpoint: {"id": str, "metrics": map} or
    None; limits: ``Limits`` as a map (what this server accepts)."""

    TYPE: ClassVar[str] = "info_reply"
    FIELDS: ClassVar[tuple[str, ...]] = ("protocol_version", "server_version", "worker", "engine", "device", "ready",
                                         "workers", "queue_capacity", "body_models", "skeletons", "checkpoint",
                                         "versions", "limits")
    protocol_version: int = PROTOCOL_VERSION
    server_version: str = ""
    worker: str = ""
    engine: str = ""
    device: str = ""
    ready: bool = False
    workers: int = 0
    queue_capacity: int = 0
    body_models: tuple[str, ...] = ()
    skeletons: tuple[str, ...] = ()
    checkpoint: dict[str, Any] | None = None
    versions: dict[str, str] = dataclasses.field(default_factory=dict)
    limits: dict[str, Any] = dataclasses.field(default_factory=dict)

    def _to_wire(self, out: _FrameWriter) -> dict:
        wire = {name: getattr(self, name) for name in self.FIELDS}
        wire["body_models"], wire["skeletons"] = list(self.body_models), list(self.skeletons)
        wire["checkpoint"] = to_plain(self.checkpoint)
        wire["versions"], wire["limits"] = to_plain(self.versions), to_plain(self.limits)
        return wire

    @classmethod
    def _from_wire(cls, header: dict, frames: _FrameReader) -> "Info":
        limits = frames.limits

        def names(value: Any, where: str) -> tuple[str, ...]:
            if not isinstance(value, list) or len(value) > 64:
                raise _fail(where, "a list of at most 64 names", value)
            return tuple(_str(v, f"{where}[{i}]", max_len=64) for i, v in enumerate(value))

        checkpoint = header["checkpoint"]
        if checkpoint is not None:  # {"id": str, ...any JSON-like facts: metrics, command, commit}
            _keys(checkpoint, "checkpoint", ("id",), tuple(k for k in checkpoint if isinstance(k, str)) if isinstance(checkpoint, dict) else ())
            _str(checkpoint["id"], "checkpoint.id")
            _plain(checkpoint, "checkpoint", limits)
        versions = _plain(header["versions"], "versions", limits)
        if not isinstance(versions, dict) or not all(isinstance(v, str) for v in versions.values()):
            raise _fail("versions", "a map of strings", versions)
        server_limits = _plain(header["limits"], "limits", limits)
        if not isinstance(server_limits, dict):
            raise _fail("limits", "a map", server_limits)
        return cls(
            id=header["id"],
            protocol_version=_int(header["protocol_version"], "protocol_version", 0, 1 << 16),
            server_version=_str(header["server_version"], "server_version"),
            worker=_str(header["worker"], "worker"), engine=_str(header["engine"], "engine"),
            device=_str(header["device"], "device"), ready=_bool(header["ready"], "ready"),
            workers=_int(header["workers"], "workers", 0, 1 << 16),
            queue_capacity=_int(header["queue_capacity"], "queue_capacity", 0, 1 << 20),
            body_models=names(header["body_models"], "body_models"), skeletons=names(header["skeletons"], "skeletons"),
            checkpoint=checkpoint, versions=versions, limits=server_limits,
        )


@dataclasses.dataclass(frozen=True)
class Progress(Message):
    TYPE: ClassVar[str] = "progress"
    FIELDS: ClassVar[tuple[str, ...]] = ("stage", "fraction", "position")
    stage: str = ""
    fraction: float = 0.0
    position: int | None = None

    def _to_wire(self, out: _FrameWriter) -> dict:
        return {"stage": self.stage, "fraction": float(self.fraction), "position": self.position}

    @classmethod
    def _from_wire(cls, header: dict, frames: _FrameReader) -> "Progress":
        position = header["position"]
        return cls(
            id=header["id"], stage=_str(header["stage"], "stage", max_len=64),
            fraction=_float(header["fraction"], "fraction", 0.0, 1.0),
            position=None if position is None else _int(position, "position", 0, 1 << 20),
        )


@dataclasses.dataclass(frozen=True)
class Result(Message):
    TYPE: ClassVar[str] = "result"
    FIELDS: ClassVar[tuple[str, ...]] = ("reconstruction",)
    reconstruction: ResultReconstruction | None = None

    def _to_wire(self, out: _FrameWriter) -> dict:
        return {"reconstruction": self.reconstruction.to_wire(out)}

    @classmethod
    def _from_wire(cls, header: dict, frames: _FrameReader) -> "Result":
        return cls(id=header["id"], reconstruction=ResultReconstruction.from_wire(header["reconstruction"], frames))


@dataclasses.dataclass(frozen=True)
class Error(Message):
    """code: one of ``ERROR_CODES`` (a client should treat an unknown code like ``internal``)."""

    TYPE: ClassVar[str] = "error"
    FIELDS: ClassVar[tuple[str, ...]] = ("code", "message")
    code: str = "internal"
    message: str = ""

    def _to_wire(self, out: _FrameWriter) -> dict:
        return {"code": self.code, "message": self.message[:4000]}

    @classmethod
    def _from_wire(cls, header: dict, frames: _FrameReader) -> "Error":
        code = header["code"]
        if not isinstance(code, str) or not _CODE_RE.match(code):
            raise _fail("code", "a lower-case error code", code)
        return cls(id=header["id"], code=code, message=_str(header["message"], "message", max_len=4000))


@dataclasses.dataclass(frozen=True)
class CancelAck(Message):
    TYPE: ClassVar[str] = "cancel_ack"
    FIELDS: ClassVar[tuple[str, ...]] = ("target", "found")
    target: str = ""
    found: bool = False

    def _to_wire(self, out: _FrameWriter) -> dict:
        return {"target": self.target, "found": self.found}

    @classmethod
    def _from_wire(cls, header: dict, frames: _FrameReader) -> "CancelAck":
        return cls(id=header["id"], target=_request_id(header["target"], "target"), found=_bool(header["found"], "found"))


REQUEST_TYPES: dict[str, type[Message]] = {m.TYPE: m for m in (Ping, InfoRequest, Reconstruct, Cancel)}
REPLY_TYPES: dict[str, type[Message]] = {m.TYPE: m for m in (Pong, Info, Progress, Result, Error, CancelAck)}


# --------------------------------------------------------------------------------------------------
# Encode and decode


def encode(message: Message) -> list[bytes | memoryview]:
    """Frames for ``message``: ``[header, *buffers]`` (prepend the ``b""`` delimiter on a DEALER).

    Buffers are views of the message's arrays (no copy): keep the message alive until sent.
    """
    out = _FrameWriter()
    header = {"v": PROTOCOL_VERSION, "type": message.TYPE, "id": message.id}
    header.update(message._to_wire(out))
    out.frames[0] = msgpack.packb(header, use_bin_type=True)
    return out.frames


def _refuse_ext(code: int, data: bytes) -> Any:
    raise ProtocolError("msgpack extension types are not allowed")


def _unpack_header(data: memoryview, limits: Limits) -> dict:
    if len(data) > limits.max_header_bytes:
        raise ProtocolError(f"header of {len(data)} bytes is over the {limits.max_header_bytes} allowed")
    try:
        header = msgpack.unpackb(
            data, raw=False, strict_map_key=True, use_list=True, timestamp=0, ext_hook=_refuse_ext,
            max_str_len=limits.max_str_len, max_bin_len=0, max_ext_len=0,
            max_array_len=limits.max_list_len, max_map_len=limits.max_map_len,
        )
    except ProtocolError:
        raise
    except (ValueError, TypeError, OverflowError, msgpack.UnpackException) as e:  # msgpack's error family
        raise ProtocolError(f"header is not valid msgpack: {type(e).__name__}: {str(e)[:120]}") from e
    if not isinstance(header, dict):
        raise _fail("header", "a msgpack map", header)
    return header


def decode(frames: list[bytes | memoryview], *, expect: str = "request", limits: Limits = DEFAULT_LIMITS) -> Message:
    """Decode and check ``[header, *buffers]`` (the part after the envelope delimiter).

    expect: ``"request"`` (a server decoding what a client sent) or ``"reply"``.
    Raises ProtocolError (with ``request_id`` set once the id was read) for anything off the protocol.
    """
    if not frames:
        raise ProtocolError("empty message: expected a header frame")
    if len(frames) > limits.max_frames:
        raise ProtocolError(f"{len(frames)} frames is more than the {limits.max_frames} allowed")
    views = [f if isinstance(f, memoryview) else memoryview(f) for f in frames]
    views = [v if v.format == "B" and v.ndim == 1 else v.cast("B") for v in views]
    header = _unpack_header(views[0], limits)
    raw_id = header.get("id")
    request_id = raw_id if isinstance(raw_id, str) and _ID_RE.match(raw_id) else None
    try:
        version = header.get("v")
        if isinstance(version, bool) or not isinstance(version, int):
            raise _fail("v", "the protocol version (an integer)", version)
        if version not in SUPPORTED_VERSIONS:
            raise ProtocolError(
                f"protocol version {version} is not supported: this side speaks {', '.join(map(str, SUPPORTED_VERSIONS))}"
                " (update the add-on or the backend so both match)", code="unsupported_version")
        types = REQUEST_TYPES if expect == "request" else REPLY_TYPES
        kind = header.get("type")
        if not isinstance(kind, str) or kind not in types:
            raise ProtocolError(f"field 'type' must be one of {', '.join(types)}, got {str(kind)[:40]!r}")
        cls = types[kind]
        _keys(header, kind, ("v", "type", "id") + cls.FIELDS)
        if raw_id is None:
            if cls is not Error:
                raise _fail("id", "a request id", raw_id)
        else:
            _request_id(raw_id)
        reader = _FrameReader(views, limits)
        message = cls._from_wire(header, reader)
        reader.check_all_used()
        return message
    except ProtocolError as e:
        e.request_id = request_id
        raise


def frames_nbytes(frames: list[bytes | memoryview]) -> int:
    """Total bytes of encoded frames (what goes over the wire, envelope excluded)."""
    return sum(len(f) if isinstance(f, bytes) else memoryview(f).nbytes for f in frames)

__all__ = [
    "PROTOCOL_VERSION", "SUPPORTED_VERSIONS", "KEEPALIVE_S", "ERROR_CODES", "Limits", "DEFAULT_LIMITS",
    "ProtocolError", "Options", "ResultSkinWeights", "ResultSurface", "ResultSkeleton", "ResultCamera",
    "ResultTexture", "ResultReconstruction", "Message", "Ping", "InfoRequest", "Reconstruct", "Cancel", "Pong",
    "Info", "Progress", "Result", "Error", "CancelAck", "REQUEST_TYPES", "REPLY_TYPES", "encode", "decode",
    "image_format", "to_plain", "frames_nbytes",
]
