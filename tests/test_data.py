"""The synthetic data engine: determinism, poses, clothing (body inside, skirts bridging), detector
simulation (visibility, frame bounds, crops), shards and the generate command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from training.data import clothing, detector, poses
from training.data.config import DataConfig, data_config_from_dict, load_data_config
from munet.geometry.raster import rasterize
from munet.geometry.mesh import vertex_normals_torch as vertex_normals
from munet.geometry.projection import project_pinhole as project

SMALL = DataConfig(resolution=128, batch_size=4, shard_size=8, store_body_mask=True)


@pytest.fixture(scope="module")
def generator():
    from training.data.engine import SampleGenerator

    torch.set_num_threads(1)
    return SampleGenerator(SMALL)


@pytest.fixture(scope="module")
def batch(generator):
    return generator.generate(5, np.arange(4))


def test_same_seed_same_bytes_other_seed_other_samples(generator, batch):
    again = generator.generate(5, np.arange(4))
    assert batch.keys() == again.keys()
    for key in batch:
        assert np.array_equal(batch[key], again[key]), key
    other = generator.generate(6, np.arange(4))
    assert not np.allclose(other["body_vertices_m"], batch["body_vertices_m"])


def test_sample_fields_shapes_and_frames(batch):
    from training.data.sample import DETECTOR_FIELDS, TRUTH_FIELDS

    assert set(DETECTOR_FIELDS + TRUTH_FIELDS) <= set(batch)
    n, res = 4, SMALL.resolution
    assert batch["mask"].shape == (n, res, res) and batch["mask"].dtype == np.float32
    assert 0.0 <= batch["mask"].min() and batch["mask"].max() <= 1.0
    assert batch["body_vertices_m"].shape == (n, 13718, 3)
    assert batch["keypoints_crop"].shape == (n, 33, 2)
    assert np.array_equal(batch["seen"], batch["in_frame"] & (batch["visibility"] >= 0.5))
    # feet on the floor (the lowest body vertex at z = 0), everything in front of the camera
    assert np.allclose(batch["body_vertices_m"][..., 2].min(1), 0.0, atol=1e-5)
    from training.data.sample import to_camera

    assert (to_camera(batch["clothed_vertices_m"], batch)[..., 2] > 0.3).all()
    # the crop's intrinsics are the crop transform of the photo's
    for k in range(n):
        side, (cx, cy) = batch["crop_side_px"][k], batch["crop_center_px"][k]
        s = res / side
        crop = np.array([[s, 0, -s * (cx - side / 2)], [0, s, -s * (cy - side / 2)], [0, 0, 1]])
        assert np.allclose(crop @ batch["K"][k], batch["K_crop"][k], rtol=1e-4, atol=1e-2)


def test_crops_follow_the_pipeline(batch):
    """The crop is munet.detect.crop_params of the person box with the configured padding: a whole
    person's clean silhouette spans the crop minus the padding (up to the box jitter)."""
    expected = SMALL.resolution / (1 + 2 * SMALL.detector.crop_pad)
    for k in np.flatnonzero(batch["framing"] == 0):
        rows, cols = np.nonzero(batch["gt_mask"][k])
        extent = max(np.ptp(rows), np.ptp(cols)) + 1
        assert abs(extent - expected) < 0.08 * SMALL.resolution, (extent, expected)


def test_pose_library_within_limits_and_mirror_is_an_involution():
    library = poses.pose_library()
    rng = np.random.default_rng(0)
    drawn, draw = poses.sample_poses(rng, 64)
    limits = poses.LIMITS_DEG
    body = drawn.euler_deg[:, 1:]  # the root is free (any yaw)
    assert (body >= limits[None, 1:, :, 0] - 1e-3).all() and (body <= limits[None, 1:, :, 1] + 1e-3).all()
    assert (drawn.hinge_deg >= poses.HINGE_RANGES_DEG[:, 0] - 1e-3).all()
    assert (drawn.hinge_deg <= poses.HINGE_RANGES_DEG[:, 1] + 1e-3).all()
    assert len(set(draw.family)) >= 6, "draws cover many pose families"
    back = drawn.mirrored().mirrored()
    assert np.allclose(back.euler_deg, drawn.euler_deg) and np.allclose(back.hinge_deg, drawn.hinge_deg)
    assert len(library.lower_names) >= 30 and len(library.arm_names) >= 25


