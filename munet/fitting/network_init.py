"""The network as the fit's initialiser (``munet.fitting.keypoint_init.Initialiser``) and its 3D anchor.

MuNet predicts the body and the clothed surface from the detection's crop (mask + keypoints) and its 3D
keypoints, and from the crop's mirror image in the same batch, the two answers averaged (``FLIP_AVERAGE``).
The body's 33 MediaPipe landmarks (regressed from the predicted vertices) then replace MediaPipe's world
keypoints in the fit targets: the fit starts from the network's 3D bone directions (one candidate, no
leg-depth flips: the network decides depth) and from the shape of the network's body (the body-model fit,
``munet.body.vertex_fit.fit_shape``, which also centres the fit's shape prior), and the pipeline's test-time
refinement holds every landmark's and a spread of vertices' depth relative to the hips near the network's body
(``body_fit.DepthAnchor``, ``refine_weights``), so the 2D keypoint and silhouette terms move what the photo
shows and cannot undo the network's depth (DESIGN.md §7). The limbs the photo does not show keep the network's
pose (no pull towards a standing pose, unlike the fitting-only pipeline). The clothed stage's offsets seed the
pipeline's clothing fit.
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
WORLD_WEIGHT_GAIN = 1.0
"""Multiplier of the refinement's 3D bone-direction weight when the directions come from the network (was 8
before the depth anchor; with the anchor, 8 and 1 scored alike on validation, so the plain weight stays)."""
ANCHOR_SCALE_CM = 7.0
"""Above this depth deviation (cm) of a point from the network's body, the anchor holds it only
logarithmically (Cauchy), so the photo's 2D can move a limb the network put wrongly (0: quadratic)."""
ANCHOR_DEPTH_WEIGHT = 0.1
ANCHOR_PLANE_WEIGHT = 0.03
"""The refinement's anchor to the network's body (``body_fit.DepthAnchor``): weights per cm^2 of mean
deviation of the landmarks' and 96 vertices' hip-relative camera-frame positions, along the viewing axis and
in the image plane. Chosen on the validation set (``python -m training.data.generate --config
training/configs/testset.yaml --seed 3000001 --count 48``, first 24 samples, the shipped checkpoint; never
the test set), as (gain, depth, plane): PA-MPJPE / PVE mm / depth order / 2D %h / clothed IoU --
network alone 74.4 / 113.2 / 0.974 / 3.02 / 0.627; no anchor (8, 0, 0) 62.9 / 121.9 / 0.959 / 1.98 / 0.859;
(8, 1, 0.05) 63.9 / 107.6 / 0.983 / 2.28 / 0.854; (8, 3, 0.1) 65.1 / 107.5 / 0.983 / 2.38 / 0.850;
(1, 1, 0.05) 63.3 / 107.9 / 0.983 / 2.26 / 0.852; (1, 0.3, 0.02) 63.2 / 108.7 / 0.985 / 2.21 / 0.852;
(1, 1, 0.01) 62.9 / 110.4 / 0.983 / 2.32 / 0.852; 32 vertices instead of 96: 64.4 / 107.5.
Re-chosen for the 144,000-sample checkpoint trained on the calibrated detector's data (``python -m
training.tune_anchor``: protocol v2 validation set ``--config training/configs/testset_v2.yaml --seed 3000001
--count 64``, first 32 samples; lunge.jpg's
clothed IoU / keypoint error as a fraction of height), as (depth, plane, Cauchy scale cm): (1, 0.05, none)
65.2 / 114.2 / 0.949 / 1.86 / 0.867, lunge 0.870 / 2.0 %; (0.3, 0.01, 5) 66.2 / 117.5 / 0.951 / 1.62 / 0.874,
lunge 0.905 / 1.40 %; (0.1, 0.01, 5) 67.3 / 117.0 / 0.951 / 1.56 / 0.873, lunge 0.916 / 1.22 %, but one
landmark of a validation sample then moved 18 cm in depth from the network's (``tests/test_refine_depth.py``
bounds it at 12 cm); (0.1, 0.01, 7) keeps that bound: 65.8 / 116.4 / 0.953 / 1.57 / 0.875, lunge 0.914 /
1.22 % (10: lunge 0.905 / 1.34 %). The new network's body sits farther from the real photo's 2D than the old
one's, and the old weights held it there (lunge.jpg missed its alignment targets, IoU >= 0.90 and keypoints
<= 1.5 %); the chosen weights trade 0.6 mm PA-MPJPE and 2.2 mm PVE on 32 synthetic samples for the 2D (and a
slightly better depth order).
Re-chosen once the limbs the photo does not show kept the network's pose (no standing prior: the anchor is
then all that holds them), on the first 128 samples of the v2 validation stream (``python -m
training.data.generate --config training/configs/testset_v2.yaml --seed 3000001 --count 256 --out
data/val_v2_256``; ``python -m training.tune_anchor --data data/val_v2_256 --limit 128 --settings ... --out
runs/tune_anchor_v3``; 121 detected), as (depth, plane, scale cm): PA-MPJPE / PVE mm / Chamfer cm / clothed
IoU, lunge.jpg's clothed IoU / keypoint error: (0.1, 0.01, 7) 64.9 / 112.7 / 4.56 / 0.876, lunge 0.913 / 1.22 %;
(0.3, 0.01, 7) 64.2 / 113.0; (0.03, 0.01, 7) 66.6 / 113.3; (0.1, 0.01, 12) 64.0 / 111.7; **(0.1, 0.03, 7)
63.1 / 109.3 / 4.48 / 0.880, lunge 0.913 / 1.31 %**; (0.3, 0.03, 7) 63.0 / 109.7, lunge 0.891; (0.1, 0.05, 7)
63.5 / 109.4; (0.1, 0.1, 7) 63.2 / 109.4, lunge 0.906 / 1.46 %; (0.1, 0.03, 10) 63.2 / 109.3; (0.1, 0.05, 10)
62.8 / 108.6, lunge 0.908 / 1.39 %. The plane weight 0.03 against 0.01, paired (``python -m
training.evaluation.compare``): PA-MPJPE -1.77 +- 0.57 mm, PVE -3.35 +- 0.71 mm, Chamfer -0.080 +- 0.031 cm,
clothed IoU +0.004 +- 0.001, 2D keypoints -0.03 +- 0.01 % of height, depth order within 2 SE; the settings
beyond it differ from it by less than their noise, and it keeps lunge.jpg's 2D best.
Re-chosen once a standing leg was anchored too (``refine``: no floor exception), on the same 128 samples
(``--out runs/tune_anchor_v4``), as (depth, plane, scale cm): PA-MPJPE / PVE mm / depth order, lunge.jpg's
clothed IoU / keypoint error: (0.1, 0.03, 7) 60.7 / 105.6 / 0.940, lunge 0.920 / 1.24 %; (0.2, 0.03, 7) 60.7 /
106.2, lunge 0.904 / 1.57 %; (0.05, 0.03, 7) 61.1 / 106.3; (0.1, 0.03, 5) 61.3 / 106.5; (0.1, 0.03, 10) 60.3 /
105.3, lunge 0.912 / 1.43 %; (0.1, 0.05, 7) 60.2 / 104.8, lunge 0.919 / 1.27 %; (0.1, 0.08, 7) 59.7 / 104.1 /
0.940, lunge 0.916 / 1.36 %; (0.1, 0.12, 7) 59.7 / 104.2, lunge 0.913 / 1.49 %. 0.08 against 0.03, paired:
PA-MPJPE -0.99 +- 0.34 mm, PVE -1.48 +- 0.41 mm; Chamfer, depth order, 2D keypoints and clothed IoU within 2
SE; on the test set (``runs/eval/default_v2_plane008.json``) PA-MPJPE -0.94 +- 0.20 mm, PVE -1.15 +- 0.20 mm,
Chamfer -0.042 +- 0.012 cm, 2D keypoints -0.017 +- 0.005 % of height. 0.03 stays all the same: a stronger plane
anchor holds the legs a portrait cuts off nearer the network's bent-knee guess (astronaut.png's knees 33 / 30
degrees at 0.03, 37 / 32 at 0.05, 40 / 35 at 0.08; grace_hopper.jpg 22 / 24 -> 25 / 27), which an artist sees
at once, for a millimetre of synthetic error that no real photo here can confirm."""


