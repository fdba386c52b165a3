"""What the benchmark runs: methods behind one small interface, built from a spec string.

A method receives what the pipeline would have on a real photo -- the detector's output and the
camera intrinsics (``EvalInputs``) -- and returns the body (vertices and smpl24 joints) and the
clothed surface in the OpenCV camera frame of those intrinsics (``Prediction``), with its own stage
timings. Reference methods may also read the ground truth; the table marks them.

Specs (``make_method``)::

    fitting                 the optimisation-only pipeline (munet.pipeline, method="fitting")
    network[:CHECKPOINT]    the pipeline with the MuNet network (method="network"; a checkpoint path
                            selects an ablation's weights)
    network_only[:CHECKPOINT]  the network's own answer, no photo fit: its body and clothed surface
                            placed by its camera; joints from the body-model fit of its body
    floor                   reference: the average rest body, facing the camera, at the true pelvis
    oracle                  reference: the ground truth itself (checks the harness: zero errors)

``NAME=SPEC`` renames a column (``body_only=network:checkpoints/ablation_body_only.safetensors``).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Protocol

import cv2
import numpy as np
import torch

from training.data.sample import DETECTOR_FIELDS, to_camera


@dataclasses.dataclass(frozen=True)
class EvalInputs:
    """The detector's output for one sample (fields of ``training/data/sample.py``: ``DETECTOR_FIELDS``,
    numpy arrays) -- no ground truth -- and the focal length the photo's EXIF would give (pixels; None: the
    photo carries none and the method estimates it). ``K`` is the truth's intrinsics: the frame in which a
    method's answer is scored; a method reads the focal length only from ``focal_exif_px``."""

    fields: dict
    focal_exif_px: float | None = None

    @property
    def K(self) -> np.ndarray:
        return np.asarray(self.fields["K"], np.float64)

    def focal_px(self) -> float:
        """The focal length a method works with: EXIF's when there is one, else the pipeline's estimate."""
        from munet.fitting.camera import focal_px

        width, height = self.image_size
        return focal_px(width, height, self.focal_exif_px)[0]

    @property
    def image_size(self) -> tuple[int, int]:
        width, height = self.fields["image_size"]
        return int(width), int(height)

    def full_mask(self) -> np.ndarray:
        """(H, W) float32: the crop's soft mask put back into the photo (zero outside the crop)."""
        res = self.fields["mask"].shape[0]
        side = float(self.fields["crop_side_px"])
        cx, cy = (float(v) for v in self.fields["crop_center_px"])
        scale = res / side
        # full pixel (corner convention) -> crop pixel: c = (p - corner) * scale; cv2 maps centres
        to_crop = np.array([[scale, 0.0, -(cx - side / 2) * scale], [0.0, scale, -(cy - side / 2) * scale], [0, 0, 1.0]])
        centre_in = np.array([[1.0, 0, 0.5], [0, 1.0, 0.5], [0, 0, 1.0]])
        centre_out = np.array([[1.0, 0, -0.5], [0, 1.0, -0.5], [0, 0, 1.0]])
        warp = (centre_out @ to_crop @ centre_in)[:2]
        width, height = self.image_size
        return cv2.warpAffine(self.fields["mask"].astype(np.float32), warp, (width, height),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderValue=0.0)  # fmt: skip

    def detection(self):
        """A ``munet.detect.Detection`` equivalent to MediaPipe's on the virtual photo."""
        from munet.detect import MEDIAPIPE_LANDMARKS, Detection, person_box, unseen_parts

        f = self.fields
        keypoints = np.asarray(f["keypoints_px"], np.float32)
        seen = np.asarray(f["seen"], bool)
        in_frame = np.asarray(f["in_frame"], bool)
        visibility = np.asarray(f["visibility"], np.float32)
        mask = self.full_mask()
        world = np.asarray(f["world_keypoints_m"], np.float32)
        width, height = self.image_size
        box = person_box(mask, keypoints, seen, (width, height))
        # MediaPipe's image-landmark depth: hip-relative, in the x scale of normalised image units
        person_px = max(box[3] - box[1], box[2] - box[0], 1.0)
        keypoint_depth = (world[:, 1] * person_px / 1.7 / width).astype(np.float32)
        return Detection(
            keypoints_px=keypoints, visibility=visibility, in_frame=in_frame, seen=seen, presence=None,
            keypoint_depth=keypoint_depth, world_keypoints_m=world, mask=mask, person_box_px=box,
            image_size=(width, height), landmark_names=MEDIAPIPE_LANDMARKS, unseen_parts=unseen_parts(seen),
            confidence=float(visibility[in_frame].mean()) if in_frame.any() else 0.0,
        )  # fmt: skip


