"""MuNet: image encoder, graph conv blocks, body stage (with camera), clothed stage.

Frames and units (shared by every tensor here):
* network input: (B, 1 + 33, S, S) -- the crop's soft mask and 33 keypoint heatmaps, S = config.input_size.
* 3D outputs: the *canonical camera frame* -- OpenCV axes (x right, y down, z away), metres, relative
  to the body's pelvis (``munet.network.hierarchy``).
* camera: weak perspective (B, 3) = (s, tx, ty): a root-relative point X projects to normalised crop
  coordinates ``s * X[:2] + (tx, ty)`` in [-1, 1] (grid_sample convention, align_corners=False;
  ``munet.geometry.projection.project_weak_perspective``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from munet.geometry.projection import project_weak_perspective
from munet.network.config import MuNetConfig
from munet.network.hierarchy import Hierarchy, apply_blend, load_hierarchy, normalized_adjacency


@dataclasses.dataclass
class MuNetOutput:
    """body_vertices / clothed_vertices: (B, V, 3) full mesh, canonical camera frame, metres, pelvis-relative
    (None when ``forward(..., full_resolution=False)``; the full mesh is a fixed blend of the finest level).
    body_levels: the body at each graph level [(B, N_i, 3)]. clothed_finest: (B, N_last, 3) the clothed
    surface at the finest graph level. camera: (B, 3) weak perspective (s, tx, ty). The clothed fields are
    None when the clothed stage is off. body_detached: the forward pass cut the clothed stage off the body
    stage and the shared encoder (``forward(..., detach_body=True)``); the losses then read the body and
    the camera detached too (``training.losses.compute_losses``)."""

    body_vertices: torch.Tensor | None
    clothed_vertices: torch.Tensor | None
    body_levels: list[torch.Tensor]
    clothed_finest: torch.Tensor | None
    camera: torch.Tensor
    body_detached: bool = False


def sample_features(maps: list[torch.Tensor], uv: torch.Tensor) -> torch.Tensor:
    """Pixel-aligned features: maps [(B, C_i, H_i, W_i)], uv (B, N, 2) in [-1, 1] -> (B, N, sum C_i)."""
    grid = uv.clamp(-1.5, 1.5)[:, :, None, :]
    return torch.cat([F.grid_sample(m, grid, align_corners=False, padding_mode="zeros")[..., 0].transpose(1, 2) for m in maps], -1)


class Encoder(nn.Module):
    """A compact CNN trained from scratch: strided conv stages (each halves the resolution)."""

    def __init__(self, in_channels: int, channels: tuple[int, ...], global_dim: int):
        super().__init__()
        stages, previous = [], in_channels
        for c in channels:
            layers = [nn.Conv2d(previous, c, 3, 2, 1, bias=False), nn.GroupNorm(8, c), nn.ReLU(inplace=True)]
            if len(stages) >= 2:  # the two high-resolution stages keep a single conv (CPU budget)
                layers += [nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.GroupNorm(8, c), nn.ReLU(inplace=True)]
            stages.append(nn.Sequential(*layers))
            previous = c
        self.stages = nn.ModuleList(stages)
        self.head = nn.Sequential(nn.Linear(previous, global_dim), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        maps = []
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        return maps, self.head(x.mean((2, 3)))


def read_keypoints(heatmaps: torch.Tensor) -> torch.Tensor:
    """The keypoints back from their heatmaps (B, K, S, S): (B, K, 3) = soft-argmax position in normalised
    crop coordinates ([-1, 1]) and the peak (the visibility the heatmap was scaled by). Parameter-free."""
    size = heatmaps.shape[-1]
    centres = (torch.arange(size, dtype=heatmaps.dtype, device=heatmaps.device) + 0.5) * (2.0 / size) - 1.0
    total = heatmaps.sum((2, 3)).clamp_min(1e-6)
    x = (heatmaps.sum(2) * centres).sum(-1) / total
    y = (heatmaps.sum(3) * centres).sum(-1) / total
    peak = heatmaps.amax((2, 3))
    return torch.stack([x * (peak > 1e-3), y * (peak > 1e-3), peak], -1)


class GraphConv(nn.Module):
    """X' = A_norm X W_n + X W_s (A_norm: symmetric-normalised mesh adjacency with self loops)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.neighbour = nn.Linear(cin, cout, bias=False)
        self.self_ = nn.Linear(cin, cout)

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        mixed = torch.sparse.mm(adjacency, x.transpose(0, 1).reshape(n, b * c)).reshape(n, b, c).transpose(0, 1)
        return self.neighbour(mixed) + self.self_(x)


