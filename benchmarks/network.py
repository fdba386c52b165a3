"""Benchmark of MuNet: network forward time, and the photo pipeline with the network vs fitting only.

    python -m benchmarks.network [--checkpoint checkpoints/munet.safetensors] [--photo examples/lunge.jpg]
                                    [--runs 5] [--threads 2] [--json OUT.json]

Forward: batch 1, ``--threads`` torch threads, median of 50 runs after 10 warm-up runs. Pipeline: each
method reconstructs the photo ``--runs`` times after one warm-up (model loaded first); medians of the
total and per stage, the alignment (silhouette IoU, keypoint error) and the depth report of the last run.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def forward_ms(checkpoint: str, threads: int, runs: int = 50, warmup: int = 10) -> dict:
    import torch

    from munet.network.checkpoint import load_checkpoint
    from munet.network.model import parameter_count

    torch.set_num_threads(threads)
    model, _ = load_checkpoint(checkpoint)
    config = model.config
    image = torch.rand(1, config.in_channels, config.input_size, config.input_size)
    world = torch.randn(1, 33, 3) * 0.3 if config.world_keypoints else None
    times = []
    with torch.no_grad():
        for i in range(warmup + runs):
            started = time.perf_counter()
            model(image, world)
            if i >= warmup:
                times.append(1000 * (time.perf_counter() - started))
    return {"median_ms": round(statistics.median(times), 2), "min_ms": round(min(times), 2),
            "max_ms": round(max(times), 2), "threads": threads, "parameters": parameter_count(model)}


def pipeline_runs(photo: str, checkpoint: str, runs: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from munet.pipeline import Pipeline
    from munet.reconstruction import ReconstructOptions

    data = pathlib.Path(photo).read_bytes()
    pipeline = Pipeline()
    results = {}
    for method in ("network", "fitting"):
        options = ReconstructOptions(method=method, checkpoint=checkpoint if method == "network" else None, texture=False)
        pipeline.reconstruct(data, options)  # warm-up (loads the network)
        totals, last = [], None
        for _ in range(runs):
            started = time.perf_counter()
            last = pipeline.reconstruct(data, options)
            totals.append(1000 * (time.perf_counter() - started))
        report = last.report
        a = report.alignment
        alignment = {"body_iou": a.body_iou, "clothed_iou": a.clothed_iou, "keypoint_error_fraction": a.keypoint_error_fraction}
        results[method] = {"method_used": report.method, "total_ms_median": round(statistics.median(totals), 1),
                           "timings_ms_last": report.timings_ms.to_json(), "alignment": alignment,
                           "depth": report.depth.final.to_json(), "facing": report.facing, "notes": list(report.notes)}
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "munet.safetensors"))
    parser.add_argument("--photo", default=str(ROOT / "examples" / "lunge.jpg"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", metavar="OUT.json")
    args = parser.parse_args(argv)
    result = {"forward": forward_ms(args.checkpoint, args.threads),
              "pipeline": pipeline_runs(args.photo, args.checkpoint, args.runs, args.threads)}
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        pathlib.Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