@dataclasses.dataclass
class Prediction:
    """A method's answer, OpenCV camera frame of the given intrinsics, metres.

    body_vertices_cam: (V, 3); body_joints_cam: (24, 3) smpl24; clothed_vertices_cam: (V, 3) or None;
    timings_ms: per stage (and "total"); K_px: (3, 3) the intrinsics the method placed its answer with (its
    own focal length when it estimated one: the 2D metrics project with them), None: the truth's ``K``.
    """

    body_vertices_cam: np.ndarray
    body_joints_cam: np.ndarray
    clothed_vertices_cam: np.ndarray | None
    timings_ms: dict[str, float]
    K_px: np.ndarray | None = None


def intrinsics(focal_px: float, principal_px: tuple[float, float]) -> np.ndarray:
    """(3, 3) float64 pinhole intrinsics."""
    return np.array([[focal_px, 0.0, principal_px[0]], [0.0, focal_px, principal_px[1]], [0.0, 0.0, 1.0]])


class Method(Protocol):
    name: str
    uses_truth: bool

    def predict(self, inputs: EvalInputs, truth: dict | None = None) -> Prediction: ...


class FloorMethod:
    """Reference floor (uses the truth for placement): the average rest body (A-pose) facing the camera
    upright, its pelvis at the true pelvis; clothed = body. Any method should beat it."""

    uses_truth = True

    def __init__(self, name: str = "floor"):
        from munet.body.anny_model import AnnyBody

        self.name = name
        body = AnnyBody()
        with torch.no_grad():
            rest_v, rest_j = body.rest(body.default_shape)
        # world (Blender, faces -Y) -> camera looking along +Y: (X, Y, Z) -> (X, -Z, Y)
        to_cam = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])
        self.vertices = rest_v[0].numpy() @ to_cam.T
        self.joints = rest_j[0].numpy() @ to_cam.T

    def predict(self, inputs: EvalInputs, truth: dict | None = None) -> Prediction:
        started = time.perf_counter()
        true_joints = to_camera(truth["body_joints_m"], truth)
        shift = true_joints[0] - self.joints[0]
        vertices = self.vertices + shift
        return Prediction(vertices, self.joints + shift, vertices, {"total": 1000 * (time.perf_counter() - started)})


class OracleMethod:
    """Reference: returns the ground truth (the harness must then report zero errors)."""

    uses_truth = True

    def __init__(self, name: str = "oracle"):
        self.name = name

    def predict(self, inputs: EvalInputs, truth: dict | None = None) -> Prediction:
        return Prediction(
            to_camera(truth["body_vertices_m"], truth), to_camera(truth["body_joints_m"], truth),
            to_camera(truth["clothed_vertices_m"], truth), {"total": 0.0},
        )  # fmt: skip


class _ReplayDetector:
    """Stands in for MediaPipe inside ``munet.pipeline.Pipeline``: returns the detection it was given."""

    def __init__(self):
        self.next = None

    def detect(self, image):
        return self.next

    def close(self) -> None:
        pass


