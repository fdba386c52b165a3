"""The benchmark: methods side by side on the held-out synthetic test set, plus the real-photo check.

    python -m training.evaluate --methods floor,fitting --out results/bench.json     # protocol v2
    python -m training.evaluate --protocol 1 --data data/testset --methods floor,fitting
    python -m training.evaluate --data data/testset --methods fitting,network,body_only=network:ckpt.safetensors
    python -m training.evaluate --real-photos tests/data --overlays results/overlays

The benchmark protocol (``--protocol``, default 2; ``training/evaluation/metrics.py`` states both) picks
the test set's config: v1 ``training/configs/testset.yaml`` (``data/testset``), v2
``training/configs/testset_v2.yaml`` (``data/testset_v2``; ``--config`` overrides, e.g. another simulator).
With ``--generate``, a missing test set is generated first from that config (~15 s per 100 samples on 2
cores). Writes a JSON report (``protocol_version``, the protocol, per-method means and medians
overall and for full-body / partial views / skirts, per-stage times, per-sample records) and prints
a markdown table. Metric definitions: ``training/evaluation/metrics.py``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pathlib
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
TESTSET_CONFIG = REPO / "training" / "configs" / "testset.yaml"
DEFAULT_TESTSET = REPO / "data" / "testset"
TESTSETS = {1: (TESTSET_CONFIG, DEFAULT_TESTSET),
            2: (REPO / "training" / "configs" / "testset_v2.yaml", REPO / "data" / "testset_v2")}
"""Per benchmark protocol: the test set's config and its default folder."""
DEFAULT_PHOTOS = REPO / "tests" / "data"  # the real photos that ship with the repo

log = logging.getLogger("training.evaluate")


def ensure_testset(root: pathlib.Path, workers: int, config: pathlib.Path = TESTSET_CONFIG) -> None:
    """Generate the held-out set into ``root`` from ``config`` unless it is already there."""
    from training.data import generate

    if (root / "manifest.json").exists():
        return
    log.info("test set not found at %s: generating it from %s", root, config)
    code = generate.main(["--config", str(config), "--out", str(root), "--workers", str(workers)])
    if code:
        raise RuntimeError(f"generating the test set failed (exit {code})")


def evaluate_synthetic(root: pathlib.Path, specs: list[str], limit: int | None, workers: int, surface_points: int,
                       protocol_version: int = 2) -> dict:
    from training.data.shards import read_manifest
    from training.evaluation import harness
    from training.evaluation.metrics import __doc__ as protocol

    names = [s.partition("=")[0] if "=" in s else s.split(":")[0] for s in specs]
    started = time.perf_counter()
    records = harness.run(str(root), specs, limit, workers, surface_points, protocol_version)
    manifest = read_manifest(root)
    summary = harness.aggregate(records, names)
    return {
        "dataset": {"path": str(root), "seed": manifest["seed"], "count": manifest["count"],
                    "evaluated": len(records), "config_fingerprint": manifest["config_fingerprint"],
                    "detector_calibration": _calibration_of(manifest)},  # fmt: skip
        "methods": specs,
        "protocol_version": protocol_version,
        "protocol": protocol,
        "summary": summary,
        "table": harness.table(summary),
        "table_partial_view": harness.table(summary, "partial_view"),
        "table_off_floor": harness.table(summary, "off_floor"),
        "table_stages_ms": harness.stage_table(summary),
        "table_depth_order_by_joint": harness.depth_order_table(summary),
        "wall_s": round(time.perf_counter() - started, 1),
        "cpus": os.cpu_count(),
        "records": records,
    }


def _calibration_of(manifest: dict) -> dict | None:
    """The detector calibration a test set was generated with: its path and the statistics' own hash
    (``training.calibrate``), or None (the v1 simulator)."""
    path = (manifest.get("config", {}).get("detector") or {}).get("calibration")
    if not path:
        return None
    stats = json.loads((REPO / path).read_text()) if (REPO / path).is_file() else {}
    return {"path": path, "hash": stats.get("hash")}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--protocol", type=int, choices=sorted(TESTSETS), default=2,
                        help="benchmark protocol (training/evaluation/metrics.py; default 2)")
    parser.add_argument("--data", type=pathlib.Path, help="test set directory (default data/testset_v2, v1: data/testset)")
    parser.add_argument("--config", type=pathlib.Path,
                        help="the test set's data config for --generate (default the protocol's testset yaml)")
    parser.add_argument("--generate", action="store_true", help="generate the test set first if it is missing")
    parser.add_argument("--methods", default="floor,fitting",
                        help="comma-separated method specs: fitting, network[:CKPT], network_only[:CKPT], floor, oracle, "
                             "NAME=SPEC (default floor,fitting)")
    parser.add_argument("--limit", type=int, help="evaluate only the first N samples")
    parser.add_argument("--workers", type=int, default=max(1, min(os.cpu_count() or 1, 8)), help="processes")
    parser.add_argument("--surface-points", type=int, default=5000, help="points sampled per surface for Chamfer/P2S")
    parser.add_argument("--out", type=pathlib.Path, help="write the JSON report here")
    parser.add_argument("--real-photos", type=pathlib.Path, nargs="?", const=DEFAULT_PHOTOS,
                        help=f"also run the real-photo check on a folder (default {DEFAULT_PHOTOS})")
    parser.add_argument("--overlays", type=pathlib.Path, help="folder for the real-photo overlay PNGs")
    parser.add_argument("--no-synthetic", action="store_true", help="only the real-photo check")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    specs = [s.strip() for s in args.methods.split(",") if s.strip()]
    config = args.config or TESTSETS[args.protocol][0]
    data = args.data or TESTSETS[args.protocol][1]
    report: dict = {"protocol_version": args.protocol}
    if not args.no_synthetic:
        if args.generate:
            ensure_testset(data, args.workers, config)
        if not (data / "manifest.json").exists():
            print(f"error: no test set at {data}: generate it with `python -m training.data.generate "
                  f"--config {config} --out {data}` or pass --generate", file=sys.stderr)  # fmt: skip
            return 2
        report["synthetic"] = evaluate_synthetic(data, specs, args.limit, args.workers, args.surface_points, args.protocol)
        print(report["synthetic"]["table"])
        print()
        print("median time per stage (ms):")
        print(report["synthetic"]["table_stages_ms"])
        print()
        print("depth order by joint (pairs each joint takes part in, worst first):")
        print(report["synthetic"]["table_depth_order_by_joint"])
    if args.real_photos is not None:
        from training.evaluation.realphotos import check_photos

        pipeline_specs = [s for s in specs if s.split("=")[-1].split(":")[0] in ("fitting", "network")] or ["fitting"]
        report["real_photos"] = check_photos(args.real_photos, pipeline_specs, args.overlays)
        print(report["real_photos"]["table"])
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1, default=float) + "\n")
        log.info("report written to %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
