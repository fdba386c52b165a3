"""The headless client: recovery from a killed server, retries across a restart, the CLI, outputs."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from backend import client as client_module
from backend import protocol as p
from backend.client import BackendError, Client
from tests.doubles.fake_engine import FakeEngine
from tests.doubles.processes import EXAMPLE_PHOTO, REPO, ServerProcess, child_env

PHOTO = EXAMPLE_PHOTO.read_bytes()


def free_endpoint() -> str:
    """A loopback endpoint nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def reconstruct_in_thread(client: Client, started: threading.Event) -> dict:
    """Run ``client.reconstruct`` in a thread; ``started`` is set once the server reports a stage."""
    outcome: dict = {}

    def on_progress(progress: p.Progress) -> None:
        if progress.stage == "detect":
            started.set()

    def run() -> None:
        try:
            outcome["result"] = client.reconstruct(PHOTO, progress=on_progress)
        except BackendError as e:
            outcome["error"] = e
        outcome["finished"] = time.monotonic()

    outcome["thread"] = threading.Thread(target=run)
    outcome["thread"].start()
    return outcome


def test_killed_server_gives_a_clear_error_then_a_restart_works():
    server = ServerProcess(stage_s=0.3).start()
    try:
        with Client(server.endpoint, timeout_s=10, retries=0, idle_timeout_s=1.0) as client:
            started = threading.Event()
            outcome = reconstruct_in_thread(client, started)
            assert started.wait(10)
            server.signal(signal.SIGKILL)
            killed = time.monotonic()
            server.wait(5)
            outcome["thread"].join(15)
            error = outcome["error"]
            assert error.code == "unreachable" and "munet serve" in str(error)
            assert outcome["finished"] - killed < 1.6  # the idle timeout, not the 10 s overall one
            server.restart()
            rec = client.reconstruct(PHOTO)  # the same client object recovers
            assert rec.body.rest_vertices_m.shape[1] == 3
    finally:
        server.cleanup()


def test_retries_survive_a_server_restart():
    server = ServerProcess(stage_s=0.2).start()
    try:
        with Client(server.endpoint, timeout_s=30, retries=3, idle_timeout_s=1.0) as client:
            started = threading.Event()
            outcome = reconstruct_in_thread(client, started)
            assert started.wait(10)
            server.signal(signal.SIGKILL)
            server.wait(5)
            server.restart()
            outcome["thread"].join(30)
            assert "error" not in outcome, outcome.get("error")
            assert outcome["result"].report["worker"].endswith(f":{server.pid}")  # served by the new process
    finally:
        server.cleanup()


def test_no_server_is_unreachable_within_the_timeout():
    with Client(free_endpoint(), retries=1) as client:
        start = time.monotonic()
        with pytest.raises(BackendError) as err:
            client.ping(timeout_s=0.6)
        assert err.value.code == "unreachable" and time.monotonic() - start < 0.9
    assert "2 attempt(s) in 0." in str(err.value) and "nothing accepted the connection" in str(err.value)


def test_a_silent_server_is_reported_with_the_real_time_and_attempts():
    """The message used to say "within 600 s (3 attempt(s))" after ~15 s: it now says what happened."""
    import re

    import zmq

    silent = zmq.Context.instance().socket(zmq.ROUTER)  # accepts, reads, never answers
    silent.linger = 0
    port = silent.bind_to_random_port("tcp://127.0.0.1")
    try:
        with Client(f"tcp://127.0.0.1:{port}", retries=2, idle_timeout_s=0.3) as client:
            start = time.monotonic()
            with pytest.raises(BackendError) as err:
                client.reconstruct(PHOTO, timeout_s=600)
            elapsed = time.monotonic() - start
    finally:
        silent.close()
    message = str(err.value)
    assert err.value.code == "unreachable" and "3 attempt(s)" in message and "600" not in message, message
    reported = float(re.search(r"in ([0-9.]+) s", message).group(1))
    assert abs(reported - elapsed) < 0.2 and "did not answer in time" in message, message


def test_local_checks_before_sending():
    with Client(free_endpoint()) as client:
        with pytest.raises(BackendError) as err:
            client.reconstruct(b"plain text, not a photo")
        assert err.value.code == "bad_image"
        with pytest.raises(p.ProtocolError):
            client.reconstruct(PHOTO, p.Options(skeleton="tail"))


@pytest.fixture(scope="module")
def result() -> p.ResultReconstruction:
    engine = FakeEngine()
    engine.load()
    rec = engine.reconstruct(PHOTO, p.Options(), lambda *a: None, threading.Event())
    return p.ResultReconstruction.from_reconstruction(rec)


def test_npz_holds_every_array(result, tmp_path):
    path = tmp_path / "out.npz"
    client_module.write_npz(result, path)
    data = np.load(path)
    np.testing.assert_array_equal(data["body_faces"], result.body.faces)
    np.testing.assert_array_equal(data["clothed_skin_weights"], result.clothed.skin.weights)
    assert list(data["skeleton_joint_names"]) == list(result.skeleton.joint_names)
    assert bytes(data["texture_image"]) == bytes(result.texture.image_bytes)
    assert json.loads(str(data["report_json"])) == result.report
    assert [f.name for f in tmp_path.iterdir()] == ["out.npz"]