def test_average_rest_joints_match_anny(anny_body):
    with torch.no_grad():
        _, rest_j = anny_body.rest(anny_body.default_shape)
    assert torch.allclose(poses.average_rest_joints()[0].float(), rest_j[0], atol=2e-3)


def test_capsule_test_flags_legs_through_each_other_not_a_standing_person(anny_body):
    library = poses.pose_library()
    stand = library.lower_names.index("stand")
    relaxed = library.arm_names.index("relaxed")
    euler = library.lower_euler[stand].copy()
    hinge = library.lower_hinge[stand].copy()
    euler[list(poses.ARM_JOINTS)] = library.arm_euler[stand, relaxed][list(poses.ARM_JOINTS)]
    hinge[2:] = library.arm_hinge[stand, relaxed][2:]
    through = euler.copy()
    through[poses.J["left_hip"]] = (0.0, 20.0, 0.0)  # both legs swung inwards: the shins cross
    through[poses.J["right_hip"]] = (0.0, -20.0, 0.0)
    hinge_through = hinge.copy()
    batch = poses.PoseBatch(np.stack([euler, through]), np.stack([hinge, hinge_through]))
    with torch.no_grad():
        rest_v, rest_j = anny_body.rest(anny_body.default_shape.expand(2, -1))
        out = anny_body.pose(rest_v, rest_j, poses.to_axis_angle(batch, rest_j))
        flags = poses.capsule_intersections(out.joints_m, poses.capsule_radii(rest_v, rest_j, anny_body.dense_weights))
    assert flags.tolist() == [False, True]


def _dressed(anny_body, atlas, lower: str, **garment):
    """One average body in a library lower pose with relaxed arms, wearing the given garments."""
    library = poses.pose_library()
    k, a = library.lower_names.index(lower), library.arm_names.index("relaxed")
    euler, hinge = library.lower_euler[k].copy(), library.lower_hinge[k].copy()
    euler[list(poses.ARM_JOINTS)] = library.arm_euler[k, a][list(poses.ARM_JOINTS)]
    hinge[2:] = library.arm_hinge[k, a][2:]
    params = clothing.sample_clothing(np.random.default_rng(0), ["stand"], np.array([1.0]))
    for key, value in garment.items():
        getattr(params, key)[:] = value
    with torch.no_grad():
        rest_v, rest_j = anny_body.rest(anny_body.default_shape)
        out = anny_body.pose(rest_v, rest_j, poses.to_axis_angle(poses.PoseBatch(euler[None], hinge[None]), rest_j))
        clothed, skirt = clothing.dress_bodies(out.vertices_m, rest_v, out.joints_m, rest_j, out.global_rotations,
                                               anny_body.faces, atlas, params)  # fmt: skip
    return out.vertices_m, clothed, skirt


@pytest.fixture(scope="module")
def atlas(anny_body):
    with torch.no_grad():
        rest_v, rest_j = anny_body.rest(anny_body.default_shape)
    return clothing.build_atlas(rest_v[0].numpy(), rest_j[0].numpy(), anny_body.dense_weights.numpy())


def _silhouettes(vertices: torch.Tensor, faces: torch.Tensor, yaw_deg: float, res: int = 160) -> np.ndarray:
    """Orthographic-ish silhouettes from a camera turned by ``yaw_deg`` around the person."""
    a = np.deg2rad(yaw_deg)
    rz = torch.tensor([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]], dtype=vertices.dtype)
    w = vertices @ rz.T
    w = w - torch.tensor([0.0, 0.0, 0.85])
    cam = torch.stack([w[..., 0], -w[..., 2], w[..., 1] + 20.0], -1)
    K = torch.tensor([[res / 2.0 * 20.0, 0, res / 2], [0, res / 2.0 * 20.0, res / 2], [0, 0, 1]]).expand(len(w), 3, 3)
    return rasterize(project(cam, K), faces, (res, res)).mask.numpy()


