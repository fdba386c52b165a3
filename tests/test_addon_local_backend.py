"""The add-on's *Start local backend* (``blender_addon/local_backend.py``, no bpy): the child's output goes to
a log file, the status says when the backend is ready, and a child that fails shows its last log lines.

The module is loaded as part of a stand-in package (so ``blender_addon/__init__.py``, which imports bpy,
does not run). The ready test starts the real command, ``python -m munet_backend serve``, from this
repository's own environment (its editable install provides ``munet_backend``) with the test engine.
"""

from __future__ import annotations

import importlib
import os
import pathlib
import socket
import stat
import sys
import time
import types

import pytest
from tests.doubles.processes import FAKE_ENGINE, REPO

ADDON = REPO / "blender_addon"


def _addon_module(name: str):
    """``blender_addon.<name>`` imported inside a stand-in package that skips the add-on's bpy imports."""
    package = sys.modules.get("_munet_addon_nobpy")
    if package is None:
        package = types.ModuleType("_munet_addon_nobpy")
        package.__path__ = [str(ADDON)]
        sys.modules[package.__name__] = package
    return importlib.import_module(f"{package.__name__}.{name}")


@pytest.fixture
def local():
    backend = _addon_module("local_backend").LocalBackend()
    yield backend
    backend.stop(timeout_s=5)


def _fake_env(root: pathlib.Path, script: str) -> pathlib.Path:
    """A folder that looks like a Python environment whose ``bin/python`` runs ``script`` (POSIX sh)."""
    python = root / "env" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\n" + script)
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    return root / "env"


def _wait_exit(local, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while local.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not local.running, "the child did not exit"


@pytest.mark.skipif(sys.platform == "win32", reason="not on this machine: the stand-in interpreter is a POSIX shell script")
def test_a_failing_child_shows_its_last_log_lines(local, tmp_path):
    script = "".join(f"echo 'line {i}'\n" for i in range(20))
    script += "echo \"args: $*\"\necho 'RuntimeError: the model could not load' >&2\nexit 3\n"
    env = _fake_env(tmp_path, script)
    local.start(str(env), "tcp://127.0.0.1:5999", tmp_path / "logs")
    assert local.log_path == tmp_path / "logs" / "munet_backend.log"
    _wait_exit(local)
    status, *tail = local.status_lines()
    assert status.startswith("exited with code 3") and str(local.log_path) in status
    assert tail[-1] == "RuntimeError: the model could not load"  # stderr is in the log too
    assert "args: -m munet_backend serve --bind tcp://127.0.0.1:5999" in tail
    assert len(tail) == 8 and "line 19" in tail and "line 11" not in tail
    assert not local.ready


def test_an_environment_without_the_backend_names_the_install_command(local, tmp_path):
    bare = pathlib.Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    if not bare.is_file():
        pytest.skip(f"not on this machine: no base interpreter at {bare} to stand for an environment without MuNet")
    local.start(str(bare), "tcp://127.0.0.1:5999", tmp_path)
    _wait_exit(local)
    lines = local.status_lines()
    assert any("No module named munet_backend" in line for line in lines), lines
    assert "scripts/install_backend.sh VENV_DIR" in lines[-1]


def test_no_interpreter_names_the_install_command(tmp_path):
    local_backend = _addon_module("local_backend")
    with pytest.raises(local_backend.AddonError) as error:
        local_backend.find_python(str(tmp_path))
    assert error.value.code == "no_python"
    assert "scripts/install_backend.sh VENV_DIR" in str(error.value) and "pip install munet" not in str(error.value)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_real_backend_says_when_it_is_ready_and_stops(local, tmp_path, monkeypatch):
    monkeypatch.setenv("MUNET_ENGINE", FAKE_ENGINE)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    local.start(sys.prefix, endpoint, tmp_path)  # this repository's venv: the add-on's command, unchanged
    deadline = time.monotonic() + 60
    while not local.ready and local.running and time.monotonic() < deadline:
        time.sleep(0.1)
    assert local.ready, local.status_lines() + local.log_tail(40)
    assert local.status() == f"ready on {endpoint} (pid {local.proc.pid})"
    local.stop()
    assert local.status().startswith("stopped") and local.status_lines() == [local.status()]


@pytest.mark.skipif(sys.platform == "win32", reason="not on this machine: the stand-in interpreter is a POSIX shell script")
def test_the_operator_logs_in_blenders_user_folder_and_the_preferences_show_the_failure(tmp_path):
    from test_addon_support import ADDON_MODULE, installed_addon

    addon = installed_addon()
    import bpy

    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    prefs.python_env = str(_fake_env(tmp_path, "echo 'ImportError: libcuda.so.1 missing' >&2\nexit 1\n"))
    local = addon.local_backend.LOCAL
    try:
        assert bpy.ops.munet.start_local_backend() == {"FINISHED"}
        assert pathlib.Path(local.log_path).is_relative_to(bpy.utils.resource_path("USER"))
        _wait_exit(local)
        status, *tail = local.status_lines()  # what MunetPreferences.draw shows
        assert status.startswith("exited with code 1") and tail == ["ImportError: libcuda.so.1 missing"]
    finally:
        local.stop()
        prefs.python_env = ""
