"""Paired comparison of methods evaluated on the same test set: which is better, and by how many standard errors.

    python -m training.evaluation.compare \\
        runs/reproduce/eval/munet.json:network_only=mutualistic \\
        runs/reproduce_detached/eval/munet.json:network_only=detached \\
        runs/reproduce_body_only/eval/munet.json:network_only=body_only \\
        --metrics chamfer_cm pve_mm pa_mpjpe_mm --json runs/eval/ablations.json

Each entry is ``REPORT:METHOD[=LABEL]`` (a ``training.evaluate`` report and a method name in it); the first
is the baseline the others are compared with. The reports must hold the same test set (seed, count, config
fingerprint and evaluated samples): the comparison is per sample. For each metric and each other method,
over the samples both reconstructed: the mean difference (other - baseline), its standard error (the
differences' sample standard deviation / sqrt(n)) and the verdict, "baseline better", "other better" (by
more than two standard errors, in the metric's own direction: lower is better for errors, higher for IoU
and accuracies) or "within 2 SE". Pairing removes the spread between samples, which dwarfs the spread
between methods, so the paired standard error is much smaller than each mean's.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import pathlib
import sys

import numpy as np

from training.evaluation.harness import METRIC_ORDER

DIRECTION = {key: direction for key, _, direction in METRIC_ORDER}
LABEL = {key: label for key, label, _ in METRIC_ORDER}
SAME_TEST_SET = ("seed", "count", "config_fingerprint", "evaluated")


@dataclasses.dataclass(frozen=True)
class Entry:
    """One method of one report: its per-sample metrics by test-sample index (a failed sample: None)."""

    label: str
    report: str
    method: str
    dataset: dict
    per_sample: dict[int, dict | None]


def parse_entry(text: str) -> tuple[str, str, str]:
    """``REPORT:METHOD[=LABEL]`` -> (report path, method, label)."""
    report, sep, method = text.rpartition(":")
    if not sep or not report or not method:
        raise ValueError(f"an entry is REPORT:METHOD[=LABEL], got {text!r}")
    method, _, label = method.partition("=")
    return report, method, label or method


def load_entry(text: str) -> Entry:
    """Read one ``REPORT:METHOD[=LABEL]`` entry (``ValueError`` naming what is missing)."""
    path, method, label = parse_entry(text)
    if not pathlib.Path(path).is_file():
        raise ValueError(f"no evaluation report at {path} (python -m training.evaluate ... --out {path})")
    synthetic = json.loads(pathlib.Path(path).read_text()).get("synthetic")
    if not synthetic or "records" not in synthetic:
        raise ValueError(f"{path} holds no synthetic test-set records")
    names = sorted({name for r in synthetic["records"] for name in r["methods"]})
    if method not in names:
        raise ValueError(f"{path} has no method {method!r} (it has {', '.join(names)})")
    per_sample = {}
    for record in synthetic["records"]:
        scores = record["methods"].get(method)
        per_sample[int(record["index"])] = None if scores is None or "failed" in scores else scores
    return Entry(label, path, method, synthetic["dataset"], per_sample)


@dataclasses.dataclass(frozen=True)
class Difference:
    """other - baseline on one metric, over ``samples`` paired samples."""

    metric: str
    other: str
    samples: int
    baseline_mean: float
    other_mean: float
    mean_difference: float
    standard_error: float
    verdict: str

    @property
    def in_standard_errors(self) -> float:
        if self.standard_error > 0:
            return self.mean_difference / self.standard_error
        return math.copysign(math.inf, self.mean_difference) if self.mean_difference else 0.0


def paired_difference(baseline: Entry, other: Entry, metric: str) -> Difference:
    """The paired difference of ``other`` from ``baseline`` on ``metric`` (see the module docstring)."""
    pairs = [(b[metric], o[metric]) for index, b in baseline.per_sample.items()
             if b is not None and (o := other.per_sample.get(index)) is not None
             and b.get(metric) is not None and o.get(metric) is not None]  # fmt: skip
    if len(pairs) < 2:
        raise ValueError(f"{baseline.label} and {other.label} share fewer than 2 scored samples on {metric}")
    values = np.asarray(pairs, np.float64)
    difference = values[:, 1] - values[:, 0]
    se = float(difference.std(ddof=1) / math.sqrt(len(difference)))
    mean = float(difference.mean())
    better_sign = -1.0 if DIRECTION.get(metric, "lower") == "lower" else 1.0  # the sign of "other is better"
    if abs(mean) <= 2.0 * se:
        verdict = "within 2 SE"
    else:
        verdict = f"{other.label} better" if mean * better_sign > 0 else f"{baseline.label} better"
    return Difference(metric, other.label, len(pairs), float(values[:, 0].mean()), float(values[:, 1].mean()),
                      mean, se, verdict)


def check_same_test_set(entries: list[Entry]) -> None:
    """``ValueError`` unless every entry was evaluated on the baseline's test set."""
    first = entries[0]
    for entry in entries[1:]:
        ours = {k: first.dataset.get(k) for k in SAME_TEST_SET}
        theirs = {k: entry.dataset.get(k) for k in SAME_TEST_SET}
        if ours != theirs:
            raise ValueError(f"{entry.report} was evaluated on another test set than {first.report}: {theirs} != {ours}")


def compare(entries: list[Entry], metrics: list[str]) -> list[Difference]:
    """Every other entry against the first, metric by metric."""
    check_same_test_set(entries)
    unknown = [m for m in metrics if m not in DIRECTION]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)} (known: {', '.join(DIRECTION)})")
    return [paired_difference(entries[0], other, metric) for other in entries[1:] for metric in metrics]


def table(baseline: str, differences: list[Difference]) -> str:
    """A markdown table of the differences."""
    lines = [f"| metric | {baseline} | other | other's mean | difference | SE | difference / SE | n | verdict |",
             "|---|---|---|---|---|---|---|---|---|"]
    for d in differences:
        lines.append(f"| {LABEL.get(d.metric, d.metric)} | {d.baseline_mean:.4g} | {d.other} | {d.other_mean:.4g} | "
                     f"{d.mean_difference:+.4g} | {d.standard_error:.3g} | {d.in_standard_errors:+.1f} | {d.samples} | "
                     f"{d.verdict} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.evaluation.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("entries", nargs="+", metavar="REPORT:METHOD[=LABEL]", help="the baseline first")
    parser.add_argument("--metrics", nargs="+", default=["chamfer_cm", "pve_mm", "pa_mpjpe_mm"])
    parser.add_argument("--json", metavar="OUT.json", help="also write the comparison as JSON")
    args = parser.parse_args(argv)
    if len(args.entries) < 2:
        parser.error("give a baseline and at least one method to compare with it")
    try:
        entries = [load_entry(text) for text in args.entries]
        differences = compare(entries, args.metrics)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(table(entries[0].label, differences))
    if args.json:
        out = {"command": "python -m training.evaluation.compare " + " ".join(argv if argv is not None else sys.argv[1:]),
               "entries": [{"label": e.label, "report": e.report, "method": e.method} for e in entries],
               "dataset": entries[0].dataset,
               "differences": [{**dataclasses.asdict(d), "in_standard_errors": d.in_standard_errors} for d in differences]}
        pathlib.Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
