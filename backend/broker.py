"""Scale-out: a load-balancing broker (ZeroMQ's "load-balancing broker" pattern, with heartbeats).

::

    clients (DEALER) --> [frontend ROUTER | broker | backend ROUTER] <-- workers (`munet serve --connect`, DEALER)

Clients speak the ordinary protocol to the frontend and cannot tell a broker from a server. Workers are
ordinary servers whose socket is a DEALER connected to the backend; between the two, every message starts
with one *kind* frame (the worker link, below). The broker:

* keeps the workers it has heard from within ``WORKER_TIMEOUT_S``, with their capacity (worker threads,
  queue) and the reconstructions it has handed each;
* hands a ``reconstruct`` to a worker with an idle thread (the least recently used first), else to the
  one with the most room in its queue; it answers ``busy`` itself only when every worker is full;
* answers ``ping`` itself, for the whole cluster (ready when a worker is, the total capacity), hands
  ``info`` to the least loaded ready worker and a ``cancel`` to the worker that has its target;
* notices a worker that stops sending heartbeats and answers each of its requests ``shutting_down`` (the
  client retries them, reaching another worker), and a client that has gone (its reply cannot be routed):
  the worker is told to drop that client's work.

Worker link (after the DEALER/ROUTER routing frame)::

    worker -> broker   [b"H", msgpack {name, ready, threads, capacity}]   heartbeat / ready, every HEARTBEAT_S
                       [b"R", *client envelope, b"", header, *buffers]   a reply for a client
    broker -> worker   [b"H"]                                           heartbeat
                       [b"Q", *client envelope, b"", header, *buffers]   a request
                       [b"G", *client envelope]                         that client is gone: drop its work

Run: ``munet serve --bind tcp://0.0.0.0:5555 --broker tcp://0.0.0.0:5556 --curve-keys DIR`` (or
``python -m backend.broker --frontend ... --backend ...``), then on each GPU or machine
``munet serve --connect tcp://BROKER:5556 --curve-keys DIR`` (workers use the client key pair).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import errno
import logging
import queue
import signal
import socket
import sys
import threading
import time
from typing import Any, Callable

import msgpack
import zmq

from . import protocol, transport
from .guard import PeerGuard, harden, request_limit

log = logging.getLogger(__name__)

HEARTBEAT = b"H"
REPLY = b"R"
REQUEST = b"Q"
GONE = b"G"
HEARTBEAT_S = 1.0
"""Seconds between heartbeats, both ways."""
WORKER_TIMEOUT_S = 5.0
"""A worker silent this long is gone: its requests are answered ``shutting_down``."""
_TICK_S = 0.1


@dataclasses.dataclass
class _Worker:
    identity: bytes
    name: str
    ready: bool
    threads: int
    capacity: int
    last_seen: float
    last_used: float = 0.0
    jobs: set = dataclasses.field(default_factory=set)  # (client envelope, request id) of its reconstructs


def _peek(header: bytes | zmq.Frame) -> tuple[str | None, str | None, str | None]:
    """(type, id, target) of a message header, without checking the rest (None where unreadable)."""
    try:
        data = msgpack.unpackb(bytes(header), raw=False, strict_map_key=True, max_bin_len=0, max_ext_len=0)
    except Exception:  # noqa: BLE001 - any unreadable header is simply not ours to interpret
        return None, None, None
    if not isinstance(data, dict):
        return None, None, None
    fields = [data.get(key) for key in ("type", "id", "target")]
    return tuple(value if isinstance(value, str) else None for value in fields)  # type: ignore[return-value]


class Broker:
    """The broker's sockets and loop in a thread: ``start`` binds and returns (frontend, backend)
    endpoints, ``stop`` ends the loop and closes the sockets."""

    def __init__(self, frontend: str, backend: str, *, curve_keys: str | None = None, insecure: bool = False,
                 limits: protocol.Limits = protocol.DEFAULT_LIMITS, stall_timeout_s: float = 30.0):
        self.frontend, self.backend = frontend, backend
        self._keys = transport.load_keys(curve_keys, "server") if curve_keys else None
        transport.check_exposure([frontend, backend], self._keys, insecure)
        self._limits = limits
        self._stall_timeout_s = stall_timeout_s
        self._ctx = transport.context()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._auth: transport.Authenticator | None = None
        self.name = f"broker {socket.gethostname()}"
        self.stats: collections.Counter[str] = collections.Counter()
        self._workers: dict[bytes, _Worker] = {}
        self._jobs: dict[tuple[tuple[bytes, ...], str], bytes] = {}  # (client envelope, id) -> worker identity

    def start(self) -> tuple[str, str]:
        if self._keys is not None:
            self._auth = transport.Authenticator(self._keys)
        bound: queue.Queue[tuple[str, str] | BaseException] = queue.Queue()
        self._thread = threading.Thread(target=self._run, args=(bound,), name="munet-broker", daemon=True)
        self._thread.start()
        result = bound.get()
        if isinstance(result, BaseException):
            raise result
        return result

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        if self._auth is not None:
            self._auth.stop()
            self._auth = None

    # -- the loop (its own thread: it owns the sockets)

    def _run(self, bound: queue.Queue) -> None:
        front, back = self._ctx.socket(zmq.ROUTER), self._ctx.socket(zmq.ROUTER)
        guard = PeerGuard(request_limit(self._limits), stall_s=self._stall_timeout_s)
        try:
            for sock in (front, back):
                sock.linger = 1000
                sock.router_mandatory = True
                sock.sndhwm = sock.rcvhwm = 10_000
                if self._keys is not None:
                    transport.secure_server(sock, self._keys)
            harden(front, self._limits)
            back.maxmsgsize = self._limits.max_buffer_bytes + (1 << 20)  # results come back through it
            events = guard.watch(front)
            endpoints = transport.bind(front, self.frontend), transport.bind(back, self.backend)
        except BaseException as e:  # noqa: BLE001 - handed to start(), which raises it
            bound.put(e)
            for sock in (front, back):
                sock.close(linger=0)
            guard.stop()
            return
        bound.put(endpoints)
        guard.start()
        try:
            self._loop(front, back, guard, events)
        finally:
            guard.stop()
            for sock in (front, back):
                sock.close()

    def _loop(self, front: zmq.Socket, back: zmq.Socket, guard: PeerGuard, events: zmq.Socket) -> None:
        poller = zmq.Poller()
        for sock in (front, back, events):
            poller.register(sock, zmq.POLLIN)
        next_beat = 0.0
        while not self._stop.is_set():
            ready = dict(poller.poll(_TICK_S * 1000))
            guard.events()
            if back in ready:
                self._drain(back, lambda frames: self._from_worker(front, back, frames))
            if front in ready:
                self._drain(front, lambda frames: self._from_client(front, back, guard, frames))
            now = time.monotonic()
            self._expire(front, now)
            if now >= next_beat:
                next_beat = now + HEARTBEAT_S
                for identity in list(self._workers):
                    self._to_worker(back, identity, [HEARTBEAT])

    def _drain(self, sock: zmq.Socket, handle: Callable[[list[zmq.Frame]], None]) -> None:
        transport.drain(sock, handle, self.stats, log, 256)

    # -- clients

    def _from_client(self, front: zmq.Socket, back: zmq.Socket, guard: PeerGuard, frames: list[zmq.Frame]) -> None:
        guard.consumed(frames[0], sum(len(f) + 64 for f in frames))
        self.stats["received"] += 1
        delimiter = next((i for i, f in enumerate(frames) if len(f) == 0), None)
        if delimiter is None or delimiter == 0 or delimiter > 3 or delimiter + 1 >= len(frames):
            self.stats["dropped"] += 1
            return
        envelope = tuple(f.bytes for f in frames[:delimiter])
        body = frames[delimiter + 1:]
        try:
            message = protocol.decode(body, expect="request", limits=self._limits)
        except protocol.ProtocolError as e:
            self._reply(front, envelope, protocol.Error(e.request_id, e.code, str(e)))
            return
        if isinstance(message, protocol.Reconstruct):
            worker = self._pick(for_job=True)
            if worker is None:
                capacity = sum(w.capacity for w in self._workers.values() if w.ready)
                self._reply(front, envelope, protocol.Error(message.id, "busy", f"every worker is busy ({capacity} "
                                                            "requests queued or running): retry later"))
                return
            key = (envelope, message.id)
            if key in self._jobs:
                self._reply(front, envelope, protocol.Error(message.id, "bad_request", f"request id {message.id!r} is already in use"))
                return
            self._jobs[key] = worker.identity
            worker.jobs.add(key)
        elif isinstance(message, protocol.Ping):
            self._reply(front, envelope, self._pong(message.id))
            return
        elif isinstance(message, protocol.Cancel):
            identity = self._jobs.get((envelope, message.target))
            worker = self._workers.get(identity) if identity is not None else None
            if worker is None:
                self._reply(front, envelope, protocol.CancelAck(message.id, target=message.target, found=False))
                return
        else:
            worker = self._pick(for_job=False)
            if worker is None:
                self._answer_unserved(front, envelope, message)
                return
        worker.last_used = time.monotonic()
        self._to_worker(back, worker.identity, [REQUEST, *frames])

    def _pick(self, for_job: bool) -> _Worker | None:
        """A ready worker: for a job, one with an idle thread (least recently used first), else the one with
        the most room in its queue; for ping/info, the least loaded. None when there is none (or all full)."""
        ready = [w for w in self._workers.values() if w.ready]
        if for_job:
            idle = [w for w in ready if len(w.jobs) < w.threads]
            if idle:
                return min(idle, key=lambda w: w.last_used)
            room = [w for w in ready if len(w.jobs) < w.capacity]
            return max(room, key=lambda w: (w.capacity - len(w.jobs), -w.last_used), default=None)
        return min(ready, key=lambda w: (len(w.jobs) / max(1, w.threads), w.last_used), default=None)

    def _pong(self, request_id: str) -> protocol.Pong:
        """The broker's own answer to ``ping``, for the whole cluster: ready when a worker is, the
        reconstructions handed out (running up to each worker's threads, queued beyond), the total capacity."""
        ready = [w for w in self._workers.values() if w.ready]
        running = sum(min(len(w.jobs), w.threads) for w in ready)
        stats = {**self.stats, "workers": len(self._workers), "workers_ready": len(ready)}
        return protocol.Pong(request_id, worker=self.name, ready=bool(ready), running=running,
                             queued=sum(len(w.jobs) for w in ready) - running,
                             capacity=sum(w.capacity for w in ready), stats=stats)

    def _answer_unserved(self, front: zmq.Socket, envelope: tuple[bytes, ...], message: protocol.Message) -> None:
        self._reply(front, envelope, protocol.Error(message.id, "busy", "no worker is connected and ready yet: retry later"))

    def _reply(self, front: zmq.Socket, envelope: tuple[bytes, ...], message: protocol.Message) -> None:
        if isinstance(message, protocol.Error):
            self.stats[f"error_{message.code}"] += 1
        self._to_client(front, None, [*envelope, b"", *protocol.encode(message)])

    def _to_client(self, front: zmq.Socket, back: zmq.Socket | None, frames: list[Any]) -> None:
        try:
            front.send_multipart(frames, zmq.NOBLOCK, copy=False)
        except zmq.ZMQError as e:
            if e.errno not in (errno.EHOSTUNREACH, errno.EAGAIN):
                raise
            envelope = transport.envelope_of(frames)
            self.stats["send_unroutable" if e.errno == errno.EHOSTUNREACH else "send_dropped_full"] += 1
            if e.errno == errno.EHOSTUNREACH:
                self._client_gone(back, envelope)

    def _client_gone(self, back: zmq.Socket | None, envelope: tuple[bytes, ...]) -> None:
        """Forget the client's jobs and tell their workers to drop them."""
        told = set()
        for key in [key for key in self._jobs if key[0] == envelope]:
            identity = self._jobs.pop(key)
            worker = self._workers.get(identity)
            if worker is not None:
                worker.jobs.discard(key)
                if back is not None and identity not in told:
                    told.add(identity)
                    self._to_worker(back, identity, [GONE, *envelope])

    # -- workers

    def _from_worker(self, front: zmq.Socket, back: zmq.Socket, frames: list[zmq.Frame]) -> None:
        identity, kind = frames[0].bytes, frames[1].bytes if len(frames) > 1 else b""
        worker = self._workers.get(identity)
        if kind == HEARTBEAT and len(frames) == 3:
            self._heartbeat(identity, worker, frames[2].bytes)
            return
        if kind != REPLY:
            self.stats["worker_dropped"] += 1
            return
        if worker is not None:
            worker.last_seen = time.monotonic()
        rest = frames[2:]
        delimiter = next((i for i, f in enumerate(rest) if len(f) == 0), None)
        if delimiter is None or delimiter + 1 >= len(rest):
            return
        envelope = tuple(f.bytes for f in rest[:delimiter])
        kind_name, request_id, _ = _peek(rest[delimiter + 1])
        if kind_name in ("result", "error") and request_id is not None and worker is not None:
            key = (envelope, request_id)
            if self._jobs.get(key) == identity:
                del self._jobs[key]
                worker.jobs.discard(key)
        self._to_client(front, back, rest)

    def _heartbeat(self, identity: bytes, worker: _Worker | None, payload: bytes) -> None:
        try:
            info = msgpack.unpackb(payload, raw=False)
            name, ready = str(info["name"])[:200], bool(info["ready"])
            threads, capacity = max(1, int(info["threads"])), max(1, int(info["capacity"]))
        except Exception:  # noqa: BLE001 - a malformed heartbeat is ignored
            return
        now = time.monotonic()
        if worker is None:
            self._workers[identity] = _Worker(identity, name, ready, threads, capacity, now)
            log.info("worker %s joined (%d thread(s), capacity %d%s)", name, threads, capacity, "" if ready else ", loading")
            return
        if ready and not worker.ready:
            log.info("worker %s is ready", name)
        worker.ready, worker.threads, worker.capacity, worker.last_seen = ready, threads, capacity, now

    def _expire(self, front: zmq.Socket, now: float) -> None:
        for identity, worker in list(self._workers.items()):
            if now - worker.last_seen < WORKER_TIMEOUT_S:
                continue
            del self._workers[identity]
            log.warning("worker %s sent nothing for %.0f s: gone, %d request(s) ended", worker.name,
                        now - worker.last_seen, len(worker.jobs))
            for key in worker.jobs:
                self._jobs.pop(key, None)
                envelope, request_id = key
                self._reply(front, envelope, protocol.Error(request_id, "shutting_down", f"the worker running this "
                                                            f"request ({worker.name}) stopped answering: retry"))

    def _to_worker(self, back: zmq.Socket, identity: bytes, frames: list[Any]) -> None:
        try:
            back.send_multipart([identity, *frames], zmq.NOBLOCK, copy=False)
        except zmq.ZMQError as e:
            if e.errno not in (errno.EHOSTUNREACH, errno.EAGAIN):
                raise
            self.stats["worker_unroutable"] += 1  # it vanished: the heartbeat timeout ends its requests


def _announce(line: str) -> None:
    print(line, flush=True)


def run(frontend: str, backend: str, *, curve_keys: str | None = None, insecure: bool = False,
        stall_timeout_s: float = 30.0, announce: Callable[[str], None] = _announce) -> None:
    """Run a broker until SIGINT or SIGTERM."""
    stop = threading.Event()
    broker = Broker(frontend, backend, curve_keys=curve_keys, insecure=insecure, stall_timeout_s=stall_timeout_s)
    previous = {sig: signal.signal(sig, lambda signum, frame: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        front, back = broker.start()
        announce(f"munet broker: clients connect to {front}, workers connect to {back}")
        log.info("broker running: frontend %s, backend %s", front, back)
        while not stop.wait(1.0):
            pass
        log.info("broker stopping")
    finally:
        broker.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.broker", description=__doc__.split("\n\n")[0])
    parser.add_argument("--frontend", default="tcp://127.0.0.1:5555", help="endpoint clients connect to")
    parser.add_argument("--backend", default="tcp://127.0.0.1:5556", help="endpoint workers connect to")
    parser.add_argument("--curve-keys", metavar="DIR", help="CURVE key directory (`munet keys DIR`)")
    parser.add_argument("--insecure", action="store_true", help="allow non-loopback endpoints without CURVE")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run(args.frontend, args.backend, curve_keys=args.curve_keys, insecure=args.insecure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
