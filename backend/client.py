"""A headless client of the backend: ping, info and reconstruct over a DEALER socket.

Robustness rules (see PROTOCOL.md, "Clients"):

* One DEALER socket with a routing id of its own, replies matched to requests by ``id``; replies to an
  earlier request (late, duplicated) are ignored.
* A server that stays silent longer than allowed (``idle_timeout_s`` during a reconstruction, whose
  server repeats its progress every ``protocol.KEEPALIVE_S``; a share of the timeout for ping/info)
  costs the socket: it is closed (linger 0, so nothing stale is delivered later) and a fresh one with a
  new routing id sends the request again, up to ``retries`` times within the overall ``timeout_s``.
  That is what survives a server restart; there is no REQ socket to get stuck.
* Every failure is a ``BackendError`` whose ``code`` is a protocol error code (``unreachable`` when no
  server answered) and whose message says what to do.

``to_reconstruction``, ``write_npz``, ``write_glb`` and ``write_report`` turn a result into files
(written to a temporary name and renamed, so no half-written file is ever left).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import pathlib
import tempfile
import threading
import time
import uuid
from typing import Any, Callable, Iterator

import numpy as np
import zmq

from . import protocol, transport
from munet.errors import MunetError

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5555"
PING_TIMEOUT_S = 5.0
RECONSTRUCT_TIMEOUT_S = 600.0
RETRYABLE_CODES = ("shutting_down",)
_CANCEL_ATTEMPTS = 8  # through a broker a cancel may land on a worker that does not run the request
_POLL_S = 0.05


_HANDSHAKE_EVENTS = (zmq.EVENT_CONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
                     | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH)


def _handshake_hint(events: set[int], keys: transport.CurveKeys | None) -> str:
    """What the connection's monitor events say about an unanswered call (for the error message)."""
    if zmq.EVENT_HANDSHAKE_FAILED_AUTH in events:
        return (f"the server refused this client's key: put {keys.directory / 'client.key' if keys else 'client.key'} "
                "in the server's authorized_clients/ folder")
    if zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL in events and keys is not None:
        return (f"the CURVE handshake failed: {keys.directory / 'server.key'} is not the key of the server there "
                "(copy its server.key from the server's key folder)")
    if zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL in events or zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL in events:
        return ("the security handshake failed: the server uses CURVE and this client does not, or the other way "
                "round (pass --curve-keys DIR on both sides, or on neither)")
    if zmq.EVENT_HANDSHAKE_SUCCEEDED in events:
        return "the connection works but the server did not answer in time (is it overloaded, or not a munet server?)"
    if zmq.EVENT_CONNECTED in events:
        return "a connection was made but the handshake never completed: is it a munet server, with the same security?"
    return "nothing accepted the connection: is `munet serve` running there, and reachable?"


class BackendError(MunetError):
    """The backend answered with an error, or did not answer. ``code`` is a protocol error code."""

    def __init__(self, code: str, message: str):
        super().__init__(message, code=code)


