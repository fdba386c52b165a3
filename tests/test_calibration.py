"""The detector calibration (issue 13): the committed statistics file, the calibrated simulator against
it, the hand-set detector unchanged, and the calibration tool end to end on the real MediaPipe."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
STATS = REPO / "training" / "calibration" / "mediapipe_0.10.21.json"
CALIBRATED = REPO / "training" / "configs" / "data_calibrated.yaml"


def _stats() -> dict:
    return json.loads(STATS.read_text())


def test_the_statistics_file_loads_and_validates():
    from training.data.detector_calibrated import CalibratedModel, file_hash, load_model

    data = _stats()
    assert data["hash"] == file_hash(data), "the file was edited after it was written: rerun the tool"
    assert data["count"] >= 2000 and data["versions"]["mediapipe"] == "0.10.21"
    assert data["command"].startswith("python -m training.calibrate")
    stats = data["statistics"]
    assert {"detection", "keypoints_2d", "visibility", "swaps", "world", "mask", "crop"} <= set(stats)
    assert 0.8 < stats["detection"]["rate"] <= 1.0
    assert np.asarray(stats["keypoints_2d"]["offset"]).shape == (33, 2)
    model = load_model(str(STATS.relative_to(REPO)))
    assert isinstance(model, CalibratedModel)
    with pytest.raises(ValueError):
        CalibratedModel.from_dict({**data["simulator"], "miss_rate": [1.5, 0, 0, 0]})


def test_the_hand_set_detector_keeps_its_config_and_fingerprint():
    """The shipped checkpoint's data commands used the hand-set detector: its config must not change."""
    from training.data.config import DataConfig, load_data_config

    assert DataConfig().detector.calibration == ""
    assert DataConfig().fingerprint() == "72d99f4d65a6ced2"
    assert load_data_config(REPO / "training/configs/data.yaml").fingerprint() == "72d99f4d65a6ced2"
    assert load_data_config(CALIBRATED).detector.calibration


@pytest.fixture(scope="module")
def simulated_statistics():
    """Statistics of 224 engine samples drawn with the calibrated detector (the engine end to end)."""
    import torch

    from training.calibration.records import simulated_detection, truth_records
    from training.calibration.statistics import statistics
    from training.data.config import load_data_config
    from training.data.engine import SampleGenerator

    torch.set_num_threads(1)
    generator = SampleGenerator(load_data_config(CALIBRATED))
    parts = []
    for first in range(0, 224, 32):
        sample = generator.generate(4100001, np.arange(first, first + 32))
        assert "detected" in sample
        parts.append({**truth_records(sample, generator.regressor), **simulated_detection(sample)})
    records = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return statistics(records)


def test_the_calibrated_simulator_reproduces_the_statistics(simulated_statistics):
    """On a small draw, within tolerances that cover its sampling noise (224 people)."""
    from training.calibration.table import summary

    real, sim = summary(_stats()["statistics"]), summary(simulated_statistics)
    tolerances = {
        "world depth-sign agreement, limbs, gap > 5 cm": 0.05,
        "world tilt about camera x, mean deg": 2.0,
        "world scale exponent k": 0.2,
        "P(vis >= 0.5 | occluded)": 0.08,
        "P(vis >= 0.5 | visible)": 0.03,
        "detection rate": 0.05,
        "2D error face, % height": 0.25,
        "mask 1 - IoU, mean": 0.02,
    }
    off = {name: (round(real[name], 4), round(sim[name], 4)) for name, tol in tolerances.items() if abs(real[name] - sim[name]) > tol}
    assert not off, f"real vs simulated beyond tolerance: {off}"


def test_the_calibration_tool_runs_end_to_end_on_the_real_detector(tmp_path):
    try:
        import mediapipe  # noqa: F401
    except ImportError:
        pytest.skip("mediapipe is not installed: cannot run on this machine")
    from training.calibrate import main

    out = tmp_path / "stats.json"
    assert main(["--count", "3", "--workers", "0", "--out", str(out), "--work", str(tmp_path / "work"), "--no-fit"]) == 0
    data = json.loads(out.read_text())
    assert data["count"] == 3 and data["statistics"]["detection"]["count"] == 3
    chunks = list((tmp_path / "work").rglob("chunk_*.npz"))
    assert len(chunks) == 1
    # resumable: a second run reuses the chunk; deterministic: a fresh run gives the same records
    assert main(["--count", "3", "--workers", "0", "--out", str(tmp_path / "again.json"), "--work", str(tmp_path / "work"), "--no-fit"]) == 0
    assert main(["--count", "3", "--workers", "0", "--out", str(tmp_path / "fresh.json"), "--work", str(tmp_path / "fresh"), "--no-fit"]) == 0
    for name in ("again.json", "fresh.json"):
        assert json.dumps(json.loads((tmp_path / name).read_text())["statistics"]) == json.dumps(data["statistics"])
    fresh = next((tmp_path / "fresh").rglob("chunk_*.npz"))
    with np.load(chunks[0]) as a, np.load(fresh) as b:
        assert all(np.array_equal(a[k], b[k], equal_nan=True) for k in a.files)
