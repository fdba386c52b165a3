"""Training throughput: samples per second of the data (on-the-fly engine vs shards), of the model step
alone, and of training end to end (``training.train.train`` itself), for one training config.

    python -m benchmarks.train_throughput [--config training/configs/default.yaml] [--threads 2]
        [--workers 1] [--device auto] [--seconds 60] [--parts engine,shards,model,train,train_stream]
        [--nproc 2] [--code CHECKOUT] [--json OUT.json] [--set train.batch_size=32 ...]

Each part is measured over consecutive windows after a warm-up and reports the median window (and every
window), with the machine's load average: on a shared machine, compare numbers taken under similar load.

* engine: ``SyntheticStream`` through a DataLoader with ``--workers`` processes (the on-the-fly mode).
* shards: ``ShardDataset`` through a DataLoader with ``--workers`` processes, over 256 samples generated
  once into ``--cache`` (seed 1, the config's data).
* model: one optimizer step (inputs and targets, forward, losses, backward, update) on a fixed batch
  in this process with ``--threads`` torch threads, split into its phases (ms per step).
* train / train_stream: ``python -m training.train`` (``torchrun`` with ``--nproc`` > 1) for ``--seconds``
  on the cached shards / on the fly, samples/s from its own scalars (the first window is the warm-up),
  and samples per CPU-second of its process tree (the work per sample, whatever the machine's load).

Measured on the 2-core development machine (shared: 1-minute load 7-11), default config, shards, one
loader worker, 60-90 s runs (``--parts train --seconds 60``):

* before (a0f00c9), config threads 0 (torch: 2 threads): 1.24, 1.37 samples/s (3.1, 2.3 samples per CPU-s);
* before, OMP_NUM_THREADS=1 (the shipped run's command): 8.6-13.0 samples/s in 5 runs (16.1-17.6 per CPU-s);
* after, threads 1 (the configs' default now), targets made in the loader worker: 13.0, 13.1, 8.1 (17.2,
  17.8, 14.1 per CPU-s);
* after, ``--nproc 2`` (torchrun, 2 processes x 1 thread, same global batch): 14.0, 16.8, 19.9 (15.9,
  14.9, 17.2 per CPU-s).

Parts (same machine and load): the engine makes ~23 samples/s per worker (16 CPU-ms a sample at 256 px,
``python -m training.data.throughput``), shards read at ~300 samples/s, one model step of 16 samples
takes ~810 CPU-ms on one thread (inputs and targets 79, forward 262, losses 40, backward 406, update 8).
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

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARD_SAMPLES = 256


def _windows(stamps: list[float], sizes: list[int], per_window: int) -> list[float]:
    """samples/s over consecutive windows of ``per_window`` items, from the item completion times."""
    rates = []
    for k in range(per_window, len(stamps), per_window):
        rates.append(sum(sizes[k - per_window + 1 : k + 1]) / (stamps[k] - stamps[k - per_window]))
    return rates


def _summary(rates: list[float], **extra) -> dict:
    return {"samples_per_s_median": round(statistics.median(rates), 2) if rates else None,
            "samples_per_s_windows": [round(r, 2) for r in rates], **extra,
            "load_average_1min": round(os.getloadavg()[0], 2)}


def loader_rate(loader, batches: int, warmup: int, per_window: int) -> dict:
    stamps, sizes = [], []
    iterator = iter(loader)
    for _ in range(warmup):
        next(iterator)
    stamps.append(time.perf_counter())
    sizes.append(0)
    for _ in range(batches):
        batch = next(iterator)
        stamps.append(time.perf_counter())
        sizes.append(len(batch["mask"]))
    return _summary(_windows(stamps, sizes, per_window), batches=batches)


def shard_cache(config: dict, cache: pathlib.Path) -> pathlib.Path:
    """256 samples of the config's training data (seed 1), generated once."""
    from training.data.config import load_data_config
    from training.data.generate import generate_dataset

    data_config = load_data_config(config["data"].get("stream_config", "training/configs/data.yaml"))
    root = cache / f"shards-{data_config.fingerprint()}"
    if not (root / "manifest.json").exists():
        generate_dataset(root, data_config, seed=1, count=SHARD_SAMPLES, workers=2)
    return root


