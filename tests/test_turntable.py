"""munet.turntable: front, side, back and rest views of the textured character with the library's own
rasteriser, and ``munet reconstruct --turntable``. One real reconstruction (grace_hopper.jpg) for the module."""

from __future__ import annotations

import argparse
import dataclasses
import io

import numpy as np
import pytest

from munet.reconstruction import Reconstruction
from photos import real_photo

PANEL = 192


@pytest.fixture(scope="module")
def reconstruction() -> Reconstruction:
    from munet.pipeline import default_pipeline

    return default_pipeline().reconstruct(real_photo("grace_hopper.jpg"))


def _panels(image: np.ndarray) -> list[np.ndarray]:
    return [image[:, k * PANEL : (k + 1) * PANEL] for k in range(4)]


def _character(panel: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels that are not the plain background."""
    from munet.turntable import BACKGROUND

    return np.abs(panel.astype(np.int64) - np.array(BACKGROUND)).sum(-1) > 6


def test_turntable_shows_four_textured_views(reconstruction):
    from munet.turntable import render_turntable

    image = render_turntable(reconstruction, PANEL)
    assert image.shape == (PANEL, 4 * PANEL, 3) and image.dtype == np.uint8
    panels = _panels(image)
    for name, panel in zip(("front", "side", "back", "rest"), panels):
        body = _character(panel)
        assert 0.03 < body.mean() < 0.6, f"{name}: the character covers {body.mean():.0%} of its panel"
        luminance = panel[body] @ np.array([0.299, 0.587, 0.114])
        assert luminance.std() > 8, f"{name}: one flat colour"
    # the views differ: the side is narrower than the front, the back is not the front
    assert _character(panels[1]).sum() < 0.9 * _character(panels[0]).sum()
    assert np.abs(panels[0].astype(int) - panels[2].astype(int)).mean() > 2


def test_turntable_front_shows_the_photo_colours(reconstruction):
    """Grace Hopper's navy uniform: the front view's torso is dark blue-black, the face skin-coloured."""
    from munet.turntable import render_turntable

    front = _panels(render_turntable(reconstruction, PANEL))[0]
    rows = np.flatnonzero(_character(front).any(1))
    top, height = rows[0], rows[-1] - rows[0]
    chest = front[top + int(0.25 * height) : top + int(0.35 * height)]
    chest = chest[_character(chest)]
    head = front[top : top + int(0.1 * height)]
    head = head[_character(head)]
    assert chest.mean() < 90  # the dark uniform
    assert head[:, 0].mean() > chest[:, 0].mean() + 40  # a lighter face above it


def test_turntable_without_a_texture_is_plain_grey(reconstruction):
    from munet.turntable import render_turntable

    bare = dataclasses.replace(reconstruction, texture=None)
    panel = _panels(render_turntable(bare, PANEL))[0].astype(np.int64)
    body = panel[_character(panel)]
    assert len(body) > 100
    assert np.abs(body[:, 0] - body[:, 2]).max() <= 8  # grey, shaded


def test_reconstruct_cli_writes_a_turntable(tmp_path):
    from PIL import Image

    from backend.commands import reconstruct

    parser = argparse.ArgumentParser()
    reconstruct.add_arguments(parser)
    out = tmp_path / "grace.png"
    args = parser.parse_args([str(real_photo("grace_hopper.jpg")), "-o", str(tmp_path / "grace.glb"),
                              "--turntable", str(out), "--texture-size", "1024"])
    assert reconstruct.run(args) == 0
    image = Image.open(io.BytesIO(out.read_bytes()))
    panel = reconstruct.TURNTABLE_PANEL_PX
    assert image.size == (4 * panel, panel) and image.mode == "RGB"
    assert (tmp_path / "grace.glb").stat().st_size > 100_000
