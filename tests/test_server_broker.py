"""Scale-out through ZeroMQ's ROUTER/DEALER broker: two workers behind one endpoint, on loopback."""

from __future__ import annotations

import socket
import threading

import pytest

from backend import protocol as p
from backend.client import BackendError, Client
from tests.doubles.processes import EXAMPLE_PHOTO, BrokerProcess, ServerProcess

PHOTO = EXAMPLE_PHOTO.read_bytes()


@pytest.fixture(scope="module")
def cluster():
    broker = BrokerProcess().start()
    workers = [ServerProcess("--connect", broker.backend, stage_s=0.1).start() for _ in range(2)]
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
