"""The real test photos in the checkout's sibling ``shared/images/`` (never read by the product)."""

from __future__ import annotations

from pathlib import Path

import pytest

IMAGES = Path(__file__).resolve().parents[2] / "shared" / "images"


def real_photo(name: str) -> Path:
    """The path of a real test photo; skips the test when the photo is missing."""
    path = IMAGES / name
    if not path.exists():
        pytest.skip(f"real test photo {path} is missing (the checkout's sibling shared/images/)")
    return path
