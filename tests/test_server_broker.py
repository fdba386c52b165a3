"""Scale-out through ZeroMQ's ROUTER/DEALER broker: two workers behind one endpoint, on loopback."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from backend import protocol as p
from backend.client import BackendError, Client
from tests.doubles.processes import EXAMPLE_PHOTO, BrokerProcess, ServerProcess

PHOTO = EXAMPLE_PHOTO.read_bytes()


def wait_for_workers(endpoint: str, count: int, timeout_s: float = 20.0) -> None:
    """Until the broker knows ``count`` ready workers (each announces itself with its heartbeat)."""
    deadline = time.monotonic() + timeout_s
    with Client(endpoint) as client:
        while time.monotonic() < deadline:
            pong = client.ping()
            if pong.ready and pong.stats.get("workers_ready", 0) >= count:
                return
            time.sleep(0.05)
    raise TimeoutError(f"the broker did not see {count} ready workers")


@pytest.fixture(scope="module")
def cluster():
    broker = BrokerProcess().start()
    workers = [ServerProcess("--connect", broker.backend, stage_s=0.1).start() for _ in range(2)]
    wait_for_workers(broker.frontend, 2)
    yield broker, workers
    for worker in workers:
        assert worker.stop() == 0
        worker.cleanup()
    assert broker.stop() == 0
    broker.cleanup()


def test_two_workers_share_the_requests(cluster):
    broker, workers = cluster
    served: list[str] = []
    errors: list[BaseException] = []

    def client_run(k: int) -> None:
        try:
            with Client(broker.frontend, timeout_s=30) as client:
                for _ in range(2):
                    rec = client.reconstruct(PHOTO)
                    served.append(rec.report["worker"])
        except BaseException as e:  # noqa: BLE001 - re-raised by the main thread
            errors.append(e)

    threads = [threading.Thread(target=client_run, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(served) == 8
    assert set(served) == {f"{socket.gethostname()}:{w.pid}" for w in workers}, f"results came from {set(served)}"


def test_ping_and_info_through_the_broker(cluster):
    broker, _ = cluster
    with Client(broker.frontend) as client:
        assert client.ping().ready
        assert "fake" in client.info().engine


def test_cancel_through_the_broker(cluster):
    broker, _ = cluster
    cancel = threading.Event()

    def on_progress(progress: p.Progress) -> None:
        if progress.stage == "network":
            cancel.set()

    with Client(broker.frontend, timeout_s=10) as client, pytest.raises(BackendError) as err:
        client.reconstruct(PHOTO, progress=on_progress, cancel=cancel)
    assert err.value.code == "cancelled"


def test_curve_through_the_broker(tmp_path):
    """Broker and worker both secured with the keys of `munet keys`; the worker uses the client pair."""
    from tests.doubles.processes import ChildProcess, child_env

    keys = tmp_path / "keys"
    maker = ChildProcess(["keys", str(keys)], child_env()).start()
    assert maker.wait(20) == 0
    maker.cleanup()
    broker = BrokerProcess("--curve-keys", str(keys)).start()
    worker = ServerProcess("--connect", broker.backend, "--curve-keys", str(keys)).start()
    try:
        with Client(broker.frontend, curve_keys=str(keys), timeout_s=20) as client:
            assert client.reconstruct(PHOTO).report["worker"].endswith(f":{worker.pid}")
        with Client(broker.frontend, retries=0) as plain, pytest.raises(BackendError) as err:
            plain.ping(timeout_s=0.5)
        assert err.value.code == "unreachable"
    finally:
        worker.cleanup()
        broker.cleanup()


# ------------------------------------------------------------------------------------------------
# Load balancing: each request to a worker with an idle thread; busy only when every worker is full


@pytest.fixture()
def pair():
    """A broker and two one-thread workers without a queue, each request 5 stages of 0.4 s."""
    broker = BrokerProcess().start()
    workers = [ServerProcess("--connect", broker.backend, "--workers", "1", "--queue", "0", stage_s=0.4).start()
               for _ in range(2)]
    wait_for_workers(broker.frontend, 2)
    yield broker, workers
    for worker in workers:
        worker.cleanup()
    broker.cleanup()


def test_simultaneous_requests_go_to_idle_workers_and_busy_means_all_busy(pair):
    from tests.doubles.processes import RawClient

    broker, workers = pair
    with RawClient(broker.frontend) as a, RawClient(broker.frontend) as b, RawClient(broker.frontend) as c:
        a.send(p.Reconstruct("a", image=PHOTO, timeout_s=30))
        b.send(p.Reconstruct("b", image=PHOTO, timeout_s=30))
        a.until(lambda m: m.TYPE == "progress" and m.stage == "started")
        b.until(lambda m: m.TYPE == "progress" and m.stage == "started")
        c.send(p.Reconstruct("c", image=PHOTO, timeout_s=30))
        assert c.terminal("c")[-1].code == "busy"  # both workers run one: the cluster is full
        pong = c.ping()
        assert (pong.running, pong.queued, pong.capacity) == (2, 0, 2)
        served = {a.terminal("a", 30)[-1].reconstruction.report["worker"],
                  b.terminal("b", 30)[-1].reconstruction.report["worker"]}
    assert served == {f"{socket.gethostname()}:{w.pid}" for w in workers}


def test_cancel_reaches_the_worker_running_the_request(pair):
    from tests.doubles.processes import RawClient

    broker, _ = pair
    with RawClient(broker.frontend) as raw:
        raw.send(p.Reconstruct("job", image=PHOTO, timeout_s=30))
        raw.until(lambda m: m.TYPE == "progress" and m.stage == "started")
        raw.send(p.Cancel("stop", target="job"))
        replies = raw.until(lambda m: m.TYPE == "cancel_ack")
        assert replies[-1].found  # the first cancel: the broker knows which worker has it
        assert any(m.TYPE == "error" and m.id == "job" and m.code == "cancelled" for m in replies)


def test_a_worker_killed_mid_request_is_noticed():
    """Its request is answered `shutting_down` (the client retries it) and the broker keeps serving."""
    import signal as signals

    from tests.doubles.processes import RawClient

    broker = BrokerProcess().start()
    doomed = ServerProcess("--connect", broker.backend, "--workers", "1", stage_s=0.4).start()
    other = None
    try:
        wait_for_workers(broker.frontend, 1)
        with RawClient(broker.frontend) as raw:
            raw.send(p.Reconstruct("doomed", image=PHOTO, timeout_s=60))
            raw.until(lambda m: m.TYPE == "progress" and m.stage == "started")
            other = ServerProcess("--connect", broker.backend, "--workers", "1", stage_s=0.4).start()
            wait_for_workers(broker.frontend, 2)
            doomed.signal(signals.SIGKILL)
            killed_at = time.monotonic()
            ending = raw.terminal("doomed", 20)[-1]
            assert ending.code == "shutting_down" and "stopped answering" in ending.message
            assert time.monotonic() - killed_at < 10
        with Client(broker.frontend, timeout_s=30) as client:
            assert client.reconstruct(PHOTO).report["worker"].endswith(f":{other.pid}")
            assert client.ping().stats["workers"] == 1
    finally:
        for process in (doomed, other, broker):
            if process is not None:
                process.cleanup()


def test_a_vanished_client_is_noticed_through_the_broker(pair):
    """The broker learns it from the next reply it cannot route and tells the worker, which drops the work."""
    from tests.doubles.processes import RawClient

    broker, workers = pair
    raw = RawClient(broker.frontend)
    raw.send(p.Reconstruct("orphan", image=PHOTO, timeout_s=30))
    raw.until(lambda m: m.TYPE == "progress" and m.stage == "started")
    raw.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any("orphan is gone" in w.log_text() for w in workers):
        time.sleep(0.1)
    assert any("client of request orphan is gone: dropped" in w.log_text() for w in workers)
    with Client(broker.frontend) as client:
        assert client.ping().running == 0
