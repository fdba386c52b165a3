"""The one frozen config of a MuNet model (saved beside its checkpoint and reloaded from there)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class MuNetConfig:
    """Architecture of the MuNet graph network (DESIGN.md §3).

    input_size: side of the square network input (crop resized to it), pixels.
    heatmap_sigma: keypoint heatmap Gaussian sigma, input pixels.
    encoder_channels: output channels of the strided conv stages (each halves the resolution).
    feature_stages: indices of the encoder stages whose maps are sampled at projected vertices.
    global_dim: size of the pooled global feature (also feeds the camera head).
    levels: Anny topologies of the graph hierarchy, coarse to fine (the full mesh comes last, implicit).
    body_hidden / body_blocks: width and number of graph conv blocks of each body level (coarse to fine).
    clothed_hidden / clothed_blocks: width and number of graph conv blocks of the clothed stage, which
        works on the finest graph level and is upsampled to the full mesh.
    keypoint_dim: width of the keypoint branch, an MLP on the 33 keypoints read back from their heatmaps
        (soft-argmax position + peak = visibility); 0 turns it off (the CNN alone reads the heatmaps).
    world_keypoints: the keypoint branch also reads the detector's metric 3D keypoints (MediaPipe's world
        landmarks, the ones the fitting's bone-direction term uses; zero where a keypoint is not seen).
    coarse_decoder: a linear decoder from the global feature to the coarsest level's vertices, so the
        graph blocks start from a posed body instead of the rest template.
    body_model: the body model whose template and topology the graphs come from.
    """

    input_size: int = 128
    heatmap_sigma: float = 2.0
    encoder_channels: tuple[int, ...] = (16, 32, 48, 64, 96)
    feature_stages: tuple[int, ...] = (2, 3)
    global_dim: int = 256
    levels: tuple[str, ...] = ("notoes_collapse3pc", "notoes_collapse10pc")
    body_hidden: tuple[int, ...] = (96, 48)
    body_blocks: tuple[int, ...] = (2, 1)
    clothed_hidden: int = 48
    clothed_blocks: int = 1
    keypoint_dim: int = 256
    world_keypoints: bool = True
    coarse_decoder: bool = True
    body_model: str = "anny"

    @property
    def in_channels(self) -> int:
        return 1 + 33  # mask + 33 MediaPipe keypoint heatmaps

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "MuNetConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"unknown MuNet config keys {sorted(unknown)}; known: {sorted(names)}")
        fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**fixed)
