"""Bounded memory per peer: hostile senders on loopback against a real `munet serve` (synthetic engine).

Each attack runs while another client pings; the server's peak RSS (VmHWM) must stay within 300 MB of
where it started and every ping must be answered within 50 ms. The attacks are the ones a probe found
(25 frames of 80 MiB from an ordinary client; a raw ZMTP peer that never finishes its message), plus the
variant libzmq's per-frame limit alone cannot stop (many frames each under the limit).
"""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest
import zmq

from backend import protocol as p
from backend.guard import frame_limit, request_limit
from tests.doubles.processes import RawClient, ServerProcess

MiB = 1 << 20
RSS_BOUND = 300 * MiB
PING_BOUND_S = 0.050


@pytest.fixture()
def server():
    server = ServerProcess("--workers", "1", "--stall-timeout", "2").start()
    yield server
    assert server.stop() == 0
    server.cleanup()


def status(pid: int, key: str) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


class Pinger:
    """Pings the server in a loop from its own thread, recording each round trip."""

    def __init__(self, endpoint: str):
        self.endpoint = endpoint
        self.rtts: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with RawClient(self.endpoint) as raw:
            raw.ping("warm")
            k = 0
            while not self._stop.is_set():
                start = time.perf_counter()
                raw.ping(f"p{k}", timeout_s=5)
                self.rtts.append(time.perf_counter() - start)
                k += 1
                self._stop.wait(0.01)

    def __enter__(self) -> "Pinger":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)


def zmtp_peer(endpoint: str) -> socket.socket:
    """A raw TCP peer that has done the ZMTP 3.0 NULL handshake as a DEALER (and sent no message yet)."""
    host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    sock.settimeout(5.0)
    greeting = b"\xff" + b"\x00" * 8 + b"\x7f" + bytes([3, 0]) + b"NULL".ljust(20, b"\x00") + b"\x00" * 32
    sock.sendall(greeting)
    _read_exactly(sock, 64)  # the server's greeting first: libzmq may refuse a READY that arrives with ours
    ready = b"\x05READY" + bytes([11]) + b"Socket-Type" + struct.pack(">I", 6) + b"DEALER"
    sock.sendall(bytes([0x04, len(ready)]) + ready)
    flags, size = _read_exactly(sock, 2)  # the server's READY command (short)
    assert flags == 0x04, flags
    _read_exactly(sock, size)
    return sock


def _read_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        assert chunk, "the server closed the connection during the handshake"
        data += chunk
    return data


def frame_header(size: int, more: bool) -> bytes:
    flags = 0x01 if more else 0x00
    return bytes([flags, size]) if size < 256 else bytes([flags | 0x02]) + struct.pack(">Q", size)


def closed_by_server(sock: socket.socket, timeout_s: float) -> bool:
    """True once the server has closed the connection (reads EOF or a reset) within ``timeout_s``."""
    sock.settimeout(0.2)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if sock.recv(65536) == b"":
                return True
        except socket.timeout:
            continue
        except OSError:
            return True
    return False


def test_limits_follow_the_protocol_limits():
    limits = p.DEFAULT_LIMITS
    assert limits.max_image_bytes < frame_limit(limits) <= limits.max_image_bytes + MiB
    assert limits.max_image_bytes + limits.max_header_bytes < request_limit(limits) <= 50 * MiB


def test_25_frames_of_80_mib_cost_nothing(server):
    """An ordinary client sends 25 frames of 80 MiB (2 GB): the first frame is over the per-frame limit,
    so the server drops that peer from the frame's size field, before buffering it."""
    before = status(server.pid, "VmRSS")
    chunk = memoryview(bytearray(80 * MiB))
    attacker = zmq.Context.instance().socket(zmq.DEALER)
    attacker.linger = 0
    attacker.connect(server.endpoint)
    with Pinger(server.endpoint) as pinger:
        attacker.send_multipart([b"", p.encode(p.Ping("attack"))[0], *[chunk] * 25], copy=False)
        time.sleep(2.0)
    attacker.close()
    peak = status(server.pid, "VmHWM") - before
    print(f"25x80MiB: peak RSS +{peak / MiB:.0f} MiB, slowest of {len(pinger.rtts)} pings {1000 * max(pinger.rtts):.1f} ms")
    assert peak <= RSS_BOUND, f"peak RSS +{peak / MiB:.0f} MiB"
    assert max(pinger.rtts) <= PING_BOUND_S, f"slowest ping {1000 * max(pinger.rtts):.1f} ms"
    with RawClient(server.endpoint) as raw:
        assert raw.ping().ready


