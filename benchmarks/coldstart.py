"""Cold start and big photos: what a user waits for before the first result.

    python -m benchmarks.coldstart [--runs 3] [--skip-big] [--json OUT.json]

Each number is the median of ``--runs`` fresh processes (after ``munet setup``, so the caches exist):

* ``help_s``: ``munet --help`` (the CLI must not import torch for it);
* ``import_s``: ``python -c "import munet.pipeline"`` (torch, the pipeline's modules);
* ``reconstruct_s``: ``munet reconstruct examples/lunge.jpg -o OUT.glb``, the whole command;
* ``serve_ready_s``: ``munet serve`` on a free loopback port until it prints ``ready`` (engine loaded,
  checkpoint included);
* big photos (unless ``--skip-big``): decode time and peak RSS increase of a 48 MP JPEG and a 6300x6300
  RGBA PNG (each in a fresh process), and the pipeline's time on a 24 MP photo vs a 1 MP one (one
  process, interleaved runs).

The machine's load average is printed with the numbers: on a shared machine the wall times grow with it.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from tests.doubles.processes import EXAMPLE_PHOTO, REPO, ServerProcess

_MUNET = [sys.executable, "-m", "backend.cli"]


def _wall(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONPATH": str(REPO)})
    return time.perf_counter() - started


def _serve_ready() -> float:
    started = time.perf_counter()
    server = ServerProcess(engine="real").start(ready_timeout_s=300)
    ready = time.perf_counter() - started
    server.cleanup()
    return ready


def cold_start(runs: int, out_dir: str) -> dict[str, float]:
    glb = os.path.join(out_dir, "lunge.glb")
    measures = {
        "help_s": lambda: _wall([*_MUNET, "--help"]),
        "import_s": lambda: _wall([sys.executable, "-c", "import munet.pipeline"]),
        "reconstruct_s": lambda: _wall([*_MUNET, "reconstruct", str(EXAMPLE_PHOTO), "-o", glb]),
        "serve_ready_s": _serve_ready,
    }
    return {name: round(statistics.median(measure() for _ in range(runs)), 2) for name, measure in measures.items()}


# VmHWM (this process image's peak RSS), not getrusage's ru_maxrss: that one survives exec, so a child of
# a big parent (a pytest run) would start with the parent's peak.
_DECODE_RSS_CHILD = """
import pathlib, sys, time
from munet.detect.image_io import load_image
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
data = pathlib.Path(sys.argv[1]).read_bytes()
before = status("VmRSS")
started = time.perf_counter()
image = load_image(data)
seconds = time.perf_counter() - started
print(status("VmHWM") - before, seconds, *image.size, *image.original_size)
"""


def decode_in_child(path) -> tuple[float, float, tuple[int, int], tuple[int, int]]:
    """Decode the photo at ``path`` with ``munet.detect.load_image`` in a fresh interpreter (Linux: reads
    /proc): (peak RSS increase in MiB, seconds, working size, original size)."""
    out = subprocess.run([sys.executable, "-c", _DECODE_RSS_CHILD, str(path)], cwd=REPO, capture_output=True,
                         text=True, timeout=120, check=True).stdout.split()
    return int(out[0]) / 2**20, float(out[1]), (int(out[2]), int(out[3])), (int(out[4]), int(out[5]))


def big_photos(out_dir: str, runs: int) -> dict[str, float]:
    from PIL import Image

    photo = Image.open(EXAMPLE_PHOTO).convert("RGB")
    files = {"48mp_jpeg": os.path.join(out_dir, "48mp.jpg"), "6300_rgba_png": os.path.join(out_dir, "6300.png")}
    photo.resize((6000, 8000), Image.Resampling.BILINEAR).save(files["48mp_jpeg"], quality=90)
    canvas = Image.new("RGBA", (6300, 6300), (30, 60, 90, 255))
    canvas.paste(photo.convert("RGBA").resize((2000, 3000)), (2000, 1500))
    canvas.save(files["6300_rgba_png"], compress_level=1)
    del canvas
    out: dict[str, float] = {}
    for name, path in files.items():
        peak, seconds, _, _ = decode_in_child(path)
        out[f"{name}_decode_s"], out[f"{name}_peak_rss_mib"] = round(seconds, 2), round(peak)
    out.update(_pipeline_ratio(photo, runs))
    return out


def _pipeline_ratio(photo, runs: int) -> dict[str, float]:
    from PIL import Image

    from munet.pipeline import default_pipeline

    encoded = {}
    for name, size in (("1mp", (816, 1224)), ("24mp", (4016, 6016))):
        buffer = io.BytesIO()
        photo.resize(size, Image.Resampling.BILINEAR).save(buffer, format="JPEG", quality=90)
        encoded[name] = buffer.getvalue()
    pipeline = default_pipeline()
    pipeline.reconstruct(encoded["1mp"])
    seconds: dict[str, list[float]] = {name: [] for name in encoded}
    for _ in range(runs):
        for name, data in encoded.items():
            started = time.perf_counter()
            pipeline.reconstruct(data)
            seconds[name].append(time.perf_counter() - started)
    one, big = statistics.median(seconds["1mp"]), statistics.median(seconds["24mp"])
    return {"pipeline_1mp_s": round(one, 2), "pipeline_24mp_s": round(big, 2), "pipeline_24mp_over_1mp": round(big / one, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.coldstart", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-big", action="store_true", help="only the cold-start numbers")
    parser.add_argument("--json", metavar="OUT.json", help="also write the numbers as JSON")
    args = parser.parse_args(argv)
    results: dict[str, float | str] = {"load_average_before": " ".join(f"{x:.2f}" for x in os.getloadavg())}
    with tempfile.TemporaryDirectory(prefix="munet-coldstart-") as out_dir:
        results.update(cold_start(args.runs, out_dir))
        if not args.skip_big:
            results.update(big_photos(out_dir, args.runs))
    results["load_average_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    for name, value in results.items():
        print(f"{name:32s} {value}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
