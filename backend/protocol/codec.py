"""``encode`` a message into frames and ``decode`` frames back into a checked message."""

from __future__ import annotations

from typing import Any

import msgpack

from .fields import DEFAULT_LIMITS, ID_RE, Limits, ProtocolError, check_keys, check_request_id, fail
from .frames import FrameReader, FrameWriter
from .messages import PROTOCOL_VERSION, REPLY_TYPES, REQUEST_TYPES, SUPPORTED_VERSIONS, Error, Message


def encode(message: Message) -> list[bytes | memoryview]:
    """Frames for ``message``: ``[header, *buffers]`` (prepend the ``b""`` delimiter on a DEALER).

    Buffers are views of the message's arrays (no copy): keep the message alive until sent.
    """
    out = FrameWriter()
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
        raise fail("header", "a msgpack map", header)
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
    request_id = raw_id if isinstance(raw_id, str) and ID_RE.fullmatch(raw_id) else None
    try:
        version = header.get("v")
        if isinstance(version, bool) or not isinstance(version, int):
            raise fail("v", "the protocol version (an integer)", version)
        if version not in SUPPORTED_VERSIONS:
            raise ProtocolError(
                f"protocol version {version} is not supported: this side speaks {', '.join(map(str, SUPPORTED_VERSIONS))}"
                " (update the add-on or the backend so both match)", code="unsupported_version")
        types = REQUEST_TYPES if expect == "request" else REPLY_TYPES
        kind = header.get("type")
        if not isinstance(kind, str) or kind not in types:
            raise ProtocolError(f"field 'type' must be one of {', '.join(types)}, got {str(kind)[:40]!r}")
        cls = types[kind]
        check_keys(header, kind, ("v", "type", "id") + cls.FIELDS)
        if raw_id is None:
            if cls is not Error:
                raise fail("id", "a request id", raw_id)
        else:
            check_request_id(raw_id)
        reader = FrameReader(views, limits)
        message = cls._from_wire(header, reader)
        reader.check_all_used()
        return message
    except ProtocolError as e:
        e.request_id = request_id
        raise
