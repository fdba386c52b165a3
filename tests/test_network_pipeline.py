"""The network inside the photo pipeline: initialiser on a detection, method='network' end to end."""

from __future__ import annotations

import pathlib
import types

import numpy as np
import pytest
import torch

from munet.network import MuNet, MuNetConfig
from munet.network.checkpoint import save_checkpoint
from munet.fitting.network_init import NetworkInitialiser

ROOT = pathlib.Path(__file__).resolve().parents[1]
SMALL = MuNetConfig(encoder_channels=(8, 8, 16, 16, 16), global_dim=32, body_hidden=(16, 16), clothed_hidden=16)


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "small.safetensors"
    save_checkpoint(MuNet(SMALL), path, {"samples_seen": 0})
    return path


def test_initialiser_predicts_in_the_camera_frame(small_checkpoint):
    mask = np.zeros((480, 640), np.float32)
    mask[100:400, 280:360] = 1.0
    keypoints = np.stack([np.full(33, 320.0), np.linspace(110, 390, 33)], 1).astype(np.float32)
    detection = types.SimpleNamespace(person_box_px=(280.0, 100.0, 360.0, 400.0), image_size=(640, 480), mask=mask,
                                      keypoints_px=keypoints, visibility=np.ones(33, np.float32),
                                      in_frame=np.ones(33, bool), seen=np.ones(33, bool),
                                      world_keypoints_m=np.zeros((33, 3), np.float32))  # fmt: skip
    initialiser = NetworkInitialiser(small_checkpoint)
    prediction = initialiser.predict(detection, focal_px=800.0, principal_px=(320.0, 240.0))
    assert prediction.body_cam.shape == (13718, 3) and prediction.clothed_cam.shape == (13718, 3)
    assert prediction.landmarks_aligned.shape == (33, 3)
    assert float(prediction.body_cam[:, 2].min()) > 0  # in front of the camera
    # the untrained network stands upright: head above feet (camera y down -> aligned z up)
    assert prediction.landmarks_aligned[0, 2] > prediction.landmarks_aligned[27, 2]


def test_flip_averaging_answers_a_mirrored_photo_with_the_mirrored_body(small_checkpoint):
    """With flip averaging the network's answer is exactly left-right equivariant: the mirror image of a
    person (mask, keypoints and world keypoints mirrored, left and right relabelled) gets the mirror image
    of the body, whatever the weights. Without it an untrained network's answer is not."""
    from munet.detect.landmarks import MIRRORED_LANDMARKS as swap
    from munet.fitting.network_init import mirrored_vertices

    rng = np.random.default_rng(1)
    width, height = 640, 480
    mask = np.zeros((height, width), np.float32)
    mask[100:400, 250:330] = 1.0
    mask[150:260, 330:380] = 1.0  # an arm out to one side: the person is not symmetric
    keypoints = np.stack([rng.uniform(250, 380, 33), rng.uniform(110, 390, 33)], 1).astype(np.float32)
    world = rng.normal(0.0, 0.3, (33, 3)).astype(np.float32)
    visibility = rng.uniform(0.3, 1.0, 33).astype(np.float32)

    def detection(mask, keypoints, world, visibility, box):
        return types.SimpleNamespace(person_box_px=box, image_size=(width, height), mask=mask, keypoints_px=keypoints,
                                     visibility=visibility, seen=visibility > 0.5, world_keypoints_m=world)

    plain = detection(mask, keypoints, world, visibility, (250.0, 100.0, 380.0, 400.0))
    mirrored = detection(np.ascontiguousarray(mask[:, ::-1]), keypoints[swap] * [-1, 1] + [width, 0],
                         world[swap] * [-1, 1, 1], visibility[swap], (width - 380.0, 100.0, width - 250.0, 400.0))
    camera = dict(focal_px=800.0, principal_px=(width / 2, height / 2))

    def mismatch_mm(initialiser):
        body = initialiser.predict(plain, **camera).body_cam
        back = initialiser.predict(mirrored, **camera).body_cam[mirrored_vertices(initialiser.model.hierarchy.levels[-1].template)]
        return 1000.0 * np.abs(back * [-1, 1, 1] - body).max()

    assert mismatch_mm(NetworkInitialiser(small_checkpoint)) < 0.5
    assert mismatch_mm(NetworkInitialiser(small_checkpoint, flip_average=False)) > 5.0


def test_pipeline_method_network_uses_the_checkpoint(small_checkpoint):
    from munet.pipeline import Pipeline
    from munet.reconstruction import ReconstructOptions

    pipeline = Pipeline()
    try:
        result = pipeline.reconstruct(str(ROOT / "examples" / "lunge.jpg"),
                                      ReconstructOptions(method="network", checkpoint=str(small_checkpoint), texture=False,
                                                         refine_iterations=5))  # fmt: skip
        assert result.report.method == "network" and result.clothed is not None
        # the fit's shape prior is centred on the shape of the network's body (the body-model fit)
        assert set(result.report.network.shape) == set(result.report.shape)
        assert result.report.network.checkpoint == str(small_checkpoint)
        assert pipeline.info()["checkpoint"] == str(small_checkpoint)
        fitting = pipeline.reconstruct(str(ROOT / "examples" / "lunge.jpg"),
                                       ReconstructOptions(method="fitting", texture=False, refine_iterations=5))
        assert fitting.report.method == "fitting" and fitting.report.network is None
    finally:
        pipeline.close()


def test_forward_benchmark_runs_the_checkpoint(small_checkpoint):
    from benchmarks.network import forward_ms

    timing = forward_ms(str(small_checkpoint), threads=1, runs=3, warmup=1)
    assert 0 < timing["min_ms"] <= timing["median_ms"] <= timing["max_ms"] and timing["parameters"] > 0
