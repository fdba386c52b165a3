"""Talking to the backend: a non-blocking DEALER socket per request, polled, never waited on.

No bpy here: ``ReconstructJob.poll()`` drains whatever has arrived and returns at once, so the
add-on calls it from a timer (and tests call it in a loop, since ``bpy.app.timers`` do not fire in
the bpy module). Messages are built and checked by ``protocol`` (a copy of ``backend/protocol.py``).
"""

from __future__ import annotations

import dataclasses
import time
import uuid

import zmq

from . import protocol
from .errors import AddonError

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5555"


def context() -> zmq.Context:
    """The process's one ZeroMQ context (shared with anything else in Blender that uses pyzmq)."""
    return zmq.Context.instance()


def check_endpoint(endpoint: str) -> str:
    endpoint = endpoint.strip()
    if not endpoint.startswith(("tcp://", "ipc://")) or endpoint.endswith(("://", ":")):
        raise AddonError(f"the endpoint {endpoint!r} is not like tcp://HOST:PORT", code="bad_endpoint")
    return endpoint


def new_id() -> str:
    return uuid.uuid4().hex


def _socket(endpoint: str) -> zmq.Socket:
    sock = context().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(check_endpoint(endpoint))
    except zmq.ZMQError as e:
        sock.close()
        raise AddonError(f"cannot connect to {endpoint}: {e}", code="unreachable", endpoint=endpoint) from e
    return sock


def _decode(frames: list, endpoint: str) -> protocol.Message:
    """Frames received on a DEALER: ``[b"", header, *buffers]`` (bytes, or zmq.Frame without a copy)."""
    frames = [f.buffer if isinstance(f, zmq.Frame) else f for f in frames]
    if not frames or len(frames[0]) != 0:
        raise AddonError(f"the server at {endpoint} sent a message without the empty delimiter frame",
                         code="bad_request")
    try:
        return protocol.decode(frames[1:], expect="reply")
    except protocol.ProtocolError as e:
        raise AddonError(f"the server sent a message off the protocol ({e})", code=e.code) from e


def request_info(endpoint: str, timeout_s: float = 3.0) -> protocol.Info:
    """Ask the backend what it runs (blocks at most ``timeout_s``: a button's short wait)."""
    sock = _socket(endpoint)
    try:
        request = protocol.InfoRequest(id=new_id())
        sock.send_multipart([b"", *protocol.encode(request)], copy=False)
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            if not sock.poll(int(left * 1000) + 1):
                continue
            reply = _decode(sock.recv_multipart(copy=True), endpoint)
            if reply.id != request.id:
                continue
            if isinstance(reply, protocol.Error):
                raise AddonError(f"the backend refused `info` ({reply.code}): {reply.message}", code=reply.code)
            if isinstance(reply, protocol.Info):
                return reply
        raise AddonError(f"no answer from the backend at {endpoint} within {timeout_s:g} s",
                         code="unreachable", endpoint=endpoint)
    finally:
        sock.close(linger=0)


def describe_info(info: protocol.Info) -> str:
    checkpoint = (info.checkpoint or {}).get("id", "none")
    return (f"{info.engine} on {info.device} ({'ready' if info.ready else 'loading'}), "
            f"{info.workers} worker(s), checkpoint {checkpoint}, protocol v{info.protocol_version}, "
            f"server {info.server_version}")


@dataclasses.dataclass
class JobState:
    """Where a request stands. state: running, done, failed or cancelled."""

    state: str = "running"
    stage: str = "sending"
    fraction: float = 0.0
    result: protocol.ResultReconstruction | None = None
    error: AddonError | None = None


