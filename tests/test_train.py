"""MuNet training: camera targets, a few steps, resuming, DDP on gloo with 2 processes, configs."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest
import torch
import yaml

from training.losses import weak_perspective_fit
from training.train import load_config, train

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
    base["train"].update({"batch_size": 2, "max_samples": 4, "warmup_steps": 1, "workers": 0, "chamfer_points": 64,
                          "out": str(root / "run")})
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(base))
    return root, config


def test_train_runs_and_resumes(tiny_setup):
    root, config = tiny_setup
    summary = train(str(config), out=str(root / "single"))
    assert summary["samples_seen"] == 4
    lines = (root / "single" / "scalars.jsonl").read_text().splitlines()
    assert lines and "clothed_chamfer" in json.loads(lines[0])
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