def test_failed_write_leaves_no_file(result, tmp_path, monkeypatch):
    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", explode)
    with pytest.raises(OSError):
        client_module.write_npz(result, tmp_path / "out.npz")
    assert list(tmp_path.iterdir()) == []


def test_to_reconstruction_copies(result):
    rec = client_module.to_reconstruction(result)
    assert rec.body.rest_vertices_m.flags.writeable and rec.skeleton.num_joints == 24
    np.testing.assert_allclose(rec.body.skin.dense(24).sum(1), 1.0, atol=1e-6)


# ------------------------------------------------------------------------------------------------
# The `munet client` command


def munet(*args: str, timeout: float = 60, umask: int | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "backend.cli", *args], cwd=REPO, env=child_env(),
                          capture_output=True, text=True, timeout=timeout,
                          preexec_fn=None if umask is None else lambda: os.umask(umask))


@pytest.fixture(scope="module")
def server():
    server = ServerProcess().start()
    yield server
    server.cleanup()


def test_cli_ping_and_info(server):
    ping = munet("client", "ping", "--endpoint", server.endpoint)
    assert ping.returncode == 0 and "pong from" in ping.stdout and "ready" in ping.stdout
    info = munet("client", "info", "--endpoint", server.endpoint)
    assert info.returncode == 0 and json.loads(info.stdout)["protocol_version"] == p.PROTOCOL_VERSION


def test_cli_reconstruct_npz_glb_and_report(server, tmp_path):
    out = munet("client", "reconstruct", str(EXAMPLE_PHOTO), "--endpoint", server.endpoint,
                "-o", str(tmp_path / "out.npz"), "--report", str(tmp_path / "report.json"), "--skeleton", "full")
    assert out.returncode == 0, out.stderr
    assert "detect" in out.stderr and "texture" in out.stderr  # progress shown
    assert np.load(tmp_path / "out.npz")["skeleton_name"] == "full"
    assert json.loads((tmp_path / "report.json").read_text())["engine"] == "fake"
    glb = munet("client", "reconstruct", str(EXAMPLE_PHOTO), "--endpoint", server.endpoint, "-o", str(tmp_path / "out.glb"))
    try:
        from munet.export import write_glb  # noqa: F401
    except ImportError:
        assert glb.returncode == 2 and "-o OUT.npz" in glb.stderr
    else:
        assert glb.returncode == 0, glb.stderr
        assert (tmp_path / "out.glb").read_bytes()[:4] == b"glTF"
    bad = munet("client", "reconstruct", str(EXAMPLE_PHOTO), "--endpoint", server.endpoint, "-o", str(tmp_path / "out.obj"))
    assert bad.returncode == 2 and ".glb or .npz" in bad.stderr


def test_cli_exit_codes(server, tmp_path):
    start = time.monotonic()
    down = munet("client", "ping", "--endpoint", free_endpoint(), "--timeout", "1")
    assert down.returncode == 6 and "unreachable" in down.stderr and time.monotonic() - start < 10
    text = tmp_path / "photo.jpg"
    text.write_text("not a photo")
    bad = munet("client", "reconstruct", str(text), "--endpoint", server.endpoint, "-o", str(tmp_path / "x.npz"))
    assert bad.returncode == 3 and "bad_image" in bad.stderr
    assert not (tmp_path / "x.npz").exists()


def test_help_and_argument_errors_do_not_import_torch():
    """`munet --help` and a bad command line answer at once: the commands import their heavy modules in run()."""
    code = ("import sys\n"
            "from backend import cli\n"
            "for argv in (['--help'], ['reconstruct'], ['serve', '--workers', 'x'], ['client', 'reconstruct', 'p.jpg']):\n"
            "    try:\n"
            "        cli.build_parser().parse_args(argv)\n"
            "    except SystemExit as e:\n"
            "        assert e.code == (0 if argv == ['--help'] else 2), (argv, e.code)\n"
            "heavy = sorted(m for m in ('torch', 'mediapipe', 'anny', 'cv2', 'scipy') if m in sys.modules)\n"
            "assert not heavy, heavy\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=child_env(), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]


def test_cli_output_files_honour_the_umask(server, tmp_path):
    for umask, mode in ((0o022, 0o644), (0o077, 0o600)):
        out = tmp_path / f"out-{umask:o}.npz"
        done = munet("client", "reconstruct", str(EXAMPLE_PHOTO), "--endpoint", server.endpoint, "-o", str(out),
                     "--report", str(tmp_path / f"report-{umask:o}.json"), umask=umask)
        assert done.returncode == 0, done.stderr
        assert out.stat().st_mode & 0o777 == mode
        assert (tmp_path / f"report-{umask:o}.json").stat().st_mode & 0o777 == mode
