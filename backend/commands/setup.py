"""`munet setup`: build the one-time caches (Anny model data, keypoint regressor) with progress."""

from __future__ import annotations

import argparse
import logging
import time

HELP = "build the one-time caches (Anny body model data, ~60 s the first time) and check the install"

log = logging.getLogger("munet.setup")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--skip-detector", action="store_true", help="do not check that MediaPipe loads")


def run(args: argparse.Namespace) -> int:
    from munet import paths

    paths.configure_third_party_caches()
    print(f"munet setup: cache directory {paths.cache_dir()} (override with MUNET_CACHE_DIR)", flush=True)
    start = time.perf_counter()
    from munet.body.anny_model import load_anny_raw, model_data_path

    if not model_data_path().exists():
        print("munet setup: building the Anny body model (first run only, ~60 s, ~1.7 GB RAM)...", flush=True)
    load_anny_raw()
    print(f"munet setup: Anny ready ({time.perf_counter() - start:.1f} s)", flush=True)
    from munet.body.keypoints import mediapipe_regressor_arrays

    mediapipe_regressor_arrays()
    if not args.skip_detector:
        from munet.detect import PoseDetector

        with PoseDetector():
            pass
        print("munet setup: MediaPipe Pose loads", flush=True)
    print(f"munet setup: done in {time.perf_counter() - start:.1f} s", flush=True)
    return 0
