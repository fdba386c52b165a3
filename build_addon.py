"""Build the installable Blender extension zip: ``python build_addon.py`` -> ``dist/munet_blender-<version>.zip``.

Steps (idempotent; every download is cached):

1. Fetch the pinned pyzmq and msgpack wheels for every platform and Python the add-on supports with
   ``pip download --only-binary=:all: --no-deps --platform ... --python-version ...`` into
   ``build/wheels/`` (git-ignored). A wheel that cannot be had is a clear error naming it.
2. Stage ``build/addon/munet_blender/``: the ``blender_addon/`` sources, a copy of the wire format
   package ``backend/protocol/`` as the sub-package ``protocol/`` (the one source of truth, its modules
   copied byte for byte, never forked), the wheels, and the manifest with its ``wheels`` list filled in.
3. Validate and build with Blender's own extension tool (``bl_pkg/cli/blender_ext.py`` from the
   ``bpy`` package, run under plain Python) into ``dist/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import pathlib
import re
import shutil
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent
SOURCE = REPO / "blender_addon"
PROTOCOL = REPO / "backend" / "protocol"
WHEEL_CACHE = REPO / "build" / "wheels"
STAGE = REPO / "build" / "addon"
DIST = REPO / "dist"

#: The exact wheels the add-on bundles (the versions the backend and tests use).
PINNED = {"pyzmq": "27.3.0", "msgpack": "1.2.4"}

#: Python versions embedded by the Blender releases the add-on supports: 4.2-5.0 -> 3.11, 5.1+ -> 3.13.
PYTHONS = ("3.11", "3.13")


@dataclasses.dataclass(frozen=True)
class Platform:
    """A Blender platform name and the pip platform tags that serve it (most specific first)."""

    blender: str
    pip_tags: tuple[str, ...]


PLATFORMS = (
    Platform("linux-x64", ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")),
    Platform("windows-x64", ("win_amd64",)),
    Platform("macos-arm64", ("macosx_11_0_arm64",)),
    Platform("macos-x64", ("macosx_10_15_x86_64",)),
)


class BuildError(RuntimeError):
    """The add-on cannot be built; the message names what is missing and the fix."""


def blender_ext_tool() -> pathlib.Path:
    """Blender's extension command line tool, shipped inside the ``bpy`` wheel."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise BuildError("the `bpy` package is not installed in this Python: `pip install bpy==5.0.1` "
                         "(its extension tool validates and builds the zip)")
    root = pathlib.Path(list(spec.submodule_search_locations)[0])
    tools = sorted(root.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not tools:
        raise BuildError(f"Blender's extension tool (bl_pkg/cli/blender_ext.py) was not found under {root}")
    return tools[-1]


def fetch_wheel(package: str, version: str, python: str, platform: Platform, cache: pathlib.Path) -> pathlib.Path:
    """The cached wheel of ``package==version`` for ``platform`` and ``python``; downloads it when missing."""
    folder = cache / f"{platform.blender}-py{python}"
    folder.mkdir(parents=True, exist_ok=True)
    normal = package.replace("-", "_")
    found = sorted(folder.glob(f"{normal}-{version}-*.whl"))
    if found:
        return found[0]
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--quiet",
           "--only-binary=:all:", "--no-deps", "--implementation", "cp", "--python-version", python,
           *[arg for tag in platform.pip_tags for arg in ("--platform", tag)],
           "-d", str(folder), f"{package}=={version}"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(folder.glob(f"{normal}-{version}-*.whl"))
    if done.returncode != 0 or not found:
        detail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise BuildError(f"no wheel of {package}=={version} for {platform.blender} / Python {python} "
                         f"(pip platform tags {', '.join(platform.pip_tags)}): {detail[0]}. "
                         "Check the network or the pinned version in build_addon.py")
    return found[0]


def fetch_wheels(cache: pathlib.Path = WHEEL_CACHE) -> list[pathlib.Path]:
    """Every pinned wheel for every platform and Python (deduplicated: universal2 and abi3 wheels serve several)."""
    wheels: dict[str, pathlib.Path] = {}
    for platform in PLATFORMS:
        for python in PYTHONS:
            for package, version in PINNED.items():
                wheel = fetch_wheel(package, version, python, platform, cache)
                wheels.setdefault(wheel.name, wheel)
    return [wheels[name] for name in sorted(wheels)]


def manifest_version(manifest: str) -> str:
    match = re.search(r'^version\s*=\s*"([^"]+)"', manifest, re.M)
    if not match:
        raise BuildError("blender_addon/blender_manifest.toml has no `version = \"...\"` line")
    return match.group(1)


def stage(wheels: list[pathlib.Path], stage_root: pathlib.Path = STAGE) -> pathlib.Path:
    """Write the package tree to build: sources, protocol/, wheels/, the manifest with its wheels list."""
    if not (PROTOCOL / "__init__.py").is_file():
        raise BuildError(f"{PROTOCOL}/__init__.py is missing: the add-on ships a copy of the wire format")
    package = stage_root / "munet_blender"
    if package.exists():
        shutil.rmtree(package)
    compiled = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(SOURCE, package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "protocol", "protocol.py"))
    shutil.copytree(PROTOCOL, package / "protocol", ignore=compiled)
    (package / "wheels").mkdir()
    for wheel in wheels:
        shutil.copy2(wheel, package / "wheels" / wheel.name)
    manifest = (SOURCE / "blender_manifest.toml").read_text()
    if re.search(r"^wheels\s*=", manifest, re.M):
        raise BuildError("blender_addon/blender_manifest.toml must not list wheels: build_addon.py writes them")
    listing = ",\n".join(f'  "./wheels/{w.name}"' for w in wheels)
    manifest = manifest.replace("\n[permissions]", f"\nwheels = [\n{listing},\n]\n\n[permissions]", 1)
    (package / "blender_manifest.toml").write_text(manifest)
    return package


def run_tool(tool: pathlib.Path, *args: str) -> str:
    done = subprocess.run([sys.executable, str(tool), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise BuildError(f"Blender's extension tool failed ({' '.join(args[:1])}):\n{done.stdout}{done.stderr}")
    return done.stdout


def build(dist: pathlib.Path = DIST) -> pathlib.Path:
    """Fetch, stage, validate and build; returns the zip's path."""
    tool = blender_ext_tool()
    wheels = fetch_wheels()
    package = stage(wheels)
    run_tool(tool, "validate", str(package))
    dist.mkdir(parents=True, exist_ok=True)
    version = manifest_version((SOURCE / "blender_manifest.toml").read_text())
    out = dist / f"munet_blender-{version}.zip"
    out.unlink(missing_ok=True)
    run_tool(tool, "build", "--source-dir", str(package), "--output-filepath", str(out))
    run_tool(tool, "validate", str(out))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    start = time.monotonic()
    try:
        out = build()
    except BuildError as e:
        print(f"build_addon: error: {e}", file=sys.stderr)
        return 1
    print(f"build_addon: wrote {out.relative_to(REPO)} ({out.stat().st_size / 1e6:.1f} MB) "
          f"in {time.monotonic() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