class Client:
    """Talk to one backend endpoint (a server or a broker). Not thread-safe: one per thread.

    timeout_s: overall limit per call, retries included (None: ``PING_TIMEOUT_S`` for ping/info,
        ``RECONSTRUCT_TIMEOUT_S`` for reconstruct).
    retries: extra attempts after a silent server (0: report the first silence).
    idle_timeout_s: longest silence tolerated while a reconstruction is pending.
    curve_keys: key directory (``munet keys``) when the server uses CURVE.
    """

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, *, timeout_s: float | None = None, retries: int = 2,
                 idle_timeout_s: float = 5.0, curve_keys: str | None = None, name: str | None = None,
                 limits: protocol.Limits = protocol.DEFAULT_LIMITS):
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.retries = max(0, retries)
        self.idle_timeout_s = idle_timeout_s
        self.limits = limits
        self._keys = transport.load_keys(curve_keys, "client") if curve_keys else None
        if self._keys is None and not transport.is_loopback(endpoint):
            log.info("connecting to %s without CURVE: if the server uses --curve-keys, pass yours too", endpoint)
        self._name = name or f"munet-client-{uuid.uuid4().hex[:8]}"
        self._ids = itertools.count(1)
        self._incarnation = 0
        self._sock: zmq.Socket | None = None
        self._monitor: zmq.Socket | None = None
        self._events: set[int] = set()
        self._pending: str | None = None  # id of the call in progress (for cancel_pending)

    # -- socket lifecycle

    def _socket(self) -> zmq.Socket:
        if self._sock is None:
            sock = transport.context().socket(zmq.DEALER)
            sock.linger = 0
            sock.routing_id = f"{self._name}.{self._incarnation}".encode()
            sock.sndhwm = sock.rcvhwm = 1000
            if self._keys is not None:
                transport.secure_client(sock, self._keys)
            self._monitor = sock.get_monitor_socket(_HANDSHAKE_EVENTS)
            transport.connect(sock, self.endpoint)
            self._sock = sock
        return self._sock

    def _reset(self) -> None:
        """Drop the socket and everything queued in it; the next call connects afresh."""
        if self._sock is not None:
            self._handshake_events()
            self._sock.disable_monitor()
            self._monitor.close(linger=0)
            self._monitor = None
            self._sock.close(linger=0)
            self._sock = None
            self._incarnation += 1

    def _handshake_events(self) -> set[int]:
        """The connection events seen so far (kept across sockets until a call succeeds)."""
        from zmq.utils.monitor import recv_monitor_message

        while self._monitor is not None and self._monitor.poll(0):
            self._events.add(int(recv_monitor_message(self._monitor)["event"]))
        return self._events

    def close(self) -> None:
        self._reset()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- messages

    def _new_id(self) -> str:
        return f"{self._name[-8:]}-{next(self._ids)}"

    def _send(self, message: protocol.Message) -> None:
        try:
            self._socket().send_multipart([b"", *protocol.encode(message)], zmq.NOBLOCK, copy=False)
        except zmq.Again:
            pass  # no connection yet and the queue is full: the wait below times out and retries
        except zmq.ZMQError as e:
            raise transport.TransportError(f"cannot send to {self.endpoint}: {e}") from e

    def _receive(self, wait_s: float) -> protocol.Message | None:
        sock = self._socket()
        if not sock.poll(max(1, int(wait_s * 1000))):
            return None
        frames = sock.recv_multipart(copy=False)
        if not frames or len(frames[0]) != 0:
            log.debug("reply without the empty delimiter frame: ignored")
            return None
        try:
            return protocol.decode(frames[1:], expect="reply", limits=self.limits)
        except protocol.ProtocolError as e:
            raise BackendError("internal", f"the backend at {self.endpoint} sent a malformed reply ({e}): are both sides the same version?") from e

    def _call(self, build: Callable[[str, float], protocol.Message], *, timeout_s: float, silence_s: Callable[[float], float],
              on_progress: Callable[[protocol.Progress], None] | None = None,
              cancel: threading.Event | None = None) -> protocol.Message:
        """Send ``build(id, remaining_s)`` and wait for its terminal reply, retrying after silences."""
        request_id = self._new_id()
        self._pending = request_id  # kept if KeyboardInterrupt escapes, for cancel_pending()
        try:
            reply = self._attempts(request_id, build, timeout_s, silence_s, on_progress, cancel)
        except MunetError:
            self._pending = None
            raise
        self._pending = None
        return reply

    def _attempts(self, request_id: str, build: Callable[[str, float], protocol.Message], timeout_s: float,
                  silence_s: Callable[[float], float], on_progress: Callable[[protocol.Progress], None] | None,
                  cancel: threading.Event | None) -> protocol.Message:
        started = time.monotonic()
        deadline = started + timeout_s
        attempts = self.retries + 1
        heard = False
        self._events.clear()
        for attempt in range(attempts):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            request = build(request_id, remaining)
            self._send(request)
            last_heard = time.monotonic()
            allowed_silence = silence_s(remaining)
            cancels_sent = 0
            while True:
                now = time.monotonic()
                if now >= deadline:
                    self._reset()
                    if heard:
                        raise BackendError("timeout", f"no final answer from {self.endpoint} within {timeout_s:g} s")
                    raise self._unreachable(time.monotonic() - started, attempt + 1, allowed_silence)
                if now - last_heard >= allowed_silence:
                    log.info("no answer from %s for %.1f s (attempt %d of %d)", self.endpoint, now - last_heard, attempt + 1, attempts)
                    self._reset()
                    break
                if cancel is not None and cancel.is_set() and cancels_sent == 0:
                    self._send(protocol.Cancel(self._new_id(), target=request_id))
                    cancels_sent = 1
                wait = min(deadline, last_heard + allowed_silence) - now
                reply = self._receive(min(wait, _POLL_S) if cancel is not None else wait)
                if reply is None:
                    continue
                if isinstance(reply, protocol.CancelAck):
                    if not reply.found and reply.target == request_id and cancels_sent < _CANCEL_ATTEMPTS:
                        self._send(protocol.Cancel(self._new_id(), target=request_id))  # a broker's other worker
                        cancels_sent += 1
                    continue
                if reply.id is None and isinstance(reply, protocol.Error):
                    raise BackendError(reply.code, f"the backend refused the request: {reply.message}")
                if reply.id != request_id:
                    log.debug("ignored a reply to another request (%s)", reply.id)
                    continue
                heard = True
                last_heard = time.monotonic()
                if isinstance(reply, protocol.Progress):
                    if on_progress is not None:
                        on_progress(reply)
                    continue
                if isinstance(reply, protocol.Error):
                    if reply.code in RETRYABLE_CODES and attempt + 1 < attempts:
                        log.info("%s: %s; retrying", reply.code, reply.message)
                        self._reset()
                        break
                    raise BackendError(reply.code, reply.message)
                return reply
        raise self._unreachable(time.monotonic() - started, attempts, silence_s(timeout_s))

    def cancel_pending(self, wait_s: float = 1.0) -> bool:
        """Cancel the call that was interrupted (e.g. by KeyboardInterrupt) inside ``reconstruct``:
        True when the server acknowledged that it had the request."""
        target, self._pending = self._pending, None
        if target is None or self._sock is None:
            return False
        cancel_id = self._new_id()
        self._send(protocol.Cancel(cancel_id, target=target))
        deadline = time.monotonic() + wait_s
        while (remaining := deadline - time.monotonic()) > 0:
            reply = self._receive(remaining)
            if isinstance(reply, protocol.CancelAck) and reply.id == cancel_id:
                return reply.found
        return False

    def _unreachable(self, elapsed_s: float, attempts: int, silence_s: float) -> BackendError:
        """No answer: say how long and how often we tried, and what the connection showed (a security
        handshake that failed names the key problem; a missing server, the server)."""
        why = _handshake_hint(self._handshake_events() if self._monitor is not None else self._events, self._keys)
        self._events.clear()
        return BackendError("unreachable", f"no answer from the backend at {self.endpoint}: {attempts} attempt(s) "
                                           f"in {elapsed_s:.1f} s, each given up after {silence_s:.1f} s of silence: {why}")

    # -- operations

    def ping(self, timeout_s: float | None = None) -> protocol.Pong:
        """Health check: raises BackendError("unreachable") when no server answers in time."""
        total = timeout_s or self.timeout_s or PING_TIMEOUT_S
        share = max(0.2, total / (self.retries + 1))
        return self._call(lambda rid, _: protocol.Ping(rid), timeout_s=total, silence_s=lambda _: share)

    def info(self, timeout_s: float | None = None) -> protocol.Info:
        total = timeout_s or self.timeout_s or PING_TIMEOUT_S
        share = max(0.2, total / (self.retries + 1))
        return self._call(lambda rid, _: protocol.InfoRequest(rid), timeout_s=total, silence_s=lambda _: share)

    def reconstruct(self, image: bytes, options: protocol.Options | None = None, *, timeout_s: float | None = None,
                    progress: Callable[[protocol.Progress], None] | None = None,
                    cancel: threading.Event | None = None) -> protocol.ResultReconstruction:
        """Reconstruct the person in ``image`` (encoded JPEG/PNG/... bytes).

        progress: called with each ``protocol.Progress``; cancel: set it to cancel (then this raises
        BackendError("cancelled")). The server is told the time left so it stops when we give up.
        """
        options = (options or protocol.Options()).validate()
        if len(image) > self.limits.max_image_bytes:
            raise BackendError("image_too_large", f"the photo is {len(image)} bytes, more than the {self.limits.max_image_bytes} a server accepts: downscale it")
        if protocol.image_format(image) is None:
            raise BackendError("bad_image", "the file is not a JPEG, PNG, WebP, BMP, TIFF or GIF image")
        total = timeout_s or self.timeout_s or RECONSTRUCT_TIMEOUT_S

        def build(request_id: str, remaining: float) -> protocol.Reconstruct:
            server_budget = max(1e-3, remaining - min(0.5, 0.1 * remaining))  # its timeout error arrives first
            return protocol.Reconstruct(request_id, image=image, options=options, timeout_s=min(server_budget, self.limits.max_timeout_s), progress=True)

        reply = self._call(build, timeout_s=total, silence_s=lambda remaining: min(self.idle_timeout_s, remaining),
                           on_progress=progress, cancel=cancel)
        return reply.reconstruction


