"""MuNet network: hierarchy, forward shapes, mutualistic gradient, checkpoint round trip, inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from munet.network import MuNet, MuNetConfig
from munet.network.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from munet.network.hierarchy import apply_blend, load_hierarchy
from munet.network.inputs import make_input
from munet.network.model import read_keypoints

SMALL = MuNetConfig(encoder_channels=(8, 8, 16, 16, 16), global_dim=32, body_hidden=(16, 16), clothed_hidden=16)


@pytest.fixture(scope="module")
def hierarchy():
    return load_hierarchy(SMALL.levels)


def test_hierarchy_levels_are_consistent(hierarchy):
    assert hierarchy.sizes == [369, 1229, 13718]
    for (idx, w), fine in zip(hierarchy.upsample, hierarchy.sizes[1:]):
        assert idx.shape == (fine, 3) and np.allclose(w.sum(1), 1.0, atol=1e-5)
    # the upsampled 1,229-vertex template is close to the full template (fingers excepted)
    idx, w = hierarchy.upsample[1]
    up = apply_blend(torch.from_numpy(idx), torch.from_numpy(w), torch.from_numpy(hierarchy.levels[1].template)[None])[0]
    error = (up - torch.from_numpy(hierarchy.levels[2].template)).norm(dim=-1)
    assert float(error.median()) < 0.01


def test_forward_shapes_and_initial_template(hierarchy):
    model = MuNet(SMALL, hierarchy).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 34, 128, 128), torch.randn(2, 33, 3) * 0.3)
    assert out.body_vertices.shape == (2, 13718, 3) and out.clothed_vertices.shape == (2, 13718, 3)
    assert out.camera.shape == (2, 3) and bool((out.camera[:, 0] > 0).all())
    # vertex deltas start at zero: the untrained network returns the template
    assert torch.allclose(out.body_levels[0][0], model.template0, atol=1e-6)
    assert torch.allclose(out.body_vertices[0], model.template2, atol=1e-5)


@pytest.mark.parametrize("detach", [False, True])
def test_clothed_loss_reaches_body_stage_unless_detached(hierarchy, detach):
    torch.manual_seed(0)
    model = MuNet(SMALL, hierarchy)
    for block in model.body_blocks[0]:  # leave the zero init so the body depends on the encoder
        torch.nn.init.normal_(block.delta.weight, std=0.01)
    out = model(torch.rand(1, 34, 128, 128), torch.randn(1, 33, 3) * 0.3, detach_body=detach)
    out.clothed_vertices.square().sum().backward()
    body_grad = model.body_blocks[0][0].conv1.self_.weight.grad
    assert (body_grad is None or float(body_grad.abs().sum()) == 0.0) == detach


CLOTHED_STAGE = ("clothed_in.", "clothed_blocks.", "clothed_offset.")


def _clothed_loss_gradients(hierarchy, detach: bool) -> dict[str, torch.Tensor | None]:
    """Each parameter's gradient of the clothed-stage losses alone, through ``compute_losses`` (the
    training wiring), for a model whose zero-initialised outputs are perturbed so every path is live."""
    from munet.body.keypoints import MediaPipeRegressor
    from training.losses import CLOTHED_TERMS, Supervision, Targets, compute_losses

    torch.manual_seed(0)
    model = MuNet(SMALL, hierarchy)
    for name, p in model.named_parameters():
        if p.dim() and float(p.detach().abs().max()) == 0.0:  # vertex deltas, coarse decoder, clothed offsets
            torch.nn.init.normal_(p, std=0.01)
    supervision = Supervision(model, MediaPipeRegressor())
    batch = 2
    body = supervision.levels(model.template2[None].expand(batch, -1, -1) + 0.02 * torch.randn(batch, 13718, 3))
    targets = Targets(body, body[-1] + 0.01 * torch.randn_like(body[-1]), 0.3 * torch.randn(batch, 33, 3),
                      torch.rand(batch, 33, 2) - 0.5, torch.tensor([[0.9, 0.0, 0.1]] * batch),
                      torch.rand(batch, 1, 64, 64))
    out = model(torch.rand(batch, 34, 128, 128), torch.randn(batch, 33, 3) * 0.3, detach_body=detach, full_resolution=False)
    weights = {name: 1.0 for name in CLOTHED_TERMS}
    loss, terms = compute_losses(out, targets, weights, supervision, 64, torch.Generator().manual_seed(0))
    assert set(CLOTHED_TERMS) <= set(terms) and float(terms["inside"]) > 0 and float(terms["silhouette"]) > 0
    loss.backward()
    return {name: p.grad for name, p in model.named_parameters()}


def _is_zero(grad: torch.Tensor | None) -> bool:
    return grad is None or not bool(grad.any())


def test_detached_ablation_keeps_every_clothed_loss_off_the_body_stage(hierarchy):
    grads = _clothed_loss_gradients(hierarchy, detach=True)
    leaking = [name for name, g in grads.items() if not name.startswith(CLOTHED_STAGE) and not _is_zero(g)]
    assert not leaking, f"clothed losses reach body-stage / shared parameters: {leaking}"
    clothed = [name for name in grads if name.startswith(CLOTHED_STAGE)]
    assert clothed and all(not _is_zero(grads[name]) for name in clothed if not name.endswith("delta.bias"))


def test_mutualistic_clothed_losses_reach_every_body_stage_module(hierarchy):
    grads = _clothed_loss_gradients(hierarchy, detach=False)
    modules = {name.split(".")[0] for name in grads if not name.startswith(CLOTHED_STAGE)}
    assert {"encoder", "camera_head", "body_blocks", "lift", "coarse", "fuse", "keypoint_branch"} <= modules
    reached = {name.split(".")[0] for name, g in grads.items() if not name.startswith(CLOTHED_STAGE) and not _is_zero(g)}
    assert reached == modules, f"no clothed gradient into {sorted(modules - reached)}"
    assert not _is_zero(grads["camera_head.2.weight"]) and not _is_zero(grads["encoder.stages.0.0.weight"])


def test_checkpoint_round_trip(hierarchy, tmp_path):
    model = MuNet(SMALL, hierarchy).eval()
    path = tmp_path / "m.safetensors"
    save_checkpoint(model, path, {"samples_seen": 3})
    loaded, meta = load_checkpoint(path)
    assert meta["samples_seen"] == 3 and meta["config"]["global_dim"] == 32 and read_metadata(path)["template_hash"]
    x, world = torch.rand(1, 34, 128, 128), torch.randn(1, 33, 3) * 0.3
    with torch.no_grad():
        assert torch.allclose(model(x, world).clothed_vertices, loaded(x, world).clothed_vertices)


def test_checkpoint_with_another_template_is_refused(hierarchy, tmp_path):
    import json

    from munet.errors import CheckpointError

    path = tmp_path / "m.safetensors"
    save_checkpoint(MuNet(SMALL, hierarchy), path)
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["template_hash"] = "0" * 16
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="another template"):
        load_checkpoint(path)


def test_make_input_heatmap_peaks_at_keypoints():
    mask = torch.zeros(1, 256, 256)
    mask[:, 64:192, 96:160] = 1.0
    keypoints = torch.full((1, 33, 2), 128.0)
    keypoints[0, 0] = torch.tensor([64.5, 32.5])  # crop pixels of a 256 crop -> (32.25, 16.25) at 128
    visibility = torch.ones(1, 33)
    visibility[0, 1] = 0.0
    image = make_input(mask, keypoints, visibility, 128, 2.0)
    assert image.shape == (1, 34, 128, 128)
    peak = int(image[0, 1].argmax())
    assert divmod(peak, 128) == (16, 32)
    assert float(image[0, 2].max()) == 0.0  # invisible keypoint: empty heatmap
    assert abs(float(image[0, 0].mean()) - 128 * 64 / 256**2) < 1e-4
    with pytest.raises(ValueError, match="expected mask"):
        make_input(mask[0], keypoints, visibility, 128, 2.0)


def test_network_reads_keypoints_back_from_heatmaps():
    torch.manual_seed(0)
    keypoints = torch.rand(2, 33, 2) * 200 + 28  # crop pixels of a 256 crop
    visibility = torch.rand(2, 33) * 0.5 + 0.5
    visibility[0, 5] = 0.0
    image = make_input(torch.zeros(2, 256, 256), keypoints, visibility, 128, 2.0)
    read = read_keypoints(image[:, 1:])
    expected = keypoints / 256 * 2 - 1
    seen = visibility > 0
    assert float((read[..., :2] - expected)[seen].abs().max()) < 1e-3  # < 0.1 crop pixel
    ratio = read[..., 2][seen] / visibility[seen]  # the peak: the visibility, less a sub-pixel offset's loss
    assert float(ratio.max()) <= 1.0 + 1e-6 and float(ratio.min()) > 0.93
    assert float(read[0, 5].abs().max()) == 0.0  # an invisible keypoint reads as nothing


def test_finest_level_supervision_matches_the_full_mesh(hierarchy):
    from munet.body.keypoints import MediaPipeRegressor
    from training.losses import Supervision

    torch.manual_seed(1)
    model = MuNet(SMALL, hierarchy).eval()
    for block in model.body_blocks[-1]:
        torch.nn.init.normal_(block.delta.weight, std=0.05)
    x, world = torch.rand(2, 34, 128, 128), torch.randn(2, 33, 3) * 0.3
    with torch.no_grad():
        full, fast = model(x, world), model(x, world, full_resolution=False)
    assert fast.body_vertices is None and fast.clothed_vertices is None
    assert torch.allclose(full.body_levels[-1], fast.body_levels[-1]) and torch.allclose(full.clothed_finest, fast.clothed_finest)
    regressor = MediaPipeRegressor()
    supervision = Supervision(model, regressor)
    # landmarks straight from the finest level equal those of the full mesh it blends to
    assert torch.allclose(supervision.landmarks(fast.body_levels[-1]), regressor(full.body_vertices), atol=1e-5)
    # ground truth blended down to each level lands on that level's template
    levels = supervision.levels(model.template2[None])
    assert [tuple(level.shape[1:]) for level in levels] == [(369, 3), (1229, 3)]
    assert float((levels[0][0] - model.template0).norm(dim=-1).max()) < 1e-5


def test_checkpoint_from_before_the_keypoint_branch_still_loads(hierarchy, tmp_path):
    import dataclasses
    import json

    old = dataclasses.replace(SMALL, keypoint_dim=0, world_keypoints=False, coarse_decoder=False)
    model = MuNet(old, hierarchy).eval()
    path = tmp_path / "old.safetensors"
    save_checkpoint(model, path)
    meta = json.loads(path.with_suffix(".json").read_text())
    for key in ("keypoint_dim", "world_keypoints", "coarse_decoder"):
        del meta["config"][key]
    path.with_suffix(".json").write_text(json.dumps(meta))
    loaded, _ = load_checkpoint(path)
    assert loaded.keypoint_branch is None and loaded.coarse is None
    with torch.no_grad():
        assert loaded(torch.rand(1, 34, 128, 128)).body_vertices.shape == (1, 13718, 3)  # no 3D keypoints needed


def test_world_keypoints_enter_in_the_canonical_frame_and_are_required(hierarchy):
    from munet.network.inputs import make_world_input

    world = torch.zeros(1, 33, 3)
    world[0, 0] = torch.tensor([0.1, 0.2, 0.6])  # nose: right, away, up (camera-aligned Blender frame)
    seen = torch.ones(1, 33, dtype=torch.bool)
    seen[0, 1] = False
    world[0, 1] = 5.0
    canonical = make_world_input(world, seen)
    assert torch.allclose(canonical[0, 0], torch.tensor([0.1, -0.6, 0.2]))  # OpenCV axes: y down, z away
    assert float(canonical[0, 1].abs().max()) == 0.0  # unseen: MediaPipe invents those, the network gets zeros
    with pytest.raises(ValueError, match="3D keypoints"):
        MuNet(SMALL, hierarchy)(torch.rand(1, 34, 128, 128))
