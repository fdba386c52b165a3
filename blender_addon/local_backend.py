"""Start and stop a backend (`munet serve`) on this machine from the add-on's preferences (no bpy)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

from .errors import AddonError


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
    raise AddonError(f"no Python interpreter found in {path} (expected bin/python or Scripts/python.exe): "
                     "point the preference at the environment where `pip install munet` was run", code="no_python")


class LocalBackend:
    """One `python -m backend.cli serve --bind ENDPOINT` child process."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.endpoint = ""

    def start(self, env_path: str, endpoint: str) -> None:
        if self.running:
            raise AddonError(f"a local backend already runs (pid {self.proc.pid})", code="already_running")
        python = find_python(env_path)
        flags = subprocess.CREATE_NEW_PROCESS_GROUP if sys.platform == "win32" else 0
        try:
            self.proc = subprocess.Popen([str(python), "-m", "backend.cli", "serve", "--bind", endpoint],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, creationflags=flags)
        except OSError as e:
            raise AddonError(f"could not start {python}: {e}", code="no_python") from e
        self.endpoint = endpoint

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 10.0) -> None:
        if not self.running:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def status(self) -> str:
        if self.proc is None:
            return "not started"
        if self.running:
            return f"running (pid {self.proc.pid}) on {self.endpoint}"
        return f"exited with code {self.proc.returncode}"


LOCAL = LocalBackend()
