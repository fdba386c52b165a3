"""Choose the refinement's depth-anchor weights on a validation set (never the test set): for each setting,
the default method's means on the first N validation samples and lunge.jpg's 2D alignment.

    python -m training.data.generate --config training/configs/testset_v2.yaml --seed 3000001 --count 64 --out data/val_v2
    python -m training.tune_anchor --data data/val_v2 --limit 32 --settings 1,0.05,0 0.1,0.01,7 --out runs/tune_anchor
    python -m training.evaluation.compare runs/tune_anchor/0.1,0.01,7.json:m runs/tune_anchor/1,0.05,0.json:m

A setting is ``depth,plane,scale``: ``munet.fitting.network_init``'s ``ANCHOR_DEPTH_WEIGHT``,
``ANCHOR_PLANE_WEIGHT`` and ``ANCHOR_SCALE_CM`` (0: quadratic). Runs in this process, one setting after the
other (the constants are read when the refinement runs). ``--out DIR`` also writes each setting's evaluation
report (``DIR/DEPTH,PLANE,SCALE.json``, method ``m``) for ``training.evaluation.compare``'s paired differences.
"""

from __future__ import annotations

import argparse
import json
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[1]
METRICS = ("pa_mpjpe_mm", "pve_mm", "chamfer_cm", "depth_order_acc", "kp2d_height_pct", "iou_clothed")


def score(data: str, limit: int, checkpoint: str, photo: pathlib.Path, setting: tuple[float, float, float],
          pipeline) -> tuple[dict, dict]:
    """The default method's means over the first ``limit`` samples of ``data`` and ``photo``'s 2D alignment
    (reconstructed by ``pipeline``, a ``munet.pipeline.Pipeline``), and the evaluation report
    (``training.evaluate``'s ``synthetic`` part)."""
    from munet.fitting import network_init
    from munet.reconstruction import ReconstructOptions
    from training.evaluate import evaluate_synthetic

    names = ("ANCHOR_DEPTH_WEIGHT", "ANCHOR_PLANE_WEIGHT", "ANCHOR_SCALE_CM")
    shipped = [getattr(network_init, name) for name in names]
    for name, value in zip(names, setting):
        setattr(network_init, name, value)
    try:
        synthetic = evaluate_synthetic(pathlib.Path(data), [f"m=network:{checkpoint}"], limit, workers=1,
                                       surface_points=2000, protocol_version=2)
        options = ReconstructOptions(checkpoint=checkpoint, texture=False)
        alignment = pipeline.reconstruct(photo.read_bytes(), options).report.alignment
    finally:
        for name, value in zip(names, shipped):
            setattr(network_init, name, value)
    means = synthetic["summary"]["m"]["all"]["metrics"]
    out = {"depth": setting[0], "plane": setting[1], "scale_cm": setting[2], **{k: round(means[k]["mean"], 4) for k in METRICS}}
    out.update(photo_clothed_iou=alignment.clothed_iou, photo_keypoint_error_fraction=alignment.keypoint_error_fraction)
    return out, synthetic


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.tune_anchor", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/val_v2", help="a validation set (seed 3,000,001)")
    parser.add_argument("--limit", type=int, default=32)
    parser.add_argument("--checkpoint", default=str(REPO / "checkpoints" / "munet.safetensors"))
    parser.add_argument("--photo", type=pathlib.Path, default=REPO / "examples" / "lunge.jpg")
    parser.add_argument("--settings", nargs="+", default=["0.1,0.01,7"], help="depth,plane,scale_cm ...")
    parser.add_argument("--out", type=pathlib.Path, help="folder for each setting's evaluation report")
    args = parser.parse_args(argv)
    settings = [tuple(float(v) for v in text.split(",")) for text in args.settings]
    for text, setting in zip(args.settings, settings):
        if len(setting) != 3:
            parser.error(f"a setting is depth,plane,scale_cm, got {text!r}")
    from munet.pipeline import Pipeline

    pipeline = Pipeline()  # one for every setting: the anchor's constants are read when the refinement runs
    for text, setting in zip(args.settings, settings):
        means, synthetic = score(args.data, args.limit, args.checkpoint, args.photo, setting, pipeline)
        print(json.dumps(means), flush=True)
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            report = {"protocol_version": 2, "anchor": means, "synthetic": synthetic}
            (args.out / f"{text}.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
