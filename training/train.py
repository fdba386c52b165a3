"""Train MuNet (mutualistic: the clothed loss reaches the body stage) on synthetic samples.

    python -m training.train --config training/configs/default.yaml
    torchrun --nproc_per_node=2 -m training.train --config training/configs/default.yaml   # DDP (gloo on CPU)

Data: pre-generated shards (``data.train``: a folder or a list of folders, from ``python -m training.data.generate``) or, when that
folder has no manifest, samples made on the fly from ``data.stream_config``. Writes into ``train.out``:
``last.safetensors`` + ``last.json`` (a loadable checkpoint: weights + config + samples seen),
``last.optim.safetensors`` (optimizer state, for resuming), ``scalars.jsonl`` (losses and samples/s; the
TensorBoard package is not installed here, so scalars go to JSON lines), and resumes from them when
present. Seeds are fixed (``train.seed``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import pathlib
import subprocess
import sys
import time

import numpy as np
import torch
import yaml
from torch.nn import functional as F

from munet.body.keypoints import MediaPipeRegressor
from munet.geometry.projection import project_pinhole
from munet.network.checkpoint import save_checkpoint
from munet.network.config import MuNetConfig
from munet.network.inputs import make_input, make_world_input
from munet.network.model import MuNet, parameter_count
from training.losses import Supervision, Targets, compute_losses, weak_perspective_fit

log = logging.getLogger("training.train")

FIELDS = ("mask", "keypoints_crop", "visibility", "seen", "world_keypoints_m", "K_crop", "R_world_to_cam", "t_world_to_cam_m", "body_vertices_m",
          "body_joints_m", "clothed_vertices_m", "gt_mask")  # fmt: skip


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    max_samples: int = 50_000
    max_minutes: float = 0.0  # 0: no time limit
    seed: int = 0
    out: str = "runs/munet"
    log_every_s: float = 30.0
    save_every_s: float = 120.0
    chamfer_points: int = 1024
    train_clothed: bool = True
    detach_body: bool = False
    workers: int = 1
    threads: int = 0  # torch threads per process (0: torch's default)


def load_config(path: str) -> dict:
    raw = yaml.safe_load(pathlib.Path(path).read_text())
    unknown = set(raw) - {"model", "data", "train", "loss_weights"}
    if unknown:
        raise ValueError(f"{path}: unknown sections {sorted(unknown)}")
    return {"model": MuNetConfig.from_dict(raw.get("model", {})), "data": raw.get("data", {}),
            "train": TrainConfig(**raw.get("train", {})), "loss_weights": dict(raw.get("loss_weights", {}))}


def prepare_batch(batch: dict, config: MuNetConfig, supervision: Supervision,
                  ) -> tuple[torch.Tensor, torch.Tensor, Targets]:
    """A collated batch of samples (``training/data/sample.py``) -> network inputs (image, world) and targets."""
    f = {k: torch.as_tensor(batch[k]) for k in FIELDS}
    mask = f["mask"].float()
    resolution = mask.shape[-1]
    image = make_input(mask, f["keypoints_crop"], f["visibility"], config.input_size, config.heatmap_sigma)
    world = make_world_input(f["world_keypoints_m"], f["seen"])
    R, t = f["R_world_to_cam"].float(), f["t_world_to_cam_m"].float()

    def to_cam(points):
        return torch.einsum("bij,bnj->bni", R, points.float()) + t[:, None]

    joints = to_cam(f["body_joints_m"])
    pelvis = joints[:, :1]
    body, clothed = to_cam(f["body_vertices_m"]), to_cam(f["clothed_vertices_m"])
    K = f["K_crop"].float()

    def to_norm(points_cam):  # perspective projection -> normalised crop coordinates in [-1, 1]
        return 2 * project_pinhole(points_cam, K, min_depth=1e-3) / resolution - 1

    with torch.no_grad():
        landmarks = supervision.regressor(body)
        landmarks_2d = to_norm(landmarks)
        camera = weak_perspective_fit((joints - pelvis).double(), to_norm(joints).double()).float()
        body_levels = supervision.levels(body - pelvis)
        clothed_finest = supervision.levels(clothed - pelvis)[-1]
    gt_mask = F.avg_pool2d(f["gt_mask"].float()[:, None], 5, 1, 2)
    return image, world, Targets(body_levels, clothed_finest, landmarks - pelvis, landmarks_2d, camera, gt_mask)


class EpochSampler(torch.utils.data.Sampler):
    """A fixed-seed permutation per epoch, split across DDP ranks, starting after ``skip`` indices."""

    def __init__(self, size: int, seed: int, rank: int, world: int, start_sample: int):
        self.size, self.seed, self.rank, self.world, self.start = size, seed, rank, world, start_sample

    def __iter__(self):
        done = self.start
        epoch, offset = divmod(done, self.size)
        while True:
            order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + epoch)).tolist()
            for i in range(offset + self.rank, self.size, self.world):
                yield order[i]
            epoch, offset = epoch + 1, 0


def make_loader(data: dict, train: TrainConfig, rank: int, world: int, start_sample: int):
    from training.data.dataset import ShardDataset, SyntheticStream

    roots = data.get("train", "data/train")
    roots = [pathlib.Path(r) for r in ([roots] if isinstance(roots, str) else roots)]
    per_rank = max(1, train.batch_size // world)
    present = [r for r in roots if (r / "manifest.json").exists()]
    if present:
        missing = sorted(set(roots) - set(present))
        if missing:
            raise FileNotFoundError(f"training shards missing in {', '.join(map(str, missing))}: generate them "
                                    "(training/data/README.md) or remove them from data.train")
        dataset = torch.utils.data.ConcatDataset([ShardDataset(r, fields=FIELDS) for r in roots])
        sampler = EpochSampler(len(dataset), train.seed, rank, world, start_sample)
        names = " + ".join(str(r) for r in roots)
        return torch.utils.data.DataLoader(dataset, batch_size=per_rank, sampler=sampler, num_workers=train.workers,
                                           persistent_workers=train.workers > 0, drop_last=True), f"shards {names} ({len(dataset)} samples)"
    from training.data.config import load_data_config

    stream_config = load_data_config(data.get("stream_config", "training/configs/data.yaml"))
    seed = int(data.get("stream_seed", 1)) + rank + 1000 * (start_sample // max(per_rank, 1))
    stream = SyntheticStream(stream_config, seed=seed, count=10**8, fields=FIELDS)
    return torch.utils.data.DataLoader(stream, batch_size=per_rank, num_workers=train.workers), f"on-the-fly stream (seed {seed})"


def lr_at(step: int, total_steps: int, train: TrainConfig, time_fraction: float = 0.0) -> float:
    """Linear warm-up, then cosine decay to 5 % over whichever budget (samples or minutes) runs out first."""
    if step < train.warmup_steps:
        return train.lr * (step + 1) / train.warmup_steps
    progress = min(1.0, max(time_fraction, (step - train.warmup_steps) / max(1, total_steps - train.warmup_steps)))
    return train.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def save_optimizer(optimizer: torch.optim.Optimizer, model: torch.nn.Module, path: pathlib.Path, samples: int, step: int):
    from safetensors.torch import save_file

    tensors = {"samples_seen": torch.tensor([samples]), "step": torch.tensor([step])}
    for name, p in model.named_parameters():
        for key, value in optimizer.state.get(p, {}).items():
            tensors[f"{name}/{key}"] = torch.as_tensor(value).detach().clone().reshape(value.shape if torch.is_tensor(value) else ())
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(path)


def load_optimizer(optimizer: torch.optim.Optimizer, model: torch.nn.Module, path: pathlib.Path) -> tuple[int, int]:
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    for name, p in model.named_parameters():
        state = {key.split("/")[-1]: v for key, v in tensors.items() if key.rsplit("/", 1)[0] == name}
        if state:
            optimizer.state[p] = state
    return int(tensors["samples_seen"][0]), int(tensors["step"][0])


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


@dataclasses.dataclass
class _Run:
    """A training run's counters (samples seen, optimizer steps) and what its checkpoint metadata records."""

    samples: int
    step: int
    command: str
    commit: str
    wall_before_s: float
    started: float
    source: str
    train_cfg: TrainConfig
    weights: dict
    world: int

    def metadata(self) -> dict:
        return {"training_command": self.command, "commit": self.commit, "samples_seen": self.samples, "steps": self.step,
                "wall_time_s": round(self.wall_before_s + time.perf_counter() - self.started, 1), "data": self.source,
                "train_config": dataclasses.asdict(self.train_cfg), "loss_weights": self.weights, "world_size": self.world}

    def time_fraction(self, now: float) -> float:
        """The share of the minutes budget spent (it counts this run only); 0 without one."""
        minutes = self.train_cfg.max_minutes
        return (now - self.started) / (60 * minutes) if minutes > 0 else 0.0


