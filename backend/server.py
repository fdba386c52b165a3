"""The reconstruction server: one ROUTER socket, a loop that never runs a model, worker threads that do.

Routing: clients are DEALER sockets that send ``[b"", header, *buffers]``; the ROUTER socket prepends
their routing id. Everything before the first empty frame is the envelope, sent back unchanged in
front of every reply. Behind a broker (``--connect``) the socket is a DEALER connected to the broker's
worker endpoint and every message carries one more frame first, the worker link's kind
(``backend.broker``): requests arrive as ``[b"Q", *envelope, b"", header, ...]``, replies leave as
``[b"R", *envelope, b"", ...]``, and a heartbeat announces the worker's capacity every second.

The loop (main thread) only decodes, checks and routes: ``ping``, ``info`` and ``cancel`` are answered
at once; a valid ``reconstruct`` becomes a ``Job`` on the bounded queue of ``backend.service.WorkerPool``
(or an immediate ``busy`` error). Worker threads send their progress and terminal replies through an
inproc PUSH socket that the loop drains and forwards (ZeroMQ sockets are not shared between threads
without a lock). Every tick the loop ends overdue jobs with ``timeout``, repeats the latest progress
of quiet jobs as keepalive (``protocol.KEEPALIVE_S``) and, since the ROUTER is in mandatory-routing
mode, learns from a failed send that a client is gone and drops its queued work.

Run it as ``munet serve`` or ``python -m backend.server`` (same arguments).
"""

from __future__ import annotations

import collections
import dataclasses
import errno
import logging
import os
import signal
import socket
import sys
import threading
import time
from typing import Any, Callable

import msgpack
import zmq

from . import protocol, transport
from . import broker as link
from .guard import ENVELOPE_FRAMES, FRAME_OVERHEAD, PeerGuard, harden, request_limit
from .service import Engine, Job, WorkerPool
from munet.errors import MunetError

log = logging.getLogger(__name__)

SERVER_VERSION = "0.1.0"
_TICK_S = 0.05  # loop wake-up for deadlines, keepalive and stop requests
_BATCH = 256  # messages handled per socket per wake-up, so one socket cannot starve the other
_SLOW_READER_LOG_S = 10.0  # at most one "reads too slowly" line per client per this many seconds


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    """How a server listens and works.

    bind: endpoint to bind (clients connect), e.g. ``tcp://127.0.0.1:5555``; ``:0`` picks a free port.
    connect: instead of binding, connect to a broker's worker endpoint (``backend.broker``).
    workers: worker threads, each loading its own engine.
    queue_size: requests that may wait beyond those running; more are answered ``busy``.
    default_timeout_s / max_timeout_s: a request's timeout when it names none / at most.
    curve_keys: key directory for CURVE (see ``backend.transport``); insecure: allow an exposed
        endpoint without CURVE.
    stall_timeout_s: a peer whose unfinished message stops progressing this long is dropped
        (``backend.guard``; bound sockets only).
    """

    bind: str | None = "tcp://127.0.0.1:5555"
    connect: str | None = None
    workers: int = 1
    queue_size: int = 8
    default_timeout_s: float = 300.0
    max_timeout_s: float = 3600.0
    curve_keys: str | None = None
    insecure: bool = False
    device: str = "auto"
    shutdown_grace_s: float = 3.0
    stall_timeout_s: float = 30.0
    limits: protocol.Limits = protocol.DEFAULT_LIMITS


