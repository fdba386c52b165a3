"""The coarse-to-fine graph hierarchy made from the Anny template, built once and cached.

Levels are Anny's decimated topologies (``notoes_collapse3pc`` 369 vertices, ``notoes_collapse10pc``
1,229 vertices) and then the full mesh (13,718). Decimated vertices do not coincide with full-mesh
vertices (edge collapses move them; measured: nearest full vertex 3 mm median, 20 mm max, and their
``base_mesh_vertex_indices`` are just 0..N-1), so every relation between levels is an interpolation:
each vertex of a finer level is written as an inverse-distance blend of its 3 nearest vertices of the
coarser level, both in Anny's raw template frame. The same blend from the full mesh gives each coarse
level's template (so all levels are consistent views of one body).

Frame of the templates: the *canonical camera frame* (OpenCV axes: x right, y down, z away from the
camera; metres), the default-shape rest body facing the camera, pelvis at the origin.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import torch

from munet import paths

log = logging.getLogger(__name__)

HIERARCHY_VERSION = "2"
WORLD_TO_CANONICAL = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])
"""World (Blender, person faces -Y) -> camera looking along +Y at the person: (X, Y, Z) -> (X, -Z, Y)."""


@dataclasses.dataclass
class Level:
    """One graph level. template: (N, 3) float32 canonical frame; faces: (F, 3) int64."""

    name: str
    template: np.ndarray
    faces: np.ndarray


@dataclasses.dataclass
class Hierarchy:
    """levels: coarse to fine, the full mesh last. upsample[i]: (N_{i+1}, N_i) row-stochastic blend
    as (indices (N_{i+1}, 3) int64, weights (N_{i+1}, 3) float32). downsample[i]: the full mesh -> level i
    blend, (N_i, 3) indices and weights (how each level's template, and training targets, are made)."""

    levels: list[Level]
    upsample: list[tuple[np.ndarray, np.ndarray]]
    downsample: list[tuple[np.ndarray, np.ndarray]]
    key: str

    @property
    def sizes(self) -> list[int]:
        return [len(level.template) for level in self.levels]


def blend_weights(source: np.ndarray, target: np.ndarray, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Each target point as an inverse-distance blend of its k nearest source points.

    source: (N, 3); target: (M, 3) -> indices (M, k) int64, weights (M, k) float32 (rows sum to 1).
    """
    from scipy.spatial import cKDTree

    distance, index = cKDTree(source).query(target, k=k)
    inverse = 1.0 / np.maximum(distance, 1e-6)
    weights = inverse / inverse.sum(1, keepdims=True)
    return index.astype(np.int64), weights.astype(np.float32)


def apply_blend(indices: torch.Tensor, weights: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """values (B, N, C) -> (B, M, C) with the blend (indices (M, k), weights (M, k))."""
    return torch.einsum("mk,bmkc->bmc", weights.to(values.dtype), values[:, indices])


def normalized_adjacency(faces: np.ndarray, count: int) -> torch.Tensor:
    """Symmetric-normalised adjacency with self loops, D^-1/2 (A + I) D^-1/2, sparse COO (N, N)."""
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges = np.concatenate([edges, edges[:, ::-1], np.stack([np.arange(count)] * 2, 1)])
    edges = np.unique(edges, axis=0)
    degree = np.bincount(edges[:, 0], minlength=count).astype(np.float64)
    values = 1.0 / np.sqrt(degree[edges[:, 0]] * degree[edges[:, 1]])
    return torch.sparse_coo_tensor(torch.from_numpy(edges.T.copy()), torch.from_numpy(values).float(), (count, count), check_invariants=False).coalesce()


def _build(levels: tuple[str, ...]) -> dict[str, np.ndarray]:
    paths.configure_third_party_caches()
    import anny

    from munet.body.anny_model import AnnyBody, load_anny_raw

    raw_full = load_anny_raw().template_vertices.detach().double().numpy().reshape(-1, 3)
    body = AnnyBody()
    with torch.no_grad():
        rest_v, rest_j = body.rest(body.default_shape)
    full = (rest_v[0].double().numpy() - rest_j[0, 0].double().numpy()) @ WORLD_TO_CANONICAL.T
    arrays: dict[str, np.ndarray] = {"full_faces": body.faces.numpy().astype(np.int64), "full_template": full.astype(np.float32)}
    raws = []
    for i, name in enumerate(levels):
        model = anny.Anny(topology=name)
        raw = model.template_vertices.detach().double().numpy().reshape(-1, 3)
        raws.append(raw)
        down_i, down_w = blend_weights(raw_full, raw)  # coarse vertex from full-mesh neighbours
        arrays[f"level{i}_template"] = np.einsum("mk,mkc->mc", down_w, full[down_i]).astype(np.float32)
        arrays[f"down{i}_indices"], arrays[f"down{i}_weights"] = down_i, down_w
        arrays[f"level{i}_faces"] = model.get_triangular_faces().numpy().astype(np.int64)
    raws.append(raw_full)
    for i in range(len(levels)):
        idx, w = blend_weights(raws[i], raws[i + 1])
        arrays[f"up{i}_indices"], arrays[f"up{i}_weights"] = idx, w
    return arrays


def load_hierarchy(levels: tuple[str, ...] = ("notoes_collapse3pc", "notoes_collapse10pc")) -> Hierarchy:
    """The hierarchy for these Anny topologies (built in a few seconds once, then read from the cache)."""
    from munet.body.anny_model import ANNY_VERSION

    key = paths.content_hash("munet-hierarchy", HIERARCHY_VERSION, ANNY_VERSION, *levels)
    path = paths.cache_dir() / f"hierarchy-{key}.npz"
    if path.exists():
        arrays = dict(np.load(path))
    else:
        log.info("Building the MuNet graph hierarchy (%s; once)...", ", ".join(levels))
        arrays = _build(tuple(levels))
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)
    built = [Level(name, arrays[f"level{i}_template"], arrays[f"level{i}_faces"]) for i, name in enumerate(levels)]
    built.append(Level("full", arrays["full_template"], arrays["full_faces"]))
    upsample = [(arrays[f"up{i}_indices"], arrays[f"up{i}_weights"]) for i in range(len(levels))]
    downsample = [(arrays[f"down{i}_indices"], arrays[f"down{i}_weights"]) for i in range(len(levels))]
    return Hierarchy(built, upsample, downsample, key)


def template_hash(hierarchy: Hierarchy) -> str:
    """A hash of the templates and topologies (recorded in checkpoints, checked when loading)."""
    parts = []
    for level in hierarchy.levels:
        parts += [np.round(level.template, 5).astype(np.float32).tobytes(), level.faces.astype(np.int64).tobytes()]
    return paths.content_hash(*parts)
