"""Shared fixtures and the suite's skip guard. Heavy objects (the Anny body model) are built once per session.

Skip guard: a skipped test fails the run. Every photo and tool the suite needs ships in the repository
(photos in ``tests/data/``) or in the pinned virtual environment, so a skip means something is missing,
not that the test does not apply. The only accepted skips are those whose reason starts with
``MACHINE_SKIP`` ("not on this machine:"), for what truly cannot run here (e.g. a CUDA-only check on a
CPU machine); ``MUNET_ALLOW_SKIPS=1`` relaxes the guard for a contributor's partial environment.
"""

from __future__ import annotations

import os
import pathlib
import tempfile

import pytest
import torch
from photos import IMAGES as TEST_IMAGES

# Blender (bpy) reads its user folder once, at first import: point it at a throwaway folder before any
# test module imports bpy, so installing the add-on never touches the real user's Blender.
os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="munet-blender-user-"))


torch.set_num_threads(2)


MACHINE_SKIP = "not on this machine:"
"""Prefix of the only skip reasons the guard accepts (``pytest.skip(f"{MACHINE_SKIP} needs CUDA")``)."""

_unexpected_skips: list[str] = []


def pytest_runtest_logreport(report):
    if report.skipped:
        reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if MACHINE_SKIP not in reason:
            _unexpected_skips.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session, exitstatus):
    if _unexpected_skips and os.environ.get("MUNET_ALLOW_SKIPS") != "1" and exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _unexpected_skips:
        allowed = os.environ.get("MUNET_ALLOW_SKIPS") == "1"
        terminalreporter.section("skip guard")
        terminalreporter.write_line(
            f"{len(_unexpected_skips)} test(s) skipped that should run here"
            + (" (allowed by MUNET_ALLOW_SKIPS=1)" if allowed else ": the run FAILS (see tests/conftest.py)"))
        for line in _unexpected_skips:
            terminalreporter.write_line(f"  {line}")


@pytest.fixture(scope="session")
def test_images() -> pathlib.Path:
    """The folder of the committed real test photos (``tests/data/``)."""
    return TEST_IMAGES


@pytest.fixture(scope="session")
def anny_body():
    from munet.body import load_body_model

    return load_body_model("anny", skeleton="smpl24")
