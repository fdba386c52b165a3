"""Helpers for tests and benchmarks: a real `munet serve` (or broker) in its own process.

``ServerProcess`` starts ``python -m backend.cli serve`` on a free loopback port, reads the endpoint it
announces on stdout, and waits until it answers ``ping`` as ready; it can be stopped with a signal,
killed, restarted on the same endpoint, and measured (RSS from /proc). ``engine="fake"`` sets
``MUNET_ENGINE=tests.doubles.fake_engine:FakeEngine`` (synthetic results, see ``tests.doubles.fake_engine``);
``engine="real"`` makes sure it is unset. The child runs in the repository root with the root on
``PYTHONPATH``, so it can import ``tests.doubles``.
"""

from __future__ import annotations

import os
import pathlib
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

REPO = pathlib.Path(__file__).resolve().parents[2]
#: ``MUNET_ENGINE`` value that makes a server child serve the synthetic engine.
FAKE_ENGINE = "tests.doubles.fake_engine:FakeEngine"
EXAMPLE_PHOTO = REPO / "examples" / "lunge.jpg"


def child_env(engine: str = "fake", **fake: Any) -> dict[str, str]:
    """Environment for a server child: the repository importable, the engine chosen, the fake
    engine's knobs as ``MUNET_FAKE_<NAME>`` (e.g. ``stage_s=0.2``)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("MUNET_ENGINE", None)
    if engine == "fake":
        env["MUNET_ENGINE"] = FAKE_ENGINE
    elif engine != "real":
        raise ValueError(f"engine must be 'fake' or 'real', not {engine!r}")
    for name, value in fake.items():
        env[f"MUNET_FAKE_{name.upper()}"] = str(value)
    return env


class ChildProcess:
    """A `python -m backend.cli ...` child whose stdout lines are collected and whose stderr goes to a
    temporary log file (so a chatty child never blocks on a full pipe)."""

    def __init__(self, argv: list[str], env: dict[str, str]):
        self.argv = argv
        self.env = env
        self.proc: subprocess.Popen | None = None
        self._lines: queue.Queue[str] = queue.Queue()
        self._log = tempfile.NamedTemporaryFile(prefix="munet-child-", suffix=".log", delete=False)

    def start(self) -> "ChildProcess":
        self.proc = subprocess.Popen([sys.executable, "-m", "backend.cli", *self.argv], cwd=REPO, env=self.env,
                                     stdout=subprocess.PIPE, stderr=self._log, text=True)
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()
        return self

    def _read(self, stream: Any) -> None:
        for line in stream:
            self._lines.put(line.rstrip("\n"))

    def wait_line(self, pattern: str, timeout_s: float = 30.0) -> re.Match:
        """Wait for a stdout line matching ``pattern``; raise with the child's log if it never comes."""
        deadline = time.monotonic() + timeout_s
        regex = re.compile(pattern)
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=min(remaining, 0.2))
            except queue.Empty:
                if self.proc.poll() is not None and self._lines.empty():
                    break
                continue
            if match := regex.search(line):
                return match
        raise RuntimeError(f"`munet {' '.join(self.argv)}` did not print /{pattern}/ "
                           f"(exit code {self.proc.poll()}); its log:\n{self.log_text()[-3000:]}")

    def log_text(self) -> str:
        return pathlib.Path(self._log.name).read_text(errors="replace")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout_s: float = 10.0) -> int:
        return self.proc.wait(timeout_s)

    def rss_bytes(self) -> int:
        """Resident set size of the child, from /proc (Linux)."""
        for line in pathlib.Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("VmRSS not found")

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc.stdout.close()
        self._log.close()
        return self.proc.returncode

    def cleanup(self) -> None:
        self.stop()
        pathlib.Path(self._log.name).unlink(missing_ok=True)


