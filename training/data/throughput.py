"""Measure the generator's throughput: samples per second with N single-threaded worker processes
(the on-the-fly mode's cost; writing shards adds ~1 %).

    python -m training.data.throughput --workers 2 --batches 40

Each worker generates whole batches; after a warm-up (the first two batches of each worker, which
include building Anny and the pose library), throughput is measured over consecutive windows of
``--window`` completed batches, and the median window is reported, with per-stage milliseconds per
sample, as one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time

import numpy as np

from training.data.config import DataConfig, load_data_config

_STATE = {}


def _init(config_dict: dict) -> None:
    import torch

    torch.set_num_threads(1)
    from training.data.config import data_config_from_dict
    from training.data.engine import SampleGenerator

    _STATE["generator"] = SampleGenerator(data_config_from_dict(config_dict))


def _task(args: tuple[int, int]) -> tuple[float, int, dict, float]:
    seed, first = args
    generator = _STATE["generator"]
    size = generator.config.batch_size
    before = dict(generator.times.seconds)
    started = time.perf_counter()
    cpu = time.process_time()
    generator.generate(seed, np.arange(first, first + size))
    stages = {k: v - before.get(k, 0.0) for k, v in generator.times.seconds.items()}
    return time.perf_counter(), size, stages, time.process_time() - cpu


def measure(config: DataConfig, workers: int, batches: int, window: int, seed: int = 12345) -> dict:
    context = multiprocessing.get_context("spawn")
    size = config.batch_size
    tasks = [(seed, k * size) for k in range(batches + 2 * workers)]
    with context.Pool(workers, initializer=_init, initargs=(config.to_dict(),)) as pool:
        results = list(pool.imap_unordered(_task, tasks))
    results.sort(key=lambda r: r[0])
    done = results[2 * workers :]  # warm-up: each worker's first two batches
    stamps = np.array([r[0] for r in done])
    rates = []
    for k in range(window, len(stamps), window):
        rates.append(window * size / (stamps[k] - stamps[k - window]))
    stage_ms = {}
    for _, count, stages, _ in done:
        for name, seconds in stages.items():
            stage_ms[name] = stage_ms.get(name, 0.0) + 1000.0 * seconds / count
    stage_ms = {k: round(v / len(done), 2) for k, v in stage_ms.items()}
    cpu_ms = 1000.0 * float(np.median([r[3] / r[1] for r in done]))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "samples_per_s_median": round(float(np.median(rates)), 1) if rates else None,
        "samples_per_s_windows": [round(float(r), 1) for r in rates],
        "workers": workers,
        "batch_size": size,
        "resolution": config.resolution,
        "store_body_mask": config.store_body_mask,
        "cpu_ms_per_sample_median": round(cpu_ms, 2),
        "stage_ms_per_sample": stage_ms,
        "cpus": os.cpu_count(),
        "load_average_1min_after": load,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.data.throughput", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--config", help="data config YAML (default: built-in defaults)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=40, help="measured batches after warm-up")
    parser.add_argument("--window", type=int, default=4, help="batches per throughput window")
    args = parser.parse_args(argv)
    result = measure(load_data_config(args.config), args.workers, args.batches, args.window)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
