"""Buffers: arrays and blobs in ZeroMQ frames of their own, referenced from the header by index.

An array travels as ``{"frame": i, "dtype": "float32", "shape": [V, 3]}`` (raw C-order little-endian
bytes), a blob as ``{"frame": i, "nbytes": n}``; frame 0 is the header, and each buffer frame is
referenced exactly once.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .fields import Limits, ProtocolError, check_int, check_keys, check_str, fail

# dtype names on the wire -> numpy little-endian dtypes
DTYPES = {
    "uint8": np.dtype("<u1"),
    "int32": np.dtype("<i4"),
    "uint32": np.dtype("<u4"),
    "float32": np.dtype("<f4"),
    "float64": np.dtype("<f8"),
}


class FrameWriter:
    """Collects buffer frames while a header is built; ``frames[0]`` is reserved for the header."""

    def __init__(self) -> None:
        self.frames: list[bytes | memoryview] = [b""]

    def array(self, value: Any, dtype: str, ndim: int, where: str) -> dict:
        arr = np.ascontiguousarray(value, dtype=DTYPES[dtype])  # no copy when already right
        if arr.ndim != ndim:
            raise ValueError(f"{where}: expected {ndim} dimensions, got shape {arr.shape}")
        self.frames.append(memoryview(arr).cast("B") if arr.size else b"")
        return {"frame": len(self.frames) - 1, "dtype": dtype, "shape": list(arr.shape)}

    def blob(self, data: bytes | memoryview) -> dict:
        view = memoryview(data).cast("B") if not isinstance(data, bytes) else data
        self.frames.append(view)
        return {"frame": len(self.frames) - 1, "nbytes": len(view)}


class FrameReader:
    """Hands out the buffer frames a header references, each once, checking sizes against the refs."""

    def __init__(self, frames: list[memoryview], limits: Limits) -> None:
        self.frames = frames
        self.limits = limits
        self.used = [False] * len(frames)
        self.used[0] = True

    def _take(self, index: Any, where: str) -> memoryview:
        check_int(index, f"{where}.frame", 1, len(self.frames) - 1)
        if self.used[index]:
            raise ProtocolError(f"{where}: frame {index} is referenced twice")
        self.used[index] = True
        return self.frames[index]

    def array(self, ref: Any, where: str, dtype: str, shape: tuple[int | None, ...]) -> np.ndarray:
        """Read an array ref; ``shape`` gives the expected dims (None = any size up to the limits)."""
        check_keys(ref, where, ("frame", "dtype", "shape"))
        check_str(ref["dtype"], f"{where}.dtype", choices=(dtype,))
        dims = ref["shape"]
        if not isinstance(dims, list) or len(dims) != len(shape):
            raise fail(f"{where}.shape", f"a list of {len(shape)} integers", dims)
        for i, (got, want) in enumerate(zip(dims, shape)):
            lo, hi = (0, self.limits.max_vertices * 4) if want is None else (want, want)
            check_int(got, f"{where}.shape[{i}]", lo, hi)
        buf = self._take(ref["frame"], where)
        itemsize = DTYPES[dtype].itemsize
        nbytes = math.prod(dims) * itemsize
        if nbytes > self.limits.max_buffer_bytes or nbytes != len(buf):
            raise ProtocolError(f"{where}: shape {dims} of {dtype} needs {nbytes} bytes, its frame has {len(buf)}")
        return np.frombuffer(buf, dtype=DTYPES[dtype]).reshape(dims)

    def blob(self, ref: Any, where: str, max_bytes: int) -> memoryview:
        check_keys(ref, where, ("frame", "nbytes"))
        nbytes = check_int(ref["nbytes"], f"{where}.nbytes", 0, 1 << 62)
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


def frames_nbytes(frames: list[bytes | memoryview]) -> int:
    """Total bytes of encoded frames (what goes over the wire, envelope excluded)."""
    return sum(len(f) if isinstance(f, bytes) else memoryview(f).nbytes for f in frames)
