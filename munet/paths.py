"""Where derived data is cached: one overridable directory for everything we build once.

``MUNET_CACHE_DIR`` (default ``~/.cache/munet``) holds the compact Anny model data, Anny's own build
cache (``anny/``, via ``ANNY_CACHE_DIR`` unless the user set it) and warp's kernel cache (``warp/``).
Files derived from inputs are named after a hash of what derived them, so a change of inputs never
reads a stale file.
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
