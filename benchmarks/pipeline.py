"""Benchmark of the reconstruction pipeline: end-to-end and per stage, medians after warm-up.

    python -m benchmarks.pipeline [--photo PATH] [--runs 5] [--warmup 1] [--threads 2] [--skeleton smpl24]
                                     [--method network|fitting]
                                     [--export] [--json OUT.json]

The model is loaded first (not timed in the per-run numbers; its load time is reported apart). Each run
reconstructs the photo from its bytes (decoding included). Reports, per stage and in total, the median
and the spread (min/max) of wall-clock milliseconds, the CPU time of the process, the machine's load
average (other processes on a shared machine slow every number), and the alignment and depth results of
the last run. ``--export`` also times writing the GLB (``munet.export``).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time

DEFAULT_PHOTO = pathlib.Path(__file__).resolve().parents[1] / "examples" / "lunge.jpg"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photo", default=str(DEFAULT_PHOTO), help="photo to reconstruct (default: examples/lunge.jpg)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs (the median is reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    parser.add_argument("--threads", type=int, default=2, help="torch threads outside the fit (CPU cores used)")
    parser.add_argument("--skeleton", choices=("smpl24", "full"), default="smpl24")
    parser.add_argument("--method", choices=("network", "fitting"), default="network",
                        help="network (the product's default: the shipped MuNet + refinement) or fitting")
    parser.add_argument("--export", action="store_true", help="also time writing the GLB")
    parser.add_argument("--json", metavar="OUT.json", help="also write the results as JSON")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from munet.pipeline import Pipeline
    from munet.reconstruction import ReconstructOptions

    photo = pathlib.Path(args.photo)
    data = photo.read_bytes()
    started = time.perf_counter()
    pipeline = Pipeline()
    options = ReconstructOptions(skeleton=args.skeleton, method=args.method)
    pipeline.prepare(options)  # the body model and, for "network", the checkpoint
    load_s = time.perf_counter() - started

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(args.warmup + args.runs):
            cpu0, wall0 = time.process_time(), time.perf_counter()
            reconstruction = pipeline.reconstruct(data, options)
            timings = reconstruction.report.timings_ms.to_json()
            if args.export:
                from munet.export import write_glb

                t0 = time.perf_counter()
                write_glb(reconstruction, os.path.join(tmp, "bench.glb"))
                timings["export"] = 1000.0 * (time.perf_counter() - t0)
                timings["total"] += timings["export"]
            timings["cpu_total"] = 1000.0 * (time.process_time() - cpu0)
            timings["wall_total_measured"] = 1000.0 * (time.perf_counter() - wall0)
            if index >= args.warmup:
                runs.append(timings)
            print(f"run {index + 1}/{args.warmup + args.runs}{' (warm-up)' if index < args.warmup else ''}: "
                  f"{timings['total']:.0f} ms", file=sys.stderr)

    stages = [k for k in runs[0]]
    summary = {
        stage: {
            "median_ms": round(statistics.median(r[stage] for r in runs), 1),
            "min_ms": round(min(r[stage] for r in runs), 1),
            "max_ms": round(max(r[stage] for r in runs), 1),
        }
        for stage in stages
    }
    report = reconstruction.report
    alignment = {k: v for k, v in report.alignment.to_json().items() if k != "model_keypoints_px"}
    final = report.depth.final
    result = {
        "photo": str(photo),
        "runs": args.runs,
        "torch_threads": args.threads,
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "pipeline_load_s": round(load_s, 2),
        "timings_ms": summary,
        "alignment": alignment,
        "depth": {"left_knee_minus_right_knee_m": final.left_knee_minus_right_knee_m,
                  "left_ankle_minus_right_ankle_m": final.left_ankle_minus_right_ankle_m, "torso_faces": final.torso_faces},
        "depth_summary": report.depth.summary,
    }
    width = max(len(s) for s in stages)
    print(f"pipeline on {photo.name}: {args.runs} runs after {args.warmup} warm-up, {args.threads} threads, "
          f"load average {result['load_average_1min']}, model load {load_s:.1f} s")
    for stage in stages:
        s = summary[stage]
        print(f"  {stage:<{width}}  median {s['median_ms']:8.1f} ms   (min {s['min_ms']:.1f}, max {s['max_ms']:.1f})")
    print("  alignment: " + ", ".join(f"{k} {v}" for k, v in alignment.items()))
    print("  depth: " + report.depth.summary)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
