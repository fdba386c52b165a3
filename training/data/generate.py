"""Generate a synthetic dataset into shards, or just a contact sheet.

    python -m training.data.generate --out data/train --count 100000 --seed 1 --workers 2
    python -m training.data.generate --out data/testset --config training/configs/testset.yaml
    python -m training.data.generate --preview sheet.png --count 24 --seed 7        # no shards
    python -m training.data.generate --out data/testset --config training/configs/testset.yaml --verify

Samples are a pure function of (config, seed, index): every batch of ``batch_size`` indices is
computed by one single-threaded worker process, so any number of workers writes the same bytes, and
``--verify`` regenerates a dataset and compares every shard's sha256 with its manifest.
A config file may fix ``seed``, ``count`` and ``start`` itself (the held-out test set does); command
line values override them.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import pathlib
import platform
import subprocess
import sys
import time

import numpy as np

from training import seeds
from training.data import shards
from training.data.config import DataConfig, data_config_from_dict
from training.data.progress import Progress

log = logging.getLogger("training.data.generate")

_WORKER = {}


def _init_worker(config_dict: dict) -> None:
    import torch

    torch.set_num_threads(1)
    from training.data.engine import SampleGenerator

    _WORKER["generator"] = SampleGenerator(data_config_from_dict(config_dict))


def _run_batch(task: tuple[int, int, int]) -> tuple[int, dict]:
    seed, first, size = task
    generator = _WORKER["generator"]
    return first, generator.generate(seed, np.arange(first, first + size))


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=pathlib.Path(__file__).resolve().parents[2])  # fmt: skip
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def iterate_batches(config: DataConfig, seed: int, start: int, count: int, workers: int):
    """Yield (first index, stacked batch) in index order, computed by ``workers`` processes (0: here)."""
    size = config.batch_size
    tasks = [(seed, first, min(size, start + count - first)) for first in range(start, start + count, size)]
    if workers <= 0:
        _init_worker(config.to_dict())
        for task in tasks:
            yield _run_batch(task)
        return
    context = multiprocessing.get_context("spawn")  # no fork of torch/OpenMP state
    with context.Pool(workers, initializer=_init_worker, initargs=(config.to_dict(),)) as pool:
        yield from pool.imap(_run_batch, tasks)


def generate_dataset(out: pathlib.Path, config: DataConfig, seed: int, count: int, start: int = 0, workers: int = 2,
                     preview: pathlib.Path | None = None, preview_count: int = 24) -> dict:
    """Write ``count`` samples (indices ``start``..) under ``seed`` to ``out``; returns the manifest."""
    if start % config.batch_size:
        raise ValueError(f"--start must be a multiple of batch_size ({config.batch_size})")
    out.mkdir(parents=True, exist_ok=True)
    if (out / shards.MANIFEST).exists():
        raise FileExistsError(f"{out} already holds a dataset: choose another --out or delete it")
    progress = Progress(count, f"generating {out.name}")
    pending: dict[str, list] = {}
    pending_count = 0
    shard_list = []
    first_batch = None
    started = time.perf_counter()

    def flush(final: bool = False) -> None:
        nonlocal pending, pending_count
        if pending_count == 0:
            return
        stacked = {k: np.concatenate(v) for k, v in pending.items()}
        k = len(shard_list)
        name = shards.shard_name(k)
        digest = shards.write_shard(out / name, stacked, config.vertex_dtype)
        offset = sum(s["count"] for s in shard_list)
        shard_list.append({"file": name, "offset": offset, "first_index": int(stacked["index"][0]), "count": pending_count, "sha256": digest})
        pending, pending_count = {}, 0

    for _, batch in iterate_batches(config, seed, start, count, workers):
        if first_batch is None:
            first_batch = batch
        for key, value in batch.items():
            pending.setdefault(key, []).append(value)
        pending_count += len(batch["index"])
        progress.update(len(batch["index"]))
        if pending_count >= config.shard_size:
            flush()
    flush()
    elapsed = time.perf_counter() - started
    manifest = {
        "format": shards.FORMAT,
        "seed": seed,
        "start": start,
        "count": count,
        "config": config.to_dict(),
        "config_fingerprint": config.fingerprint(),
        "shards": shard_list,
        "provenance": {"git_commit": _git_commit(), "python": platform.python_version(), "torch": _torch_version(),
                       "numpy": np.__version__, "anny": _anny_version()},  # fmt: skip
    }
    shards.write_manifest(out, manifest)
    log.info("wrote %d samples in %d shards to %s in %.1f s (%.1f samples/s)", count, len(shard_list), out, elapsed, count / elapsed)
    if preview is not None and first_batch is not None:
        _save_preview(preview, first_batch, preview_count)
    return manifest


def verify_dataset(root: pathlib.Path, workers: int = 2) -> list[str]:
    """Check the shards on disk against the manifest's hashes, then regenerate the dataset from its
    manifest and compare; returns the names of shards that differ either way."""
    manifest = shards.read_manifest(root)
    damaged = [s["file"] for s in manifest["shards"]
               if not (root / s["file"]).is_file() or shards.file_sha256(root / s["file"]) != s["sha256"]]  # fmt: skip
    if damaged:
        return damaged
    config = data_config_from_dict(manifest["config"])
    tmp = root.parent / (root.name + f".verify-{os.getpid()}")
    try:
        regenerated = generate_dataset(tmp, config, manifest["seed"], manifest["count"], manifest["start"], workers)
        expected = {s["file"]: s["sha256"] for s in manifest["shards"]}
        actual = {s["file"]: s["sha256"] for s in regenerated["shards"]}
        return sorted(name for name in expected.keys() | actual.keys() if expected.get(name) != actual.get(name))
    finally:
        for path in tmp.glob("*"):
            path.unlink()
        if tmp.exists():
            tmp.rmdir()


def _save_preview(path: pathlib.Path, batch: dict, count: int) -> None:
    from munet.body.anny_model import AnnyBody
    from training.data.preview import save_contact_sheet

    save_contact_sheet(str(path), batch, AnnyBody().faces, count)
    log.info("contact sheet: %s", path)


def _torch_version() -> str:
    import torch

    return torch.__version__


def _anny_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("anny")
    except Exception:  # noqa: BLE001 - provenance only
        return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.data.generate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--out", type=pathlib.Path, help="dataset directory to create (shards + manifest.json)")
    parser.add_argument("--count", type=int, help="number of samples (default: the config's, else 1000)")
    parser.add_argument("--seed", type=int, help="dataset seed (default: the config's, else 0)")
    parser.add_argument("--start", type=int, help="first sample index, a multiple of batch_size (default 0)")
    parser.add_argument("--config", type=pathlib.Path, help="data config YAML (default: built-in defaults)")
    parser.add_argument("--workers", type=int, default=max(1, min(os.cpu_count() or 1, 16)),
                        help="worker processes (0: generate in this process); default: one per CPU")
    parser.add_argument("--preview", type=pathlib.Path, help="also write a contact sheet PNG of the first samples")
    parser.add_argument("--preview-count", type=int, default=24, help="samples on the contact sheet (default 24)")
    parser.add_argument("--verify", action="store_true", help="regenerate the dataset in --out and compare shard hashes")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    raw = {}
    if args.config is not None:
        import yaml

        if not args.config.is_file():
            print(f"error: config {args.config} not found", file=sys.stderr)
            return 2
        raw = yaml.safe_load(args.config.read_text()) or {}
    run = {k: raw.pop(k) for k in ("seed", "count", "start") if k in raw}
    config = data_config_from_dict(raw, str(args.config or "defaults"))
    seed = args.seed if args.seed is not None else int(run.get("seed", 0))
    count = args.count if args.count is not None else int(run.get("count", 1000))
    start = args.start if args.start is not None else int(run.get("start", 0))
    if args.verify:
        if args.out is None:
            print("error: --verify needs --out (the dataset to check)", file=sys.stderr)
            return 2
        bad = verify_dataset(args.out, args.workers)
        if bad:
            print(f"MISMATCH: {len(bad)} shard(s) differ: {', '.join(bad)}", file=sys.stderr)
            return 1
        print(f"OK: {args.out} regenerates bit-identically")
        return 0
    if args.out is None:
        if args.preview is None:
            print("error: give --out (a dataset directory) and/or --preview (a PNG)", file=sys.stderr)
            return 2
        batch = None
        n = min(count, args.preview_count)
        parts = [b for _, b in iterate_batches(config, seed, start, n, workers=0)]
        batch = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        _save_preview(args.preview, batch, n)
        return 0
    try:
        seeds.check_generation_seed(seed, run.get("seed"), str(args.config or "the default config"))
        manifest = generate_dataset(args.out, config, seed, count, start, args.workers, args.preview, args.preview_count)
    except (FileExistsError, ValueError) as e:  # ValueError includes seeds.SeedRangeError
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"out": str(args.out), "count": manifest["count"], "shards": len(manifest["shards"])}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