class GraphBlock(nn.Module):
    """Residual graph block: reads pixel-aligned features at the current projection, outputs a vertex delta."""

    def __init__(self, hidden: int, pixel_dim: int):
        super().__init__()
        self.inject = nn.Linear(pixel_dim + 3, hidden)
        self.conv1, self.conv2 = GraphConv(hidden, hidden), GraphConv(hidden, hidden)
        self.norm1, self.norm2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.delta = nn.Linear(hidden, 3)
        nn.init.zeros_(self.delta.weight)
        nn.init.zeros_(self.delta.bias)

    def forward(self, h, xyz, pixel, adjacency):
        h = h + self.inject(torch.cat([pixel, xyz], -1))
        y = F.relu(self.norm1(self.conv1(h, adjacency)))
        h = F.relu(self.norm2(h + self.conv2(y, adjacency)))
        return h, xyz + self.delta(h)


class MuNet(nn.Module):
    """The whole network: encoder -> body stage (coarse to fine, camera) -> clothed stage."""

    def __init__(self, config: MuNetConfig = MuNetConfig(), hierarchy: Hierarchy | None = None, clothed: bool = True):
        super().__init__()
        self.config = config
        self.hierarchy = hierarchy or load_hierarchy(config.levels)
        self.clothed_enabled = clothed
        levels = self.hierarchy.levels
        for i, level in enumerate(levels):
            self.register_buffer(f"template{i}", torch.from_numpy(level.template), persistent=False)
        for i, (idx, w) in enumerate(self.hierarchy.upsample):
            self.register_buffer(f"up_idx{i}", torch.from_numpy(idx), persistent=False)
            self.register_buffer(f"up_w{i}", torch.from_numpy(w), persistent=False)
        self._adjacency = [normalized_adjacency(level.faces, len(level.template)) for level in levels[:-1]]
        self._adjacency_on: dict[tuple[int, str], torch.Tensor] = {}  # (level, device) -> the adjacency there
        # each finer template's detail that the coarser level cannot carry (added back after upsampling)
        for i in range(len(levels) - 1):
            with torch.no_grad():
                up = apply_blend(getattr(self, f"up_idx{i}"), getattr(self, f"up_w{i}"), getattr(self, f"template{i}")[None])[0]
            self.register_buffer(f"detail{i + 1}", getattr(self, f"template{i + 1}") - up, persistent=False)

        self.encoder = Encoder(config.in_channels, config.encoder_channels, config.global_dim)
        pixel_dim = sum(config.encoder_channels[i] for i in config.feature_stages)
        g, hb, hc = config.global_dim, config.body_hidden, config.clothed_hidden
        self.keypoint_branch = None
        if config.keypoint_dim:
            k = config.keypoint_dim
            inputs = 33 * 3 * (2 if config.world_keypoints else 1)
            self.keypoint_branch = nn.Sequential(nn.Linear(inputs, k), nn.ReLU(inplace=True), nn.Linear(k, k),
                                                 nn.ReLU(inplace=True))
            self.fuse = nn.Sequential(nn.Linear(g + k, g), nn.ReLU(inplace=True))
        self.coarse = None
        if config.coarse_decoder:
            self.coarse = nn.Linear(g, 3 * len(levels[0].template))
            nn.init.zeros_(self.coarse.weight)
            nn.init.zeros_(self.coarse.bias)
        if len(hb) != len(levels) - 1 or len(config.body_blocks) != len(levels) - 1:
            raise ValueError(f"body_hidden and body_blocks need one entry per graph level ({len(levels) - 1})")
        self.camera_head = nn.Sequential(nn.Linear(g, 128), nn.ReLU(inplace=True), nn.Linear(128, 3))
        self.lift = nn.Linear(g + 3, hb[0])
        self.body_blocks = nn.ModuleList(
            nn.ModuleList(GraphBlock(hb[i], pixel_dim) for _ in range(config.body_blocks[i])) for i in range(len(levels) - 1))
        self.level_proj = nn.ModuleList(nn.Linear(hb[i], hb[i + 1]) for i in range(len(levels) - 2))
        hb = hb[-1]
        self.clothed_in = nn.Linear(hb + g, hc)
        self.clothed_blocks = nn.ModuleList(GraphBlock(hc, pixel_dim) for _ in range(config.clothed_blocks))
        self.clothed_offset = nn.Linear(hc, 3)
        nn.init.zeros_(self.clothed_offset.weight)
        nn.init.zeros_(self.clothed_offset.bias)

    def _graph(self, level: int, device: torch.device) -> torch.Tensor:
        """Graph level ``level``'s normalised adjacency (sparse (N, N)) on ``device``, moved there once."""
        key = (level, str(device))
        if key not in self._adjacency_on:
            self._adjacency_on[key] = self._adjacency[level].to(device)
        return self._adjacency_on[key]

    def _upsample(self, i: int, values: torch.Tensor) -> torch.Tensor:
        return apply_blend(getattr(self, f"up_idx{i}"), getattr(self, f"up_w{i}"), values)

    def forward(self, image: torch.Tensor, world: torch.Tensor | None = None, detach_body: bool = False,
                full_resolution: bool = True) -> MuNetOutput:
        """image: (B, 34, S, S) float32 (``munet.network.inputs.make_input``); world: (B, 33, 3) the
        detector's 3D keypoints (``make_world_input``), required when ``config.world_keypoints``.
        detach_body: the ablation (the published code's behaviour): no gradient from the clothed stage
        reaches the body stage or the shared encoder -- the clothed stage reads the body, its hidden
        state, the camera, the global feature and the pixel features all detached. full_resolution: also
        blend the full mesh (training supervises the finest graph level and skips it)."""
        maps, global_feature = self.encoder(image)
        if self.keypoint_branch is not None:
            keypoints = read_keypoints(image[:, 1:]).flatten(1)
            if self.config.world_keypoints:
                if world is None:
                    raise ValueError("this MuNet reads the detector's 3D keypoints: pass world= (make_world_input)")
                keypoints = torch.cat([keypoints, world.flatten(1)], 1)
            global_feature = self.fuse(torch.cat([global_feature, self.keypoint_branch(keypoints)], 1))
        pixel_maps = [maps[i] for i in self.config.feature_stages]
        raw = self.camera_head(global_feature)
        # s ~ 1 / (half the crop in metres): a 1.7 m person fills ~75 % of the crop -> s ~ 0.9
        camera = torch.cat([F.softplus(raw[:, :1] + 0.5) + 0.05, raw[:, 1:]], 1)
        batch = image.shape[0]
        xyz = self.template0[None].expand(batch, -1, -1)
        if self.coarse is not None:
            xyz = xyz + self.coarse(global_feature).view(batch, -1, 3)
        h = self.lift(torch.cat([global_feature[:, None].expand(-1, xyz.shape[1], -1), xyz], -1))
        body_levels = []
        finest = len(self.body_blocks) - 1
        for i, blocks in enumerate(self.body_blocks):
            for block in blocks:
                pixel = sample_features(pixel_maps, project_weak_perspective(xyz, camera))
                h, xyz = block(h, xyz, pixel, self._graph(i, xyz.device))
            body_levels.append(xyz)
            if i < finest:
                xyz, h = self._upsample(i, xyz) + getattr(self, f"detail{i + 1}"), self.level_proj[i](self._upsample(i, h))
        detail = getattr(self, f"detail{finest + 1}")
        body_full = self._upsample(finest, xyz) + detail if full_resolution else None
        clothed = clothed_finest = None
        if self.clothed_enabled:
            clothed_finest, offsets = self._clothed(h, xyz, camera, global_feature, pixel_maps, detach_body)
            if full_resolution:
                clothed = (body_full.detach() if detach_body else body_full) + self._upsample(finest, offsets)
        return MuNetOutput(body_full, clothed, body_levels, clothed_finest, camera, bool(detach_body and self.clothed_enabled))

    def _clothed(self, h: torch.Tensor, xyz: torch.Tensor, camera: torch.Tensor, global_feature: torch.Tensor,
                 pixel_maps: list[torch.Tensor], detach_body: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The clothed stage on the finest graph level: (clothed vertices (B, N_last, 3), their offsets from
        the body (B, N_last, 3)), canonical camera frame, metres. h: (B, N_last, H) the body's hidden state;
        xyz: (B, N_last, 3) the body. With ``detach_body`` every input is detached, so the clothed losses
        train the clothed stage's own parameters only."""
        if detach_body:
            h, xyz, camera, global_feature = h.detach(), xyz.detach(), camera.detach(), global_feature.detach()
            pixel_maps = [m.detach() for m in pixel_maps]
        c = self.clothed_in(torch.cat([h, global_feature[:, None].expand(-1, h.shape[1], -1)], -1))
        cxyz = xyz
        adjacency = self._graph(len(self.body_blocks) - 1, xyz.device)
        for block in self.clothed_blocks:
            pixel = sample_features(pixel_maps, project_weak_perspective(cxyz, camera))
            c, cxyz = block(c, cxyz, pixel, adjacency)
        offsets = cxyz - xyz + self.clothed_offset(c)
        return xyz + offsets, offsets


def parameter_count(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))
