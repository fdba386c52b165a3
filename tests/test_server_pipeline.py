"""The server with the REAL engine (munet.pipeline) on the example photo."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
from PIL import Image

from backend import protocol as p
from backend.client import BackendError, Client
from tests.doubles.processes import EXAMPLE_PHOTO, RawClient, ServerProcess

PHOTO = EXAMPLE_PHOTO.read_bytes()
SMPL24 = ("pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle", "right_ankle",
          "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head", "left_shoulder",
          "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand")


@pytest.fixture(scope="module")
def real():
    server = ServerProcess("--workers", "1", "--queue", "8", engine="real").start(ready_timeout_s=600)
    yield server
    assert server.stop(30) == 0
    server.cleanup()


def test_real_info(real):
    with Client(real.endpoint) as client:
        info = client.info()
    assert info.ready and "fake" not in info.engine and "smpl24" in info.skeletons


def test_real_reconstruction_of_the_example(real):
    stages: list[str] = []
    with Client(real.endpoint, timeout_s=600) as client:
        rec = client.reconstruct(PHOTO, progress=lambda m: stages.append(m.stage))
    assert rec.skeleton.name == "smpl24" and rec.skeleton.joint_names == SMPL24
    assert rec.body.rest_vertices_m.shape[0] > 1000 and rec.clothed is not None
    assert rec.clothed.skin.joint_indices.max() < 24 and rec.pose_axis_angle.shape == (24, 3)
    np.testing.assert_allclose(rec.body.skin.weights.sum(1), 1.0, atol=1e-4)
    assert rec.camera.image_size == (1000, 1498)
    assert len(set(stages)) >= 3 and isinstance(rec.report, dict)


def test_real_ping_while_reconstructing(real):
    with RawClient(real.endpoint) as worker, RawClient(real.endpoint) as pinger:
        worker.send(p.Reconstruct("long", image=PHOTO, timeout_s=600))
        worker.until(lambda m: m.TYPE == "progress" and m.stage not in ("queued", "started"), 600)
        rtts = []
        for i in range(10):
            start = time.perf_counter()
            pinger.ping(f"p{i}")
            rtts.append(time.perf_counter() - start)
        worker.terminal("long", 600)
    assert max(rtts) < 0.050, rtts


@pytest.mark.parametrize("kind,code", [("corrupt", "bad_image"), ("flat", "no_person_found")])
def test_real_error_codes(real, kind, code):
    if kind == "corrupt":
        image = PHOTO[:200] + b"\0" * 200
    else:
        out = io.BytesIO()
        Image.fromarray(np.full((480, 320, 3), 128, np.uint8)).save(out, format="PNG")
        image = out.getvalue()
    with Client(real.endpoint, timeout_s=600) as client, pytest.raises(BackendError) as err:
        client.reconstruct(image)
    assert err.value.code == code


@pytest.mark.slow
def test_real_eight_clients_five_requests(real):
    latencies: list[float] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with Client(real.endpoint, timeout_s=1800) as client:
                for _ in range(5):
                    start = time.perf_counter()
                    client.reconstruct(PHOTO)
                    latencies.append(time.perf_counter() - start)
        except BaseException as e:  # noqa: BLE001 - re-raised by the main thread
            errors.append(e)

    start = time.perf_counter()
    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(1800)
    assert not errors and len(latencies) == 40
    print(f"real engine, 8 clients x 5: {40 / (time.perf_counter() - start):.2f} req/s, "
          f"p50 {np.percentile(latencies, 50):.2f} s, p99 {np.percentile(latencies, 99):.2f} s")
