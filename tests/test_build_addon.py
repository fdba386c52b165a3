"""build_addon.py: the zip has the protocol package copied verbatim, every pinned wheel, a valid manifest;
re-running is idempotent; a wheel that cannot be had is a clear error."""

from __future__ import annotations

import pathlib
import sys
import zipfile

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import build_addon  # noqa: E402


@pytest.fixture(scope="module")
def zip_path():
    try:
        return build_addon.build()
    except build_addon.BuildError as e:
        pytest.skip(f"cannot build the add-on here: {e}")


def test_zip_contents(zip_path):
    with zipfile.ZipFile(zip_path) as z:
        names = set(z.namelist())
        sources = sorted((REPO / "backend" / "protocol").glob("*.py"))
        assert "__init__.py" in {source.name for source in sources}
        for source in sources:
            assert z.read(f"protocol/{source.name}") == source.read_bytes(), source.name
        assert sorted(n for n in names if n.startswith("protocol/")) == [f"protocol/{s.name}" for s in sources]
        manifest = z.read("blender_manifest.toml").decode()
    for module in ("__init__.py", "client.py", "scene.py", "jobs.py", "operators.py", "ui.py", "props.py"):
        assert module in names
    wheels = sorted(n for n in names if n.startswith("wheels/"))
    for tag in ("cp311-cp311-manylinux", "cp311-cp311-win_amd64", "cp311-cp311-macosx", "cp312-abi3-manylinux",
                "cp312-abi3-win_amd64", "cp312-abi3-macosx"):
        assert any(f"pyzmq-27.3.0-{tag}" in w for w in wheels), tag
    for tag in ("cp311-cp311-manylinux", "cp311-cp311-win_amd64", "cp311-cp311-macosx_11_0_arm64",
                "cp313-cp313-manylinux", "cp313-cp313-win_amd64", "cp313-cp313-macosx_11_0_arm64"):
        assert any(f"msgpack-1.2.4-{tag}" in w for w in wheels), tag
    for w in wheels:
        assert f'"./{w}"' in manifest
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


def test_rebuild_is_idempotent(zip_path):
    with zipfile.ZipFile(zip_path) as z:
        first = {i.filename: i.CRC for i in z.infolist()}
    again = build_addon.build()
    assert again == zip_path
    with zipfile.ZipFile(again) as z:
        assert {i.filename: i.CRC for i in z.infolist()} == first


def test_missing_wheel_is_a_clear_error(tmp_path):
    platform = build_addon.PLATFORMS[0]
    with pytest.raises(build_addon.BuildError, match=r"no wheel of msgpack==0\.0\.0 for linux-x64 / Python 3\.11"):
        build_addon.fetch_wheel("msgpack", "0.0.0", "3.11", platform, tmp_path)
