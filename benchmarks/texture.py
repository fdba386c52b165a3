"""Benchmark of the texture bake (``munet.texture.bake_texture``): medians after warm-up, total and per step.

    python -m benchmarks.texture [--photo tests/data/lunge.jpg] [--size 2048] [--runs 7] [--warmup 2]
                                 [--threads 2] [--json OUT.json]

The photo is reconstructed once (not timed) and the texture stage's inputs are kept; then the bake runs
``warmup + runs`` times (the texel maps are built or read from the cache in the first warm-up run). The
total includes the JPEG encoding; the steps (visibility, texel layers, region fills, full-size assembly,
JPEG) are timed in separate passes over the same inputs. Reports the median and spread of wall-clock
milliseconds, the process CPU time and the machine's load average (other processes on a shared machine
slow every number).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import time

DEFAULT_PHOTO = pathlib.Path(__file__).resolve().parents[1] / "tests" / "data" / "lunge.jpg"


def _capture_inputs(photo: pathlib.Path) -> dict:
    """Reconstruct the photo and return the arguments the pipeline's texture stage baked with."""
    import munet.texture

    captured = {}
    original = munet.texture.bake_texture

    def spy(*args, **kwargs):
        captured["args"], captured["kwargs"] = args, kwargs
        return original(*args, **kwargs)

    munet.texture.bake_texture = spy
    try:
        from munet.pipeline import default_pipeline

        default_pipeline().reconstruct(photo.read_bytes())
    finally:
        munet.texture.bake_texture = original
    if "args" not in captured:
        raise SystemExit("the pipeline baked no texture (a body model without UVs?)")
    return captured


def _time(fn, runs: int, warmup: int) -> dict:
    walls, cpus = [], []
    for index in range(warmup + runs):
        cpu0, wall0 = time.process_time(), time.perf_counter()
        fn()
        if index >= warmup:
            walls.append(1000 * (time.perf_counter() - wall0))
            cpus.append(1000 * (time.process_time() - cpu0))
    return {"median_ms": round(statistics.median(walls), 1), "min_ms": round(min(walls), 1),
            "max_ms": round(max(walls), 1), "cpu_ms": round(statistics.median(cpus), 1)}


def _steps(args: tuple, size: int, runs: int, warmup: int) -> dict:
    """Each step of the bake timed on its own (the private steps of ``munet.texture.bake``)."""
    import cv2
    import numpy as np

    from munet.texture import bake
    from munet.texture.atlas import texel_map

    photo_rgb, atlas, posed, camera, mask = args[:5]
    texels = texel_map(atlas, max(bake.LOW_RESOLUTION, size // 4))
    posed = np.asarray(posed, np.float64)
    views = bake.vertex_views(posed, atlas.faces, camera)
    photo = bake._photo_with_mask(photo_rgb, mask, views)
    layers = bake._texel_layers(texels, views, photo)
    hair = lambda: bake._hair_colour(photo, views, atlas)  # noqa: E731 (as the bake passes it)
    fill = bake._region_fills(texels, layers, hair)
    rgb = np.ascontiguousarray(photo[..., :3])
    image = bake._assemble(rgb, texels, layers, fill, size)
    steps = {
        "visibility (z-buffer, normals)": lambda: bake.vertex_views(posed, atlas.faces, camera),
        "eroded mask": lambda: bake._photo_with_mask(photo_rgb, mask, views),
        "texel layers (seen, mirror)": lambda: bake._texel_layers(texels, views, photo),
        "region fills (+ hair)": lambda: bake._region_fills(texels, layers, hair),
        "assembly at full size": lambda: bake._assemble(rgb, texels, layers, fill, size),
        "JPEG": lambda: cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                                     [cv2.IMWRITE_JPEG_QUALITY, bake.JPEG_QUALITY]),
    }
    return {name: _time(fn, runs, warmup) for name, fn in steps.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photo", default=str(DEFAULT_PHOTO),
                        help="photo to reconstruct (default: tests/data/lunge.jpg)")
    parser.add_argument("--size", type=int, default=2048, help="atlas side in pixels (1024-4096)")
    parser.add_argument("--runs", type=int, default=7, help="timed runs (the median is reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first")
    parser.add_argument("--threads", type=int, default=2, help="torch and OpenCV threads (CPU cores used)")
    parser.add_argument("--json", metavar="OUT.json", help="also write the results as JSON")
    args = parser.parse_args(argv)

    import cv2
    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    from munet.texture import bake_texture

    captured = _capture_inputs(pathlib.Path(args.photo))
    bake_args = captured["args"][:5]
    total = _time(lambda: bake_texture(*bake_args, size=args.size), args.runs, args.warmup)
    result = {"photo": args.photo, "size": args.size, "threads": args.threads, "runs": args.runs,
              "load_average": [round(x, 2) for x in os.getloadavg()], "bake": total,
              "steps": _steps(bake_args, args.size, args.runs, args.warmup)}
    print(f"texture bake {args.size}x{args.size}, {args.threads} threads, load average {result['load_average']}")
    print(f"  total: median {total['median_ms']} ms (min {total['min_ms']}, max {total['max_ms']}; "
          f"CPU {total['cpu_ms']} ms)")
    for name, step in result["steps"].items():
        print(f"  {name:32s} {step['median_ms']:7.1f} ms (CPU {step['cpu_ms']:.1f})")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