FLIP_AVERAGE = True
"""Test-time flip averaging: the network also sees the crop mirrored left-right (mask, keypoints and world
keypoints mirrored, left and right relabelled), and its mirrored answer, mirrored back onto the mesh's
left-right vertex pairs, is averaged with the plain one (one forward pass, batch 2; ~26 -> ~43 ms). On the
first 128 samples of the v2 validation stream (121 detected; paired, +- standard errors; ``python -m
training.evaluation.compare``): the default pipeline (network + refinement) PVE -2.8 +- 0.9 mm, PA-MPJPE
-1.5 +- 0.8 mm, Chamfer -0.04 +- 0.03 cm, depth order 0.933 -> 0.936; the network alone (a first version
averaging in float64) PVE -2.9 +- 0.8 mm, PA-MPJPE -1.3 +- 0.5 mm, Chamfer within its noise, depth order
0.935 -> 0.942, front/back 0.909 -> 0.926. Confirmed on the test set (README): the default PVE -2.0 +- 0.4
mm, PA-MPJPE -1.1 +- 0.3 mm, Chamfer -0.067 +- 0.017 cm. The shipped evaluations since 2026-11-29 run with it."""

REFINE_SHAPE_ITERATIONS: int | None = None
"""The refinement after the network frees the shape (within its prior, centred on the network's shape) only
in its first chunk(s) up to this many iterations (None: throughout). A speed/accuracy trade, measured on the
validation set above (24 samples; PA-MPJPE / PVE mm / clothed IoU) and lunge.jpg (the refine stage's CPU
time, one thread, a loaded 2-core machine): None 63.3 / 107.9 / 0.811, 740 ms; 5: 63.4 / 109.5 / 0.810,
427 ms; 0: 66.6 / 113.1 / 0.800, 321 ms. The shipped evaluations ran with None. Re-measured for the
144,000-sample checkpoint (v2 validation set, first 48 samples, paired differences from None with their standard
errors; refine stage median on a loaded 2-core machine): 5: PA-MPJPE +0.80 +- 0.29 mm, PVE -1.3 +- 1.1 mm, clothed
IoU -0.004 +- 0.004, refine 526 -> 431 ms; 0: +1.56 +- 0.46 mm, -1.8 +- 1.8 mm, -0.006 +- 0.005, 394 ms. A
significant PA-MPJPE loss for an insignificant PVE gain: None stays."""