# --------------------------------------------------------------------------------------------------
# Results to files


def to_reconstruction(result: protocol.ResultReconstruction) -> Any:
    """A ``munet.reconstruction.Reconstruction`` with its own (writable) copies of the arrays."""
    from munet.reconstruction import Camera, Reconstruction, Skeleton, SkinnedSurface, SkinWeights, Texture
    from munet.report import PlainReport

    def surface(s: protocol.ResultSurface | None) -> SkinnedSurface | None:
        if s is None:
            return None
        return SkinnedSurface(s.rest_vertices_m.copy(), s.posed_vertices_m.copy(), s.faces.copy(),
                              SkinWeights(s.skin.joint_indices.copy(), s.skin.weights.copy()),
                              None if s.uv_per_corner is None else s.uv_per_corner.copy())

    sk, cam, tex = result.skeleton, result.camera, result.texture
    return Reconstruction(
        body=surface(result.body), clothed=surface(result.clothed),
        skeleton=Skeleton(sk.name, tuple(sk.joint_names), sk.parents.copy(), sk.rest_joints_m.copy()),
        pose_axis_angle=result.pose_axis_angle.copy(), root_translation_m=result.root_translation_m.copy(),
        shape=result.shape.copy(), body_model=result.body_model,
        camera=Camera(tuple(cam.focal_px), tuple(cam.principal_point_px), tuple(cam.image_size),
                      cam.R_world_to_cam.copy(), cam.t_world_to_cam_m.copy()),
        texture=None if tex is None else Texture(bytes(tex.image_bytes), tex.mime_type, tex.width, tex.height),
        report=PlainReport(json.loads(json.dumps(result.report))),
    )


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[pathlib.Path]:
    """Yield a temporary path beside ``path`` (same suffix); rename it onto ``path`` on success,
    delete it on failure."""
    target = pathlib.Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".partial{target.suffix}", dir=target.parent)
    os.close(fd)
    tmp_path = pathlib.Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp made it 0600: give it the mode open() would
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def _umask() -> int:
    """The process's umask (read without changing it where Linux allows)."""
    try:
        for line in pathlib.Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def result_arrays(result: protocol.ResultReconstruction) -> dict[str, np.ndarray]:
    """Every field of a result as named numpy arrays (the ``.npz`` layout; strings as 0-d str arrays,
    the texture as uint8 bytes, the report as JSON text)."""
    out: dict[str, np.ndarray] = {"body_model": np.array(result.body_model)}
    for name, surface in (("body", result.body), ("clothed", result.clothed)):
        if surface is None:
            continue
        out[f"{name}_rest_vertices_m"] = surface.rest_vertices_m
        out[f"{name}_posed_vertices_m"] = surface.posed_vertices_m
        out[f"{name}_faces"] = surface.faces
        out[f"{name}_skin_joint_indices"] = surface.skin.joint_indices
        out[f"{name}_skin_weights"] = surface.skin.weights
        if surface.uv_per_corner is not None:
            out[f"{name}_uv_per_corner"] = surface.uv_per_corner
    sk, cam = result.skeleton, result.camera
    out.update(
        skeleton_name=np.array(sk.name), skeleton_joint_names=np.array(sk.joint_names), skeleton_parents=sk.parents,
        skeleton_rest_joints_m=sk.rest_joints_m, pose_axis_angle=result.pose_axis_angle,
        root_translation_m=result.root_translation_m, shape=result.shape,
        camera_focal_px=np.array(cam.focal_px), camera_principal_point_px=np.array(cam.principal_point_px),
        camera_image_size=np.array(cam.image_size), camera_R_world_to_cam=cam.R_world_to_cam,
        camera_t_world_to_cam_m=cam.t_world_to_cam_m, report_json=np.array(json.dumps(result.report)),
    )
    if result.texture is not None:
        out["texture_image"] = np.frombuffer(result.texture.image_bytes, np.uint8)
        out["texture_mime_type"] = np.array(result.texture.mime_type)
    return out


