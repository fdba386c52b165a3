"""`munet setup`: build every cache a default command needs, with progress, and check the install.

After it, `munet reconstruct` and `munet serve` with default options build nothing: they only load. What it
builds (all under ``munet.paths.cache_dir()``, each file named by a hash of what derived it):

* Anny's compact model data (~60 s the first time);
* the keypoint regressor's arrays;
* the shipped network checkpoint, loaded once (which builds its graph hierarchy from Anny's decimated
  topologies: the ~10 s a first reconstruction otherwise spent in ``initialise``);
* the texture atlas's texel map at the default texture size;
* the body regions the clothing fit reads;
* MediaPipe Pose, created once (unless ``--skip-detector``).
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Callable

HELP = "build the one-time caches (Anny body model, network hierarchy, texture atlas; ~60 s the first time) and check the install"

log = logging.getLogger("munet.setup")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--skip-detector", action="store_true", help="do not check that MediaPipe loads")


def _anny() -> str:
    from munet.body.anny_model import load_anny_raw, model_data_path

    if not model_data_path().exists():
        print("munet setup: building the Anny body model (first run only, ~60 s, ~1.7 GB RAM)...", flush=True)
    load_anny_raw()
    return "Anny ready"


def _regressor() -> str:
    from munet.body.keypoints import mediapipe_regressor_arrays

    mediapipe_regressor_arrays()
    return "keypoint regressor ready"


def _network() -> str:
    from munet.fitting.network_init import NetworkInitialiser, default_checkpoint

    path = default_checkpoint()
    if path is None:
        return "no network checkpoint installed: `munet reconstruct` will use the fitting pipeline"
    NetworkInitialiser(path)  # loads the checkpoint and builds its graph hierarchy into the cache
    return f"network checkpoint {path.name} loads (graph hierarchy cached)"


def _body():
    """The body model the default pipeline fits (Anny, smpl24 skeleton), as ``munet.pipeline`` loads it."""
    from munet.body import load_body_model

    return load_body_model("anny", skeleton="smpl24")


def _texture() -> str:
    from munet.texture import DEFAULT_SIZE, uv_atlas
    from munet.texture.atlas import texel_map
    from munet.texture.bake import LOW_RESOLUTION

    atlas = uv_atlas(_body())
    if atlas is None:
        return "no UV atlas for Anny: skipped"
    texel_map(atlas, max(LOW_RESOLUTION, DEFAULT_SIZE // 4))  # what munet.texture.bake_texture reads
    return "texture atlas ready"


def _clothing() -> str:
    from munet.fitting.regions import body_regions

    body_regions(_body())
    return "clothing regions ready"


def _detector() -> str:
    from munet.detect import PoseDetector

    with PoseDetector():
        pass
    return "MediaPipe Pose loads"


def run(args: argparse.Namespace) -> int:
    from munet import paths

    paths.configure_third_party_caches()
    print(f"munet setup: cache directory {paths.cache_dir()} (override with MUNET_CACHE_DIR)", flush=True)
    start = time.perf_counter()
    steps: list[Callable[[], str]] = [_anny, _regressor, _network, _texture, _clothing]
    if not args.skip_detector:
        steps.append(_detector)
    for step in steps:
        began = time.perf_counter()
        said = step()
        print(f"munet setup: {said} ({time.perf_counter() - began:.1f} s)", flush=True)
    print(f"munet setup: done in {time.perf_counter() - start:.1f} s", flush=True)
    return 0