class PipelineMethod:
    """``munet.pipeline`` on the simulated detector's output, with the focal length as the protocol gives
    it (``EvalInputs.focal_exif_px``: EXIF, or none and the pipeline estimates it; the principal point is
    the pipeline's own: the photo's centre)."""

    uses_truth = False

    def __init__(self, name: str, method: str = "fitting", checkpoint: str | None = None, refine_iterations: int | None = None):
        from munet.body.anny_model import AnnyBody
        from munet.pipeline import Pipeline
        from munet.reconstruction import ReconstructOptions

        self.name = name
        self._detector = _ReplayDetector()
        self.pipeline = Pipeline(detector=self._detector)
        options = {"method": method, "checkpoint": checkpoint, "texture": False, "clothed": True, "skeleton": "smpl24"}
        if refine_iterations is not None:
            options["refine_iterations"] = refine_iterations
        self.options = ReconstructOptions(**options).validate()
        self.body = AnnyBody()

    def predict(self, inputs: EvalInputs, truth: dict | None = None) -> Prediction:
        from munet.detect import LoadedImage

        width, height = inputs.image_size
        self._detector.next = inputs.detection()
        image = LoadedImage(rgb=np.zeros((height, width, 3), np.uint8), width=width, height=height,
                            focal_px_from_exif=inputs.focal_exif_px)  # fmt: skip
        result = self.pipeline.reconstruct(image, self.options)
        R, t = result.camera.R_world_to_cam, result.camera.t_world_to_cam_m
        body = result.body.posed_vertices_m.astype(np.float64) @ R.T + t
        clothed = None if result.clothed is None else result.clothed.posed_vertices_m.astype(np.float64) @ R.T + t
        # the posed smpl24 joints of the reconstructed rig
        with torch.no_grad():
            shape = torch.from_numpy(result.shape)[None].to(self.body.dense_weights.dtype)
            rest_v, rest_j = self.body.rest(shape)
            out = self.body.pose(rest_v, rest_j, torch.from_numpy(result.pose_axis_angle)[None].to(rest_v.dtype),
                                 torch.from_numpy(result.root_translation_m)[None].to(rest_v.dtype))  # fmt: skip
        joints = out.joints_m[0].numpy().astype(np.float64) @ R.T + t
        timings = result.report.timings_ms.to_json()
        K = intrinsics(float(result.camera.focal_px[0]), tuple(float(v) for v in result.camera.principal_point_px))
        return Prediction(body, joints, clothed, timings, K)


class NetworkOnlyMethod:
    """MuNet alone: the body and clothed vertices as the network predicts them, placed in the photo by its
    weak-perspective camera (``munet.fitting.network_init``); the smpl24 joints are those of the body-model
    fit of the predicted body (``munet.body.vertex_fit.fit_to_vertices``, as the pipeline rigs it). Used to
    compare trainings (the ablations) without the photo fit in between."""

    uses_truth = False

    def __init__(self, name: str, checkpoint: str | None = None, fit_iterations: int = 20):
        from munet.body.anny_model import AnnyBody
        from munet.fitting.network_init import NetworkInitialiser, default_checkpoint

        path = checkpoint or default_checkpoint()
        if path is None:
            raise ValueError("network_only needs a checkpoint: none given and none ships in checkpoints/")
        self.name = name
        self.network = NetworkInitialiser(path)
        self.body = AnnyBody()
        self.fit_iterations = fit_iterations

    def predict(self, inputs: EvalInputs, truth: dict | None = None) -> Prediction:
        from munet.body.vertex_fit import fit_to_vertices

        started = time.perf_counter()
        width, height = inputs.image_size
        focal = inputs.focal_px()
        prediction = self.network.predict(inputs.detection(), focal, (width / 2, height / 2))
        rig_started = time.perf_counter()
        fit = fit_to_vertices(self.body, torch.from_numpy(prediction.body_cam)[None].float(), self.fit_iterations,
                              self.fit_iterations)
        with torch.no_grad():
            rest_v, rest_j = self.body.rest(fit.shape)
            joints = self.body.pose(rest_v, rest_j, fit.pose_axis_angle, fit.translation_m).joints_m[0]
        now = time.perf_counter()
        timings = {"network": prediction.forward_ms, "rig": 1000 * (now - rig_started), "total": 1000 * (now - started)}
        return Prediction(prediction.body_cam, joints.double().numpy(), prediction.clothed_cam, timings,
                          intrinsics(focal, (width / 2, height / 2)))


def make_method(spec: str) -> Method:
    """A method from its spec (see the module doc)."""
    name, _, rest = spec.partition("=") if "=" in spec else (spec.split(":")[0], "", spec)
    spec = rest or spec
    kind, _, argument = spec.partition(":")
    if kind == "fitting":
        return PipelineMethod(name, method="fitting")
    if kind == "network":
        return PipelineMethod(name, method="network", checkpoint=argument or None)
    if kind == "network_only":
        return NetworkOnlyMethod(name, checkpoint=argument or None)
    if kind == "floor":
        return FloorMethod(name)
    if kind == "oracle":
        return OracleMethod(name)
    raise ValueError(f"unknown method {spec!r}: use fitting, network[:CHECKPOINT], network_only[:CHECKPOINT], floor or oracle (optionally NAME=SPEC)")


def inputs_of(sample: dict, protocol: int = 1) -> EvalInputs:
    """The detector part of a sample and the focal length its EXIF gives under benchmark ``protocol``
    (``training.evaluation.metrics.exif_focal_px``)."""
    from training.evaluation.metrics import exif_focal_px

    return EvalInputs({k: sample[k] for k in DETECTOR_FIELDS}, exif_focal_px(sample, protocol))
