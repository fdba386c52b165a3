"""Record the ablations of the shipped recipe beside the shipped weights: their weights, evaluations and the
paired verdicts against mutualistic training.

    python -m training.reproduce --config training/configs/detached.yaml --out runs/reproduce_detached \\
        --eval-methods 'network_only=network_only:{checkpoint}'
    python -m training.reproduce --config training/configs/body_only.yaml --out runs/reproduce_body_only \\
        --eval-methods 'network_only=network_only:{checkpoint}'
    python -m training.evaluate --protocol 2 --data runs/reproduce/data/testset \\
        --methods network_only=network_only:checkpoints/munet.safetensors --out runs/eval/network_only_v2_current.json
    python -m training.ablations --shipped runs/reproduce --baseline runs/eval/network_only_v2_current.json \\
        --ablation detached=runs/reproduce_detached --ablation body_only=runs/reproduce_body_only

After a change to the inference code (e.g. the network's flip averaging), re-evaluate every side with the
same code and compare those reports: each ablation's ``--report NAME`` in ``RUN/eval/`` (and the command that
wrote it, ``--report-command``), the shipped weights' ``--baseline``.

(link ``runs/reproduce/data/train`` and ``data/testset`` into an ablation's ``OUT/data/`` to reuse the shards
and the test set). Each ablation run that has finished (its ``OUT/checkpoints/munet.safetensors`` and its
evaluation ``OUT/eval/munet.json`` exist) is copied to ``checkpoints/ablations/NAME.safetensors`` (+ ``.json``)
and compared, sample by sample, with the shipped weights' network alone (``training.evaluation.compare``; the
baseline report is best made by the same code as the ablations' evaluations, ``--baseline``); an
unfinished one is recorded as pending with its command. The shipped JSON's ``ablations`` key then holds, per
ablation, its status, commands, means and differences, and the verdict of the criterion (issue 13):
mutualistic training beats each ablation by more than two standard errors on the clothed Chamfer and is
not worse by more than two on PVE.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
METRICS = ("chamfer_cm", "pve_mm", "pa_mpjpe_mm", "depth_order_acc")
CONFIGS = {"detached": "training/configs/detached.yaml", "body_only": "training/configs/body_only.yaml"}


def _commands(name: str, run: pathlib.Path) -> list[str]:
    config = CONFIGS.get(name, f"training/configs/{name}.yaml")
    return [f"python -m training.reproduce --config {config} --out {run} --eval-methods 'network_only=network_only:{{checkpoint}}'"]


def _shown(path: pathlib.Path) -> str:
    """A path as the repository would name it (relative to it when inside)."""
    resolved = path.resolve()
    return str(resolved.relative_to(REPO)) if resolved.is_relative_to(REPO) else str(path)


def record_ablation(name: str, run: pathlib.Path, shipped_report: pathlib.Path, out_dir: pathlib.Path,
                    report_name: str = "munet.json", report_command: str | None = None) -> dict:
    """One ablation's entry (see the module docstring); copies its weights into ``out_dir`` when finished.
    report_name: the evaluation in ``RUN/eval/`` to compare (a re-evaluation made by later inference code,
    like ``--baseline``'s); report_command: the command that wrote it (``{run}`` stands for RUN)."""
    from training.evaluation import compare
    from training.ship import evaluation_summary

    weights, report = run / "checkpoints" / "munet.safetensors", run / "eval" / report_name
    entry = {"run": str(run), "commands": _commands(name, run)}
    if report_command:
        entry["commands"] = entry["commands"] + [report_command.format(run=run)]
    if not (weights.exists() and report.exists()):
        last = run / "run" / "last.json"
        seen = json.loads(last.read_text())["samples_seen"] if last.exists() else 0
        entry["status"] = f"pending: {seen} samples trained, not yet shipped and evaluated"
        if (out_dir / f"{name}.safetensors").exists():
            entry["earlier_weights"] = f"{_shown(out_dir / name)}.safetensors: an earlier recipe's (earlier_evaluations)"
        return entry
    out_dir.mkdir(parents=True, exist_ok=True)
    for suffix in (".safetensors", ".json", ".loss.png"):
        source = weights.with_suffix(suffix) if suffix != ".loss.png" else weights.with_name("munet.loss.png")
        if source.exists():
            shutil.copyfile(source, out_dir / f"{name}{suffix}")
    entries = [compare.load_entry(f"{shipped_report}:network_only=mutualistic"),
               compare.load_entry(f"{report}:network_only={name}")]
    differences = compare.compare(entries, list(METRICS))
    by_metric = {d.metric: d for d in differences}
    chamfer, pve = by_metric["chamfer_cm"], by_metric["pve_mm"]
    beats = chamfer.verdict == "mutualistic better"
    holds = pve.verdict != f"{name} better"
    return {
        **entry, "status": "evaluated",
        "weights": f"{_shown(out_dir / name)}.safetensors",
        "evaluation": {**evaluation_summary(json.loads(report.read_text())), "report": str(report)},
        "differences": [{"metric": d.metric, "samples": d.samples, "mutualistic": d.baseline_mean, name: d.other_mean,
                         "difference": d.mean_difference, "standard_error": d.standard_error, "verdict": d.verdict}
                        for d in differences],  # fmt: skip
        "criterion": {"chamfer_beaten_by_2se": beats, "pve_at_least_equal": holds, "met": beats and holds},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.ablations", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shipped", type=pathlib.Path, default=pathlib.Path("runs/reproduce"),
                        help="the shipped recipe's reproduce folder (its eval/munet.json has network_only)")
    parser.add_argument("--baseline", type=pathlib.Path,
                        help="the report whose network_only is mutualistic training (default: SHIPPED/eval/munet.json; "
                             "give a re-evaluation made with the same code as the ablations')")
    parser.add_argument("--ablation", action="append", default=[], metavar="NAME=RUN", help="an ablation's reproduce folder")
    parser.add_argument("--report", default="munet.json",
                        help="which evaluation in each ablation's RUN/eval/ to compare (default: the reproduce run's own)")
    parser.add_argument("--report-command", help="the command that wrote --report, recorded with the run ({run}: RUN)")
    parser.add_argument("--weights", type=pathlib.Path, default=REPO / "checkpoints" / "munet.safetensors")
    parser.add_argument("--out-dir", type=pathlib.Path, default=REPO / "checkpoints" / "ablations")
    args = parser.parse_args(argv)
    from munet.network.checkpoint import read_metadata
    from training.ship import add_metadata

    shipped_report = args.baseline or args.shipped / "eval" / "munet.json"
    if not shipped_report.exists():
        parser.error(f"no evaluation of the shipped weights at {shipped_report}")
    ablations = {}
    for text in args.ablation:
        name, sep, run = text.partition("=")
        if not sep or not name or not run:
            parser.error(f"--ablation is NAME=RUN, got {text!r}")
        try:
            ablations[name] = record_ablation(name, pathlib.Path(run), shipped_report, args.out_dir, args.report,
                                              args.report_command)
        except ValueError as error:
            print(f"error: {name}: {error}", file=sys.stderr)
            return 2
        print(f"{name}: {ablations[name]['status']}" + (f", criterion met: {ablations[name]['criterion']['met']}"
                                                       if "criterion" in ablations[name] else ""))
    command = "python -m training.ablations " + " ".join(argv if argv is not None else sys.argv[1:])
    earlier = {k: v for k, v in read_metadata(args.weights).get("ablations", {}).items() if k == "earlier_evaluations"}
    add_metadata(args.weights, {"ablations": {"command": command, "baseline": f"{shipped_report}:network_only",
                                              "runs": ablations, **earlier}})  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
