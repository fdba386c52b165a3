"""Start and stop a backend (`munet serve`) on this machine from the add-on's preferences (no bpy).

The child is ``<python> -m munet_backend serve --bind ENDPOINT`` (``munet_backend`` is the backend's import
name in an environment made by ``scripts/install_backend.sh``, and in the repository's own ``.venv``). Its
stdout and stderr go to a log file (``LOG_NAME`` in the folder the operator passes: Blender's user data
folder); the status reads the backend's announcements from it (``munet serve: listening on ...``, then
``munet serve: ready ...`` once the model is loaded) and, once the child exited, its last lines.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

from .errors import INSTALL_COMMAND, AddonError

LOG_NAME = "munet_backend.log"
LISTENING = "munet serve: listening on"
READY = "munet serve: ready"
TAIL_LINES = 8
"""How many of the log's last lines the panel shows after the child exited."""
_TAIL_BYTES = 16384


def find_python(env_path: str) -> pathlib.Path:
    """The interpreter of a Python environment given as its folder (a venv or conda env) or its executable."""
    path = pathlib.Path(os.path.expanduser(env_path.strip()))
    if not env_path.strip():
        raise AddonError("set the backend's Python environment in the add-on preferences first", code="no_python")
    candidates = [path] if path.is_file() else [path / "bin" / "python", path / "bin" / "python3",
                                                  path / "Scripts" / "python.exe", path / "python.exe"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise AddonError(f"no Python interpreter found in {path} (expected bin/python or Scripts/python.exe)",
                     code="no_python")


class LocalBackend:
    """One `python -m munet_backend serve --bind ENDPOINT` child process and its log file."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.endpoint = ""
        self.log_path: pathlib.Path | None = None
        self._scanned = 0  # bytes of the log already searched for the announcements
        self._listening = False
        self._ready = False
        self._stopped = False  # stopped by us (stop()), not exited on its own

    def start(self, env_path: str, endpoint: str, log_dir: str | os.PathLike) -> None:
        """Start the child; its output goes to ``log_dir/LOG_NAME`` (replaced at each start)."""
        if self.running:
            raise AddonError(f"a local backend already runs (pid {self.proc.pid})", code="already_running")
        python = find_python(env_path)
        log_path = pathlib.Path(log_dir) / LOG_NAME
        flags = subprocess.CREATE_NEW_PROCESS_GROUP if sys.platform == "win32" else 0
        env = {k: v for k, v in os.environ.items() if k != "PYTHONHOME"}  # Blender's own would break a venv
        env["PYTHONUNBUFFERED"] = "1"
        try:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(log_path, "wb") as log:
                self.proc = subprocess.Popen([str(python), "-m", "munet_backend", "serve", "--bind", endpoint],
                                             stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                             env=env, creationflags=flags)
        except OSError as e:
            raise AddonError(f"could not start {python}: {e}", code="no_python") from e
        self.endpoint, self.log_path = endpoint, log_path
        self._scanned, self._listening, self._ready, self._stopped = 0, False, False, False

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 10.0) -> None:
        if not self.running:
            return
        self._stopped = True
        self.proc.terminate()
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    @property
    def ready(self) -> bool:
        """The child runs and announced that its model is loaded."""
        self._scan()
        return self.running and self._ready

    def status(self) -> str:
        """One line for the panel: not started, starting, loading, ready, or how it exited."""
        if self.proc is None:
            return "not started"
        self._scan()
        if self.running:
            if self._ready:
                return f"ready on {self.endpoint} (pid {self.proc.pid})"
            if self._listening:
                return f"listening on {self.endpoint}, loading the model (pid {self.proc.pid})"
            return f"starting (pid {self.proc.pid})"
        how = "stopped" if self._stopped else f"exited with code {self.proc.returncode}"
        return f"{how} (log: {self.log_path})"

    def status_lines(self) -> list[str]:
        """The status, then (once the child exited with an error) the last lines of its log."""
        lines = [self.status()]
        if self.proc is not None and not self.running and not self._stopped and self.proc.returncode != 0:
            lines += self.log_tail()
            if any("No module named" in line and "munet_backend" in line for line in lines):
                lines.append(f"That environment has no MuNet backend: make one with {INSTALL_COMMAND}")
        return lines

    def log_tail(self, count: int = TAIL_LINES) -> list[str]:
        """The log's last ``count`` non-empty lines (decoded leniently)."""
        if self.log_path is None or not self.log_path.is_file():
            return []
        with open(self.log_path, "rb") as f:
            f.seek(max(0, self.log_path.stat().st_size - _TAIL_BYTES))
            text = f.read().decode("utf-8", errors="replace")
        return [line.rstrip() for line in text.splitlines() if line.strip()][-count:]

    def _scan(self) -> None:
        """Search the log's new bytes for the backend's announcements (they come once, early)."""
        if self._ready or self.log_path is None or not self.log_path.is_file():
            return
        start = max(0, self._scanned - len(LISTENING))  # an announcement may straddle two reads
        with open(self.log_path, "rb") as f:
            f.seek(start)
            data = f.read(1 << 20)
        self._scanned = max(self._scanned, start + len(data))
        self._listening = self._listening or LISTENING.encode() in data
        self._ready = READY.encode() in data


LOCAL = LocalBackend()