def train(config_path: str, out: str | None = None, max_samples: int | None = None, max_minutes: float | None = None) -> dict:
    """Run (or resume) training; returns a summary dict. DDP when WORLD_SIZE > 1 (gloo on CPU)."""
    cfg = load_config(config_path)
    model_cfg, weights = cfg["model"], cfg["loss_weights"]
    overrides = {k: v for k, v in {"out": out, "max_samples": max_samples, "max_minutes": max_minutes}.items() if v is not None}
    train_cfg = dataclasses.replace(cfg["train"], **overrides)
    world, rank = _start_process(train_cfg)
    out_dir = pathlib.Path(train_cfg.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    model = MuNet(model_cfg, clothed=train_cfg.train_clothed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    samples, step, meta_extra = _resume(model, optimizer, out_dir, rank)
    ddp = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    supervision = Supervision(model, MediaPipeRegressor())
    loader, source = make_loader(cfg["data"], train_cfg, rank, world, samples)
    generator = torch.Generator().manual_seed(train_cfg.seed + rank + step)
    launcher = ("torchrun --nproc_per_node=%d -m training.train" % world) if world > 1 else "python -m training.train"
    threads_env = [f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}"] if "OMP_NUM_THREADS" in os.environ else []
    run = _Run(
        samples, step, meta_extra.get("training_command") or " ".join(threads_env + [launcher] + sys.argv[1:]),
        meta_extra.get("commit") or git_commit(), float(meta_extra.get("wall_time_s", 0.0)), time.perf_counter(),
        source, train_cfg, weights, world,
    )  # fmt: skip
    if rank == 0:
        log.info("MuNet %d parameters; data: %s; world size %d", parameter_count(model), source, world)
    _loop(run, loader, model, ddp, optimizer, supervision, model_cfg, generator, rank, out_dir)
    if world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return run.metadata()


def _start_process(train_cfg: TrainConfig) -> tuple[int, int]:
    """(world size, rank) from torchrun's environment; joins the process group when distributed; threads
    and seeds."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        torch.distributed.init_process_group("gloo")
    if train_cfg.threads:
        torch.set_num_threads(train_cfg.threads)
    torch.manual_seed(train_cfg.seed)
    np.random.seed(train_cfg.seed)
    return world, rank


def _resume(model: torch.nn.Module, optimizer: torch.optim.Optimizer, out_dir: pathlib.Path, rank: int) -> tuple[int, int, dict]:
    """Load ``last.*`` from ``out_dir`` when present: (samples seen, step, the last metadata), else (0, 0, {})."""
    last = out_dir / "last.safetensors"
    if not (last.exists() and (out_dir / "last.optim.safetensors").exists()):
        return 0, 0, {}
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(last)), strict=True)
    samples, step = load_optimizer(optimizer, model, out_dir / "last.optim.safetensors")
    if rank == 0:
        log.info("resumed from %s at %d samples", last, samples)
    return samples, step, json.loads((out_dir / "last.json").read_text())


def _save(run: _Run, model: torch.nn.Module, optimizer: torch.optim.Optimizer, out_dir: pathlib.Path) -> None:
    save_checkpoint(model, out_dir / "last.safetensors", run.metadata())
    save_optimizer(optimizer, model, out_dir / "last.optim.safetensors", run.samples, run.step)


def _loop(run: _Run, loader, model: torch.nn.Module, ddp: torch.nn.Module, optimizer: torch.optim.Optimizer,
          supervision: Supervision, model_cfg: MuNetConfig, generator: torch.Generator, rank: int,
          out_dir: pathlib.Path) -> None:
    """Optimizer steps until the samples or minutes budget runs out; rank 0 logs scalars and saves
    ``last.*`` every ``save_every_s`` and at the end."""
    from training.data.progress import Progress

    train_cfg, world = run.train_cfg, run.world
    total_steps = max(1, train_cfg.max_samples // train_cfg.batch_size)
    progress = Progress(max(0, train_cfg.max_samples - run.samples), "training", log_every=train_cfg.log_every_s) if rank == 0 else None
    scalars = open(out_dir / "scalars.jsonl", "a") if rank == 0 else None
    last_save = last_log = time.perf_counter()
    window_start, window_samples = time.perf_counter(), 0
    deadline = run.started + 60 * train_cfg.max_minutes if train_cfg.max_minutes > 0 else float("inf")
    model.train()
    for batch in loader:
        if run.samples >= train_cfg.max_samples or time.perf_counter() > deadline:
            break
        image, world_input, targets = prepare_batch(batch, model_cfg, supervision)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(run.step, total_steps, train_cfg, run.time_fraction(time.perf_counter()))
        out = ddp(image, world_input, detach_body=train_cfg.detach_body, full_resolution=False)
        loss, terms = compute_losses(out, targets, run.weights, supervision, train_cfg.chamfer_points, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        run.step += 1
        run.samples += image.shape[0] * world
        window_samples += image.shape[0] * world
        if rank != 0:
            continue
        now = time.perf_counter()
        rate = window_samples / max(now - window_start, 1e-6)
        progress.update(image.shape[0] * world, f"loss {float(loss.detach()):.4f} pve {1000 * terms['pve_m']:.0f}mm")
        if now - last_log > train_cfg.log_every_s or run.step == 1:
            record = {"step": run.step, "samples": run.samples, "loss": float(loss.detach()),
                      "lr": optimizer.param_groups[0]["lr"], "samples_per_s": rate, **terms}
            scalars.write(json.dumps(record) + "\n")
            scalars.flush()
            last_log, window_start, window_samples = now, now, 0
        if now - last_save > train_cfg.save_every_s:
            _save(run, model, optimizer, out_dir)
            last_save = now
    if rank == 0:
        _save(run, model, optimizer, out_dir)
        scalars.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="training/configs/default.yaml")
    parser.add_argument("--out", help="output folder (overrides train.out)")
    parser.add_argument("--max-samples", type=int, help="stop after this many samples (overrides train.max_samples)")
    parser.add_argument("--max-minutes", type=float, help="stop after this many minutes (overrides train.max_minutes)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    summary = train(args.config, args.out, args.max_samples, args.max_minutes)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({k: summary[k] for k in ("samples_seen", "steps", "wall_time_s", "data")}))


if __name__ == "__main__":
    main()