def _train_config(args, shards: pathlib.Path | None) -> dict:
    config = yaml.safe_load((ROOT / args.config).read_text())
    config["data"]["train"] = str(shards) if shards else str(pathlib.Path(tempfile.gettempdir()) / "no-shards-here")
    config["train"].update({k: v for k, v in (("workers", args.workers), ("threads", args.threads)) if v is not None})
    for item in args.set:
        key, value = item.split("=", 1)
        section, name = key.split(".", 1)
        config[section][name] = yaml.safe_load(value)
    return config


def data_parts(args, parts: list[str], shards: pathlib.Path | None) -> dict:
    import torch

    from training.train import make_loader, TrainConfig

    config = _train_config(args, shards)
    train_cfg = TrainConfig(**config["train"])
    results = {}
    for part in ("engine", "shards"):
        if part not in parts:
            continue
        data = dict(config["data"], train=config["data"]["train"] if part == "shards" else "/nonexistent")
        loader, source = make_loader(data, train_cfg, 0, 1, 0)
        batches = max(4, int(args.data_samples // train_cfg.batch_size))
        results[part] = {"source": source, "workers": train_cfg.workers,
                         **loader_rate(loader, batches, warmup=2 * max(1, train_cfg.workers), per_window=max(2, batches // 6))}
        del loader
    return results


def model_part(args, shards: pathlib.Path) -> dict:
    """ms per optimizer step by phase, on one fixed batch (median of the windows)."""
    import torch

    from munet.body.keypoints import MediaPipeRegressor
    from munet.network.model import MuNet
    from training import train as T
    from training.data.dataset import ShardDataset
    from training.losses import Supervision, compute_losses

    cfg = T.load_config(str(ROOT / args.config))
    train_cfg = cfg["train"]
    if args.threads or train_cfg.threads:
        torch.set_num_threads(args.threads or train_cfg.threads)
    model = MuNet(cfg["model"], clothed=train_cfg.train_clothed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    supervision = Supervision(model, MediaPipeRegressor())
    dataset = ShardDataset(shards, fields=T.FIELDS)
    batch = torch.utils.data.default_collate([dataset[i] for i in range(train_cfg.batch_size)])
    generator = torch.Generator().manual_seed(0)
    names = ("inputs_targets", "forward", "losses", "backward", "update", "total")
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for step in range(args.model_steps + 3):
        stamps = [(time.perf_counter(), time.process_time())]
        image, world, targets = T.prepare_batch(batch, cfg["model"], supervision)
        stamps.append((time.perf_counter(), time.process_time()))
        out = model(image, world, detach_body=train_cfg.detach_body, full_resolution=False)
        stamps.append((time.perf_counter(), time.process_time()))
        loss, _ = compute_losses(out, targets, cfg["loss_weights"], supervision, train_cfg.chamfer_points, generator)
        stamps.append((time.perf_counter(), time.process_time()))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        stamps.append((time.perf_counter(), time.process_time()))
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        stamps.append((time.perf_counter(), time.process_time()))
        if step >= 3:  # warm-up
            for k, name in enumerate(names):
                a, b = (stamps[k], stamps[k + 1]) if name != "total" else (stamps[0], stamps[-1])
                wall[name].append(1000 * (b[0] - a[0]))
                cpu[name].append(1000 * (b[1] - a[1]))
    ms = {name: round(statistics.median(values), 1) for name, values in wall.items()}
    cpu_ms = {name: round(statistics.median(values), 1) for name, values in cpu.items()}
    return {"batch_size": train_cfg.batch_size, "threads": torch.get_num_threads(), "ms_per_step_median": ms,
            "cpu_ms_per_step_median": cpu_ms, "samples_per_s_median": round(1000 * train_cfg.batch_size / ms["total"], 2),
            "samples_per_cpu_s": round(1000 * train_cfg.batch_size / cpu_ms["total"], 2),
            "load_average_1min": round(os.getloadavg()[0], 2)}


def train_part(args, shards: pathlib.Path | None) -> dict:
    """Training for ``--seconds`` in a child process (``python -m training.train``, or ``torchrun`` with
    ``--nproc`` > 1) run from ``--code`` (a checkout: measure another commit the same way); samples/s of its
    logged windows after the first two (the first step, the warm-up), and samples per CPU-second of the
    whole process tree (a load-independent measure of the work per sample)."""
    import resource
    import subprocess

    config = _train_config(args, shards)
    with tempfile.TemporaryDirectory() as tmp:
        window = max(5.0, args.seconds / 8)
        config["train"].update({"out": tmp, "log_every_s": window, "save_every_s": 10**6, "max_minutes": args.seconds / 60})
        if args.device:
            config["train"]["device"] = args.device
        path = pathlib.Path(tmp) / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        launcher = ["-m", "training.train"] if args.nproc == 1 else \
            ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.nproc}", "-m", "training.train"]
        env = {**os.environ, "PYTHONPATH": str(args.code)}
        if config["train"].get("threads"):
            env["OMP_NUM_THREADS"] = str(config["train"]["threads"])
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        result = subprocess.run([sys.executable, *launcher, "--config", str(path)], cwd=args.code, env=env,
                                capture_output=True, text=True)  # fmt: skip
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if result.returncode:
            raise RuntimeError(f"training failed:\n{result.stderr[-3000:]}")
        records = [json.loads(line) for line in (pathlib.Path(tmp) / "scalars.jsonl").read_text().splitlines()]
        meta = json.loads((pathlib.Path(tmp) / "last.json").read_text())
    cpu_s = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    rates = [r["samples_per_s"] for r in records[2:]]
    return _summary(rates, samples_seen=meta["samples_seen"], data=meta["data"], wall_time_s=meta["wall_time_s"],
                    samples_per_cpu_s=round(meta["samples_seen"] / max(cpu_s, 1e-6), 2), nproc=args.nproc,
                    threads=config["train"]["threads"], workers=config["train"]["workers"], code=str(args.code))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.train_throughput", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="training/configs/default.yaml")
    parser.add_argument("--threads", type=int, help="torch threads per training process (default: the config's)")
    parser.add_argument("--workers", type=int, help="DataLoader worker processes (default: the config's)")
    parser.add_argument("--device", help="training device for the train parts (train.device; default: the config's)")
    parser.add_argument("--parts", default="engine,shards,model,train")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each train part")
    parser.add_argument("--data-samples", type=int, default=192, help="samples measured per data part")
    parser.add_argument("--model-steps", type=int, default=10)
    parser.add_argument("--cache", type=pathlib.Path, default=ROOT / "runs" / "bench_train")
    parser.add_argument("--nproc", type=int, default=1, help="train parts: DDP processes (torchrun) on this machine")
    parser.add_argument("--code", type=pathlib.Path, default=ROOT, help="train parts: the checkout that trains")
    parser.add_argument("--set", action="append", default=[], help="override a config value: section.key=YAML value")
    parser.add_argument("--json", type=pathlib.Path, help="also write the result here")
    args = parser.parse_args(argv)
    parts = args.parts.split(",")
    config = yaml.safe_load((ROOT / args.config).read_text())
    shards = shard_cache(config, args.cache) if {"shards", "model", "train"} & set(parts) else None
    result = {"config": args.config, "cpus": os.cpu_count(), "overrides": args.set, **data_parts(args, parts, shards)}
    if "model" in parts:
        result["model"] = model_part(args, shards)
    if "train" in parts:
        result["train_shards"] = train_part(args, shards)
    if "train_stream" in parts:
        result["train_stream"] = train_part(args, None)
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
