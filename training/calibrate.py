"""Calibrate the simulated detector on the real MediaPipe (issue 13; ``training/calibration/README.md``).

    # measure the real MediaPipe on N rendered synthetic people, fit the simulator, write the file
    python -m training.calibrate --count 2048 --out training/calibration/mediapipe_0.10.21.json --workers 2
    # the same statistics measured on the simulator's own output (any data config)
    python -m training.calibrate --simulated --config training/configs/data_calibrated.yaml --count 2048 --out sim.json
    # refit the simulator section of a statistics file from its records (chunks under --work)
    python -m training.calibrate --fit training/calibration/mediapipe_0.10.21.json
    # the table real vs simulated before / after
    python -m training.calibrate --table REAL.json BEFORE.json AFTER.json

Records are written per chunk of 64 images under ``--work`` (default ``data/calibration``): an
interrupted run resumes where it stopped. Deterministic per seed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import pathlib
import platform
import shlex
import sys

from training.calibration import runner
from training.data.config import DataConfig, load_data_config

log = logging.getLogger("training.calibrate")


def versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("mediapipe", "numpy", "torch", "anny", "opencv-python-headless"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    from training.data.generate import _git_commit

    out["git_commit"] = _git_commit()
    return out


def measure(args: argparse.Namespace, config: DataConfig) -> dict:
    """Collect the records and compute the statistics (+ the fitted simulator for the real detector)."""
    from training.calibration.fit import fit
    from training.calibration.statistics import statistics
    from training.data.detector_calibrated import file_hash

    real = not args.simulated
    rec = runner.collect(config, args.seed, args.count, real, args.workers, args.max_side, pathlib.Path(args.work))
    stats = statistics(rec)
    result = {
        "tool": "training.calibrate",
        "command": "python -m training.calibrate " + " ".join(shlex.quote(a) for a in args.argv),
        "detector": "mediapipe legacy Pose, static_image_mode, model_complexity 1" if real else "simulated",
        "versions": versions(),
        "count": int(args.count),
        "seed": int(args.seed),
        "max_side": int(args.max_side),
        "data_config": args.config,
        "data_config_fingerprint": config.fingerprint(),
        "detector_config": dataclasses.asdict(config.detector),
        "statistics": stats,
    }
    if real:
        from training.calibration.table import bootstrap_se

        result["summary_se"] = bootstrap_se(rec)
    if real and not args.no_fit:
        model, rounds = fit(rec, stats)
        result["simulator"] = model.to_dict()
        result["fit_rounds"] = rounds
    result["hash"] = file_hash(result)
    return result


def refit(path: pathlib.Path, args: argparse.Namespace) -> dict:
    """Fit the simulator section of an existing statistics file from its records."""
    from training.calibration.fit import fit
    from training.data.detector_calibrated import file_hash

    result = json.loads(path.read_text())
    config = load_data_config(result["data_config"])
    rec = runner.collect(config, result["seed"], result["count"], True, args.workers, result["max_side"], pathlib.Path(args.work))
    model, rounds = fit(rec, result["statistics"])
    result["simulator"], result["fit_rounds"] = model.to_dict(), rounds
    result["hash"] = file_hash(result)
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.calibrate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--count", type=int, default=2048, help="images to measure")
    parser.add_argument("--out", type=pathlib.Path, help="statistics file (JSON) to write")
    parser.add_argument("--seed", type=int, default=4000001, help="engine seed of the people (disjoint from training and test)")
    parser.add_argument("--workers", type=int, default=2, help="processes (0: in this process)")
    parser.add_argument("--config", default=None, help="data config YAML of the people (default: DataConfig())")
    parser.add_argument("--max-side", type=int, default=640, help="longest side of the renders, pixels")
    parser.add_argument("--work", default="data/calibration", help="folder of the per-chunk records (resumable)")
    parser.add_argument("--simulated", action="store_true", help="measure the simulator of --config instead of MediaPipe")
    parser.add_argument("--no-fit", action="store_true", help="measure only; do not fit the simulator")
    parser.add_argument("--fit", type=pathlib.Path, metavar="STATS", help="refit the simulator section of STATS in place")
    parser.add_argument("--table", type=pathlib.Path, nargs=3, metavar=("REAL", "BEFORE", "AFTER"), help="print the comparison table")
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    if args.table:
        from training.calibration.table import markdown

        real, before, after = (json.loads(p.read_text()) for p in args.table)
        print(markdown(real["statistics"], before["statistics"], after["statistics"], real.get("summary_se")))
        return 0
    if args.fit:
        result = refit(args.fit, args)
        out = args.out or args.fit
    else:
        if args.out is None:
            raise SystemExit("--out is required")
        if args.count < 1:
            raise SystemExit("--count must be >= 1")
        result = measure(args, load_data_config(args.config))
        out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, allow_nan=True) + "\n")
    log.info("wrote %s (hash %s)", out, result["hash"][:16])
    return 0


if __name__ == "__main__":
    sys.exit(main())
