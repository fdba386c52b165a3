"""The message types, one class each: the fields, how they go into a header and how they are checked
coming out of one. ``REQUEST_TYPES`` and ``REPLY_TYPES`` map the header's ``type`` to the class."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from .fields import (CODE_RE, ProtocolError, check_bool, check_float, check_int, check_keys, check_plain,
                     check_request_id, check_str, fail, image_format, to_plain)
from .frames import FrameReader, FrameWriter
from .options import Options
from .results import ResultReconstruction

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


@dataclasses.dataclass(frozen=True)
class Message:
    """Base of every message: ``id`` ties replies to their request."""

    TYPE: ClassVar[str] = ""
    FIELDS: ClassVar[tuple[str, ...]] = ()
    id: str | None

    def _to_wire(self, out: FrameWriter) -> dict:
        return {}

    @classmethod
    def _from_wire(cls, header: dict, frames: FrameReader) -> "Message":
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

    def _to_wire(self, out: FrameWriter) -> dict:
        return {"image": out.blob(self.image), "options": self.options.to_wire(),
                "timeout_s": self.timeout_s, "progress": self.progress}

    @classmethod
    def _from_wire(cls, header: dict, frames: FrameReader) -> "Reconstruct":
        limits = frames.limits
        image = frames.blob(header["image"], "image", limits.max_image_bytes)
        if image_format(image) is None:
            raise ProtocolError("the photo is not a JPEG, PNG, WebP, BMP, TIFF or GIF image", code="bad_image")
        timeout = header["timeout_s"]
        return cls(
            id=header["id"], image=image, options=Options.from_wire(header["options"]),
            timeout_s=None if timeout is None else check_float(timeout, "timeout_s", 1e-3, limits.max_timeout_s),
            progress=check_bool(header["progress"], "progress"),
        )


@dataclasses.dataclass(frozen=True)
class Cancel(Message):
    TYPE: ClassVar[str] = "cancel"
    FIELDS: ClassVar[tuple[str, ...]] = ("target",)
    target: str = ""

    def _to_wire(self, out: FrameWriter) -> dict:
        return {"target": self.target}

    @classmethod
    def _from_wire(cls, header: dict, frames: FrameReader) -> "Cancel":
        return cls(id=header["id"], target=check_request_id(header["target"], "target"))


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

    def _to_wire(self, out: FrameWriter) -> dict:
        return {"worker": self.worker, "ready": self.ready, "running": self.running, "queued": self.queued,
                "capacity": self.capacity, "stats": dict(self.stats)}

    @classmethod
    def _from_wire(cls, header: dict, frames: FrameReader) -> "Pong":
        stats = header["stats"]
        if not isinstance(stats, dict) or len(stats) > 256:
            raise fail("stats", "a map of at most 256 counters", stats)
        for key, count in stats.items():
            check_str(key, "stats key", max_len=64)
            check_int(count, f"stats.{key}", 0, 1 << 62)
        return cls(
            id=header["id"], worker=check_str(header["worker"], "worker"), ready=check_bool(header["ready"], "ready"),
            running=check_int(header["running"], "running", 0, 1 << 20), queued=check_int(header["queued"], "queued", 0, 1 << 20),
            capacity=check_int(header["capacity"], "capacity", 0, 1 << 20), stats=stats,
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

    def _to_wire(self, out: FrameWriter) -> dict:
        wire = {name: getattr(self, name) for name in self.FIELDS}
        wire["body_models"], wire["skeletons"] = list(self.body_models), list(self.skeletons)
        wire["checkpoint"] = to_plain(self.checkpoint)
        wire["versions"], wire["limits"] = to_plain(self.versions), to_plain(self.limits)
        return wire

    @classmethod
    def _from_wire(cls, header: dict, frames: FrameReader) -> "Info":
        limits = frames.limits

        def names(value: Any, where: str) -> tuple[str, ...]:
            if not isinstance(value, list) or len(value) > 64:
                raise fail(where, "a list of at most 64 names", value)
            return tuple(check_str(v, f"{where}[{i}]", max_len=64) for i, v in enumerate(value))

        checkpoint = header["checkpoint"]
        if checkpoint is not None:  # {"id": str, ...any JSON-like facts: metrics, command, commit}
            check_keys(checkpoint, "checkpoint", ("id",), tuple(k for k in checkpoint if isinstance(k, str)) if isinstance(checkpoint, dict) else ())
            check_str(checkpoint["id"], "checkpoint.id")
            check_plain(checkpoint, "checkpoint", limits)
        versions = check_plain(header["versions"], "versions", limits)
        if not isinstance(versions, dict) or not all(isinstance(v, str) for v in versions.values()):
            raise fail("versions", "a map of strings", versions)
        server_limits = check_plain(header["limits"], "limits", limits)
        if not isinstance(server_limits, dict):
            raise fail("limits", "a map", server_limits)
        return cls(
            id=header["id"],
            protocol_version=check_int(header["protocol_version"], "protocol_version", 0, 1 << 16),
            server_version=check_str(header["server_version"], "server_version"),
            worker=check_str(header["worker"], "worker"), engine=check_str(header["engine"], "engine"),
            device=check_str(header["device"], "device"), ready=check_bool(header["ready"], "ready"),
            workers=check_int(header["workers"], "workers", 0, 1 << 16),
            queue_capacity=check_int(header["queue_capacity"], "queue_capacity", 0, 1 << 20),
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

    def _to_wire(self, out: FrameWriter) -> dict:
        return {"stage": self.stage, "fraction": float(self.fraction), "position": self.position}

    @classmethod
    def _from_wire(cls, header: dict, frames: FrameReader) -> "Progress":
        position = header["position"]
        return cls(
            id=header["id"], stage=check_str(header["stage"], "stage", max_len=64),
            fraction=check_float(header["fraction"], "fraction", 0.0, 1.0),
            position=None if position is None else check_int(position, "position", 0, 1 << 20),
        )


@dataclasses.dataclass(frozen=True)
class Result(Message):
    TYPE: ClassVar[str] = "result"
    FIELDS: ClassVar[tuple[str, ...]] = ("reconstruction",)
    reconstruction: ResultReconstruction | None = None

    def _to_wire(self, out: FrameWriter) -> dict:
        return {"reconstruction": self.reconstruction.to_wire(out)}

    @classmethod
    def _from_wire(cls, header: dict, frames: FrameReader) -> "Result":
        return cls(id=header["id"], reconstruction=ResultReconstruction.from_wire(header["reconstruction"], frames))


@dataclasses.dataclass(frozen=True)
class Error(Message):
    """code: one of ``ERROR_CODES`` (a client should treat an unknown code like ``internal``)."""

    TYPE: ClassVar[str] = "error"
    FIELDS: ClassVar[tuple[str, ...]] = ("code", "message")
    code: str = "internal"
    message: str = ""

    def _to_wire(self, out: FrameWriter) -> dict:
        return {"code": self.code, "message": self.message[:4000]}

    @classmethod
    def _from_wire(cls, header: dict, frames: FrameReader) -> "Error":
        code = header["code"]
        if not isinstance(code, str) or not CODE_RE.fullmatch(code):
            raise fail("code", "a lower-case error code", code)
        return cls(id=header["id"], code=code, message=check_str(header["message"], "message", max_len=4000))


@dataclasses.dataclass(frozen=True)
class CancelAck(Message):
    TYPE: ClassVar[str] = "cancel_ack"
    FIELDS: ClassVar[tuple[str, ...]] = ("target", "found")
    target: str = ""
    found: bool = False

    def _to_wire(self, out: FrameWriter) -> dict:
        return {"target": self.target, "found": self.found}

    @classmethod
    def _from_wire(cls, header: dict, frames: FrameReader) -> "CancelAck":
        return cls(id=header["id"], target=check_request_id(header["target"], "target"), found=check_bool(header["found"], "found"))


REQUEST_TYPES: dict[str, type[Message]] = {m.TYPE: m for m in (Ping, InfoRequest, Reconstruct, Cancel)}
REPLY_TYPES: dict[str, type[Message]] = {m.TYPE: m for m in (Pong, Info, Progress, Result, Error, CancelAck)}
