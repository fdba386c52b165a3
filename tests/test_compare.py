"""The paired comparison of evaluated methods (``training.evaluation.compare``): what the ablation verdicts rest on."""

import json

import numpy as np
import pytest

from training.evaluation import compare


def _report(path, methods: dict[str, list[dict | None]], seed=2000003):
    count = len(next(iter(methods.values())))
    records = [{"index": i, "framing": 0, "family": 0, "skirt": 0, "detected": True,
                "methods": {name: (scores[i] if scores[i] is not None else {"failed": "missed"})
                            for name, scores in methods.items()}}
               for i in range(count)]  # fmt: skip
    dataset = {"seed": seed, "count": count, "config_fingerprint": "f", "evaluated": count}
    path.write_text(json.dumps({"synthetic": {"dataset": dataset, "records": records}}))
    return str(path)


def test_a_small_steady_gain_is_significant_and_a_noisy_one_is_not(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.uniform(3.0, 8.0, 400)  # per-sample Chamfer (cm): a spread far larger than the gain
    steady = base + 0.05 + rng.normal(0, 0.05, 400)
    noisy = base + rng.normal(0, 2.0, 400)
    report = _report(tmp_path / "r.json", {
        "ours": [{"chamfer_cm": v, "iou_clothed": 0.8} for v in base],
        "worse": [{"chamfer_cm": v, "iou_clothed": 0.7} for v in steady],
        "noisy": [{"chamfer_cm": v, "iou_clothed": 0.9} for v in noisy],
    })
    entries = [compare.load_entry(f"{report}:{name}") for name in ("ours", "worse", "noisy")]
    worse_chamfer, worse_iou, noisy_chamfer, noisy_iou = compare.compare(entries, ["chamfer_cm", "iou_clothed"])
    assert worse_chamfer.verdict == "ours better" and worse_chamfer.in_standard_errors > 10
    assert worse_iou.verdict == "ours better"  # higher is better for IoU: 0.7 < 0.8
    assert noisy_chamfer.verdict == "within 2 SE"
    assert noisy_iou.verdict == "noisy better"
    assert abs(worse_chamfer.mean_difference - (steady - base).mean()) < 1e-9


def test_samples_a_method_failed_are_left_out_of_the_pair(tmp_path):
    report = _report(tmp_path / "r.json", {
        "a": [{"pve_mm": 100.0}, {"pve_mm": 110.0}, {"pve_mm": 120.0}, None],
        "b": [{"pve_mm": 101.0}, None, {"pve_mm": 122.0}, {"pve_mm": 90.0}],
    })
    (difference,) = compare.compare([compare.load_entry(f"{report}:a"), compare.load_entry(f"{report}:b")], ["pve_mm"])
    assert difference.samples == 2 and difference.mean_difference == pytest.approx(1.5)


def test_reports_of_different_test_sets_or_unknown_methods_are_refused(tmp_path):
    first = _report(tmp_path / "a.json", {"m": [{"pve_mm": 1.0}, {"pve_mm": 2.0}]})
    other = _report(tmp_path / "b.json", {"m": [{"pve_mm": 1.0}, {"pve_mm": 2.0}]}, seed=3000001)
    with pytest.raises(ValueError, match="another test set"):
        compare.compare([compare.load_entry(f"{first}:m"), compare.load_entry(f"{other}:m")], ["pve_mm"])
    with pytest.raises(ValueError, match="has no method 'x'"):
        compare.load_entry(f"{first}:x")
    assert compare.main([f"{first}:m", str(tmp_path / "missing.json") + ":m"]) == 2


def test_an_ablation_is_recorded_with_its_verdict_or_as_pending(tmp_path):
    """``training.ablations``: a finished ablation run is copied beside the weights and judged against the
    shipped run sample by sample; an unfinished one is recorded as pending, and nothing else is lost."""
    from munet.network.checkpoint import read_metadata
    from training import ablations

    rng = np.random.default_rng(1)
    chamfer = rng.uniform(3.0, 8.0, 200)
    pve = rng.uniform(80.0, 160.0, 200)
    shipped, done, pending = tmp_path / "shipped", tmp_path / "detached", tmp_path / "body_only"
    for run, extra in ((shipped, 0.0), (done, 0.3)):
        (run / "eval").mkdir(parents=True)
        scores = [{"chamfer_cm": c + extra + rng.normal(0, 0.05), "pve_mm": p + rng.normal(0, 1.0),
                   "pa_mpjpe_mm": 70.0, "depth_order_acc": 0.9} for c, p in zip(chamfer, pve)]
        _report(run / "eval" / "munet.json", {"network_only": scores})
    (done / "checkpoints").mkdir()
    (done / "checkpoints" / "munet.safetensors").write_bytes(b"weights")
    (pending / "run").mkdir(parents=True)
    (pending / "run" / "last.json").write_text(json.dumps({"samples_seen": 4096}))
    weights = tmp_path / "munet.safetensors"
    weights.write_bytes(b"shipped")
    weights.with_suffix(".json").write_text(json.dumps({"ablations": {"earlier_evaluations": [1]}, "commit": "c"}))
    assert ablations.main(["--shipped", str(shipped), "--ablation", f"detached={done}", "--ablation",
                           f"body_only={pending}", "--weights", str(weights), "--out-dir", str(tmp_path / "abl")]) == 0
    meta = read_metadata(weights)
    assert meta["commit"] == "c" and meta["ablations"]["earlier_evaluations"] == [1]
    detached = meta["ablations"]["runs"]["detached"]
    assert detached["criterion"] == {"chamfer_beaten_by_2se": True, "pve_at_least_equal": True, "met": True}
    assert (tmp_path / "abl" / "detached.safetensors").read_bytes() == b"weights"
    assert meta["ablations"]["runs"]["body_only"]["status"].startswith("pending: 4096 samples")

    # a re-evaluation by later inference code: that report is compared, and its command recorded
    tied = [{"chamfer_cm": c, "pve_mm": p, "pa_mpjpe_mm": 70.0, "depth_order_acc": 0.9} for c, p in zip(chamfer, pve)]
    _report(done / "eval" / "later.json", {"network_only": tied})
    assert ablations.main(["--shipped", str(shipped), "--ablation", f"detached={done}", "--weights", str(weights),
                           "--out-dir", str(tmp_path / "abl"), "--report", "later.json",
                           "--report-command", "evaluate {run} again"]) == 0
    detached = read_metadata(weights)["ablations"]["runs"]["detached"]
    assert detached["criterion"]["met"] is False and detached["evaluation"]["report"].endswith("later.json")
    assert detached["commands"][-1] == f"evaluate {done} again"


def test_a_later_evaluation_is_recorded_beside_the_shipped_weights_without_touching_them(tmp_path):
    from munet.network.checkpoint import read_metadata
    from training import ship

    weights = tmp_path / "munet.safetensors"
    weights.write_bytes(b"shipped")
    weights.with_suffix(".json").write_text(json.dumps({"commit": "c", "evaluation": [{"command": "first", "means": {}}]}))
    summary = {"m": {"all": {"samples": 2, "failures": 0, "detection_rate": 1.0, "metrics": {"pve_mm": {"mean": 100.0}}}}}
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"synthetic": {"summary": summary, "protocol_version": 2}}))
    argv = ["--out", str(weights), "--record-eval-only", "--eval", str(report), "--eval-command", "later"]
    assert ship.main(argv) == 0 and ship.main(argv) == 0  # the same command twice: one entry
    meta = read_metadata(weights)
    assert [e["command"] for e in meta["evaluation"]] == ["first", "later"] and meta["commit"] == "c"
    assert meta["evaluation"][1]["means"]["m"]["pve_mm"] == 100.0 and weights.read_bytes() == b"shipped"
    with pytest.raises(SystemExit):
        ship.main(["--out", str(weights), "--record-eval-only", "--eval", str(report)])  # no command: refused
