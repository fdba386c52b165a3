"""Reproduce the shipped MuNet from nothing, in one resumable command: data, training, ship, evaluation.

    python -m training.reproduce                                  # the shipped recipe into runs/reproduce
    python -m training.reproduce --budget-samples 144000 --out runs/long --device auto
    python -m training.reproduce --stream --nproc 2               # samples made on the fly, DDP on 2 processes
    make reproduce

Steps, in order; each is skipped when its output exists and matches what this command would make
(``OUT/steps/NAME.json`` records each step's command, inputs and wall time):

1. ``data``: the training shards (``--data-seed`` 1, indices 0 .. ``--data-samples`` - 1, the training
   config's ``data.stream_config``) into ``OUT/data/train`` -- none with ``--stream`` -- and the held-out
   test set of the benchmark protocol into ``OUT/data/testset`` (``python -m training.data.generate``;
   a data set matches when its manifest's seed, range and config fingerprint do).
2. ``train``: ``python -m training.train`` (``torchrun`` with ``--nproc`` > 1) for ``--budget-samples``
   into ``OUT/run``; an interrupted run resumes from its last save; a larger budget continues it.
3. ``ship``: ``OUT/checkpoints/munet.safetensors`` + ``.json`` (the training metadata, the data
   commands, this command, the budget and the steps' wall times) and ``munet.loss.png``
   (``python -m training.ship``).
4. ``evaluate``: ``python -m training.evaluate`` on the test set (``--eval-methods``: fitting, the network
   alone, the default pipeline), report in ``OUT/eval/munet.json``; its per-method means are recorded in
   the shipped JSON (``evaluation``).

Budget of the shipped recipe (``checkpoints/munet.json``: ``reproduce_budget``) on the 2-core development
machine: data 564 s (32,768 training samples of the calibrated detector's data and the 1,000-sample test set,
2 workers), training 144,000 samples 4,845 s (``torchrun``, 2 processes x 1 thread, ~30 samples/s), then
the evaluation of three methods on the 1,000 test samples (1,895 s with 2 workers); ``OUT/reproduce.json``
records the measured times of every run.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import pathlib
import shlex
import subprocess
import sys
import time

import yaml

REPO = pathlib.Path(__file__).resolve().parents[1]
log = logging.getLogger("training.reproduce")

EVAL_METHODS = "fitting,network_only=network_only:{checkpoint},network=network:{checkpoint}"


@dataclasses.dataclass
class Plan:
    """Where everything goes and what each step runs (from the command line)."""

    out: pathlib.Path
    config: pathlib.Path
    budget: int
    data_samples: int
    data_seed: int
    stream: bool
    protocol: int
    testset_config: pathlib.Path
    test_count: int | None
    eval_limit: int | None
    eval_methods: str
    workers: int
    nproc: int
    device: str | None
    command: str

    @property
    def train_data(self) -> pathlib.Path:
        return self.out / "data" / "train"

    @property
    def testset(self) -> pathlib.Path:
        return self.out / "data" / "testset"

    @property
    def checkpoint(self) -> pathlib.Path:
        return self.out / "checkpoints" / "munet.safetensors"


def _run(argv: list[str], env: dict | None = None) -> float:
    """Run ``python argv`` from the repository root; its wall time in seconds (``RuntimeError`` on failure)."""
    started = time.perf_counter()
    log.info("running: python %s", shlex.join(argv))
    result = subprocess.run([sys.executable, *argv], cwd=REPO, env={**os.environ, **(env or {})})
    if result.returncode:
        raise RuntimeError(f"step failed (exit {result.returncode}): python {shlex.join(argv)}")
    return time.perf_counter() - started


class Steps:
    """Each step's record in ``OUT/steps/NAME.json``: {"inputs": ..., "wall_s": ..., "command": ...}."""

    def __init__(self, plan: Plan):
        self.root = plan.out / "steps"
        self.root.mkdir(parents=True, exist_ok=True)
        self.walls: dict[str, float] = {}

    def done(self, name: str, inputs: dict) -> bool:
        path = self.root / f"{name}.json"
        if path.exists() and json.loads(path.read_text()).get("inputs") == inputs:
            self.walls[name] = json.loads(path.read_text()).get("wall_s", 0.0)
            log.info("step %s: up to date, skipped", name)
            return True
        return False

    def previous_wall(self, name: str) -> float:
        path = self.root / f"{name}.json"
        return json.loads(path.read_text()).get("wall_s", 0.0) if path.exists() else 0.0

    def record(self, name: str, inputs: dict, wall_s: float, commands: list[str]) -> None:
        self.walls[name] = round(wall_s, 1)
        record = {"inputs": inputs, "wall_s": self.walls[name], "commands": commands}
        (self.root / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")


def _dataset_matches(root: pathlib.Path, seed: int, count: int, fingerprint: str) -> bool:
    manifest = root / "manifest.json"
    if not manifest.exists():
        return False
    m = json.loads(manifest.read_text())
    return (m["seed"], m["count"], m.get("start", 0), m["config_fingerprint"]) == (seed, count, 0, fingerprint)


def _generate(root: pathlib.Path, config: pathlib.Path, seed: int | None, count: int | None, workers: int) -> list[str]:
    """The generation command's arguments (a config that fixes its own seed and count keeps them unless given)."""
    argv = ["-m", "training.data.generate", "--config", str(config), "--out", str(root), "--workers", str(workers)]
    return argv + (["--seed", str(seed)] if seed is not None else []) + (["--count", str(count)] if count is not None else [])


def step_data(plan: Plan, steps: Steps, train_cfg: dict) -> list[str]:
    """Training shards (unless streaming) and the test set; returns the data commands (for the checkpoint)."""
    from training.data.config import data_config_from_dict, load_data_config

    stream_config = pathlib.Path(train_cfg["data"].get("stream_config", "training/configs/data.yaml"))
    wanted = []
    if not plan.stream:
        fingerprint = load_data_config(REPO / stream_config).fingerprint()
        wanted.append((plan.train_data, stream_config, plan.data_seed, plan.data_samples, fingerprint))
    test_raw = yaml.safe_load((REPO / plan.testset_config).read_text())
    test_count = plan.test_count or int(test_raw.get("count", 1000))
    run_keys = {k: test_raw.pop(k, None) for k in ("seed", "count", "start")}  # the generator's, not DataConfig's
    test_fingerprint = data_config_from_dict(test_raw, str(plan.testset_config)).fingerprint()
    wanted.append((plan.testset, plan.testset_config, int(run_keys["seed"]), test_count, test_fingerprint))
    commands, wall = [], steps.previous_wall("data")
    for root, config, seed, count, fingerprint in wanted:
        argv = _generate(root, config, seed if root == plan.train_data else None, count, plan.workers)
        commands.append("python " + shlex.join(argv))
        if _dataset_matches(root, seed, count, fingerprint):
            log.info("step data: %s present and matching, skipped", root)
            continue
        if (root / "manifest.json").exists():
            raise RuntimeError(f"{root} holds another data set (seed/count/config differ): delete it or choose another --out")
        wall += _run(argv)
    steps.record("data", {"commands": commands}, wall, commands)
    return commands


def _training_config(plan: Plan) -> dict:
    raw = yaml.safe_load((REPO / plan.config).read_text())
    raw["data"]["train"] = str(plan.train_data) if not plan.stream else str(plan.out / "data" / "no-shards")
    raw["train"].update({"out": str(plan.out / "run"), "max_samples": plan.budget})
    if plan.device:
        raw["train"]["device"] = plan.device
    return raw


def step_train(plan: Plan, steps: Steps) -> None:
    """Train (or resume) until the run has seen the budget's samples."""
    raw = _training_config(plan)
    config = plan.out / "train_config.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    last = plan.out / "run" / "last.json"
    if last.exists():
        meta = json.loads(last.read_text())
        ours = {k: v for k, v in raw["train"].items() if k not in ("max_samples", "max_minutes")}
        theirs = {k: meta["train_config"].get(k) for k in ours}
        if theirs != ours or meta["loss_weights"] != raw["loss_weights"]:
            raise RuntimeError(f"{plan.out / 'run'} was trained with another config ({theirs} != {ours}): delete it or "
                               "choose another --out")
        if meta["samples_seen"] >= plan.budget:
            log.info("step train: %d samples seen (budget %d), skipped", meta["samples_seen"], plan.budget)
            steps.walls["train"] = round(meta["wall_time_s"], 1)
            return
    launcher = ["-m", "training.train"] if plan.nproc == 1 else \
        ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={plan.nproc}", "-m", "training.train"]
    argv = launcher + ["--config", str(config)]
    _run(argv)
    steps.record("train", {"budget": plan.budget}, json.loads(last.read_text())["wall_time_s"], ["python " + shlex.join(argv)])


def _sha256(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def step_ship(plan: Plan, steps: Steps, data_commands: list[str]) -> None:
    run = plan.out / "run" / "last.safetensors"
    inputs = {"run": _sha256(run), "command": plan.command}
    if plan.checkpoint.exists() and steps.done("ship", inputs):
        return
    argv = ["-m", "training.ship", "--run", str(plan.out / "run"), "--out", str(plan.checkpoint),
            "--reproduce-command", plan.command, "--reproduce-budget", json.dumps(_budget(plan, steps))]
    for command in data_commands:
        argv += ["--data-command", command]
    steps.record("ship", inputs, _run(argv), ["python " + shlex.join(argv)])


def _budget(plan: Plan, steps: Steps) -> dict:
    return {"samples": plan.budget, "data_samples": 0 if plan.stream else plan.data_samples, "stream": plan.stream,
            "nproc": plan.nproc, "cpus": os.cpu_count(), "wall_s": dict(steps.walls)}


def step_evaluate(plan: Plan, steps: Steps) -> pathlib.Path:
    from training import ship

    report = plan.out / "eval" / "munet.json"
    methods = plan.eval_methods.format(checkpoint=plan.checkpoint)
    argv = ["-m", "training.evaluate", "--data", str(plan.testset), "--methods", methods, "--workers", str(plan.workers),
            "--out", str(report)] + (["--limit", str(plan.eval_limit)] if plan.eval_limit else [])
    if _evaluate_has_protocol():
        argv += ["--protocol", str(plan.protocol)]
    command = "python " + shlex.join(argv)
    inputs = {"checkpoint": _sha256(plan.checkpoint), "command": command}
    if not (report.exists() and steps.done("evaluate", inputs)):
        steps.record("evaluate", inputs, _run(argv), [command])
    ship.add_evaluation(plan.checkpoint, report, command)
    ship.add_metadata(plan.checkpoint, {"reproduce_budget": _budget(plan, steps)})
    return report


def _evaluate_has_protocol() -> bool:
    from training import evaluate

    return "--protocol" in evaluate.build_parser()._option_string_actions  # noqa: SLF001 - the CLI is the contract


def protocol_testset(protocol: int | None = None) -> tuple[int, pathlib.Path]:
    """The benchmark protocol and its test set's config (``training.evaluate.TESTSETS``); by default the
    newest protocol whose config, and the detector calibration it names, are present (else v1's
    ``training/configs/testset.yaml``)."""
    from training import evaluate

    testsets = getattr(evaluate, "TESTSETS", {1: (REPO / "training" / "configs" / "testset.yaml", None)})
    if protocol is not None:
        if protocol not in testsets:
            raise RuntimeError(f"benchmark protocol {protocol} is unknown here (known: {sorted(testsets)})")
        candidates = [protocol]
    else:
        candidates = sorted(testsets, reverse=True)
    for version in candidates:
        config = pathlib.Path(testsets[version][0])
        if config.exists() and _calibration_present(config):
            return version, config.relative_to(REPO) if config.is_relative_to(REPO) else config
    raise RuntimeError(f"no test set config for protocol {candidates} (or its detector calibration) is here")


def _calibration_present(config: pathlib.Path) -> bool:
    calibration = (yaml.safe_load(config.read_text()).get("detector") or {}).get("calibration")
    return not calibration or (REPO / calibration).exists()


def reproduce(plan: Plan) -> dict:
    """Run every step (skipping those up to date); returns the summary written to ``OUT/reproduce.json``."""
    plan.out.mkdir(parents=True, exist_ok=True)
    steps = Steps(plan)
    train_cfg = yaml.safe_load((REPO / plan.config).read_text())
    data_commands = step_data(plan, steps, train_cfg)
    step_train(plan, steps)
    step_ship(plan, steps, data_commands)
    report = step_evaluate(plan, steps)
    summary = {"command": plan.command, "checkpoint": str(plan.checkpoint), "evaluation": str(report),
               "budget": _budget(plan, steps)}
    (plan.out / "reproduce.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def default_nproc(batch_size: int, device: str | None) -> int:
    """Training processes: one per GPU when training there; on the CPU one per core (each one torch thread:
    on 2 cores, 2 processes train ~1.5x faster than 1, ``benchmarks/train_throughput.py``), at most one per 4
    samples of the batch."""
    import torch

    if device != "cpu" and torch.cuda.is_available():
        return torch.cuda.device_count() if device in (None, "auto", "cuda") else 1
    return max(1, min(os.cpu_count() or 1, batch_size // 4))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.reproduce", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("runs/reproduce"), help="everything goes here")
    parser.add_argument("--config", type=pathlib.Path, default=pathlib.Path("training/configs/default.yaml"))
    parser.add_argument("--budget-samples", type=int, help="training samples (default: the config's train.max_samples)")
    parser.add_argument("--data-samples", type=int, default=32768, help="training shards to generate (default 32,768)")
    parser.add_argument("--data-seed", type=int, default=1, help="seed of the training shards (a training seed)")
    parser.add_argument("--stream", action="store_true", help="no training shards: samples made on the fly")
    parser.add_argument("--protocol", type=int, help="benchmark protocol (default: the newest whose test set config is here)")
    parser.add_argument("--test-count", type=int, help="test set size (default: the test set config's, 1,000)")
    parser.add_argument("--eval-limit", type=int, help="evaluate the first N test samples only")
    parser.add_argument("--eval-methods", default=EVAL_METHODS, help=f"methods to evaluate (default {EVAL_METHODS})")
    parser.add_argument("--workers", type=int, default=2, help="processes for data generation and evaluation")
    parser.add_argument("--nproc", type=int, help="training processes (torchrun DDP when > 1; default: one per GPU, "
                                                  "else one per CPU core up to a per-process batch of 4)")
    parser.add_argument("--device", help="training device (train.device: auto, cpu, cuda)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from training import seeds

    protocol, testset_config = protocol_testset(args.protocol)
    train_cfg = yaml.safe_load((REPO / args.config).read_text())["train"]
    budget = args.budget_samples or int(train_cfg["max_samples"])
    nproc = args.nproc or default_nproc(int(train_cfg["batch_size"]), args.device)
    seeds.check_training_seed(args.data_seed, "--data-seed")
    command = "python -m training.reproduce " + shlex.join(sys.argv[1:] if argv is None else argv)
    plan = Plan(args.out.resolve(), args.config, budget, args.data_samples, args.data_seed, args.stream, protocol,
                testset_config, args.test_count, args.eval_limit, args.eval_methods, args.workers, nproc,
                args.device, command.strip())
    try:
        summary = reproduce(plan)
    except (RuntimeError, seeds.SeedRangeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
