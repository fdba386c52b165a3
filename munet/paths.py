"""Where derived data is cached: one overridable directory for everything we build once.

``MUNET_CACHE_DIR`` (default ``~/.cache/munet``) holds the compact Anny model data, Anny's own build
cache (``anny/``, via ``ANNY_CACHE_DIR`` unless the user set it) and warp's kernel cache (``warp/``).
Files derived from inputs are named after a hash of what derived them, so a change of inputs never
reads a stale file.

The shipped network checkpoint is found without the source tree: an installed ``munet`` carries it as
package data (``munet/checkpoints/``, mapped from the repository's ``checkpoints/`` by setup.py); a source
checkout has it in ``checkpoints/`` beside ``munet/``.
"""

from __future__ import annotations

import hashlib
import os
import pathlib


def cache_dir() -> pathlib.Path:
    """The cache root, created on first use."""
    root = pathlib.Path(os.environ.get("MUNET_CACHE_DIR", "~/.cache/munet")).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


CHECKPOINT_NAME = "munet.safetensors"
INSTALL_HINT = ("install the backend with `scripts/install_backend.sh VENV_DIR` from the MuNet repository "
                "(README: Run the backend on a server)")
"""The one install command, named by every message about a broken install."""
MISSING_CHECKPOINT_HINT = (f"the shipped network checkpoint ({CHECKPOINT_NAME} + munet.json) is not installed: "
                           f"{INSTALL_HINT}, or set MUNET_CHECKPOINT to a checkpoint's path")


def checkpoint_locations() -> list[pathlib.Path]:
    """Where the shipped checkpoint may lie, in the order they are tried: the installed package's data,
    then the source tree's ``checkpoints/`` (a checkout, or an editable install)."""
    package = pathlib.Path(__file__).resolve().parent
    locations = [package / "checkpoints" / CHECKPOINT_NAME]
    if (package.parent / "pyproject.toml").is_file():  # a source tree, not site-packages
        locations.append(package.parent / "checkpoints" / CHECKPOINT_NAME)
    return locations


def shipped_checkpoint() -> pathlib.Path | None:
    """The network checkpoint to use by default (``$MUNET_CHECKPOINT`` overrides), or None when absent."""
    override = os.environ.get("MUNET_CHECKPOINT")
    if override:
        path = pathlib.Path(override).expanduser()
        return path if path.exists() else None
    return next((path for path in checkpoint_locations() if path.exists()), None)


def configure_third_party_caches() -> None:
    """Point Anny's and warp's caches inside ours unless the user chose their own.

    Must run before ``anny`` (which imports warp) is first imported.
    """
    root = cache_dir()
    os.environ.setdefault("ANNY_CACHE_DIR", str(root / "anny"))
    os.environ.setdefault("WARP_CACHE_PATH", str(root / "warp"))
    try:
        import warp

        warp.config.log_level = warp.LOG_WARNING  # warp announces itself on stdout: keep CLI output clean
    except ImportError:  # optional at run time: Anny falls back to torch skinning
        pass


def content_hash(*parts: bytes | str) -> str:
    """A short stable hash of the given parts (16 hex digits)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()[:16]
