"""Train MuNet (mutualistic: the clothed loss reaches the body stage) on synthetic samples.

    python -m training.train --config training/configs/default.yaml                    # CPU, or one GPU (--device auto)
    python -m training.train --config training/configs/default.yaml --device cuda:0
    torchrun --nproc_per_node=2 -m training.train --config training/configs/default.yaml   # DDP: gloo on CPU, NCCL on GPUs

Data: pre-generated shards (``data.train``: a folder or a list of folders, from ``python -m training.data.generate``) or, when that
folder has no manifest, samples made on the fly from ``data.stream_config`` (DataLoader worker processes
on the CPU; each rank its own training seed ``data.stream_seed + rank``, ``training/seeds.py``). Seeds in
the held-out ranges (test, validation, calibration) are refused. Writes into ``train.out``:
``last.safetensors`` + ``last.json`` (a loadable checkpoint: weights + config + samples seen),
``last.optim.safetensors`` (optimizer state, for resuming), ``scalars.jsonl`` and TensorBoard event
files in ``tensorboard/`` (window means of the losses, samples/s; ``training/scalars.py``) and
``loss_curve.png`` at every save, and resumes from them when present. Seeds are fixed (``train.seed``).
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
from training import seeds
from training.losses import Supervision, Targets, compute_losses, weak_perspective_fit
from training.scalars import ScalarLog, WindowMeans, plot_loss_curves

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
    device: str = "auto"  # auto: the rank's GPU when CUDA is available, else the CPU; or cpu, cuda, cuda:N
    tensorboard: bool = True  # also write TensorBoard event files (needs the pinned tensorboard package)


def load_config(path: str) -> dict:
    raw = yaml.safe_load(pathlib.Path(path).read_text())
    unknown = set(raw) - {"model", "data", "train", "loss_weights"}
    if unknown:
        raise ValueError(f"{path}: unknown sections {sorted(unknown)}")
    return {"model": MuNetConfig.from_dict(raw.get("model", {})), "data": raw.get("data", {}),
            "train": TrainConfig(**raw.get("train", {})), "loss_weights": dict(raw.get("loss_weights", {}))}


INPUT_FIELDS = ("mask", "keypoints_crop", "visibility", "world_keypoints_m", "seen")
"""The sample fields the network's inputs are made from (``network_inputs``)."""


def prepare_batch(batch: dict, config: MuNetConfig, supervision: Supervision, device: torch.device | None = None,
                  ) -> tuple[torch.Tensor, torch.Tensor, Targets]:
    """A collated batch of samples (``training/data/sample.py``) -> network inputs (image, world) and targets,
    computed on ``device`` (the supervision's; default: where the batch is)."""
    f = {k: torch.as_tensor(batch[k]).to(device, non_blocking=True) if device else torch.as_tensor(batch[k]) for k in FIELDS}
    return *network_inputs(f, config), make_targets(f, supervision)


