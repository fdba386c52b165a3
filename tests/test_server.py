"""A real `munet serve` in its own process, with the synthetic engine (`tests.doubles.fake_engine`).

Servers bind free loopback ports; tests wait for replies or printed lines, never for time to pass.
"""

from __future__ import annotations

import io
import signal
import threading
import time

import msgpack
import numpy as np
import pytest
from PIL import Image

from backend import protocol as p
from backend.client import BackendError, Client
from tests.doubles.processes import EXAMPLE_PHOTO, RawClient, ServerProcess

PHOTO = EXAMPLE_PHOTO.read_bytes()
STAGES = ["queued", "started", "detect", "network", "fit", "refine", "texture"]


def png(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def fast():
    """Two workers, instant stages: for correctness, fuzzing, concurrency and memory."""
    server = ServerProcess("--workers", "2", "--queue", "8").start()
    yield server
    assert server.stop() == 0
    server.cleanup()


@pytest.fixture(scope="module")
def slow():
    """One worker, a one-request queue, 5 stages of 0.25 s of GIL-holding Python: for ping latency
    under load, busy, cancel, timeout and vanished clients."""
    server = ServerProcess("--workers", "1", "--queue", "1", stage_s=0.25, busy=1).start()
    yield server
    assert server.stop() == 0
    server.cleanup()


def drain_until_idle(raw: RawClient, timeout_s: float = 10.0) -> tuple[p.Pong, list]:
    """Ping until nothing runs or waits (a cancelled job still finishes its current stage); return
    the last pong and every other reply seen meanwhile."""
    deadline = time.monotonic() + timeout_s
    seen: list = []
    while time.monotonic() < deadline:
        raw.send(p.Ping("idle?"))
        replies = raw.until(lambda m: m.TYPE == "pong" and m.id == "idle?")
        seen += replies[:-1]
        if replies[-1].running == 0 and replies[-1].queued == 0:
            return replies[-1], seen
        late = raw.recv(0.05)  # paces the polling; any reply that arrives meanwhile is kept
        if late is not None:
            seen.append(late)
    raise TimeoutError("server still busy")


def wait_idle(endpoint: str, timeout_s: float = 10.0) -> p.Pong:
    with RawClient(endpoint) as raw:
        return drain_until_idle(raw, timeout_s)[0]


def test_ping_and_info(fast):
    with Client(fast.endpoint) as client:
        pong = client.ping()
        info = client.info()
    assert pong.ready and pong.capacity == 10
    assert info.protocol_version == p.PROTOCOL_VERSION and info.ready and info.workers == 2
    assert "fake" in info.engine and "smpl24" in info.skeletons and info.checkpoint["id"] == "fake-0"
    assert info.limits["max_image_bytes"] == p.DEFAULT_LIMITS.max_image_bytes and "pyzmq" in info.versions


def test_progress_then_exactly_one_result(fast):
    with RawClient(fast.endpoint) as raw:
        raw.send(p.Reconstruct("one", image=PHOTO, timeout_s=10))
        replies = raw.terminal("one")
        fence = raw.ping()  # anything sent after the result would arrive before this pong
        assert fence.TYPE == "pong"
    progress = [m for m in replies if m.TYPE == "progress"]
    assert [m.stage for m in progress] == STAGES
    assert all(a.fraction <= b.fraction for a, b in zip(progress, progress[1:]))
    assert replies[-1].TYPE == "result" and all(m.id == "one" for m in replies)
    rec = replies[-1].reconstruction
    assert rec.skeleton.joint_names[:2] == ("pelvis", "left_hip") and rec.camera.image_size == (1000, 1498)
    assert rec.body.rest_vertices_m.shape == (13688, 3) and rec.clothed is not None and rec.texture is not None


def test_options_reach_the_engine(fast):
    with Client(fast.endpoint) as client:
        rec = client.reconstruct(PHOTO, p.Options(skeleton="full", clothed=False, texture=False))
    assert rec.skeleton.name == "full" and len(rec.skeleton.joint_names) == 104
    assert rec.clothed is None and rec.texture is None and rec.body.uv_per_corner is None


@pytest.mark.parametrize("image,options,code", [
    (b"\x89PNG\r\n\x1a\n" + b"not really" * 10, p.Options(), "bad_image"),  # passes the signature check
    (png(np.full((64, 48, 3), 200, np.uint8)), p.Options(), "no_person_found"),
    (PHOTO, p.Options(body_model="smpl"), "smpl_files_missing"),
    (b"%PDF-1.4 certainly not a photo", p.Options(), "bad_image"),  # refused on sight
    (b"\xff\xd8\xff" + b"\0" * (p.DEFAULT_LIMITS.max_image_bytes + 1), p.Options(), "image_too_large"),
])
def test_error_codes(fast, image, options, code):
    with RawClient(fast.endpoint) as raw:
        raw.send(p.Reconstruct("bad", image=image, options=options))
        error = raw.terminal("bad")[-1]
    assert error.TYPE == "error" and error.code == code and error.message


def test_wrong_version_and_bad_fields_get_errors_with_the_id(fast):
    header = {"v": 7, "type": "ping", "id": "old"}
    with RawClient(fast.endpoint) as raw:
        raw.send_frames([b"", msgpack.packb(header)])
        error = raw.until(lambda m: m.TYPE == "error")[-1]
        assert (error.id, error.code) == ("old", "unsupported_version")
        raw.send_frames([b"", msgpack.packb({"v": 1, "type": "cancel", "id": "c", "target": 5})])
        error = raw.until(lambda m: m.TYPE == "error")[-1]
        assert (error.id, error.code) == ("c", "bad_request") and "target" in error.message


def test_duplicate_request_id_is_refused(slow):
    with RawClient(slow.endpoint) as raw:
        raw.send(p.Reconstruct("dup", image=PHOTO))
        raw.until(lambda m: m.TYPE == "progress")
        raw.send(p.Reconstruct("dup", image=PHOTO))
        error = raw.until(lambda m: m.TYPE == "error")[-1]
        assert error.code == "bad_request" and "in use" in error.message
        raw.send(p.Cancel("c", target="dup"))
        raw.until(lambda m: m.TYPE == "cancel_ack")
    wait_idle(slow.endpoint)


# ------------------------------------------------------------------------------------------------
# Hostile input


def hostile_messages(rng: np.random.Generator) -> tuple[list[list[bytes]], int]:
    """(messages, how many of them have no routable envelope). Every message breaks the protocol:
    candidates that happen to be valid (e.g. ``"x"`` as an id) are left out."""
    valid_header = msgpack.unpackb(p.encode(p.Reconstruct("h", image=PHOTO[:64], timeout_s=1.0))[0])
    image = PHOTO[:64]
    out: list[list[bytes]] = []

    def with_header(**changes) -> list[bytes]:
        header = {**valid_header, **changes}
        header = {k: v for k, v in header.items() if v is not ...}
        return [b"", msgpack.packb(header), image]

    for _ in range(300):  # random bytes as a header, with random extra frames
        frames = [b"", rng.bytes(int(rng.integers(1, 200)))]
        frames += [rng.bytes(int(rng.integers(0, 50))) for _ in range(int(rng.integers(0, 3)))]
        out.append(frames)
    wrong_types = [None, True, -1, 2**63, 1.5, "x", "", [], {}, [1, 2], {"a": 1}, "∞" * 300]
    for field in ("v", "type", "id", "image", "options", "timeout_s", "progress"):
        for value in wrong_types:
            out.append(with_header(**{field: value}))
    for field in ("body_model", "skeleton", "clothed", "method", "refine_iterations", "texture", "device", "checkpoint"):
        for value in wrong_types:
            out.append(with_header(options={field: value}))
    for size in (2**31, 2**40, 2**62, 2**64 - 1, 10**30 % 2**64, 65, 63, 0):  # declared sizes that lie
        out.append(with_header(image={"frame": 1, "nbytes": size}))
        out.append(with_header(image={"frame": 1, "nbytes": size, "dtype": "float32", "shape": [size, 3]}))
    for field in valid_header:  # each field missing
        for _ in range(5):
            out.append(with_header(**{field: ...}))
    for version in (0, 2, 3, 99, -1, 2**40):
        for kind in ("ping", "info", "reconstruct", "cancel"):
            out.append([b"", msgpack.packb({"v": version, "type": kind, "id": f"v{version}"})])
    full = p.encode(p.Reconstruct("t", image=PHOTO, timeout_s=1.0))
    for cut in rng.integers(0, len(PHOTO), 100):  # truncated image frame, truncated header, frame missing
        out.append([b"", bytes(full[0]), bytes(full[1])[:cut]])
        out.append([b"", bytes(full[0])[: int(cut) % len(full[0])]])
    out += [[b"", bytes(full[0])]] * 20
    for _ in range(100):  # valid messages around bytes that are not images
        junk = rng.bytes(int(rng.integers(0, 3000)))
        out.append([b"", *map(bytes, p.encode(p.Reconstruct("junk", image=b"JUNK" + junk)))])
    for header in (msgpack.packb(msgpack.ExtType(3, b"abcd")), b"\x91" * 3000, b"\xdd\xff\xff\xff\xff",
                   b"\xdf\x7f\xff\xff\xff", b"\xdb\x7f\xff\xff\xff", msgpack.packb({1: 2}), msgpack.packb([1, 2])):
        out += [[b"", header]] * 10
    out += [[b"", bytes(full[0]), bytes(full[1]), b"x"]] * 10  # unreferenced extra frame
    out += [[b"", bytes(full[0])] + [b"y"] * 80] * 10  # too many frames
    for reply in (p.Pong("r"), p.Progress("r", "fit", 0.5), p.Error("r", "busy", "x"), p.CancelAck("r", "x", True)):
        out += [[b"", *map(bytes, p.encode(reply))]] * 10  # replies sent as requests
    out += [[b""]] * 10  # a delimiter and nothing else
    out = [frames for frames in out if not _decodes(frames[1:])]  # a wrong type can happen to be valid
    undeliverable = 60
    for _ in range(undeliverable):  # no envelope delimiter at all: nothing to answer, dropped
        out.append([b"\x01" + rng.bytes(int(rng.integers(1, 30)))])
    return out, undeliverable


def _decodes(frames: list[bytes]) -> bool:
    try:
        p.decode(frames)
        return True
    except p.ProtocolError:
        return False


def test_hostile_messages_get_errors_or_are_dropped(fast):
    messages, undeliverable = hostile_messages(np.random.default_rng(4))
    assert len(messages) >= 1000
    with RawClient(fast.endpoint) as raw:
        before = raw.ping("before").stats
        for frames in messages:
            raw.send_frames(frames)
        answers = []
        expected = len(messages) - undeliverable
        deadline = time.monotonic() + 30
        while len(answers) < expected and time.monotonic() < deadline:
            reply = raw.recv(5.0)
            if reply is None:
                break
            answers.append(reply)
        after = raw.ping("after").stats
    assert len(answers) == expected, f"{len(answers)} replies to {expected} answerable hostile messages"
    assert all(m.TYPE == "error" and m.code in p.ERROR_CODES for m in answers)
    codes = {m.code for m in answers}
    assert {"bad_request", "unsupported_version", "bad_image", "image_too_large"} <= codes
    assert after["dropped"] - before.get("dropped", 0) == undeliverable
    assert after.get("internal_errors", 0) == 0 and after.get("accepted", 0) == before.get("accepted", 0)
    with Client(fast.endpoint) as client:  # still serving
        assert client.ping().ready
        assert client.reconstruct(PHOTO).body.faces.shape[1] == 3


def test_oversized_frame_drops_only_that_peer(fast):
    with RawClient(fast.endpoint) as raw:
        raw.send_frames([b"", b"\x80", b"\0" * (2 * p.DEFAULT_LIMITS.max_image_bytes + (2 << 20))])
    with Client(fast.endpoint) as client:
        assert client.ping().ready


# ------------------------------------------------------------------------------------------------
# Concurrency, memory


def test_eight_clients_five_requests_each(fast):
    """Each client sends its own crop of the photo: every reply carries its id and its crop's size."""
    source = Image.open(EXAMPLE_PHOTO)
    crops = []
    for k in range(8):
        out = io.BytesIO()
        source.crop((0, 0, 1000 - 8 * k, 1498)).save(out, format="JPEG", quality=80)
        crops.append(out.getvalue())
    results: dict[int, list] = {}
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            with RawClient(fast.endpoint, identity=f"client-{k}".encode()) as raw:
                seen = []
                for i in range(5):
                    raw.send(p.Reconstruct(f"c{k}-r{i}", image=crops[k], timeout_s=30))
                    seen += raw.terminal(f"c{k}-r{i}", timeout_s=30)
                seen += [raw.ping(f"c{k}-fence")]
                results[k] = seen
        except BaseException as e:  # noqa: BLE001 - re-raised by the main thread
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    for k, seen in results.items():
        terminal = [m for m in seen if m.TYPE in ("result", "error")]
        assert [m.id for m in terminal] == [f"c{k}-r{i}" for i in range(5)]  # none lost, none duplicated
        assert all(m.TYPE == "result" for m in terminal)
        assert all(m.reconstruction.camera.image_size == (1000 - 8 * k, 1498) for m in terminal)
        assert all(m.id.startswith(f"c{k}-") for m in seen)


def test_memory_growth_over_200_requests(fast):
    def burst(count: int) -> None:
        def run(n: int) -> None:
            with Client(fast.endpoint, timeout_s=60) as client:
                for _ in range(n):
                    client.reconstruct(PHOTO)

        threads = [threading.Thread(target=run, args=(count // 4,)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)

    burst(20)  # warm up allocator pools and caches
    before = fast.rss_bytes()
    burst(200)
    growth_mb = (fast.rss_bytes() - before) / 2**20
    print(f"server RSS growth over 200 requests: {growth_mb:.1f} MB")
    assert growth_mb <= 50


# ------------------------------------------------------------------------------------------------
# Under load: ping, busy, cancel, timeout, vanished clients


def test_ping_answers_within_50ms_while_reconstructing(slow):
    with RawClient(slow.endpoint) as worker, RawClient(slow.endpoint) as pinger:
        worker.send(p.Reconstruct("long", image=PHOTO))
        worker.until(lambda m: m.TYPE == "progress" and m.stage == "detect")
        rtts = []
        for i in range(30):
            start = time.perf_counter()
            pong = pinger.ping(f"p{i}")
            rtts.append(time.perf_counter() - start)
            assert pong.running == 1
        worker.terminal("long")
    print(f"ping under load: median {1000 * np.median(rtts):.1f} ms, max {1000 * max(rtts):.1f} ms")
    assert max(rtts) < 0.050


def test_busy_when_the_queue_is_full(slow):
    with RawClient(slow.endpoint) as raw:
        raw.send(p.Reconstruct("run", image=PHOTO))
        raw.send(p.Reconstruct("wait", image=PHOTO))
        raw.until(lambda m: m.id == "wait" and m.TYPE == "progress")
        start = time.perf_counter()
        raw.send(p.Reconstruct("over", image=PHOTO))
        error = raw.until(lambda m: m.id == "over")[-1]
        elapsed = time.perf_counter() - start
        assert error.TYPE == "error" and error.code == "busy" and elapsed < 0.05
        for target in ("run", "wait"):
            raw.send(p.Cancel(f"x-{target}", target=target))
        raw.until(lambda m: m.TYPE == "cancel_ack" and m.target == "wait")
    wait_idle(slow.endpoint)


def test_cancel_running_and_queued(slow):
    with RawClient(slow.endpoint) as raw:
        raw.send(p.Reconstruct("a", image=PHOTO))
        raw.send(p.Reconstruct("b", image=PHOTO))
        raw.until(lambda m: m.id == "a" and m.TYPE == "progress" and m.stage == "detect")
        start = time.perf_counter()
        raw.send(p.Cancel("ca", target="a"))
        replies = raw.until(lambda m: m.TYPE == "cancel_ack")
        assert time.perf_counter() - start < 0.05
        assert any(m.id == "a" and m.TYPE == "error" and m.code == "cancelled" for m in replies)
        assert replies[-1].found and replies[-1].target == "a"
        raw.send(p.Cancel("cb", target="b"))  # b was queued (or has just started)
        replies = raw.until(lambda m: m.TYPE == "cancel_ack")
        assert any(m.id == "b" and m.TYPE == "error" and m.code == "cancelled" for m in replies)
        raw.send(p.Cancel("cz", target="never-sent"))
        assert raw.until(lambda m: m.TYPE == "cancel_ack")[-1].found is False
        _, late = drain_until_idle(raw)
        assert not [m for m in late if m.TYPE in ("result", "error")]  # exactly one terminal reply each
        raw.send(p.Reconstruct("after", image=PHOTO, timeout_s=10))
        assert raw.terminal("after")[-1].TYPE == "result"


def test_timeout(slow):
    with RawClient(slow.endpoint) as raw:
        start = time.perf_counter()
        raw.send(p.Reconstruct("t", image=PHOTO, timeout_s=0.4))
        error = raw.terminal("t")[-1]
        elapsed = time.perf_counter() - start
        assert error.code == "timeout" and 0.4 <= elapsed < 0.6
        raw.ping()
    wait_idle(slow.endpoint)


def test_vanished_client_costs_nothing_more(slow):
    before = RawClient(slow.endpoint)
    stats = before.ping().stats
    before.close()
    raw = RawClient(slow.endpoint)
    raw.send(p.Reconstruct("gone-1", image=PHOTO))
    raw.send(p.Reconstruct("gone-2", image=PHOTO))
    raw.until(lambda m: m.id == "gone-2" and m.TYPE == "progress")
    raw.close()  # the client disappears with one request running and one queued
    pong = wait_idle(slow.endpoint, timeout_s=5.0)  # the keepalive finds it gone and drops both
    assert pong.stats["jobs_abandoned"] - stats.get("jobs_abandoned", 0) == 2


# ------------------------------------------------------------------------------------------------
# Shutdown and exposure


def test_sigterm_ends_running_requests_with_an_error():
    server = ServerProcess("--workers", "1", stage_s=5).start()
    try:
        with RawClient(server.endpoint) as raw:
            raw.send(p.Reconstruct("r", image=PHOTO))
            raw.send(p.Reconstruct("q", image=PHOTO))
            raw.until(lambda m: m.id == "r" and m.TYPE == "progress" and m.stage == "detect")
            start = time.perf_counter()
            server.signal(signal.SIGTERM)
            errors: dict[str, str] = {}

            def both_ended(m) -> bool:
                if m.TYPE == "error":
                    errors[m.id] = m.code
                return len(errors) == 2

            raw.until(both_ended)
        assert errors == {"r": "shutting_down", "q": "shutting_down"}
        assert server.wait(5) == 0 and time.perf_counter() - start < 3
    finally:
        server.cleanup()


def test_exposed_bind_needs_curve_or_insecure():
    from tests.doubles.processes import ChildProcess, child_env

    refused = ChildProcess(["serve", "--bind", "tcp://0.0.0.0:0"], child_env()).start()
    assert refused.wait(20) == 2
    assert "--curve-keys" in refused.log_text() and "--insecure" in refused.log_text()
    refused.cleanup()
    insecure = ServerProcess("--insecure", bind="tcp://0.0.0.0:0").start(wait_ready=False)
    try:
        assert "WITHOUT authentication" in insecure.log_text()
    finally:
        insecure.cleanup()


def test_curve_keys(tmp_path):
    from tests.doubles.processes import ChildProcess, child_env

    keys, other = tmp_path / "keys", tmp_path / "other"
    for directory in (keys, other):
        maker = ChildProcess(["keys", str(directory)], child_env()).start()
        assert maker.wait(20) == 0
        maker.cleanup()
    # Secret keys 0600 from the start (written under a temporary name, renamed), in a 0700 folder.
    assert keys.stat().st_mode & 0o777 == 0o700
    assert (keys / "server.key_secret").stat().st_mode & 0o777 == 0o600
    assert (keys / "client.key_secret").stat().st_mode & 0o777 == 0o600
    assert not [path for path in keys.iterdir() if path.name.endswith(".tmp")]
    server = ServerProcess("--curve-keys", str(keys)).start(wait_ready=False)
    try:
        with Client(server.endpoint, curve_keys=str(keys)) as client:
            assert client.ping(timeout_s=5).worker
        # Each way of holding the wrong keys is named, even on loopback.
        hints = {None: "server uses CURVE and this client does not", str(other): "is not the key of the server"}
        for wrong, hint in hints.items():
            with Client(server.endpoint, curve_keys=wrong, retries=0) as client, pytest.raises(BackendError) as err:
                client.ping(timeout_s=0.5)
            assert err.value.code == "unreachable" and hint in str(err.value), str(err.value)
        stranger = tmp_path / "stranger"
        stranger.mkdir()
        for name in ("server.key", "client.key", "client.key_secret"):  # the right server, an unknown client
            (stranger / name).write_bytes(((keys if name == "server.key" else other) / name).read_bytes())
        with Client(server.endpoint, curve_keys=str(stranger), retries=0) as client, pytest.raises(BackendError) as err:
            client.ping(timeout_s=0.5)
        assert "refused this client's key" in str(err.value), str(err.value)
        # A key added to authorized_clients/ is accepted without a restart.
        (keys / "authorized_clients" / "other.key").write_bytes((other / "client.key").read_bytes())
        deadline = time.monotonic() + 10
        while True:
            try:
                with Client(server.endpoint, curve_keys=str(stranger), retries=0) as client:
                    assert client.ping(timeout_s=0.5).worker
                break
            except BackendError:
                assert time.monotonic() < deadline, "the new key was not accepted within 10 s"
    finally:
        server.cleanup()


def test_a_routing_id_in_use_cannot_be_taken_over(slow):
    """A second connection claiming a connected client's routing id gets nothing; the first is unharmed."""
    with RawClient(slow.endpoint, identity=b"victim") as victim:
        victim.send(p.Reconstruct("mine", image=PHOTO, timeout_s=30))
        victim.until(lambda m: m.TYPE == "progress" and m.stage == "started")
        with RawClient(slow.endpoint, identity=b"victim") as thief:
            thief.send(p.Ping("steal"))
            assert thief.recv(1.0) is None
        assert victim.terminal("mine", 20)[-1].TYPE == "result"


def test_reads_too_slowly_is_logged_once_per_period(caplog):
    """A client that never reads its replies made 10,000 identical warnings in 4.7 s: now one line per client
    at first, then one per period with the count dropped meanwhile."""
    from backend.server import _SLOW_READER_LOG_S, Server, ServerConfig

    server = Server(ServerConfig(bind="tcp://127.0.0.1:0"), make_engine=lambda: None)
    with caplog.at_level("WARNING", logger="backend.server"):
        for k in range(10_000):
            server._slow_reader((b"lazy",), now=100.0 + 4.7 * k / 10_000)
        server._slow_reader((b"other",), now=104.0)
        server._slow_reader((b"lazy",), now=100.0 + _SLOW_READER_LOG_S + 0.1)
    lines = [r.getMessage() for r in caplog.records if "reads too slowly" in r.getMessage()]
    assert len(lines) == 3, lines
    assert "10000 more replies dropped" in lines[-1]


def test_request_ids_and_codes_match_exactly():
    """`re.match` with `$` let "abc\\n" through: ids and error codes are checked with fullmatch."""
    for bad in ("abc\n", "abc def", "", "x" * 129, "caf\u00e9"):
        with pytest.raises(p.ProtocolError):
            p.decode([msgpack.packb({"v": p.PROTOCOL_VERSION, "type": "ping", "id": bad})])
    assert p.decode([msgpack.packb({"v": p.PROTOCOL_VERSION, "type": "ping", "id": "abc"})]).id == "abc"
    error = {"v": p.PROTOCOL_VERSION, "type": "error", "id": "x", "code": "timeout", "message": "m"}
    assert p.decode([msgpack.packb(error)], expect="reply").code == "timeout"
    with pytest.raises(p.ProtocolError):
        p.decode([msgpack.packb({**error, "code": "timeout\n"})], expect="reply")
