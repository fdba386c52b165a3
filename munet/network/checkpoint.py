"""Checkpoints: safetensors weights + a JSON file of metadata beside them (never unpickled).

``NAME.safetensors`` holds the weights; ``NAME.json`` holds ``config`` (``MuNetConfig``), ``body_model``,
``template_hash`` (checked at load), and whatever the trainer adds (training command, commit, samples
seen, metrics).
"""

from __future__ import annotations

import json
import pathlib

import torch

from munet.errors import CheckpointError
from munet.network.config import MuNetConfig
from munet.network.hierarchy import template_hash
from munet.network.model import MuNet


BEFORE_KEYPOINT_BRANCH = {"keypoint_dim": 0, "world_keypoints": False, "coarse_decoder": False}
"""What a checkpoint whose config predates these keys was trained with (they are filled in on load)."""


def metadata_path(weights: str | pathlib.Path) -> pathlib.Path:
    return pathlib.Path(weights).with_suffix(".json")


def save_checkpoint(model: MuNet, path: str | pathlib.Path, metadata: dict | None = None) -> None:
    """Write ``path`` (.safetensors) and its JSON metadata atomically."""
    from safetensors.torch import save_file

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": "munet-checkpoint/1", "config": model.config.to_dict(), "body_model": model.config.body_model,
            "template_hash": template_hash(model.hierarchy), "clothed": model.clothed_enabled, **(metadata or {})}
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata={"format": "munet-checkpoint/1"})
    tmp.replace(path)
    tmp_meta = path.with_name(path.stem + ".json.tmp")
    tmp_meta.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    tmp_meta.replace(metadata_path(path))


def read_metadata(path: str | pathlib.Path) -> dict:
    meta = metadata_path(path)
    if not meta.exists():
        raise CheckpointError(f"checkpoint metadata {meta} is missing: a MuNet checkpoint is NAME.safetensors + NAME.json")
    return json.loads(meta.read_text())


def load_checkpoint(path: str | pathlib.Path) -> tuple[MuNet, dict]:
    """(model in eval mode on CPU, metadata). Raises ``CheckpointError`` naming the problem."""
    from safetensors.torch import load_file

    path = pathlib.Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} not found; train one with `python -m training.train` or leave it unset")
    meta = read_metadata(path)
    config = MuNetConfig.from_dict({**BEFORE_KEYPOINT_BRANCH, **meta["config"]})
    model = MuNet(config, clothed=bool(meta.get("clothed", True)))
    if meta.get("template_hash") != template_hash(model.hierarchy):
        raise CheckpointError(f"checkpoint {path} was trained on another template/topology "
                         f"({meta.get('template_hash')} != {template_hash(model.hierarchy)}); retrain it")
    model.load_state_dict(load_file(str(path)), strict=True)
    model.eval()
    return model, meta