def refine_weights(weights):
    """The fitter's ``FitWeights`` for the refinement after the network: the depth anchor's weights, the bone
    directions' times ``WORLD_WEIGHT_GAIN``."""
    return dataclasses.replace(weights, world=weights.world * WORLD_WEIGHT_GAIN, anchor_depth=ANCHOR_DEPTH_WEIGHT,
                               anchor_plane=ANCHOR_PLANE_WEIGHT, anchor_scale_cm=ANCHOR_SCALE_CM)


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
    """Initialiser running MuNet on the detection (pass ``detection=`` when calling).

    flip_average: also run the mirrored crop and average (``FLIP_AVERAGE``)."""

    name = "munet"

    def __init__(self, checkpoint: str | pathlib.Path, direction_iterations: int = 8, shape_iterations: int = 15,
                 flips: tuple[str, ...] = (), flip_average: bool = FLIP_AVERAGE):
        from munet.body.keypoints import MediaPipeRegressor

        self.path = str(checkpoint)
        self.model, self.metadata = load_checkpoint(checkpoint)
        self.regressor = MediaPipeRegressor()
        self.direction_iterations = direction_iterations
        self.shape_iterations = shape_iterations
        self.flips = flips  # leg-depth alternatives tried besides the network's own (none: the network decides)
        self.mirrored_vertices = mirrored_vertices(self.model.hierarchy.levels[-1].template) if flip_average else None
        self.last: NetworkPrediction | None = None

    def predict(self, detection, focal_px: float, principal_px: tuple[float, float]) -> NetworkPrediction:
        """Run the network on a ``munet.detect.Detection`` of a photo with these intrinsics."""
        import time

        from munet.detect.crop import crop_image, crop_params

        started = time.perf_counter()
        config = self.model.config
        crop = crop_params(detection.person_box_px, detection.image_size, CROP_PAD)
        view = _View(crop_image(np.asarray(detection.mask, np.float32), crop, CROP_RESOLUTION),
                     crop.to_crop(np.asarray(detection.keypoints_px, np.float64), CROP_RESOLUTION).astype(np.float32),
                     np.asarray(detection.visibility, np.float32),  # as the training samples carry it
                     np.asarray(detection.world_keypoints_m, np.float32), np.asarray(detection.seen, bool))
        views = [view] if self.mirrored_vertices is None else [view, view.mirrored(CROP_RESOLUTION)]
        batch = {f.name: torch.from_numpy(np.stack([getattr(v, f.name) for v in views])) for f in dataclasses.fields(_View)}
        image = make_input(batch["mask"], batch["keypoints"], batch["visibility"], config.input_size, config.heatmap_sigma)
        world = make_world_input(batch["world"], batch["seen"])
        with torch.no_grad():
            out = self.model(image, world)
            body, clothed, camera = out.body_vertices, out.clothed_vertices, out.camera
            if self.mirrored_vertices is not None:
                body = self._unmirror_average(body)
                clothed = None if clothed is None else self._unmirror_average(clothed)
                camera = 0.5 * (camera[:1] + camera[1:] * torch.tensor([1.0, -1.0, 1.0]))  # (s, tx, ty): tx mirrors
            landmarks = self.regressor(body)[0].double().numpy()
        s, tx, ty = (float(v) for v in camera[0])
        # weak perspective -> pelvis in the camera frame: s = 2 f / (side * Z) in normalised crop units
        depth = 2.0 * focal_px / (crop.side_px * max(s, 1e-3))
        pelvis_px = crop.to_full(np.array([[(tx + 1) / 2 * CROP_RESOLUTION, (ty + 1) / 2 * CROP_RESOLUTION]]), CROP_RESOLUTION)[0]
        pelvis = np.array([(pelvis_px[0] - principal_px[0]) * depth / focal_px, (pelvis_px[1] - principal_px[1]) * depth / focal_px, depth])
        body_cam = body[0].double().numpy() + pelvis
        clothed_cam = None if clothed is None else clothed[0].double().numpy() + pelvis
        aligned = np.stack([landmarks[:, 0], landmarks[:, 2], -landmarks[:, 1]], 1)  # OpenCV -> camera-aligned Blender
        self.last = NetworkPrediction(body_cam, clothed_cam, aligned, 1000 * (time.perf_counter() - started))
        return self.last

    def _unmirror_average(self, vertices: torch.Tensor) -> torch.Tensor:
        """(2, V, 3) answers for the crop and its mirror (camera frame, x right) -> (1, V, 3) their average,
        the mirrored answer mirrored back (x negated, each vertex taking its left-right counterpart's)."""
        back = vertices[1, self.mirrored_vertices] * vertices.new_tensor([-1.0, 1.0, 1.0])
        return 0.5 * (vertices[:1] + back[None])

    def __call__(self, targets, fitter, detection=None):
        from munet.fitting.keypoint_init import WorldKeypointInitialiser

        if detection is None:
            raise ValueError("NetworkInitialiser needs the detection: call it as initialiser(targets, fitter, detection=...)")
        from munet.body.vertex_fit import fit_shape

        prediction = self.predict(detection, targets.focal_px, targets.principal_px)
        targets.world_m = prediction.landmarks_aligned.astype(np.float32)
        targets.world_weights = np.ones(33, np.float32)
        # The limbs the photo does not show (out of the frame or hidden) are the network's to pose: the fitting-only
        # pipeline holds them at a relaxed standing pose with a 25x prior (pose.UNSEEN_PRIOR_SCALE), which gave a
        # person sitting with the legs out of the frame standing legs. Without it (v2 validation set, ``python -m
        # training.data.generate --config training/configs/testset_v2.yaml --seed 3000001 --count 256``, first 128
        # samples, 121 detected, paired differences +- their standard errors): PA-MPJPE -7.4 +- 1.8 mm (71.7 ->
        # 64.4), PVE -7.8 +- 1.8 mm (120.2 -> 112.4), clothed IoU +0.006 +- 0.002; on the 41 photos with the legs
        # or a side cut off -12.2 and -14.8 mm, on the 71 whole-body ones (occluded limbs) -3.2 and -3.0 mm.
        targets.joint_prior_scale = None
        if self.shape_iterations:  # the body-model fit of the network's body: its shape centres the prior
            shape = fit_shape(fitter.body, torch.from_numpy(prediction.body_cam)[None].float(), self.shape_iterations)
            targets.shape_prior = shape[0].double().numpy()
        targets.cache.clear()
        state = WorldKeypointInitialiser(self.direction_iterations, flips=self.flips)(targets, fitter)
        return dataclasses.replace(state, names=["munet"] + [f"munet {n}" for n in state.names[1:]])


