"""The data engine's one frozen config, read from YAML (``training/configs/data.yaml`` and friends).

A YAML file holds the fields of ``DataConfig`` at its top level or under a ``data:`` key (so a
training config can embed it); nested sections ``detector:`` and ``population:`` fill
``DetectorConfig`` and ``PopulationMix``. Unknown keys are an error, never silently ignored.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
from typing import Any

from training.data.bodies import PopulationMix
from training.data.detector import DetectorConfig


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """How samples are drawn and stored.

    resolution: side of the square crop in pixels (the network's input size).
    batch_size: samples generated together. Part of the dataset's identity: a sample's bytes depend
        on which batch it was computed in only through this number (kept fixed for bit-identical
        regeneration).
    shard_size: samples per shard file (a multiple of batch_size).
    family_weights: relative frequency of pose families (``training.data.poses.FAMILY_WEIGHTS`` when
        empty).
    framing_weights: full body, legs cut by the frame, a side cut, the head cut.
    loose_bias: in [0, 1], shifts outfits towards loose clothes (the held-out set uses more).
    off_floor_m: (low, high) metres: people of an airborne family (``poses.AIRBORNE_FAMILIES``: jumps) are
        lifted off the floor by a height uniform in it (empty: everyone's lowest point on the floor). The
        photo shows no floor, so this changes the truth's world heights, not the images.
    pose_noise: scale of the per-joint pose variation.
    store_body_mask: also store the body's (unclothed) silhouette.
    store_normals: also store a normal map of the clothed surface (for the RGB variant), uint8.
    vertex_dtype: "float16" (vertices stored relative to the root joint, < 1 mm error) or "float32".
    detector: the simulated detector's error model. population: children and teenager shares.
    """

    resolution: int = 256
    batch_size: int = 32
    shard_size: int = 1024
    family_weights: dict[str, float] = dataclasses.field(default_factory=dict)
    framing_weights: tuple[float, float, float, float] = (0.72, 0.16, 0.09, 0.03)
    loose_bias: float = 0.0
    off_floor_m: tuple[float, ...] = ()
    pose_noise: float = 1.0
    store_body_mask: bool = False
    store_normals: bool = False
    vertex_dtype: str = "float16"
    detector: DetectorConfig = DetectorConfig()
    population: PopulationMix = PopulationMix()

    def __post_init__(self):
        if self.resolution < 32 or self.resolution > 1024:
            raise ValueError(f"resolution must be in [32, 1024], got {self.resolution}")
        if self.batch_size < 1 or self.shard_size % self.batch_size:
            raise ValueError(f"shard_size ({self.shard_size}) must be a multiple of batch_size ({self.batch_size})")
        if self.vertex_dtype not in ("float16", "float32"):
            raise ValueError(f"vertex_dtype must be float16 or float32, got {self.vertex_dtype!r}")
        if len(self.framing_weights) != 4 or min(self.framing_weights) < 0 or sum(self.framing_weights) <= 0:
            raise ValueError("framing_weights must be 4 non-negative numbers (full, cut_legs, cut_side, cut_head)")
        if self.off_floor_m and (len(self.off_floor_m) != 2 or not 0.0 <= self.off_floor_m[0] <= self.off_floor_m[1]):
            raise ValueError(f"off_floor_m must be empty or (low, high) metres with 0 <= low <= high, got {self.off_floor_m}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def fingerprint(self) -> str:
        """A short hash of every field (recorded in each dataset's manifest). An empty
        ``detector.calibration`` and an empty ``off_floor_m`` are left out, so configs without them keep the
        fingerprint they had before those fields existed."""
        values = self.to_dict()
        if not values["off_floor_m"]:
            del values["off_floor_m"]
        if not values["detector"]["calibration"]:
            del values["detector"]["calibration"]
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


def _build(cls, values: dict[str, Any], where: str):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in {where}; allowed: {sorted(fields)}")
    kwargs = {}
    for name, value in values.items():
        if name == "detector":
            value = _build(DetectorConfig, value or {}, f"{where}.detector")
        elif name == "population":
            value = _build(PopulationMix, value or {}, f"{where}.population")
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def data_config_from_dict(values: dict[str, Any], where: str = "data config") -> DataConfig:
    if "data" in values and isinstance(values["data"], dict):
        values = values["data"]
    return _build(DataConfig, dict(values), where)


def load_data_config(path: str | pathlib.Path | None) -> DataConfig:
    """The config in a YAML file (``None``: the defaults)."""
    if path is None:
        return DataConfig()
    import yaml

    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data config {path} not found")
    values = yaml.safe_load(path.read_text()) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path} must hold a mapping of DataConfig fields")
    return data_config_from_dict(values, str(path))
