"""Shared fixtures. Heavy objects (the Anny body model) are built once per test session."""

from __future__ import annotations

import os
import pathlib
import tempfile

import pytest
import torch
from photos import IMAGES as SHARED_IMAGES

# Blender (bpy) reads its user folder once, at first import: point it at a throwaway folder before any
# test module imports bpy, so installing the add-on never touches the real user's Blender.
os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="munet-blender-user-"))


torch.set_num_threads(2)


@pytest.fixture(scope="session")
def shared_images() -> pathlib.Path:
    if not SHARED_IMAGES.is_dir():
        pytest.skip(f"real test photos not found at {SHARED_IMAGES}")
    return SHARED_IMAGES


@pytest.fixture(scope="session")
def anny_body():
    from munet.body import load_body_model

    return load_body_model("anny", skeleton="smpl24")