class ServerProcess(ChildProcess):
    """`munet serve` in a child process. ``endpoint`` is known after ``start``."""

    def __init__(self, *args: str, engine: str = "fake", bind: str = "tcp://127.0.0.1:0", **fake: Any):
        self.bind = bind
        self.args = list(args)
        super().__init__(self._argv(bind), child_env(engine, **fake))
        self.endpoint: str | None = None

    def _argv(self, bind: str) -> list[str]:
        return ["serve", *(["--bind", bind] if "--connect" not in self.args else []), *self.args]

    def start(self, ready_timeout_s: float = 60.0, wait_ready: bool = True) -> "ServerProcess":
        """Start, learn the endpoint and (``wait_ready``) wait until every worker has loaded its engine."""
        super().start()
        self.endpoint = self.wait_line(r"munet serve: (listening on|worker connected to) ", ready_timeout_s).string.split()[-1]
        if wait_ready:
            self.wait_line(r"munet serve: ready", ready_timeout_s)
        return self

    def restart(self, ready_timeout_s: float = 60.0) -> "ServerProcess":
        """Start a new process on the same endpoint (after this one has exited)."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("the server is still running")
        self.argv = self._argv(self.endpoint)
        self._lines = queue.Queue()
        return self.start(ready_timeout_s)


class BrokerProcess(ChildProcess):
    """`munet serve --broker` in a child: ``frontend`` (clients) and ``backend`` (workers) endpoints."""

    def __init__(self, *args: str):
        super().__init__(["serve", "--bind", "tcp://127.0.0.1:0", "--broker", "tcp://127.0.0.1:0", *args], child_env("fake"))
        self.frontend: str | None = None
        self.backend: str | None = None

    def start(self, timeout_s: float = 30.0) -> "BrokerProcess":
        super().start()
        match = self.wait_line(r"clients connect to (\S+), workers connect to (\S+)", timeout_s)
        self.frontend, self.backend = match.group(1), match.group(2)
        return self


class RawClient:
    """A bare DEALER socket for tests that must see every frame: sends messages or raw frames, returns
    decoded replies. Not a product client (no retries): see ``backend.client.Client`` for that."""

    TERMINAL = ("result", "error")

    def __init__(self, endpoint: str, identity: bytes | None = None):
        import zmq

        from backend import transport

        self._zmq = zmq
        self.sock = transport.context().socket(zmq.DEALER)
        self.sock.linger = 0
        if identity is not None:
            self.sock.routing_id = identity
        self.sock.connect(endpoint)

    def send(self, message: Any) -> None:
        from backend import protocol

        self.sock.send_multipart([b"", *protocol.encode(message)], copy=False)

    def send_frames(self, frames: list[bytes]) -> None:
        self.sock.send_multipart(frames)

    def recv(self, timeout_s: float = 5.0) -> Any:
        """The next reply, decoded; None after ``timeout_s`` of silence."""
        from backend import protocol

        if not self.sock.poll(int(timeout_s * 1000)):
            return None
        frames = self.sock.recv_multipart(copy=False)
        assert len(frames[0]) == 0, "reply without the empty delimiter"
        return protocol.decode(frames[1:], expect="reply")

    def until(self, predicate: Any, timeout_s: float = 10.0) -> list[Any]:
        """Collect replies until one satisfies ``predicate`` (included); raise TimeoutError otherwise."""
        deadline = time.monotonic() + timeout_s
        seen: list[Any] = []
        while (remaining := deadline - time.monotonic()) > 0:
            reply = self.recv(remaining)
            if reply is None:
                break
            seen.append(reply)
            if predicate(reply):
                return seen
        raise TimeoutError(f"no matching reply within {timeout_s} s; got {[(m.TYPE, m.id) for m in seen]}")

    def terminal(self, request_id: str, timeout_s: float = 10.0) -> list[Any]:
        """Replies up to and including the result or error of ``request_id``."""
        return self.until(lambda m: m.id == request_id and m.TYPE in self.TERMINAL, timeout_s)

    def ping(self, request_id: str = "fence", timeout_s: float = 5.0) -> Any:
        """Ping and return the pong (replies before it are dropped)."""
        from backend import protocol

        self.send(protocol.Ping(request_id))
        return self.until(lambda m: m.TYPE == "pong" and m.id == request_id, timeout_s)[-1]

    def close(self) -> None:
        self.sock.close(linger=0)

    def __enter__(self) -> "RawClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
