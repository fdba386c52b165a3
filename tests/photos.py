"""The real test photos, committed in ``tests/data/`` (never read by the product)."""

from __future__ import annotations

from pathlib import Path

IMAGES = Path(__file__).resolve().parent / "data"
"""Folder of the real test photos (sources and licences in its README.md)."""


def real_photo(name: str) -> Path:
    """The path of a committed real test photo; a missing one is an error, never a skip."""
    path = IMAGES / name
    if not path.is_file():
        raise FileNotFoundError(f"test photo {path} is missing: it is committed in tests/data/ (see its README.md)")
    return path