@dataclasses.dataclass(frozen=True)
class _View:
    """The network's inputs for one crop: mask (R, R) float32, keypoints (33, 2) float32 crop pixels,
    visibility (33,) float32, world (33, 3) float32 camera-aligned Blender frame (X right), seen (33,) bool."""

    mask: np.ndarray
    keypoints: np.ndarray
    visibility: np.ndarray
    world: np.ndarray
    seen: np.ndarray

    def mirrored(self, resolution: int) -> "_View":
        """The same crop mirrored left-right: pixels and X negated about the crop's centre / the hips, and
        every landmark relabelled with its other side's (the person's left becomes their right)."""
        from munet.detect.landmarks import MIRRORED_LANDMARKS as swap

        keypoints = self.keypoints[swap] * np.array([-1.0, 1.0], np.float32) + np.array([resolution, 0.0], np.float32)
        world = self.world[swap] * np.array([-1.0, 1.0, 1.0], np.float32)
        return _View(np.ascontiguousarray(self.mask[:, ::-1]), keypoints, self.visibility[swap], world, self.seen[swap])


def mirrored_vertices(template: np.ndarray, tolerance_m: float = 1e-4) -> np.ndarray:
    """(V,) int each vertex's left-right counterpart on a template symmetric about x = 0 (V, 3): the nearest
    vertex to its mirror image. Raises ValueError when the template is not symmetric (a counterpart farther
    than ``tolerance_m``, or not mutual)."""
    from scipy.spatial import cKDTree

    template = np.asarray(template, np.float64)
    distance, counterpart = cKDTree(template).query(template * np.array([-1.0, 1.0, 1.0]))
    if distance.max() > tolerance_m or not np.array_equal(counterpart[counterpart], np.arange(len(template))):
        raise ValueError(f"the template is not left-right symmetric (a vertex {1000 * distance.max():.1f} mm from "
                         "its mirror's nearest): flip averaging needs a symmetric topology")
    return counterpart


def checkpoint_key(path: str | pathlib.Path) -> str:
    """A cache key for a loaded checkpoint (path + modification time)."""
    p = pathlib.Path(path)
    return paths.content_hash(str(p.resolve()), str(p.stat().st_mtime_ns))