@pytest.mark.parametrize(
    "lower, garment",
    [
        ("step_forward", {"top": 3, "bottom": 1, "outer": 2, "outer_len": 0.8, "top_ease": 0.04}),
        ("stand_wide", {"top": 2, "bottom": 3, "leg_len": 1.0, "outer": 0, "flare": 0.15}),
        ("contrapposto", {"top": 2, "bottom": 4, "leg_len": 1.8, "outer": 0, "hair": 3}),
    ],
)
def test_body_lies_inside_the_clothes(anny_body, atlas, lower, garment):
    body, clothed, skirt = _dressed(anny_body, atlas, lower, **garment)
    # layers: every non-skirt vertex moves outwards along the body normal (or stays)
    normals = vertex_normals(body, anny_body.faces)
    outward = ((clothed - body) * normals).sum(-1)[~skirt]
    assert outward.min() > -1e-5
    # and from every side the body's silhouette lies within the clothed silhouette
    for yaw in (0, 45, 90, 135, 180, 270):
        body_mask, clothed_mask = _silhouettes(torch.cat([body, clothed]), anny_body.faces, yaw)
        outside = (body_mask & ~clothed_mask).sum() / body_mask.sum()
        assert outside < 0.003, (yaw, outside)


def test_skirt_bridges_between_the_legs(anny_body, atlas):
    body, clothed, skirt = _dressed(anny_body, atlas, "stand_wide", top=2, bottom=3, leg_len=1.1, flare=0.05, outer=0)
    assert skirt.any()
    body_mask, clothed_mask = _silhouettes(torch.cat([body, clothed]), anny_body.faces, 0.0)
    # the rows just above the hem (knee height): the body shows a gap between the legs, the skirt none
    res = body_mask.shape[0]
    knee_row = int(res / 2 + (0.85 - 0.52) * res / 2.0)
    for row in range(knee_row - 6, knee_row):
        cols = np.flatnonzero(body_mask[row])
        gap = np.diff(cols).max()
        assert gap > 3, "the bare legs are apart here"
        covered = np.flatnonzero(clothed_mask[row])
        assert np.diff(covered).max() == 1, f"row {row}: the skirt leaves a gap between the legs"
    # and it does not wrap each leg: skirt vertices of both legs meet at the front line
    front = clothed[0][skirt[0]]
    assert (front[:, 0].abs() < 0.01).sum() > 10


def test_visibility_out_of_frame_and_mask_outside_photo(generator):
    """Legs cut by the frame: their landmarks are outside the photo, never seen; the mask is zero
    outside the photo."""
    import copy

    cut = copy.copy(generator)
    cut.config = DataConfig(resolution=128, batch_size=4, framing_weights=(0.0, 1.0, 0.0, 0.0))
    sample = cut.generate(11, np.arange(4))
    ankles = [detector.L["left_ankle"], detector.L["right_ankle"]]
    heights = sample["image_size"][:, 1]
    below = sample["gt_keypoints_px"][:, ankles, 1] >= heights[:, None]
    assert below.all(), "a cut_legs frame ends above the ankles"
    assert not sample["gt_visible"][:, ankles].any()
    assert not (sample["seen"][:, ankles] & below).any()
    from training.evaluation.harness import _inside_photo

    for k in range(4):
        inside = _inside_photo({kk: v[k] for kk, v in sample.items()}, 128)
        assert not inside.all(), "the crop reaches past the photo's bottom edge"
        assert sample["mask"][k][~inside].max() == 0.0 and not sample["gt_mask"][k][~inside].any()