class ReconstructJob:
    """One ``reconstruct`` request on its own DEALER socket.

    answer_timeout_s: silence after which the backend counts as unreachable (the server repeats
    progress every ``protocol.KEEPALIVE_S``); timeout_s: the whole request's limit (sent to the
    server too, which then ends it with ``timeout``; the client gives it a few seconds more).
    """

    def __init__(self, endpoint: str, image: bytes, options: protocol.Options, timeout_s: float,
                 answer_timeout_s: float = 10.0):
        if protocol.image_format(image) is None:
            raise AddonError("the photo is not a JPEG, PNG, WebP, BMP, TIFF or GIF file", code="bad_image")
        self.endpoint = check_endpoint(endpoint)
        self.id = new_id()
        self.timeout_s = float(timeout_s)
        self.answer_timeout_s = float(answer_timeout_s)
        self.status = JobState()
        self._sock = _socket(self.endpoint)
        message = protocol.Reconstruct(id=self.id, image=image, options=options.validate(),
                                       timeout_s=self.timeout_s, progress=True)
        try:
            self._sock.send_multipart([b"", *protocol.encode(message)], flags=zmq.NOBLOCK, copy=False)
        except zmq.ZMQError as e:
            self._sock.close(linger=0)
            raise AddonError(f"cannot send to the backend at {self.endpoint}: {e}", code="unreachable",
                             endpoint=self.endpoint) from e
        now = time.monotonic()
        self._last_heard = now
        self._deadline = now + self.timeout_s + 5.0

    @property
    def finished(self) -> bool:
        return self.status.state != "running"

    def _fail(self, error: AddonError) -> JobState:
        self.status.state, self.status.error = "failed", error
        self._close()
        return self.status

    def _close(self, linger_ms: int = 0) -> None:
        if not self._sock.closed:
            self._sock.close(linger=linger_ms)

    def poll(self, wait_s: float = 0.0) -> JobState:
        """Handle every message that has arrived, waiting at most ``wait_s`` for the first (0: never
        blocks, what the timer does); returns the state."""
        if self.finished:
            return self.status
        try:
            wait_ms = int(wait_s * 1000)
            while self._sock.poll(wait_ms):
                wait_ms = 0
                reply = _decode(self._sock.recv_multipart(copy=False), self.endpoint)
                self._last_heard = time.monotonic()
                if reply.id != self.id:
                    continue  # a cancel_ack, or a stale reply
                if isinstance(reply, protocol.Progress):
                    self.status.stage, self.status.fraction = reply.stage, reply.fraction
                elif isinstance(reply, protocol.Result):
                    self.status.state, self.status.result, self.status.fraction = "done", reply.reconstruction, 1.0
                    self.status.stage = "received"
                    self._close()
                    return self.status
                elif isinstance(reply, protocol.Error):
                    what = protocol.ERROR_CODES.get(reply.code, "an unknown error")
                    return self._fail(AddonError(f"the backend failed ({reply.code}: {what}): {reply.message}",
                                                 code=reply.code, endpoint=self.endpoint))
        except AddonError as e:
            return self._fail(e)
        except zmq.ZMQError as e:
            return self._fail(AddonError(f"lost the connection to {self.endpoint}: {e}", code="unreachable",
                                         endpoint=self.endpoint))
        now = time.monotonic()
        if now - self._last_heard > self.answer_timeout_s:
            return self._fail(AddonError(f"no answer from the backend at {self.endpoint} within "
                                         f"{self.answer_timeout_s:g} s", code="unreachable", endpoint=self.endpoint))
        if now > self._deadline:
            return self._fail(AddonError(f"the reconstruction took longer than {self.timeout_s:g} s",
                                         code="timeout", endpoint=self.endpoint))
        return self.status

    def cancel(self) -> JobState:
        """Ask the server to stop, and stop listening at once (the cancel is flushed for up to 1 s)."""
        if self.finished:
            return self.status
        try:
            self._sock.send_multipart([b"", *protocol.encode(protocol.Cancel(id=new_id(), target=self.id))],
                                      flags=zmq.NOBLOCK)
        except zmq.ZMQError:
            pass  # nothing to cancel on a server we cannot reach
        self.status.state, self.status.stage = "cancelled", "cancelled"
        self.status.error = AddonError("the reconstruction was cancelled", code="cancelled")
        self._close(linger_ms=1000)
        return self.status
