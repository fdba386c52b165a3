"""Per-peer bounds on what an unfinished message may pin: what libzmq's own options cannot bound.

libzmq hands a multipart message to the application only once its last frame has arrived; until then
it buffers every frame inside the socket. ``ZMQ_MAXMSGSIZE`` bounds each frame, nothing bounds their
number, so one peer that keeps sending frames flagged "more" (fast, or a byte at a time) makes the
server hold as much as it sends. ``PeerGuard`` closes that gap for TCP peers of a bound socket:

* it learns each accepted connection's file descriptor from the socket's monitor events, read by the
  socket's own thread before it reads messages (``events()``), so a connection is always known before
  its first message is accounted;
* every ``interval_s`` it reads the connection's received byte count from the kernel (``TCP_INFO``'s
  ``tcpi_bytes_received``) and subtracts what the application has received from it (``consumed``:
  the frames' sizes, identified by ``ZMQ_SRCFD``, plus a per-frame allowance for ZMTP/CURVE framing);
  the difference is what libzmq holds for that peer: its unfinished message (and any complete one not
  read yet);
* a peer whose pending bytes exceed ``max_pending`` (the largest legitimate request plus framing) is
  dropped at once, and one whose pending message (more than ``SLACK`` bytes) received less than
  ``min_progress`` bytes in the last ``stall_s`` seconds is dropped as stalled. Dropping is a
  ``shutdown()`` of the connection's socket: libzmq sees it close and frees what it buffered.

What remains unbounded is documented in PROTOCOL.md (section 2): bytes arriving faster than one check
interval, and peers on ``ipc://`` (no TCP counters; local by definition).
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import socket
import struct
import sys
import threading
import time

import zmq

from . import protocol

log = logging.getLogger(__name__)

_TCP_INFO = getattr(socket, "TCP_INFO", None) if sys.platform.startswith("linux") else None
"""Linux's TCP_INFO socket option (its layout, with ``tcpi_bytes_received``, is Linux's); None elsewhere."""

FRAME_OVERHEAD = 64
"""Bytes allowed per received frame for ZMTP framing (<= 9 bytes) and CURVE's MESSAGE box (~40 bytes)."""
SLACK = 64 * 1024
"""Pending bytes below this are never a reason to drop (handshake and command traffic, a small message
in flight); when a peer's pending bytes stay below it without change, they are folded into its baseline."""
FRAME_SLACK = 64 << 10
"""Bytes allowed beyond the largest field in one frame (its own encoding)."""
ENVELOPE_FRAMES = 4
"""Routing frames a request may carry before its delimiter (one per hop)."""
_TCPI_BYTES_RECEIVED = 128  # offset of tcpi_bytes_received (u64) in Linux's struct tcp_info
_EVENTS = zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_CLOSED


@dataclasses.dataclass
class _Peer:
    sock: socket.socket  # a duplicate of libzmq's descriptor, for TCP_INFO and shutdown only
    address: tuple
    baseline: int = 0  # received bytes that belong to no message (handshake, commands)
    consumed: int = 0
    window_start: float = 0.0
    window_bytes: int = 0


def _received_bytes(sock: socket.socket) -> int | None:
    """The kernel's count of bytes received on a TCP connection; None where unknown (``TCP_INFO`` with
    ``tcpi_bytes_received`` is Linux's: elsewhere the guard watches nothing and says so at start)."""
    if _TCP_INFO is None:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, 256)
    except OSError:
        return None
    if len(info) < _TCPI_BYTES_RECEIVED + 8:
        return None
    return struct.unpack_from("=Q", info, _TCPI_BYTES_RECEIVED)[0]