def test_self_occlusion_hides_the_face_of_people_seen_from_behind(generator):
    from munet.detect.landmarks import MEDIAPIPE_LANDMARKS

    sample = generator.generate(21, np.arange(16))
    from training.data.sample import to_camera

    L = {n: i for i, n in enumerate(MEDIAPIPE_LANDMARKS)}
    lm = to_camera(generator.regressor(torch.from_numpy(sample["body_vertices_m"])).numpy(), sample)
    face_dir = lm[:, L["nose"]] - 0.5 * (lm[:, L["left_ear"]] + lm[:, L["right_ear"]])
    away = (face_dir[:, 2] > 0.04) & sample["in_frame"][:, L["nose"]]
    towards = (face_dir[:, 2] < -0.04) & sample["in_frame"][:, L["nose"]]
    assert away.any() and towards.any()
    assert not sample["gt_visible"][away, L["nose"]].any()
    assert sample["gt_visible"][towards, L["nose"]].mean() > 0.7


def test_noisy_keypoints_swap_and_drop_as_configured():
    rng = np.random.default_rng(0)
    gt = rng.uniform(0, 500, (33, 2)).astype(np.float32)
    visible = np.ones(33, bool)
    config = detector.DetectorConfig(swap_body_rate=1.0, outlier_rate=0.0, dropout_rate=0.0)
    keypoints, visibility = detector.noisy_keypoints(rng, gt, visible, visible, 500.0, config)
    assert np.abs(keypoints - gt[detector.SWAP]).max() < 40, "a whole-body swap exchanges left and right"
    config = detector.DetectorConfig(swap_body_rate=0.0, swap_limb_rate=0.0, outlier_rate=0.0, dropout_rate=1.0)
    _, visibility = detector.noisy_keypoints(rng, gt, visible, visible, 500.0, config)
    limbs = np.concatenate([np.asarray(v) for v in detector.LIMBS.values()])
    assert visibility[limbs].max() < 0.36


def test_culling_back_faces_keeps_a_posed_body_silhouette(anny_body):
    """Back faces never add to a closed surface's silhouette (the engine culls them for speed). The
    rasteriser itself is checked against a brute-force one in test_geometry.py."""
    with torch.no_grad():
        out = anny_body(torch.tensor([[0.3, 0.5, 0.6, 0.7, 0.4, 0.5]]), poses.to_axis_angle(
            poses.sample_poses(np.random.default_rng(3), 1)[0], anny_body.rest(anny_body.default_shape)[1]))
    w = out.vertices_m - out.vertices_m.mean(1, keepdim=True)
    cam = torch.stack([w[..., 0], -w[..., 2], w[..., 1] + 4.0], -1)
    K = torch.tensor([[[220.0, 0, 96], [0, 220.0, 96], [0, 0, 1]]])
    px = project(cam, K)
    ours = rasterize(px, anny_body.faces, (192, 192)).mask[0].numpy()
    culled = rasterize(px, anny_body.faces, (192, 192), cull_backfaces=True).mask[0].numpy()
    assert ours.sum() > 500, "the body (~90 px tall) is in the frame"
    assert (ours != culled).sum() <= 2, "back faces never add to a closed surface's silhouette"


def test_shard_round_trip(tmp_path, batch):
    from training.data import shards
    from training.data.dataset import ShardDataset

    for dtype in ("float16", "float32"):
        path = tmp_path / f"{dtype}.safetensors"
        shards.write_shard(path, batch, dtype)
        reader = shards.ShardReader(path)
        assert len(reader) == 4
        back = reader.all()
        one = reader[2]
        for key, value in batch.items():
            if key in ("body_vertices_m", "clothed_vertices_m"):
                tolerance = 1.1e-3 if dtype == "float16" else 0.0
                assert np.abs(back[key] - value).max() <= tolerance, key
            elif key == "mask":
                assert np.abs(back[key] - value).max() <= 0.5 / 255 + 1e-6
            else:
                assert np.array_equal(back[key], value), key
                assert back[key].dtype == value.dtype, key
            assert np.array_equal(one[key], back[key][2]), key
    shards.write_manifest(tmp_path, {"format": shards.FORMAT, "shards": [{"file": "float16.safetensors", "offset": 0, "count": 4}], "count": 4})
    dataset = ShardDataset(tmp_path)
    assert len(dataset) == 4 and np.array_equal(dataset[3]["gt_mask"], batch["gt_mask"][3])


