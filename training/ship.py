"""Copy a training run's checkpoint into ``checkpoints/`` with its evaluation and benchmark results.

    python -m training.ship --run runs/munet --eval runs/eval/munet.json --eval-command "python -m training.evaluate ..." \
        --bench runs/eval/bench_network.json --out checkpoints/munet.safetensors

The JSON beside the weights then holds: config, body model, template hash, the exact training command,
the commit at training start, samples seen, wall time, the commands that generate its training data,
and the evaluation's per-method means (numbers
copied from the evaluation report, never edited) with the command that produced them.
"""

from __future__ import annotations

import argparse
import json
import pathlib

from munet.network.checkpoint import load_checkpoint, save_checkpoint

KEEP = ("training_command", "commit", "samples_seen", "steps", "wall_time_s", "data", "train_config", "loss_weights",
        "world_size")  # fmt: skip


def evaluation_summary(report: dict, subset: str = "all") -> dict:
    synthetic = report["synthetic"]
    summary = synthetic.get("summary") or synthetic.get("methods") or {}
    means = {}
    for name, entry in summary.items():
        part = entry[subset]
        means[name] = {"samples": part["samples"] - part["failures"],
                       **{k: v["mean"] for k, v in part["metrics"].items()}}
    return {"means": means, "table": synthetic.get("table")}


def data_command(root: str) -> str:
    """The command that regenerates a shard folder bit for bit (from its manifest)."""
    manifest = json.loads((pathlib.Path(root) / "manifest.json").read_text())
    command = f"python -m training.data.generate --out {root} --count {manifest['count']} --seed {manifest['seed']}"
    return command + (f" --start {manifest['start']}" if manifest.get("start") else "")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="runs/munet")
    parser.add_argument("--eval", action="append", default=[], help="evaluation report JSON (repeatable)")
    parser.add_argument("--eval-command", action="append", default=[], help="the command that wrote each --eval")
    parser.add_argument("--bench", help="benchmarks.network JSON")
    parser.add_argument("--data-root", action="append", default=[],
                        help="a shard folder the run trained on (repeatable): its generation command is recorded")
    parser.add_argument("--out", default="checkpoints/munet.safetensors")
    args = parser.parse_args(argv)
    model, meta = load_checkpoint(pathlib.Path(args.run) / "last.safetensors")
    extra = {k: meta[k] for k in KEEP if k in meta}
    if args.data_root:
        extra["data_commands"] = [data_command(root) for root in args.data_root]
    evaluations = []
    for i, path in enumerate(args.eval):
        entry = evaluation_summary(json.loads(pathlib.Path(path).read_text()))
        entry["command"] = args.eval_command[i] if i < len(args.eval_command) else None
        evaluations.append(entry)
    extra["evaluation"] = evaluations
    if args.bench:
        extra["benchmark"] = json.loads(pathlib.Path(args.bench).read_text())
    save_checkpoint(model, args.out, extra)
    print(json.dumps({k: extra[k] for k in ("samples_seen", "wall_time_s", "commit")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
