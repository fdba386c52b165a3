"""Copy a training run's checkpoint into ``checkpoints/`` with its evaluation and benchmark results.

    python -m training.ship --run runs/munet --eval runs/eval/munet.json --eval-command "python -m training.evaluate ..." \
        --bench runs/eval/bench_network.json --out checkpoints/munet.safetensors
    python -m training.ship --record-eval-only --eval REPORT --eval-command "..."   # a later evaluation of the shipped weights

The JSON beside the weights then holds: config, body model, template hash, the exact training command,
the commit at training start, samples seen, wall time, the commands that generate its training data,
the command that reproduces it all (``python -m training.reproduce ...``) with its budget, and the
evaluation's per-method means (numbers copied from the evaluation report, never edited) with the command
that produced them. The run's loss curves go beside the weights as ``NAME.loss.png``.
"""

from __future__ import annotations

import argparse
import json
import pathlib

from munet.network.checkpoint import load_checkpoint, save_checkpoint

KEEP = ("training_command", "commit", "samples_seen", "steps", "wall_time_s", "data", "train_config", "loss_weights",
        "world_size", "device")  # fmt: skip


SUBSETS = ("off_floor", "skirt_or_dress", "partial_view")
"""Subsets whose means are recorded beside the overall ones (``training.evaluation.harness.aggregate``)."""


def _means(summary: dict, subset: str) -> dict:
    means = {}
    for name, entry in summary.items():
        part = entry.get(subset)
        if part is None:
            continue
        means[name] = {"samples": part["samples"] - part["failures"],
                       **({"detection_rate": part["detection_rate"]} if "detection_rate" in part else {}),
                       **{k: v["mean"] for k, v in part["metrics"].items()}}
    return means


def evaluation_summary(report: dict, subset: str = "all") -> dict:
    """Per-method means of an evaluation report (``means``: method -> metric -> mean over the detected
    samples, with ``samples`` and ``detection_rate``), the same for ``SUBSETS`` (``subsets``), the
    benchmark protocol, the test set (with its detector calibration's hash) and the table."""
    synthetic = report["synthetic"]
    summary = synthetic.get("summary") or synthetic.get("methods") or {}
    entry = {"means": _means(summary, subset), "table": synthetic.get("table")}
    if "protocol_version" in synthetic:
        entry["protocol_version"] = synthetic["protocol_version"]
    if "dataset" in synthetic:
        entry["dataset"] = synthetic["dataset"]
    subsets = {name: _means(summary, name) for name in SUBSETS}
    entry["subsets"] = {name: means for name, means in subsets.items() if means}
    return entry


def data_command(root: str) -> str:
    """The command that regenerates a shard folder bit for bit (from its manifest)."""
    manifest = json.loads((pathlib.Path(root) / "manifest.json").read_text())
    command = f"python -m training.data.generate --out {root} --count {manifest['count']} --seed {manifest['seed']}"
    return command + (f" --start {manifest['start']}" if manifest.get("start") else "")


def add_metadata(weights: str | pathlib.Path, values: dict) -> dict:
    """Set top-level keys of a shipped checkpoint's JSON (written atomically); returns the metadata."""
    from munet.network.checkpoint import metadata_path, read_metadata

    meta = {**read_metadata(weights), **values}
    path = metadata_path(weights)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
    return meta


def add_evaluation(weights: str | pathlib.Path, report: str | pathlib.Path, command: str) -> dict:
    """Record an evaluation report's per-method means in a shipped checkpoint's JSON (an entry made by the
    same command is replaced)."""
    from munet.network.checkpoint import read_metadata

    entry = evaluation_summary(json.loads(pathlib.Path(report).read_text()))
    entry["command"] = command
    evaluations = [e for e in read_metadata(weights).get("evaluation", []) if e.get("command") != command]
    return add_metadata(weights, {"evaluation": evaluations + [entry]})


def loss_curve(run: pathlib.Path, weights: pathlib.Path) -> pathlib.Path | None:
    """The run's loss curves as ``NAME.loss.png`` beside the shipped weights (None when it logged nothing)."""
    from training.scalars import plot_loss_curves

    scalars = run / "scalars.jsonl"
    if not scalars.exists():
        return None
    return plot_loss_curves(scalars, weights.with_name(weights.stem + ".loss.png"), f"{weights.stem}: trained in {run}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="runs/munet")
    parser.add_argument("--eval", action="append", default=[], help="evaluation report JSON (repeatable)")
    parser.add_argument("--eval-command", action="append", default=[], help="the command that wrote each --eval")
    parser.add_argument("--bench", help="benchmarks.network JSON")
    parser.add_argument("--data-root", action="append", default=[],
                        help="a shard folder the run trained on (repeatable): its generation command is recorded")
    parser.add_argument("--data-command", action="append", default=[], help="a command that made its data (repeatable)")
    parser.add_argument("--reproduce-command", help="the command that reproduces this checkpoint from nothing")
    parser.add_argument("--reproduce-budget", help="that command's budget (JSON: samples, measured wall times)")
    parser.add_argument("--out", default="checkpoints/munet.safetensors")
    parser.add_argument("--record-eval-only", action="store_true",
                        help="only record --eval (with --eval-command) in --out's JSON; the weights stay as shipped")
    args = parser.parse_args(argv)
    if args.record_eval_only:
        if not args.eval or len(args.eval_command) != len(args.eval):
            parser.error("--record-eval-only needs each --eval with its --eval-command")
        for path, command in zip(args.eval, args.eval_command):
            add_evaluation(args.out, path, command)
        return 0
    model, meta = load_checkpoint(pathlib.Path(args.run) / "last.safetensors")
    extra = {k: meta[k] for k in KEEP if k in meta}
    if args.data_root or args.data_command:
        extra["data_commands"] = [data_command(root) for root in args.data_root] + args.data_command
    if args.reproduce_command:
        extra["reproduce_command"] = args.reproduce_command
    if args.reproduce_budget:
        extra["reproduce_budget"] = json.loads(args.reproduce_budget)
    evaluations = []
    for i, path in enumerate(args.eval):
        entry = evaluation_summary(json.loads(pathlib.Path(path).read_text()))
        entry["command"] = args.eval_command[i] if i < len(args.eval_command) else None
        evaluations.append(entry)
    extra["evaluation"] = evaluations
    if args.bench:
        extra["benchmark"] = json.loads(pathlib.Path(args.bench).read_text())
    save_checkpoint(model, args.out, extra)
    loss_curve(pathlib.Path(args.run), pathlib.Path(args.out))
    print(json.dumps({k: extra[k] for k in ("samples_seen", "wall_time_s", "commit")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