def test_generate_command_writes_verifiable_shards(tmp_path, generator, monkeypatch):
    from training.data import generate

    # reuse the module's generator instead of building Anny again
    monkeypatch.setitem(generate._WORKER, "generator", generator)
    monkeypatch.setattr(generate, "_init_worker", lambda config_dict: None)
    config = tmp_path / "tiny.yaml"
    config.write_text("resolution: 128\nbatch_size: 4\nshard_size: 4\nstore_body_mask: true\nseed: 3\ncount: 8\n")
    out = tmp_path / "set"
    assert generate.main(["--config", str(config), "--out", str(out), "--workers", "0", "--preview", str(tmp_path / "sheet.png"), "--preview-count", "4"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 3 and manifest["count"] == 8 and len(manifest["shards"]) == 2
    assert (tmp_path / "sheet.png").stat().st_size > 10_000
    assert generate.main(["--out", str(out), "--verify", "--workers", "0"]) == 0
    # a changed byte is caught
    shard = out / manifest["shards"][1]["file"]
    data = bytearray(shard.read_bytes())
    data[-1] ^= 1
    shard.write_bytes(bytes(data))
    assert generate.main(["--out", str(out), "--verify", "--workers", "0"]) == 1


def test_on_the_fly_stream_matches_the_generator(generator, monkeypatch):
    from torch.utils.data import DataLoader

    from training.data import engine
    from training.data.dataset import SyntheticStream

    monkeypatch.setattr(engine, "SampleGenerator", lambda config: generator)  # no second Anny build
    loader = DataLoader(SyntheticStream(SMALL, seed=5, count=8), batch_size=4, num_workers=0)
    first = next(iter(loader))
    expected = generator.generate(5, np.arange(4))
    assert torch.equal(first["body_vertices_m"], torch.from_numpy(expected["body_vertices_m"]))
    assert first["seen"].dtype == torch.bool and first["mask"].shape == (4, SMALL.resolution, SMALL.resolution)
    with pytest.raises(ValueError, match="multiple of batch_size"):
        SyntheticStream(SMALL, seed=5, count=8, start=2)


def test_config_rejects_unknown_keys(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("resolution: 128\nreslution: 64\n")
    with pytest.raises(ValueError, match="reslution"):
        load_data_config(path)
    with pytest.raises(ValueError, match="multiple"):
        data_config_from_dict({"batch_size": 3, "shard_size": 8})
    assert load_data_config(None) == DataConfig()


def test_people_off_the_floor_only_where_the_config_asks():
    """Protocol v2's test set lifts jumpers off the floor and puts a foot up on a step; the default mix
    (training data) keeps everyone's lowest point on the floor and never draws a step."""
    import dataclasses

    from training.data.engine import FAMILY_NAMES, SampleGenerator

    J = poses.J
    mix = {"jump": 1.0, "step": 1.0}
    lifted = SampleGenerator(dataclasses.replace(SMALL, family_weights=mix, off_floor_m=(0.1, 0.3))).generate(3, np.arange(8))
    families = [FAMILY_NAMES[f] for f in lifted["family"]]
    assert set(families) == {"jump", "step"}
    lowest = lifted["body_vertices_m"][..., 2].min(1)
    ankles = lifted["body_joints_m"][:, [J["left_ankle"], J["right_ankle"]], 2]
    for family, low, (left, right) in zip(families, lowest, ankles):
        if family == "jump":
            assert 0.1 - 1e-3 <= low <= 0.3 + 1e-3
        else:  # one foot on the floor, the other up on the step
            assert abs(low) < 1e-3 and abs(left - right) > 0.12
    grounded = SampleGenerator(dataclasses.replace(SMALL, family_weights=mix)).generate(3, np.arange(8))
    assert np.abs(grounded["body_vertices_m"][..., 2].min(1)).max() < 1e-3
    default = SampleGenerator(SMALL).generate(3, np.arange(32))
    assert "step" not in {FAMILY_NAMES[f] for f in default["family"]}
    assert DataConfig(off_floor_m=()).fingerprint() == DataConfig().fingerprint()
    with pytest.raises(ValueError, match="off_floor_m"):
        DataConfig(off_floor_m=(0.3, 0.1))