def network_inputs(f: dict[str, torch.Tensor], config: MuNetConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(image (B, 34, S, S), world (B, 33, 3)) from the batch's ``INPUT_FIELDS`` (``munet.network.inputs``)."""
    image = make_input(f["mask"].float(), f["keypoints_crop"], f["visibility"], config.input_size, config.heatmap_sigma)
    return image, make_world_input(f["world_keypoints_m"], f["seen"])


def make_targets(f: dict[str, torch.Tensor], supervision: Supervision) -> Targets:
    """The losses' targets (``training.losses.Targets``: canonical camera frame, pelvis-relative, metres;
    2D in normalised crop coordinates) from a collated batch's fields."""
    resolution = f["mask"].shape[-1]
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
        clothed_finest = supervision.finest(clothed - pelvis)
    gt_mask = F.avg_pool2d(f["gt_mask"].float()[:, None], 5, 1, 2)
    return Targets(body_levels, clothed_finest, landmarks - pelvis, landmarks_2d, camera, gt_mask)


@dataclasses.dataclass
class PreparedBatch:
    """A batch whose targets a DataLoader worker made (``Preparer``): inputs, the ``INPUT_FIELDS`` as
    tensors (the heatmaps are made in the training process: 35 MB a batch is slower to pass between
    processes than to draw); targets, ``training.losses.Targets``."""

    inputs: dict[str, torch.Tensor]
    targets: Targets

    def to(self, device: torch.device) -> "PreparedBatch":
        return PreparedBatch({k: v.to(device, non_blocking=True) for k, v in self.inputs.items()}, self.targets.to(device))


class Preparer:
    """The DataLoader's ``collate_fn`` for CPU training: collate the samples, then make the targets in the
    worker process, off the training process's critical path (~7 % of a step on one core)."""

    def __init__(self, supervision: Supervision):
        self.supervision = supervision

    def __call__(self, samples: list[dict]) -> PreparedBatch:
        f = {k: torch.as_tensor(v) for k, v in torch.utils.data.default_collate(samples).items()}
        return PreparedBatch({k: f[k] for k in INPUT_FIELDS}, make_targets(f, self.supervision))


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


def make_loader(data: dict, train: TrainConfig, rank: int, world: int, start_sample: int, pin_memory: bool = False,
                collate_fn=None):
    """(DataLoader of this rank's batches, a description of the data). Shards when ``data.train``'s folders
    hold a manifest, else the on-the-fly stream; ``seeds.SeedRangeError`` for a held-out seed. collate_fn:
    e.g. a ``Preparer`` (the default collates the samples into a dict of tensors)."""
    from training.data.dataset import ShardDataset, SyntheticStream

    roots = data.get("train", "data/train")
    roots = [pathlib.Path(r) for r in ([roots] if isinstance(roots, str) else roots)]
    per_rank = max(1, train.batch_size // world)
    present = [r for r in roots if (r / "manifest.json").exists()]
    workers = {"num_workers": train.workers, "pin_memory": pin_memory, "persistent_workers": train.workers > 0,
               "collate_fn": collate_fn}
    if present:
        missing = sorted(set(roots) - set(present))
        if missing:
            raise FileNotFoundError(f"training shards missing in {', '.join(map(str, missing))}: generate them "
                                    "(training/data/README.md) or remove them from data.train")
        parts = [ShardDataset(r, fields=FIELDS) for r in roots]
        for root, part in zip(roots, parts):
            seeds.check_training_seed(int(part.manifest["seed"]), f"training shards {root}")
        dataset = torch.utils.data.ConcatDataset(parts)
        sampler = EpochSampler(len(dataset), train.seed, rank, world, start_sample)
        names = " + ".join(str(r) for r in roots)
        return torch.utils.data.DataLoader(dataset, batch_size=per_rank, sampler=sampler, drop_last=True, **workers), \
            f"shards {names} ({len(dataset)} samples)"
    from training.data.config import load_data_config

    stream_config = load_data_config(data.get("stream_config", "training/configs/data.yaml"))
    seed = seeds.stream_seeds(int(data.get("stream_seed", 1)), world)[rank]
    start = seeds.stream_start(start_sample, world, stream_config.batch_size)
    stream = SyntheticStream(stream_config, seed=seed, count=10**9, start=start, fields=FIELDS)
    return torch.utils.data.DataLoader(stream, batch_size=per_rank, **workers), f"on-the-fly stream (seed {seed}, from index {start})"


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
            tensors[f"{name}/{key}"] = torch.as_tensor(value).detach().cpu().clone().reshape(value.shape if torch.is_tensor(value) else ())
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(path)


def load_optimizer(optimizer: torch.optim.Optimizer, model: torch.nn.Module, path: pathlib.Path) -> tuple[int, int]:
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    for name, p in model.named_parameters():
        # moments on the parameter's device; AdamW keeps its step counter on the CPU
        state = {key.split("/")[-1]: v if key.endswith("/step") else v.to(p.device)
                 for key, v in tensors.items() if key.rsplit("/", 1)[0] == name}
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
    device: str

    def metadata(self) -> dict:
        return {"training_command": self.command, "commit": self.commit, "samples_seen": self.samples, "steps": self.step,
                "wall_time_s": round(self.wall_before_s + time.perf_counter() - self.started, 1), "data": self.source,
                "train_config": dataclasses.asdict(self.train_cfg), "loss_weights": self.weights, "world_size": self.world,
                "device": self.device}

    def time_fraction(self, now: float) -> float:
        """The share of the minutes budget spent (it counts this run only); 0 without one."""
        minutes = self.train_cfg.max_minutes
        return (now - self.started) / (60 * minutes) if minutes > 0 else 0.0


def train(config_path: str, out: str | None = None, max_samples: int | None = None, max_minutes: float | None = None,
          device: str | None = None, command: str | None = None) -> dict:
    """Run (or resume) training; returns the checkpoint's metadata. DDP when WORLD_SIZE > 1 (torchrun).
    ``command``: how this run was started, recorded in the checkpoint (default: ``python -m
    training.train`` or ``torchrun ...`` with this process's arguments)."""
    cfg = load_config(config_path)
    model_cfg, weights = cfg["model"], cfg["loss_weights"]
    overrides = {"out": out, "max_samples": max_samples, "max_minutes": max_minutes, "device": device}
    train_cfg = dataclasses.replace(cfg["train"], **{k: v for k, v in overrides.items() if v is not None})
    world, rank, where = _start_process(train_cfg)
    out_dir = pathlib.Path(train_cfg.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    model = MuNet(model_cfg, clothed=train_cfg.train_clothed).to(where)
    optimizer = torch.optim.AdamW(model.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    samples, step, meta_extra = _resume(model, optimizer, out_dir, rank)
    ddp = model
    if world > 1:  # the body-only ablation leaves the clothed stage's parameters without gradients
        ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[where] if where.type == "cuda" else None,
                                                        find_unused_parameters=not train_cfg.train_clothed)
    supervision = Supervision(model, MediaPipeRegressor())
    # on the CPU the loader's workers make the inputs and targets; on a GPU the training process does, there
    preparer = Preparer(supervision) if where.type == "cpu" and train_cfg.workers > 0 else None
    supervision.to(where)
    loader, source = make_loader(cfg["data"], train_cfg, rank, world, samples, where.type == "cuda", preparer)
    generator = torch.Generator().manual_seed(train_cfg.seed + rank + step)
    run = _Run(samples, step, meta_extra.get("training_command") or command or _command(world),
               meta_extra.get("commit") or git_commit(), float(meta_extra.get("wall_time_s", 0.0)), time.perf_counter(),
               source, train_cfg, weights, world, str(where))  # fmt: skip
    if rank == 0:
        log.info("MuNet %d parameters; data: %s; world size %d on %s", parameter_count(model), source, world, where)
    _loop(run, loader, model, ddp, optimizer, supervision, model_cfg, generator, rank, out_dir)
    if world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return run.metadata()


def _command(world: int) -> str:
    launcher = ("torchrun --nproc_per_node=%d -m training.train" % world) if world > 1 else "python -m training.train"
    threads_env = [f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}"] if "OMP_NUM_THREADS" in os.environ else []
    return " ".join(threads_env + [launcher] + sys.argv[1:])


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``train.device`` -> a torch device: ``auto`` is this rank's GPU (``cuda:LOCAL_RANK``) when CUDA is
    available, else the CPU; ``cuda`` without an index is ``cuda:LOCAL_RANK``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    where = torch.device(name)
    if where.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"train.device {name!r}: CUDA is not available in this torch ({torch.__version__}); use --device cpu")
        where = torch.device("cuda", local_rank if where.index is None else where.index)
    return where


def _start_process(train_cfg: TrainConfig) -> tuple[int, int, torch.device]:
    """(world size, rank, device) from torchrun's environment and ``train.device``; joins the process
    group when distributed (NCCL on GPUs, gloo on the CPU); threads and seeds."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    where = resolve_device(train_cfg.device, int(os.environ.get("LOCAL_RANK", "0")))
    if where.type == "cuda":
        torch.cuda.set_device(where)
    if world > 1:
        torch.distributed.init_process_group("nccl" if where.type == "cuda" else "gloo")
    if train_cfg.threads:
        torch.set_num_threads(train_cfg.threads)
    torch.manual_seed(train_cfg.seed)
    np.random.seed(train_cfg.seed)
    return world, rank, where


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
    plot_loss_curves(out_dir / "scalars.jsonl", out_dir / "loss_curve.png", f"{out_dir.name}: {run.samples} samples")


def train_step(batch: dict, ddp: torch.nn.Module, optimizer: torch.optim.Optimizer, supervision: Supervision,
               model_cfg: MuNetConfig, train_cfg: TrainConfig, weights: dict, generator: torch.Generator,
               device: torch.device) -> tuple[torch.Tensor, dict[str, float], int]:
    """One optimizer step on a collated batch (a dict of tensors, or a ``PreparedBatch``): (loss, each
    term's value, the batch's sample count)."""
    if isinstance(batch, PreparedBatch):
        prepared = batch.to(device)
        (image, world_input), targets = network_inputs(prepared.inputs, model_cfg), prepared.targets
    else:
        image, world_input, targets = prepare_batch(batch, model_cfg, supervision, device)
    out = ddp(image, world_input, detach_body=train_cfg.detach_body, full_resolution=False)
    loss, terms = compute_losses(out, targets, weights, supervision, train_cfg.chamfer_points, generator)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(ddp.parameters(), 1.0)
    optimizer.step()
    return loss.detach(), terms, image.shape[0]


def _loop(run: _Run, loader, model: torch.nn.Module, ddp: torch.nn.Module, optimizer: torch.optim.Optimizer,
          supervision: Supervision, model_cfg: MuNetConfig, generator: torch.Generator, rank: int,
          out_dir: pathlib.Path) -> None:
    """Optimizer steps until the samples or minutes budget runs out; rank 0 logs the window means of the
    scalars every ``log_every_s`` (and after the first step) and saves ``last.*`` every ``save_every_s`` and
    at the end."""
    from training.data.progress import Progress

    train_cfg, world, device = run.train_cfg, run.world, torch.device(run.device)
    total_steps = max(1, train_cfg.max_samples // train_cfg.batch_size)
    progress = Progress(max(0, train_cfg.max_samples - run.samples), "training", log_every=train_cfg.log_every_s) if rank == 0 else None
    scalars = ScalarLog(out_dir, train_cfg.tensorboard) if rank == 0 else None
    means = WindowMeans()
    last_save = last_log = window_start = time.perf_counter()
    window_samples = 0
    deadline = run.started + 60 * train_cfg.max_minutes if train_cfg.max_minutes > 0 else float("inf")
    model.train()
    for batch in loader:
        if run.samples >= train_cfg.max_samples or time.perf_counter() > deadline:
            break
        for group in optimizer.param_groups:
            group["lr"] = lr_at(run.step, total_steps, train_cfg, run.time_fraction(time.perf_counter()))
        loss, terms, count = train_step(batch, ddp, optimizer, supervision, model_cfg, train_cfg, run.weights, generator, device)
        run.step += 1
        run.samples += count * world
        window_samples += count * world
        if rank != 0:
            continue
        means.add({"loss": float(loss), **terms})
        now = time.perf_counter()
        progress.update(count * world, f"loss {float(loss):.4f} pve {1000 * terms['pve_m']:.0f}mm")
        if now - last_log > train_cfg.log_every_s or run.step == 1:
            rate = window_samples / max(now - window_start, 1e-6)
            scalars.write({"step": run.step, "samples": run.samples, **means.take(), "lr": optimizer.param_groups[0]["lr"],
                           "samples_per_s": rate})
            last_log, window_start, window_samples = now, now, 0
        if now - last_save > train_cfg.save_every_s:
            _save(run, model, optimizer, out_dir)
            last_save = now
    if rank == 0:
        scalars.close()
        _save(run, model, optimizer, out_dir)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="training/configs/default.yaml")
    parser.add_argument("--out", help="output folder (overrides train.out)")
    parser.add_argument("--max-samples", type=int, help="stop after this many samples (overrides train.max_samples)")
    parser.add_argument("--max-minutes", type=float, help="stop after this many minutes (overrides train.max_minutes)")
    parser.add_argument("--device", help="auto (a GPU when CUDA is available, else the CPU), cpu, cuda or cuda:N "
                                         "(overrides train.device; under torchrun each rank takes cuda:LOCAL_RANK)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        summary = train(args.config, args.out, args.max_samples, args.max_minutes, args.device)
    except seeds.SeedRangeError as error:
        raise SystemExit(f"error: {error}") from None
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({k: summary[k] for k in ("samples_seen", "steps", "wall_time_s", "data")}))


if __name__ == "__main__":
    main()
