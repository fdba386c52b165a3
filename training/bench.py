"""The evaluation benchmark from the command line, with the defaults of a quick comparison:

    python -m training.bench --methods floor,fitting,network --limit 200
    python -m training.bench --real-photos --overlays results/overlays --no-synthetic

Runs the chosen methods side by side on the fixed held-out synthetic test set of benchmark protocol v2
(``--protocol 1`` for v1; generated on first use from ``training/configs/testset_v2.yaml`` or
``testset.yaml``, bit-identically) and optionally on real photos, prints the
metric table and writes the JSON report: ``python -m training.evaluate --generate`` with these arguments.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

HELP = "benchmark methods (fitting, network, ablations) on the held-out synthetic set and real photos"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.bench", description=HELP)
    parser.add_argument("--methods", default="floor,fitting",
                        help="comma-separated: fitting, network[:CHECKPOINT], floor, oracle, NAME=SPEC (default floor,fitting)")
    parser.add_argument("--protocol", type=int, choices=(1, 2), default=2, help="benchmark protocol (default 2)")
    parser.add_argument("--data", type=pathlib.Path, help="test set directory (default: data/testset_v2, v1: data/testset)")
    parser.add_argument("--limit", type=int, help="evaluate only the first N samples (quick runs)")
    parser.add_argument("--workers", type=int, default=max(1, min(os.cpu_count() or 1, 8)), help="processes")
    parser.add_argument("--out", type=pathlib.Path, help="write the JSON report here")
    parser.add_argument("--real-photos", type=pathlib.Path, nargs="?", const=True,
                        help="also check real photos (default folder: ../shared/images next to the repository)")
    parser.add_argument("--overlays", type=pathlib.Path, help="folder for the real-photo overlay PNGs")
    parser.add_argument("--no-synthetic", action="store_true", help="only the real-photo check")
    return parser


def evaluate_argv(args: argparse.Namespace) -> list[str]:
    """The ``training.evaluate`` arguments these bench arguments stand for."""
    argv = ["--methods", args.methods, "--workers", str(args.workers), "--generate", "--protocol", str(args.protocol)]
    if args.data is not None:
        argv += ["--data", str(args.data)]
    if args.limit is not None:
        argv += ["--limit", str(args.limit)]
    if args.out is not None:
        argv += ["--out", str(args.out)]
    if args.real_photos is not None:
        argv += ["--real-photos"] + ([] if args.real_photos is True else [str(args.real_photos)])
    if args.overlays is not None:
        argv += ["--overlays", str(args.overlays)]
    if args.no_synthetic:
        argv += ["--no-synthetic"]
    return argv


def main(argv: list[str] | None = None) -> int:
    from training import evaluate

    return evaluate.main(evaluate_argv(build_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
