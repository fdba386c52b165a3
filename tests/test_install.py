"""The backend installs as a package (README: Run the backend on a server).

Builds the wheel from this checkout, installs it with the documented command (``scripts/install_backend.sh
VENV_DIR WHEEL``) into a fresh virtual environment outside the repository, then runs ``munet setup`` and
``munet reconstruct lunge.jpg`` from another directory: the report must say ``"method": "network"`` with
the checkpoint from inside the installed package, and the environment must hold ``munet`` and
``munet_backend`` but not ``training`` or ``backend``.

Slow: the install takes ~3 minutes with pip's cache warm (torch, warp, scipy, opencv...; the first run on
a machine downloads ~1 GB), the environment is ~1.9 GB. ``munet setup`` uses the developer's cache
(``$MUNET_CACHE_DIR``, default ``~/.cache/munet``), which ``make setup`` has already built, so it checks the
install and reuses the Anny model data instead of rebuilding it (~15 s instead of ~60 s).
"""

from __future__ import annotations

import ast
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time
import zipfile

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
PHOTO = REPO / "tests" / "data" / "lunge.jpg"


def _env(cache_dir: str) -> dict[str, str]:
    """The environment of a user's shell: nothing of this repository's venv or of the test run."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME") and not k.startswith(("MUNET_", "PYTEST"))}
    env["MUNET_CACHE_DIR"] = cache_dir
    env["PYTHON"] = sys.executable  # the script makes the venv from this Python 3.11
    return env


def _run(argv, cwd, env, timeout_s):
    result = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout_s)
    assert result.returncode == 0, f"{argv} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def build_wheel(out_dir: pathlib.Path) -> pathlib.Path:
    """The wheel of this checkout, as `make wheel` builds it (setuptools from this venv, no download)."""
    shutil.rmtree(REPO / "build" / "lib", ignore_errors=True)  # setuptools would reuse a stale copy
    for stale in (REPO / "build").glob("bdist.*"):
        shutil.rmtree(stale, ignore_errors=True)
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", out_dir, REPO],
         REPO, dict(os.environ), 600)
    (wheel,) = out_dir.glob("munet_blender-*.whl")
    return wheel


def check_wheel_contents(wheel: pathlib.Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {"munet", "munet_backend", wheel.name.split("-py3")[0] + ".dist-info"}, top
    assert {"munet/checkpoints/munet.safetensors", "munet/checkpoints/munet.json"} <= set(names)
    assert not [name for name in names if "ablations" in name or "/tests/" in name]


def test_backend_imports_itself_only_relatively():
    """``backend/`` installs as ``munet_backend``: an absolute ``backend`` import would fail there."""
    absolute = []
    for path in sorted((REPO / "backend").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("backend."):
                names = [node.value]  # importlib.import_module("backend.x"), logger names
            absolute += [f"{path.relative_to(REPO)}:{node.lineno}: {name}" for name in names
                         if name == "backend" or name.startswith("backend.")]
    assert not absolute, absolute


@pytest.mark.slow
def test_the_wheel_installs_a_backend_that_reconstructs_with_the_network(tmp_path_factory):
    root = tmp_path_factory.mktemp("install")
    assert not root.resolve().is_relative_to(REPO)
    wheel = build_wheel(root / "dist")
    check_wheel_contents(wheel)
    env = _env(os.environ.get("MUNET_CACHE_DIR", str(pathlib.Path("~/.cache/munet").expanduser())))
    venv, work = root / "venv", root / "work"
    work.mkdir()
    shutil.copy(PHOTO, work / "lunge.jpg")

    started = time.perf_counter()
    install = _run(["sh", REPO / "scripts" / "install_backend.sh", venv, wheel], work, env, 1800)
    install_s = time.perf_counter() - started
    assert "munet setup" in install.stdout and "munet serve" in install.stdout  # the next steps
    size = subprocess.run(["du", "-sh", venv], capture_output=True, text=True).stdout.split()[0]
    print(f"\ninstall: {install_s:.0f} s, environment {size}")

    munet = venv / "bin" / "munet"
    _run([munet, "setup"], work, env, 600)
    _run([munet, "reconstruct", "lunge.jpg", "-o", "lunge.glb", "--report", "lunge.json"], work, env, 900)
    report = json.loads((work / "lunge.json").read_text())
    assert report["method"] == "network", report["notes"]
    site = next((venv / "lib").glob("python3.*/site-packages"))
    assert pathlib.Path(report["network"]["checkpoint"]).is_relative_to(site / "munet" / "checkpoints")
    assert (work / "lunge.glb").stat().st_size > 100_000

    python = venv / "bin" / "python"
    _run([python, "-c", "import munet, munet_backend, mediapipe"], work, env, 120)
    for generic in ("training", "backend", "tests", "benchmarks"):
        found = subprocess.run([python, "-c", f"import {generic}"], cwd=work, env=env, capture_output=True, text=True)
        assert found.returncode != 0 and "No module named" in found.stderr, f"{generic} is installed"
    absent = subprocess.run([python, "-m", "pip", "show", "bpy", "pytest", "jax"], capture_output=True, text=True)
    assert "Name:" not in absent.stdout, absent.stdout