def test_many_frames_under_the_frame_limit_are_cut_off(server):
    """A raw peer streams 8 MiB frames flagged "more" (each under the per-frame limit) and never ends the
    message: libzmq would buffer all of it; the peer guard drops the peer once it holds more than the
    largest legitimate request."""
    before = status(server.pid, "VmRSS")
    peer = zmtp_peer(server.endpoint)
    frame = frame_header(8 * MiB, True) + bytes(8 * MiB)
    sent = 0
    with Pinger(server.endpoint) as pinger:
        peer.sendall(frame_header(0, True))
        try:
            for _ in range(40):  # 320 MiB
                peer.sendall(frame)
                sent += 8 * MiB
        except OSError:
            pass  # dropped: what this test wants
        dropped = closed_by_server(peer, 10.0)
    peer.close()
    peak = status(server.pid, "VmHWM") - before
    print(f"8MiB frames: sent {sent / MiB:.0f} MiB, peak RSS +{peak / MiB:.0f} MiB, slowest of {len(pinger.rtts)} pings "
          f"{1000 * max(pinger.rtts):.1f} ms")
    assert dropped and 40 * MiB <= sent < 320 * MiB, f"the peer sent {sent / MiB:.0f} MiB (dropped: {dropped})"
    assert peak <= RSS_BOUND, f"peak RSS +{peak / MiB:.0f} MiB"
    assert max(pinger.rtts) <= PING_BOUND_S, f"slowest ping {1000 * max(pinger.rtts):.1f} ms"


def test_a_trickling_peer_is_dropped_after_the_stall_timeout(server):
    """A raw peer sends 2 MiB of a message and then a byte every 100 ms: dropped after --stall-timeout (2 s
    here; 30 s by default), and what it sent is freed."""
    peer = zmtp_peer(server.endpoint)
    peer.sendall(frame_header(0, True) + frame_header(4 * MiB, False) + bytes(2 * MiB))
    started = time.monotonic()
    with Pinger(server.endpoint) as pinger:
        dropped = False
        while time.monotonic() - started < 10.0:
            try:
                peer.sendall(b"x")
            except OSError:
                dropped = True
                break
            if closed_by_server(peer, 0.1):
                dropped = True
                break
    elapsed = time.monotonic() - started
    peer.close()
    print(f"trickle: dropped after {elapsed:.1f} s, slowest of {len(pinger.rtts)} pings {1000 * max(pinger.rtts):.1f} ms")
    assert dropped and 1.5 <= elapsed <= 6.0, f"dropped={dropped} after {elapsed:.1f} s"
    assert max(pinger.rtts) <= PING_BOUND_S, f"slowest ping {1000 * max(pinger.rtts):.1f} ms"
    with RawClient(server.endpoint) as raw:
        assert raw.ping().stats["received"] > 0


def test_a_slow_but_steady_upload_is_not_dropped(server):
    """A photo arriving slowly (here 4 MiB at ~1 MiB/s, slower than a frame per stall timeout) is not a
    stalled peer: it is answered."""
    from tests.test_server import PHOTO

    request = p.encode(p.Reconstruct("slow", image=PHOTO + bytes(4 * MiB - len(PHOTO)), timeout_s=30))
    peer = zmtp_peer(server.endpoint)
    payload = frame_header(0, True) + frame_header(len(request[0]), True) + bytes(request[0])
    payload += frame_header(len(request[1]), False) + bytes(request[1])
    for start in range(0, len(payload), 256 * 1024):
        peer.sendall(payload[start:start + 256 * 1024])
        time.sleep(0.25)
    assert not closed_by_server(peer, 1.0)
    peer.close()