class PeerGuard:
    """Watches the TCP peers of one bound ZeroMQ socket (see the module docstring).

    From the socket's own thread: ``watch(sock)`` before it binds (returns the monitor socket to poll),
    ``events()`` whenever that monitor socket is readable and before reading messages, ``consumed(frame,
    size)`` for every message received; ``start()`` runs the checks in a thread, ``stop()`` ends them.
    ``dropped`` counts the peers dropped (read it for statistics).
    """

    def __init__(self, max_pending: int, stall_s: float = 30.0, min_progress: int = 16 * 1024,
                 interval_s: float = 0.02):
        self.max_pending = max_pending
        self.stall_s = stall_s
        self.min_progress = min_progress
        self.interval_s = interval_s
        self.dropped = 0
        self._address = f"inproc://munet-guard-{id(self)}"
        self._peers: dict[int, _Peer] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._events: zmq.Socket | None = None

    def watch(self, sock: zmq.Socket) -> zmq.Socket:
        sock.monitor(self._address, _EVENTS)
        self._events = sock.context.socket(zmq.PAIR)
        self._events.linger = 0
        self._events.connect(self._address)
        return self._events

    def events(self) -> None:
        """Register and forget connections (monitor events), from the watched socket's thread."""
        while self._events is not None:
            try:
                message = self._events.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._event(message)

    def start(self) -> None:
        if _TCP_INFO is None:
            log.warning("peer guard: no TCP_INFO on %s: unfinished messages are bounded per frame only "
                        "(see PROTOCOL.md, section 2)", sys.platform)
        self._thread = threading.Thread(target=self._run, name="munet-peer-guard", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the checks; call it from the watched socket's thread (it closes the monitor socket)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        if self._events is not None:
            self._events.close()
            self._events = None
        with self._lock:
            for peer in self._peers.values():
                peer.sock.close()
            self._peers.clear()

    def consumed(self, frame: zmq.Frame, size: int) -> None:
        """Account ``size`` bytes of a message the application received (its frames' sizes plus
        ``FRAME_OVERHEAD`` each); ``frame`` is one of its frames (it carries the connection's descriptor)."""
        try:
            fd = frame.get(zmq.SRCFD)
        except zmq.ZMQError:
            return
        if fd not in self._peers:
            self.events()  # its connection's event is queued before its first message
        with self._lock:
            peer = self._peers.get(fd)
            if peer is not None:
                peer.consumed += size

    # -- the guard's thread

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._check(time.monotonic())

    def _event(self, message: list[bytes]) -> None:
        event, fd = struct.unpack("=HI", message[0][:6])
        with self._lock:
            old = self._peers.pop(fd, None)
            if old is not None:
                old.sock.close()
            if event != zmq.EVENT_ACCEPTED:
                return
            try:
                sock = socket.socket(fileno=_dup(fd))
                address = sock.getpeername()
            except OSError:
                return
            if sock.family not in (socket.AF_INET, socket.AF_INET6):
                sock.close()  # ipc:// peers: no TCP counters, and local by definition
                return
            # Baseline 0: the kernel counts from the connection's start, handshake included (< SLACK).
            self._peers[fd] = _Peer(sock, address, window_start=time.monotonic())

    def _check(self, now: float) -> None:
        with self._lock:
            peers = list(self._peers.items())
        for fd, peer in peers:
            received = _received_bytes(peer.sock)
            if received is None:
                continue
            with self._lock:
                pending = received - peer.baseline - peer.consumed
                if pending < 0:  # a message counted by both the baseline and consumed (it raced the registration)
                    peer.baseline += pending
                    pending = 0
            if pending > self.max_pending:
                self._drop(fd, peer, f"{pending:,} bytes of an unfinished message (more than {self.max_pending:,})")
            elif pending <= SLACK:
                if received == peer.window_bytes and now - peer.window_start >= self.stall_s and pending > 0:
                    with self._lock:
                        peer.baseline += pending  # command traffic, not a message
                if received != peer.window_bytes:
                    peer.window_start, peer.window_bytes = now, received
            elif received - peer.window_bytes >= self.min_progress:
                peer.window_start, peer.window_bytes = now, received
            elif now - peer.window_start >= self.stall_s:
                self._drop(fd, peer, f"an unfinished message of {pending:,} bytes stalled "
                                     f"(under {self.min_progress:,} bytes in {self.stall_s:g} s)")

    def _drop(self, fd: int, peer: _Peer, why: str) -> None:
        with self._lock:
            if self._peers.get(fd) is not peer:
                return
            del self._peers[fd]
        try:
            if peer.sock.getpeername() == peer.address:  # the descriptor was not reused meanwhile
                peer.sock.shutdown(socket.SHUT_RDWR)
        except OSError as e:
            if e.errno != errno.ENOTCONN:
                log.debug("dropping %s: %s", peer.address, e)
        finally:
            peer.sock.close()
        self.dropped += 1
        log.warning("dropped peer %s:%s: %s", peer.address[0], peer.address[1], why)


def _dup(fd: int) -> int:
    import os

    return os.dup(fd)


def frame_limit(limits: protocol.Limits) -> int:
    """ZeroMQ's ``MAXMSGSIZE`` for a server socket: the largest legitimate request frame (the photo, or a
    header) plus slack. A peer sending a bigger frame is disconnected before the frame is buffered."""
    return max(limits.max_image_bytes, limits.max_header_bytes) + FRAME_SLACK


def request_limit(limits: protocol.Limits) -> int:
    """The most bytes a legitimate request holds (envelope, header and photo): more is refused, and a peer
    with more than this of an unfinished message is dropped (``backend.guard``)."""
    frames = ENVELOPE_FRAMES + 1 + limits.max_frames
    return limits.max_header_bytes + limits.max_image_bytes + frames * (FRAME_OVERHEAD + 256)


def harden(sock: zmq.Socket, limits: protocol.Limits) -> None:
    """The options every socket facing clients gets: per-frame limit, handshake deadline, TCP keepalive
    for vanished peers, no routing-id takeover. No ZMTP heartbeats: libzmq counts a frame still arriving
    as silence, so a slow uplink's photo would be cut; ``backend.guard`` drops stalled peers instead."""
    sock.maxmsgsize = frame_limit(limits)
    sock.setsockopt(zmq.HANDSHAKE_IVL, 10_000)  # ZMTP/CURVE handshake within 10 s, or the peer is dropped
    sock.setsockopt(zmq.TCP_KEEPALIVE, 1)
    sock.setsockopt(zmq.TCP_KEEPALIVE_IDLE, 30)
    sock.setsockopt(zmq.TCP_KEEPALIVE_INTVL, 10)
    sock.setsockopt(zmq.TCP_KEEPALIVE_CNT, 3)
    if sock.type == zmq.ROUTER:
        sock.router_handover = False  # a second connection cannot take over a routing id in use