def write_npz(result: protocol.ResultReconstruction, path: str | os.PathLike) -> None:
    """Raw arrays (``result_arrays``) into one compressed ``.npz``: needs nothing but numpy."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **result_arrays(result))


def write_glb(result: protocol.ResultReconstruction, path: str | os.PathLike) -> None:
    """A skinned GLB through ``munet.export.write_glb`` (armature + Body + Clothed)."""
    try:
        from munet.export import write_glb as export_glb
    except ImportError as e:
        raise MunetError("GLB export is not available in this installation (munet.export.write_glb is missing): "
                         "write the raw arrays with -o OUT.npz instead", code="bad_request") from e
    reconstruction = to_reconstruction(result)
    with atomic_path(path) as tmp:
        export_glb(reconstruction, str(tmp))


def write_report(result: protocol.ResultReconstruction, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(result.report, indent=2, sort_keys=True) + "\n")


def write_result(result: protocol.ResultReconstruction, path: str | os.PathLike) -> None:
    """Write by suffix: ``.glb`` (skinned, via munet.export) or ``.npz`` (raw arrays)."""
    suffix = pathlib.Path(path).suffix.lower()
    if suffix == ".npz":
        write_npz(result, path)
    elif suffix == ".glb":
        write_glb(result, path)
    else:
        raise MunetError(f"cannot write {path}: the output must end in .glb or .npz", code="bad_request")