class Server:
    """Serve ``make_engine()`` engines over ZeroMQ until ``stop`` is set (see the module docstring)."""

    def __init__(self, config: ServerConfig, make_engine: Callable[[], Engine],
                 announce: Callable[[str], None] = lambda line: None):
        if (config.bind is None) == (config.connect is None):
            raise ValueError("give exactly one of bind and connect")
        self.config = config
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.stats: collections.Counter[str] = collections.Counter()
        self.endpoint: str | None = None
        self._pool = WorkerPool(make_engine, config.workers, config.queue_size, self._push)
        self._ctx = transport.context()
        self._router: zmq.Socket | None = None
        self._outbox: zmq.Socket | None = None
        self._push_socket: zmq.Socket | None = None
        self._push_lock = threading.Lock()
        self._auth: transport.Authenticator | None = None
        self._guard: PeerGuard | None = None
        self._guard_events: zmq.Socket | None = None
        self._announce = announce
        self._announced_ready = False
        self._slow_readers: dict[tuple[bytes, ...], list[float]] = {}  # envelope -> [first drop, count]
        self._worker_link = config.connect is not None  # behind a broker: kind frames (backend.broker)
        self._next_heartbeat = 0.0

    # -- setup and teardown

    def start(self) -> str:
        """Open the sockets, start the workers (they load their engines in the background) and return
        the endpoint (with the real port when bound to port 0)."""
        cfg = self.config
        endpoint = cfg.bind or cfg.connect
        keys = transport.load_keys(cfg.curve_keys, "server" if cfg.bind else "client") if cfg.curve_keys else None
        transport.check_exposure([endpoint], keys, cfg.insecure)

        outbox_address = f"inproc://munet-outbox-{id(self)}"
        self._outbox = self._ctx.socket(zmq.PULL)
        self._outbox.bind(outbox_address)
        self._push_socket = self._ctx.socket(zmq.PUSH)
        self._push_socket.sndhwm = 0  # replies must never be dropped between threads
        self._push_socket.connect(outbox_address)

        router = self._ctx.socket(zmq.ROUTER if cfg.bind else zmq.DEALER)
        router.linger = 1000
        if cfg.bind:
            router.router_mandatory = True  # a send to a vanished client raises EHOSTUNREACH
        else:
            router.routing_id = self.name.encode()  # the broker's logs name the worker
        harden(router, cfg.limits)
        router.sndhwm, router.rcvhwm = 10_000, 1000  # replies may burst; requests are drained fast
        if cfg.bind:
            self._guard = PeerGuard(request_limit(cfg.limits), stall_s=cfg.stall_timeout_s)
            self._guard_events = self._guard.watch(router)
        if keys is not None and cfg.bind:
            self._auth = transport.Authenticator(keys)
            transport.secure_server(router, keys)
        elif keys is not None:
            transport.secure_client(router, keys)
        if cfg.bind:
            self.endpoint = transport.bind(router, cfg.bind)
        else:
            transport.connect(router, cfg.connect)
            self.endpoint = cfg.connect
        self._router = router
        if self._guard is not None:
            self._guard.start()
        self._pool.start()
        log.info("%s %s with %d worker(s), queue %d%s", "listening on" if cfg.bind else "connected to broker at",
                 self.endpoint, cfg.workers, cfg.queue_size, ", CURVE" if keys else "")
        return self.endpoint

    def close(self) -> None:
        with self._push_lock:  # a worker left inside a stage may still try to push
            if self._push_socket is not None:
                self._push_socket.close(linger=0)
                self._push_socket = None
        for sock in (self._router, self._outbox):
            if sock is not None:
                sock.close()
        self._router = self._outbox = None
        if self._guard is not None:
            self._guard.stop()
            self._guard = self._guard_events = None
        if self._auth is not None:
            self._auth.stop()
            self._auth = None

    # -- the loop

    def serve(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set, then shut down: every queued or running request gets a
        ``shutting_down`` error. Raises the engine's error if the engine cannot be loaded."""
        poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        poller.register(self._outbox, zmq.POLLIN)
        if self._guard_events is not None:
            poller.register(self._guard_events, zmq.POLLIN)
        failure: BaseException | None = None
        while not stop.is_set():
            events = dict(poller.poll(_TICK_S * 1000))
            if self._guard is not None:
                self._guard.events()  # connections are known before their messages are read
            if self._outbox in events:
                self._drain(self._outbox, self._forward)
            if self._router in events:
                self._drain_router()
            self._tick(time.monotonic())
            if self._pool.load_error is not None:
                failure = self._pool.load_error
                break
        self._shutdown(failure)
        if failure is not None:
            if isinstance(failure, MunetError):
                raise failure
            raise MunetError(f"cannot load the reconstruction engine: {type(failure).__name__}: {failure}") from failure

    def _drain(self, sock: zmq.Socket, handle: Callable[[list[zmq.Frame]], None]) -> None:
        transport.drain(sock, handle, self.stats, log, _BATCH)

    def _drain_router(self) -> None:
        for _ in range(_BATCH):
            try:
                frames = self._receive()
            except zmq.Again:
                return
            try:
                self._handle(frames)
            except Exception:  # noqa: BLE001 - one bad message must not stop the server
                self.stats["internal_errors"] += 1
                log.exception("unexpected error while handling a message")

    def _receive(self) -> list[zmq.Frame]:
        """One message from the ROUTER, frame by frame: beyond the frame-count or byte limits of a request
        the remaining frames are released as they are read (never all held at once); such a message is
        answered ``bad_request`` (``_handle`` sees only its first frames, which cannot decode)."""
        limits = self.config.limits
        max_frames = ENVELOPE_FRAMES + 1 + limits.max_frames
        max_bytes = request_limit(limits)
        frame = self._router.recv(zmq.NOBLOCK, copy=False)
        frames, total, count, consumed = [frame], len(frame), 1, len(frame) + FRAME_OVERHEAD
        while frame.more:
            frame = self._router.recv(copy=False)
            count += 1
            consumed += len(frame) + FRAME_OVERHEAD
            if total + len(frame) <= max_bytes and count <= max_frames:
                frames.append(frame)
                total += len(frame)
        if self._guard is not None:
            self._guard.consumed(frames[0], consumed)
        if count > len(frames):
            self.stats["oversized"] += 1
            log.info("a message of %d frames / over %d bytes was cut to its first %d frames", count, max_bytes, len(frames))
            frames.append(_OVERSIZED)
        return frames

    def _shutdown(self, failure: BaseException | None) -> None:
        code = getattr(failure, "code", "internal") if failure is not None else "shutting_down"
        message = f"the server could not load its model: {failure}" if failure is not None else \
            "the server is shutting down: retry once it is back"
        jobs = self._pool.stop()
        for job in jobs:
            if job.finish():  # claim the reply before the cancel makes the worker answer "cancelled"
                self._reply(job.envelope, protocol.Error(job.id, code, message))
            job.cancel.set()
        log.info("shutting down: %d request(s) ended with %s", len(jobs), code)
        if not self._pool.join(self.config.shutdown_grace_s):
            log.warning("a worker is still inside a stage after %.1f s; leaving it behind", self.config.shutdown_grace_s)
        self._drain(self._outbox, self._forward)  # progress already in flight

    # -- sending

    def _push(self, job: Job, message: protocol.Message) -> None:
        """Called from worker threads: hand a reply to the loop through the inproc outbox."""
        kind = b"P" if isinstance(message, protocol.Progress) else b"T"
        frames = [kind, *job.envelope, b"", *protocol.encode(message)]
        with self._push_lock:
            if self._push_socket is not None:
                self._push_socket.send_multipart(frames, copy=False)

    def _forward(self, frames: list[zmq.Frame]) -> None:
        kind, rest = frames[0].bytes, frames[1:]
        if kind == b"T":
            self.stats["replies_terminal"] += 1
        self._send(rest)

    def _reply(self, envelope: tuple[bytes, ...], message: protocol.Message) -> None:
        if isinstance(message, protocol.Error):
            self.stats[f"error_{message.code}"] += 1
        self._send([*envelope, b"", *protocol.encode(message)])

    def _send(self, frames: list[Any]) -> None:
        try:
            self._router.send_multipart([link.REPLY, *frames] if self._worker_link else frames, zmq.NOBLOCK, copy=False)
            self.stats["sent"] += 1
        except zmq.ZMQError as e:
            envelope = transport.envelope_of(frames)
            if e.errno == errno.EHOSTUNREACH:
                self._client_gone(envelope)
            elif e.errno == errno.EAGAIN:
                self.stats["send_dropped_full"] += 1
                self._slow_reader(envelope)
            else:
                raise

    def _slow_reader(self, envelope: tuple[bytes, ...], now: float | None = None) -> None:
        """Log a dropped reply: the first one of a client at once, then one line per ``_SLOW_READER_LOG_S``
        with the count dropped meanwhile (a client that never reads would otherwise flood the log)."""
        now = time.monotonic() if now is None else now
        entry = self._slow_readers.get(envelope)
        if entry is None:
            if len(self._slow_readers) > 1000:
                self._slow_readers.clear()
            self._slow_readers[envelope] = [now, 0]
            log.warning("client %r reads too slowly: a reply was dropped", envelope)
            return
        entry[1] += 1
        if now - entry[0] >= _SLOW_READER_LOG_S:
            log.warning("client %r reads too slowly: %d more replies dropped in the last %.0f s", envelope,
                        entry[1], now - entry[0])
            entry[0], entry[1] = now, 0

    def _client_gone(self, envelope: tuple[bytes, ...]) -> None:
        """The client behind ``envelope`` disconnected: drop its queued jobs, stop its running ones."""
        self.stats["send_unroutable"] += 1
        queued, running = self._pool.snapshot()
        for job in queued + running:
            if job.envelope == envelope and job.finish():
                self._pool.remove(job)
                job.cancel.set()
                self.stats["jobs_abandoned"] += 1
                log.info("client of request %s is gone: dropped", job.id)

    # -- receiving

    def _handle(self, frames: list[zmq.Frame]) -> None:
        oversized = frames[-1] is _OVERSIZED
        if oversized:
            frames = frames[:-1]
        if self._worker_link:
            frames = self._from_broker(frames)
            if not frames:
                return
        self.stats["received"] += 1
        delimiter = next((i for i, f in enumerate(frames) if len(f) == 0), None)
        if delimiter is None or delimiter == 0 or delimiter > ENVELOPE_FRAMES:
            self.stats["dropped"] += 1  # no routable envelope: nobody to answer
            return
        envelope = tuple(f.bytes for f in frames[:delimiter])
        if oversized:
            self.stats["rejected"] += 1
            self._reply(envelope, protocol.Error(_request_id(frames[delimiter + 1:-1]), "bad_request",
                                                 "the message has more frames or bytes than any request: refused"))
            return
        try:
            message = protocol.decode(frames[delimiter + 1:], expect="request", limits=self.config.limits)
        except protocol.ProtocolError as e:
            self.stats["rejected"] += 1
            log.debug("rejected a message: %s", e)
            self._reply(envelope, protocol.Error(e.request_id, e.code, str(e)))
            return
        if isinstance(message, protocol.Ping):
            queued, running = self._pool.snapshot()
            self._reply(envelope, protocol.Pong(
                message.id, worker=self.name, ready=self._pool.ready, running=len(running), queued=len(queued),
                capacity=self.config.workers + self.config.queue_size, stats=dict(self.stats)))
        elif isinstance(message, protocol.InfoRequest):
            self._reply(envelope, self._info(message.id))
        elif isinstance(message, protocol.Cancel):
            self._cancel(envelope, message)
        elif isinstance(message, protocol.Reconstruct):
            self._accept(envelope, message)

    def _from_broker(self, frames: list[zmq.Frame]) -> list[zmq.Frame]:
        """The request in a message from the broker ([] for the link's own messages, handled here)."""
        kind = frames[0].bytes
        if kind == link.REQUEST:
            return frames[1:]
        if kind == link.GONE:
            self._client_gone(tuple(f.bytes for f in frames[1:]))
        return []

    def _heartbeat(self, now: float) -> None:
        """Behind a broker: announce this worker (ready or loading, capacity) every ``link.HEARTBEAT_S``."""
        changed = self._pool.ready != self._announced_ready  # tell the broker at once when loading ends
        if not self._worker_link or (now < self._next_heartbeat and not changed):
            return
        self._next_heartbeat = now + link.HEARTBEAT_S
        info = {"name": self.name, "ready": self._pool.ready, "threads": self.config.workers,
                "capacity": self.config.workers + self.config.queue_size}
        try:
            self._router.send_multipart([link.HEARTBEAT, msgpack.packb(info)], zmq.NOBLOCK)
        except zmq.Again:
            pass  # not connected yet

    def _info(self, request_id: str) -> protocol.Info:
        engine = self._pool.engine_info
        cfg = self.config
        return protocol.Info(
            request_id, server_version=SERVER_VERSION, worker=self.name,
            engine=engine.engine if engine else "loading", device=engine.device if engine else cfg.device,
            ready=self._pool.ready, workers=cfg.workers, queue_capacity=cfg.workers + cfg.queue_size,
            body_models=engine.body_models if engine else (), skeletons=engine.skeletons if engine else (),
            checkpoint=engine.checkpoint if engine else None, versions=engine.versions if engine else {},
            limits={**cfg.limits.as_dict(), "default_timeout_s": cfg.default_timeout_s, "max_timeout_s": cfg.max_timeout_s},
        )

    def _accept(self, envelope: tuple[bytes, ...], request: protocol.Reconstruct) -> None:
        if self._pool.find((envelope, request.id)) is not None:
            self._reply(envelope, protocol.Error(request.id, "bad_request", f"request id {request.id!r} is already in use"))
            return
        timeout = min(request.timeout_s or self.config.default_timeout_s, self.config.max_timeout_s)
        job = Job(envelope, request, deadline=time.monotonic() + timeout, timeout_s=timeout)
        position = self._pool.submit(job)
        if position is None:
            capacity = self.config.workers + self.config.queue_size
            self._reply(envelope, protocol.Error(request.id, "busy", f"the server is busy ({capacity} requests queued or running): retry later"))
            return
        self.stats["accepted"] += 1
        if request.progress:
            self._reply(envelope, protocol.Progress(request.id, "queued", 0.0, position))

    def _cancel(self, envelope: tuple[bytes, ...], request: protocol.Cancel) -> None:
        job = self._pool.find((envelope, request.target))
        if job is not None:
            self._pool.remove(job)
            if job.finish():
                self._reply(envelope, protocol.Error(job.id, "cancelled", "cancelled by the client"))
            job.cancel.set()
        self._reply(envelope, protocol.CancelAck(request.id, target=request.target, found=job is not None))

    # -- timers

    def _tick(self, now: float) -> None:
        self._heartbeat(now)
        if not self._announced_ready and self._pool.ready:
            self._announced_ready = True
            self._announce(f"munet serve: ready ({self.config.workers} worker(s) loaded)")
        queued, running = self._pool.snapshot()
        for position, job in enumerate(queued):
            self._check(job, now, "queued", 0.0, position)
        for job in running:
            self._check(job, now, job.stage, job.fraction, None)

    def _check(self, job: Job, now: float, stage: str, fraction: float, position: int | None) -> None:
        if job.done:
            return
        if now >= job.deadline:
            self._pool.remove(job)
            if job.finish():
                self._reply(job.envelope, protocol.Error(job.id, "timeout", f"the request ran past its {job.timeout_s:g} s timeout"))
            job.cancel.set()
        elif job.request.progress and now - job.last_sent >= protocol.KEEPALIVE_S:
            job.last_sent = now
            self._reply(job.envelope, protocol.Progress(job.id, stage, fraction, position))


_OVERSIZED = zmq.Frame(b"")  # marks a message cut by _receive


def _request_id(frames: list[zmq.Frame]) -> str | None:
    """The id of a request that cannot be decoded as a whole, if its header can be read."""
    if not frames:
        return None
    try:
        return protocol.decode(frames[:1], expect="request").id
    except protocol.ProtocolError as e:
        return e.request_id




def _announce(line: str) -> None:
    print(line, flush=True)


def run(config: ServerConfig, make_engine: Callable[[], Engine], *, announce: Callable[[str], None] = _announce) -> None:
    """Start a server, announce its endpoint, serve until SIGINT or SIGTERM, shut down cleanly."""
    stop = threading.Event()
    server = Server(config, make_engine, announce)
    previous = {}

    def on_signal(signum: int, frame: Any) -> None:
        log.info("received %s: shutting down", signal.Signals(signum).name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, on_signal)
    try:
        endpoint = server.start()
        announce(f"munet serve: {'listening on' if config.bind else 'worker connected to'} {endpoint}")
        server.serve(stop)
    finally:
        server.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    from . import cli

    sys.exit(cli.main(["serve", *sys.argv[1:]]))
