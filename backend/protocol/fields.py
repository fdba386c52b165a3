"""Field checks, the decoder's limits and the protocol's error type.

Pure functions: each takes a decoded header value and ``where`` (the field's name for error messages),
returns the value when it is what the protocol expects and raises ``ProtocolError`` otherwise.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

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

ID_RE = re.compile(r"[\x21-\x7e]{1,128}")  # printable ASCII, no spaces: always use fullmatch ("$" allows a final "\n")
CODE_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")  # fullmatch, like ID_RE


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


def fail(where: str, expected: str, value: Any) -> ProtocolError:
    shown = type(value).__name__ if not isinstance(value, (int, float, str)) else repr(value)[:40]
    return ProtocolError(f"field {where!r} must be {expected}, got {shown}")


def check_keys(mapping: Any, where: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
    if not isinstance(mapping, dict):
        raise fail(where, "a map", mapping)
    missing = [k for k in required if k not in mapping]
    if missing:
        raise ProtocolError(f"{where}: missing field(s) {', '.join(missing)}")
    unknown = [k for k in mapping if k not in required and k not in optional]
    if unknown:
        raise ProtocolError(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))[:200]}")
    return mapping


def check_str(value: Any, where: str, *, max_len: int = 256, choices: tuple[str, ...] | None = None) -> str:
    if not isinstance(value, str) or len(value) > max_len:
        raise fail(where, f"a string of at most {max_len} characters", value)
    if choices is not None and value not in choices:
        raise ProtocolError(f"field {where!r} is {value[:40]!r}, not one of {', '.join(choices)}")
    return value


def check_int(value: Any, where: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise fail(where, f"an integer in [{lo}, {hi}]", value)
    return value


def check_float(value: Any, where: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise fail(where, f"a number in [{lo}, {hi}]", value)
    return float(value)


def check_bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise fail(where, "true or false", value)
    return value


def check_request_id(value: Any, where: str = "id") -> str:
    if not isinstance(value, str) or not ID_RE.fullmatch(value):
        raise fail(where, "1-128 printable ASCII characters without spaces", value)
    return value


def check_plain(value: Any, where: str, limits: Limits, depth: int = 0) -> Any:
    """Check a JSON-like value (nil, bool, int, float, str, list, map with str keys)."""
    if depth > limits.max_depth:
        raise ProtocolError(f"{where}: nested deeper than {limits.max_depth}")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        for i, item in enumerate(value):
            check_plain(item, f"{where}[{i}]", limits, depth + 1)
        return value
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise fail(f"{where} key", "a string", key)
            check_plain(item, f"{where}.{key}", limits, depth + 1)
        return value
    raise fail(where, "JSON-like (nil, bool, number, string, list, map)", value)


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


def check_finite(arr: np.ndarray, where: str) -> np.ndarray:
    if arr.size and not np.isfinite(arr).all():
        raise ProtocolError(f"{where}: contains NaN or infinity")
    return arr


def check_pair(value: Any, where: str, kind: type, lo: float, hi: float) -> tuple:
    if not isinstance(value, list) or len(value) != 2:
        raise fail(where, "a list of 2 numbers", value)
    check = check_int if kind is int else check_float
    return tuple(check(v, f"{where}[{i}]", lo, hi) for i, v in enumerate(value))
