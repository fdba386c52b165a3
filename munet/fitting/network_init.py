"""The network as the fit's initialiser (``munet.fitting.keypoint_init.Initialiser``) and its 3D anchor.

MuNet predicts the body and the clothed surface from the detection's crop (mask + keypoints) and its 3D
keypoints. The body's 33 MediaPipe landmarks (regressed from the predicted vertices) then replace
MediaPipe's world keypoints in the fit targets: the fit starts from the network's 3D bone directions (one
candidate, no leg-depth flips: the network decides depth) and from the shape of the network's body (the
body-model fit, ``munet.body.vertex_fit.fit_shape``, which also centres the fit's shape prior), and the
pipeline's test-time refinement keeps its 3D bone-direction term tied to the network's prediction with a
raised weight (``WORLD_WEIGHT_GAIN``), so the 2D keypoint and silhouette terms cannot undo the network's
depth (DESIGN.md §7). The clothed stage's offsets seed the pipeline's clothing fit.
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np
import torch

from munet import paths
from munet.network.checkpoint import load_checkpoint
from munet.network.inputs import make_input, make_world_input

CROP_RESOLUTION = 256
"""The crop side the network's training data used (``training/configs/data.yaml``: resolution)."""
CROP_PAD = 0.15
WORLD_WEIGHT_GAIN = 8.0
"""Multiplier of the fit's 3D bone-direction weight when the directions come from the network. Chosen on a
validation set disjoint from the test set (``--config training/configs/testset.yaml --seed 3000001
--count 128``, first 16 samples, the shipped checkpoint): PA-MPJPE 62.9 / 59.2 / 58.1 / 63.6 mm and PVE
121.7 / 118.3 / 118.6 / 122.4 mm for gains 4 / 8 / 16 / 32; 8 also kept the lunge's 2D error lower than 16."""


def default_checkpoint() -> pathlib.Path | None:
    """The shipped checkpoint (``$MUNET_CHECKPOINT`` overrides), or None when absent (``paths.shipped_checkpoint``)."""
    return paths.shipped_checkpoint()


@dataclasses.dataclass
class NetworkPrediction:
    """The network's answer in the photo's OpenCV camera frame (principal point and focal as given), metres.

    body_cam / clothed_cam: (V, 3) float64; landmarks_aligned: (33, 3) the body's MediaPipe landmarks in
    the camera-aligned Blender frame (X right, Y away, Z up), pelvis-centred; forward_ms: network time.
    """

    body_cam: np.ndarray
    clothed_cam: np.ndarray | None
    landmarks_aligned: np.ndarray
    forward_ms: float


class NetworkInitialiser:
    """Initialiser running MuNet on the detection (pass ``detection=`` when calling)."""

    name = "munet"

    def __init__(self, checkpoint: str | pathlib.Path, direction_iterations: int = 8, shape_iterations: int = 15,
                 flips: tuple[str, ...] = ()):
        from munet.body.keypoints import MediaPipeRegressor

        self.path = str(checkpoint)
        self.model, self.metadata = load_checkpoint(checkpoint)
        self.regressor = MediaPipeRegressor()
        self.direction_iterations = direction_iterations
        self.shape_iterations = shape_iterations
        self.flips = flips  # leg-depth alternatives tried besides the network's own (none: the network decides)
        self.last: NetworkPrediction | None = None

    def predict(self, detection, focal_px: float, principal_px: tuple[float, float]) -> NetworkPrediction:
        """Run the network on a ``munet.detect.Detection`` of a photo with these intrinsics."""
        import time

        from munet.detect.crop import crop_image, crop_params

        started = time.perf_counter()
        config = self.model.config
        crop = crop_params(detection.person_box_px, detection.image_size, CROP_PAD)
        mask = crop_image(np.asarray(detection.mask, np.float32), crop, CROP_RESOLUTION)
        keypoints = crop.to_crop(np.asarray(detection.keypoints_px, np.float64), CROP_RESOLUTION).astype(np.float32)
        visibility = np.asarray(detection.visibility, np.float32)  # as the training samples carry it
        image = make_input(torch.from_numpy(mask)[None], torch.from_numpy(keypoints)[None],
                           torch.from_numpy(visibility)[None], config.input_size, config.heatmap_sigma)
        world = make_world_input(torch.from_numpy(np.asarray(detection.world_keypoints_m, np.float32))[None],
                                 torch.from_numpy(np.asarray(detection.seen, bool))[None])
        with torch.no_grad():
            out = self.model(image, world)
            landmarks = self.regressor(out.body_vertices)[0].double().numpy()
        s, tx, ty = (float(v) for v in out.camera[0])
        # weak perspective -> pelvis in the camera frame: s = 2 f / (side * Z) in normalised crop units
        depth = 2.0 * focal_px / (crop.side_px * max(s, 1e-3))
        pelvis_px = crop.to_full(np.array([[(tx + 1) / 2 * CROP_RESOLUTION, (ty + 1) / 2 * CROP_RESOLUTION]]), CROP_RESOLUTION)[0]
        pelvis = np.array([(pelvis_px[0] - principal_px[0]) * depth / focal_px, (pelvis_px[1] - principal_px[1]) * depth / focal_px, depth])
        body = out.body_vertices[0].double().numpy() + pelvis
        clothed = None if out.clothed_vertices is None else out.clothed_vertices[0].double().numpy() + pelvis
        aligned = np.stack([landmarks[:, 0], landmarks[:, 2], -landmarks[:, 1]], 1)  # OpenCV -> camera-aligned Blender
        self.last = NetworkPrediction(body, clothed, aligned, 1000 * (time.perf_counter() - started))
        return self.last

    def __call__(self, targets, fitter, detection=None):
        from munet.fitting.keypoint_init import WorldKeypointInitialiser

        if detection is None:
            raise ValueError("NetworkInitialiser needs the detection: call it as initialiser(targets, fitter, detection=...)")
        from munet.body.vertex_fit import fit_shape

        prediction = self.predict(detection, targets.focal_px, targets.principal_px)
        targets.world_m = prediction.landmarks_aligned.astype(np.float32)
        targets.world_weights = np.ones(33, np.float32)
        if self.shape_iterations:  # the body-model fit of the network's body: its shape centres the prior
            shape = fit_shape(fitter.body, torch.from_numpy(prediction.body_cam)[None].float(), self.shape_iterations)
            targets.shape_prior = shape[0].double().numpy()
        targets.cache.clear()
        state = WorldKeypointInitialiser(self.direction_iterations, flips=self.flips)(targets, fitter)
        return dataclasses.replace(state, names=["munet"] + [f"munet {n}" for n in state.names[1:]])


def checkpoint_key(path: str | pathlib.Path) -> str:
    """A cache key for a loaded checkpoint (path + modification time)."""
    p = pathlib.Path(path)
    return paths.content_hash(str(p.resolve()), str(p.stat().st_mtime_ns))
