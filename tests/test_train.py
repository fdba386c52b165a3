"""MuNet training: camera targets, a few steps, resuming, DDP on gloo with 2 processes, configs, seed
ranges, devices, logs (JSON lines, TensorBoard, loss-curve PNG)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest
import torch
import yaml

from training import seeds
from training.losses import weak_perspective_fit
from training.train import TrainConfig, load_config, make_loader, resolve_device, train

ROOT = pathlib.Path(__file__).resolve().parents[1]
SMALL_MODEL = {"encoder_channels": [8, 8, 16, 16, 16], "global_dim": 32, "body_hidden": [16, 16], "clothed_hidden": 16}


def test_weak_perspective_fit_recovers_camera():
    points = torch.randn(2, 24, 3, dtype=torch.float64)
    camera = torch.tensor([[0.9, 0.1, -0.2], [1.3, -0.05, 0.0]], dtype=torch.float64)
    uv = camera[:, None, :1] * points[..., :2] + camera[:, None, 1:]
    assert torch.allclose(weak_perspective_fit(points, uv), camera, atol=1e-9)


@pytest.mark.parametrize("name", ["default", "body_only", "detached"])
def test_shipped_configs_parse(name):
    cfg = load_config(str(ROOT / "training" / "configs" / f"{name}.yaml"))
    assert cfg["train"].train_clothed == (name != "body_only")
    assert cfg["train"].detach_body == (name == "detached")


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    """A tiny generated dataset (8 samples, 64 px) and a config training a small model on it."""
    root = tmp_path_factory.mktemp("train")
    data_cfg = root / "data.yaml"
    data_cfg.write_text(yaml.safe_dump({"resolution": 64, "batch_size": 8, "shard_size": 8}))
    subprocess.run([sys.executable, "-m", "training.data.generate", "--config", str(data_cfg), "--out", str(root / "data"),
                    "--count", "8", "--seed", "11", "--workers", "0"], check=True, cwd=ROOT, capture_output=True)  # fmt: skip
    base = yaml.safe_load((ROOT / "training" / "configs" / "default.yaml").read_text())
    base["model"].update(SMALL_MODEL)
    base["data"]["train"] = str(root / "data")
    base["train"].update({"batch_size": 2, "max_samples": 4, "warmup_steps": 1, "workers": 0, "chamfer_points": 64, "device": "cpu",
                          "out": str(root / "run")})
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(base))
    return root, config


def test_train_runs_and_resumes(tiny_setup):
    root, config = tiny_setup
    summary = train(str(config), out=str(root / "single"))
    assert summary["samples_seen"] == 4 and summary["device"] == "cpu"
    lines = (root / "single" / "scalars.jsonl").read_text().splitlines()
    assert lines and "clothed_chamfer" in json.loads(lines[0])
    assert (root / "single" / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(root / "single" / "tensorboard"))
    events.Reload()
    assert {"loss/loss", "loss/pve_m", "terms/clothed_chamfer", "speed/samples_per_s"} <= set(events.Tags()["scalars"])
    resumed = train(str(config), out=str(root / "single"), max_samples=6)
    assert resumed["samples_seen"] == 6 and resumed["steps"] == 3
    meta = json.loads((root / "single" / "last.json").read_text())
    assert meta["samples_seen"] == 6 and meta["commit"] and meta["training_command"]


def test_ddp_two_processes_on_gloo(tiny_setup):
    root, config = tiny_setup
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             "-m", "training.train", "--config", str(config), "--out", str(root / "ddp")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    meta = json.loads((root / "ddp" / "last.json").read_text())
    assert meta["world_size"] == 2 and meta["samples_seen"] == 4


def test_train_with_a_loader_worker_prepares_batches_there(tiny_setup):
    root, config = tiny_setup
    cfg = yaml.safe_load(config.read_text())
    cfg["train"].update({"workers": 1, "tensorboard": False})
    path = root / "worker.yaml"
    path.write_text(yaml.safe_dump(cfg))
    summary = train(str(path), out=str(root / "worker"), device="cpu")
    assert summary["samples_seen"] == 4 and summary["train_config"]["workers"] == 1
    assert not (root / "worker" / "tensorboard").exists()


def test_device_resolution():
    assert resolve_device("auto") == torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    if torch.cuda.is_available():
        assert resolve_device("cuda", local_rank=0) == torch.device("cuda", 0)
    else:
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            resolve_device("cuda")


def test_seed_ranges_are_disjoint_and_named():
    ranges = [seeds.TRAIN, *seeds.HELD_OUT]
    for i, a in enumerate(ranges):
        for b in ranges[i + 1:]:
            assert a.end <= b.first or b.end <= a.first
    assert seeds.range_of(2_000_003) is seeds.TEST and seeds.range_of(3_000_001) is seeds.VALIDATION
    assert seeds.range_of(4_000_001) is seeds.CALIBRATION and seeds.range_of(1) is seeds.TRAIN
    assert seeds.check_training_seed(999_999) == 999_999
    for seed in (2_000_003, 3_000_001, 4_000_001, 1_500_000, -1):
        with pytest.raises(seeds.SeedRangeError, match="refused for training"):
            seeds.check_training_seed(seed)


def test_stream_seeds_stay_in_the_training_range_whatever_the_progress():
    """The old derivation ``1 + rank + 1000 * (start // per_rank)`` reached the validation seed 3,000,001
    after 48,000 samples (and the test seed 2,000,003 for rank 2 after 32,000): the seed is now fixed per
    rank and a resumed run continues each rank's stream at a later index."""
    data = {"train": "/nonexistent", "stream_config": str(ROOT / "training" / "configs" / "data.yaml"), "stream_seed": 1}
    for world in (1, 3):
        for samples in (0, 32_000, 48_000, 10**7):
            for rank in range(world):
                _, source = make_loader(data, TrainConfig(batch_size=16, workers=0), rank, world, samples)
                seed = int(source.split("seed ")[1].split(",")[0])
                assert seed == 1 + rank and seed in seeds.TRAIN
                assert f"from index {samples // world // 32 * 32}" in source
    with pytest.raises(seeds.SeedRangeError, match="rank 1"):
        seeds.stream_seeds(999_999, 2)
    with pytest.raises(seeds.SeedRangeError, match="validation"):
        make_loader({**data, "stream_seed": 3_000_001}, TrainConfig(workers=0), 0, 1, 0)


def test_training_refuses_held_out_shards(tiny_setup, tmp_path):
    root, config = tiny_setup
    held_out = tmp_path / "testset_copy"
    held_out.mkdir()
    for path in (root / "data").iterdir():
        (held_out / path.name).write_bytes(path.read_bytes())
    manifest = json.loads((held_out / "manifest.json").read_text())
    manifest["seed"] = 2_000_003
    (held_out / "manifest.json").write_text(json.dumps(manifest))
    cfg = yaml.safe_load(config.read_text())
    cfg["data"]["train"] = [str(root / "data"), str(held_out)]
    path = tmp_path / "leak.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(seeds.SeedRangeError, match="test seeds"):
        train(str(path), out=str(tmp_path / "run"))
    result = subprocess.run([sys.executable, "-m", "training.train", "--config", str(path), "--out", str(tmp_path / "run")],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode != 0 and "error: training shards" in result.stderr and "2,000,003" in result.stderr


def test_generation_refuses_seed_and_config_mixups(tmp_path, capsys):
    from training.data.generate import main as generate

    testset = str(ROOT / "training" / "configs" / "testset.yaml")
    assert generate(["--out", str(tmp_path / "a"), "--seed", "2000003", "--count", "1", "--workers", "0"]) == 2
    assert "test seeds" in capsys.readouterr().err
    assert generate(["--config", testset, "--out", str(tmp_path / "b"), "--seed", "5", "--count", "1", "--workers", "0"]) == 2
    assert "held-out config" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    seeds.check_generation_seed(2_000_003, 2_000_003, "testset.yaml")  # the test set itself
    seeds.check_generation_seed(3_000_001, 2_000_003, "testset.yaml")  # a validation set drawn like the test set
    seeds.check_generation_seed(1, None, "data.yaml")


@pytest.mark.slow
def test_reproduce_end_to_end_then_resumes(tmp_path):
    """The whole recipe on a tiny budget (64 training samples, 16 trained, a test set of 8): data, training,
    ship, evaluation; a second run skips every step."""
    from munet.network.checkpoint import read_metadata
    from training import reproduce

    base = yaml.safe_load((ROOT / "training" / "configs" / "default.yaml").read_text())
    base["model"].update(SMALL_MODEL)
    base["train"].update({"batch_size": 4, "warmup_steps": 1, "workers": 0, "chamfer_points": 64, "log_every_s": 0})
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(base))
    out = tmp_path / "reproduce"
    argv = ["--out", str(out), "--config", str(config), "--budget-samples", "16", "--data-samples", "64", "--test-count", "8",
            "--workers", "1", "--device", "cpu", "--protocol", "2"]
    assert reproduce.main(argv) == 0
    meta = read_metadata(out / "checkpoints" / "munet.safetensors")
    assert meta["samples_seen"] == 16 and meta["reproduce_command"].startswith("python -m training.reproduce --out")
    assert meta["reproduce_budget"]["samples"] == 16 and set(meta["reproduce_budget"]["wall_s"]) >= {"data", "train", "evaluate"}
    assert any("--seed 1" in c and "--count 64" in c for c in meta["data_commands"])
    evaluation = meta["evaluation"][-1]
    means = evaluation["means"]
    assert {"fitting", "network_only", "network"} <= set(means) and all(m["samples"] > 0 for m in means.values())
    assert all(0.0 <= m["detection_rate"] <= 1.0 for m in means.values())
    statistics = json.loads((ROOT / "training" / "calibration" / "mediapipe_0.10.21.json").read_text())
    assert evaluation["protocol_version"] == 2 and evaluation["dataset"]["detector_calibration"]["hash"] == statistics["hash"]
    assert (out / "checkpoints" / "munet.loss.png").exists() and (out / "eval" / "munet.json").exists()
    steps = {p.name: p.read_text() for p in (out / "steps").iterdir()}
    again = subprocess.run([sys.executable, "-m", "training.reproduce", *argv], cwd=ROOT, capture_output=True, text=True,
                           timeout=600)  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    for step in ("data", "train", "ship", "evaluate"):
        assert f"step {step}:" in again.stderr and "skipped" in again.stderr
    assert "running:" not in again.stderr
    assert {p.name: p.read_text() for p in (out / "steps").iterdir()} == steps
