"""One photo in, a rigged body and a clothed surface out: ``reconstruct(image, options) -> Reconstruction``.

Stages (each timed in the report, ``progress(stage, fraction)`` called as each starts, ``cancel`` checked
between them):

1. ``detect``: decode the photo (``munet.detect.load_image``) and run MediaPipe Pose.
2. ``initialise``: the pluggable initialiser (``munet.fitting.keypoint_init``): today MediaPipe's world
   keypoints with leg-depth alternatives; the network later.
3. ``fit``: all candidates fitted to the 2D keypoints, the floor, the world-keypoint directions and the
   pose priors (``munet.fitting.body_fit``); the best is kept. When the feet are seen on the floor, the
   same candidates are also fitted without the floor term, in the same batch, so the report can say
   whether the ground plane decided the legs' depth.
4. ``refine``: the kept body against keypoints + silhouette, shape free (``refine_iterations``).
5. ``clothing``: normal offsets within per-region caps (``munet.fitting.clothing``).
6. ``rig``: the pose and skin on the requested skeleton (smpl24 or Anny's full one).
7. ``texture``: the photo projected onto the visible front (``munet.texture``).
8. ``metrics``: silhouette IoU (clothed and body) and keypoint error, the depth report.

The heavy objects (body model ~2 s, keypoint regressor ~1 s, MediaPipe) are loaded once by ``Pipeline``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
import time
from typing import Any, Callable

import numpy as np
import torch

from munet import __version__
from munet.errors import BadOptionsError, CancelledError, CheckpointError
from munet.reconstruction import Camera, Reconstruction, ReconstructOptions, SkinnedSurface

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, float], None]

STAGES = ("detect", "initialise", "fit", "refine", "clothing", "rig", "texture", "metrics")
# rough share of the total time each stage takes, for progress fractions
_STAGE_START = {"detect": 0.0, "initialise": 0.07, "fit": 0.15, "refine": 0.5, "clothing": 0.7, "rig": 0.8,
                "texture": 0.82, "metrics": 0.9}

FIT_ITERATIONS = 25
"""Iterations of the batched candidate fit (stage ``fit``); ``refine_iterations`` drives ``refine``."""


@contextlib.contextmanager
def _torch_threads(count: int | None):
    """Run with ``count`` torch threads (the fit is hundreds of tiny ops: extra threads only spin)."""
    if count is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class _Stages:
    """Times stages, reports progress, honours cancellation."""

    def __init__(self, progress: ProgressFn | None, cancel: threading.Event | None):
        self.progress = progress
        self.cancel = cancel
        self.timings_ms: dict[str, float] = {}
        self.started = time.perf_counter()
        self._current: str | None = None
        self._t0 = 0.0

    def begin(self, stage: str) -> None:
        self.end()
        if self.cancel is not None and self.cancel.is_set():
            raise CancelledError(f"reconstruction cancelled before stage {stage!r}")
        if self.progress is not None:
            self.progress(stage, _STAGE_START.get(stage, 0.0))
        self._current, self._t0 = stage, time.perf_counter()

    def end(self) -> None:
        if self._current is not None:
            elapsed = 1000.0 * (time.perf_counter() - self._t0)
            self.timings_ms[self._current] = round(self.timings_ms.get(self._current, 0.0) + elapsed, 1)
            self._current = None

    def finish(self) -> dict[str, float]:
        self.end()
        self.timings_ms["total"] = round(1000.0 * (time.perf_counter() - self.started), 1)
        if self.progress is not None:
            self.progress("done", 1.0)
        return dict(self.timings_ms)


class Pipeline:
    """Holds the body model(s), the keypoint regressor and the detector; reconstructs photos.

    body_model: the model loaded up front (others load on first use). initialiser: where fits start
    (default: ``munet.fitting.keypoint_init.default_initialiser()``). fit_threads: torch threads during the
    fit (None leaves torch's setting alone). explain_depth: when the feet are seen on the floor, also fit
    the candidates without the floor term (in the ``fit`` batch) so the report can say whether the ground
    plane decided the legs' depth. One reconstruction runs at a time per instance.
    """

    def __init__(self, body_model: str = "anny", smpl_dir: str | None = None, initialiser=None,
                 fit_threads: int | None = 1, detector=None, explain_depth: bool = True):
        from munet.detect import PoseDetector
        from munet.fitting.keypoint_init import default_initialiser

        self._models: dict[tuple[str, str], Any] = {}
        self._fitters: dict[str, Any] = {}
        self._operators: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.fit_threads = fit_threads
        self.explain_depth = explain_depth
        self.initialiser = initialiser or default_initialiser()
        self._networks: dict[str, Any] = {}
        self._network_path: str | None = None
        started = time.perf_counter()
        self._fitter(body_model, smpl_dir)
        self.detector = detector or PoseDetector()
        log.info("pipeline ready in %.1f s", time.perf_counter() - started)

    # ---- models ---------------------------------------------------------------------------------

    def _body(self, name: str, skeleton: str, smpl_dir: str | None = None):
        key = (name, skeleton, smpl_dir if name == "smpl" else None)
        if key not in self._models:
            from munet.body import load_body_model

            self._models[key] = load_body_model(name, skeleton=skeleton, smpl_dir=smpl_dir)
        return self._models[key]

    def _fitter(self, name: str, smpl_dir: str | None = None):
        key = (name, smpl_dir if name == "smpl" else None)
        if key not in self._fitters:
            from munet.fitting.body_fit import BodyFitter

            self._fitters[key] = BodyFitter(self._body(name, "smpl24", smpl_dir))
        return self._fitters[key]

    def _network(self, options: ReconstructOptions):
        """The MuNet initialiser for these options, or None (fitting, or no checkpoint shipped)."""
        if options.method != "network" or options.body_model != "anny":
            return None
        path = _network_checkpoint(options.checkpoint)
        if path is None:
            return None
        from munet.fitting.network_init import NetworkInitialiser, checkpoint_key

        key = checkpoint_key(path)
        if key not in self._networks:
            self._networks[key] = NetworkInitialiser(path)
        self._network_path = str(path)
        return self._networks[key]

    def _operator(self, key, faces: np.ndarray, num_vertices: int):
        if key not in self._operators:
            from munet.geometry.mesh import mean_neighbour_operator

            self._operators[key] = mean_neighbour_operator(faces, num_vertices)
        return self._operators[key]

    def info(self) -> dict:
        """JSON-able facts about this backend: versions, device, body models, skeletons, checkpoint (the
        last one used, else the one method "network" would load)."""
        import mediapipe

        return {
            "munet_version": __version__,
            "torch_version": torch.__version__,
            "mediapipe_version": getattr(mediapipe, "__version__", "unknown"),
            "device": "cpu",
            "cuda_available": bool(torch.cuda.is_available()),
            "body_models": ["anny", "smpl"],
            "body_models_loaded": sorted({key[0] for key in self._models}),
            "skeletons": ["smpl24", "full"],
            "methods": ["fitting"] + (["network"] if _network_checkpoint(None) is not None else []),
            "initialiser": getattr(self.initialiser, "name", type(self.initialiser).__name__),
            "checkpoint": self._network_path or (str(default) if (default := _network_checkpoint(None)) else None),
        }

    def close(self) -> None:
        self.detector.close()

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ---- the reconstruction -----------------------------------------------------------------------

    def reconstruct(self, image, options: ReconstructOptions | None = None, progress: ProgressFn | None = None,
                    cancel: threading.Event | None = None) -> Reconstruction:
        """Reconstruct one photo.

        image: encoded bytes, a path, an (H, W[, C]) array or a ``munet.detect.LoadedImage``.
        Raises ``BadImageError``/``ImageTooLargeError`` (the photo), ``NoPersonFoundError``,
        ``SmplFilesMissingError``, ``BadOptionsError``, ``CheckpointError``, ``CancelledError``.
        """
        options = (options or ReconstructOptions()).validate()
        notes = _check_options(options)
        with self._lock, _torch_threads(self.fit_threads):
            return self._reconstruct(image, options, notes, _Stages(progress, cancel))

    def _reconstruct(self, image, options: ReconstructOptions, notes: list[str], stages: _Stages) -> Reconstruction:
        from munet.detect import LoadedImage, load_image
        from munet.fitting import camera as cam
        from munet.fitting.body_fit import full_body
        from munet.fitting.depth import cue_votes, depth_report, leg_depth_differences
        from munet.fitting.targets import targets_from_detection

        stages.begin("detect")
        loaded = image if isinstance(image, LoadedImage) else load_image(image)
        detection = self.detector.detect(loaded)
        body = self._body(options.body_model, "smpl24", options.smpl_dir)
        fitter = self._fitter(options.body_model, options.smpl_dir)
        focal_prior, focal_source = cam.focal_px(loaded.width, loaded.height, loaded.focal_px_from_exif)
        sigma = cam.EXIF_FOCAL_LOG_SIGMA if focal_source == "exif" else cam.FOCAL_LOG_SIGMA
        targets = targets_from_detection(detection, focal_prior, focal_log_sigma=sigma)

        stages.begin("initialise")
        network = self._network(options)
        if network is not None:
            state = network(targets, fitter, detection=detection)
        else:
            state = self.initialiser(targets, fitter)
        targets.scale_px = _person_height_px(fitter, state, targets)
        targets.cache.clear()

        stages.begin("fit")
        check_depth = self.explain_depth and "ground_plane" in cue_votes(detection, targets)
        batch = state.batch
        if check_depth:  # the same candidates once more, without the floor term, in the same batch
            ablated = dataclasses.replace(state, names=[f"{n} (no floor)" for n in state.names])
            scale = torch.cat([torch.ones(batch), torch.zeros(batch)])
            fitted = fitter.fit(targets, state.cat(ablated), FIT_ITERATIONS, group_scale={"ground": scale})
        else:
            fitted = fitter.fit(targets, state, FIT_ITERATIONS)
        totals = fitted.total()
        best = int(torch.argmin(totals[:batch]))
        hypotheses = [{"name": n, "total": float(totals[b]), "terms": {k: float(v[b]) for k, v in fitted.terms.items()}}
                      for b, n in enumerate(fitted.names[:batch])]
        chosen = fitted.names[best]
        without_ground = None
        if check_depth:
            best_ablated = batch + int(torch.argmin(totals[batch:]))
            knee, ankle = leg_depth_differences(fitter, targets, fitted.state.select(best_ablated))[0]
            without_ground = {"left_knee_minus_right_knee_m": knee, "left_ankle_minus_right_ankle_m": ankle,
                              "hypothesis": state.names[best_ablated - batch]}
        state = fitted.state.select(best)

        stages.begin("refine")
        if options.refine_iterations > 0:
            refine_weights = None
            if network is not None:  # stay close to the network's 3D: the 2D terms must not undo its depth
                from munet.fitting.network_init import WORLD_WEIGHT_GAIN

                refine_weights = dataclasses.replace(fitter.weights, world=fitter.weights.world * WORLD_WEIGHT_GAIN)
            state = fitter.fit(targets, state, options.refine_iterations, silhouette=True, fit_shape=True,
                               weights=refine_weights).state
        posed, rotations = full_body(body, state)
        pitch, height = float(state.pitch_rad[0]), float(state.height_m[0])
        focal = float(state.focal_px(focal_prior)[0])
        R, t = cam.camera_extrinsics(pitch, height)
        camera = Camera(focal_px=(focal, focal), principal_point_px=targets.principal_px, image_size=targets.image_size,
                        R_world_to_cam=R, t_world_to_cam_m=t)
        rest_v = posed.rest_vertices_m[0].numpy().astype(np.float32)
        posed_v = posed.vertices_m[0].numpy().astype(np.float32)
        faces = body.faces.numpy().astype(np.int32)

        clothing = None
        if options.clothed:
            stages.begin("clothing")
            seed = None
            if network is not None and network.last is not None and network.last.clothed_cam is not None:
                # the clothed stage's offsets (camera frame) -> world, seeding the clothing fit
                seed = (network.last.clothed_cam - network.last.body_cam) @ R
            clothing = self._clothing(body, posed, rest_v, posed_v, faces, camera, targets, seed)

        stages.begin("rig")
        rig = self._rig(options, body, state, posed, rotations)

        texture = uv = None
        surface_for_texture = clothing.posed_vertices_m if clothing is not None else posed_v
        if options.texture:
            stages.begin("texture")
            from munet.texture import project_texture

            projected = project_texture(loaded.rgb, surface_for_texture, faces, camera, detection.person_box_px,
                                        targets.mask)
            texture, uv = projected.texture, projected.uv_per_corner

        stages.begin("metrics")
        alignment = _alignment(fitter, rest_v, posed_v, posed.joints_m[0, 0].numpy(), clothing, faces, camera,
                               targets, detection)
        depth = depth_report(detection, targets, posed.joints_m[0].numpy(), posed.global_rotations[0, 0].numpy(), camera,
                             hypotheses, chosen, without_ground, network=network is not None)
        timings = stages.finish()

        skin = rig["skin"]
        body_surface = SkinnedSurface(rest_vertices_m=rig["rest_vertices"], posed_vertices_m=rig["posed_vertices"],
                                      faces=faces, skin=skin, uv_per_corner=uv)
        clothed_surface = None
        if clothing is not None:
            clothed_posed = clothing.posed_vertices_m if options.skeleton == "smpl24" else rig["pose_surface"](
                clothing.rest_vertices_m)
            clothed_surface = SkinnedSurface(rest_vertices_m=clothing.rest_vertices_m, posed_vertices_m=clothed_posed,
                                             faces=faces, skin=skin, uv_per_corner=uv)
        shape = state.shape[0].numpy().astype(np.float32)
        report = {
            "method": "network" if network is not None else "fitting",
            "notes": notes,
            "image": {"width": loaded.width, "height": loaded.height, "format": loaded.format,
                      "exif_orientation": loaded.orientation},
            "detector": detection.report(),
            "facing": "away from the camera" if targets.facing_away else "towards the camera",
            "feet_on_floor": targets.contact,
            "body_model": options.body_model,
            "shape": {k: round(float(v), 4) for k, v in zip(
                getattr(body, "phenotype_labels", [f"beta{i}" for i in range(len(shape))]), shape)},
            "standing_height_m": round(float(rest_v[:, 2].max()), 3),
            "skeleton": {"name": rig["skeleton"].name, "joint_names": list(rig["skeleton"].joint_names)},
            "body_mesh": {"vertices": int(rest_v.shape[0]), "faces": int(faces.shape[0])},
            "clothed_mesh": None if clothing is None else {
                "vertices": int(rest_v.shape[0]), "faces": int(faces.shape[0]),
                "max_offset_m": round(float(clothing.offsets_m.max()), 4),
                "mean_offset_m": round(float(clothing.offsets_m.mean()), 4)},
            "camera": {"focal_px": round(focal, 2), "focal_prior_px": round(focal_prior, 2),
                       "focal_source": "exif" if focal_source == "exif" else "estimated",
                       "pitch_deg": round(float(np.degrees(pitch)), 2), "height_m": round(height, 3)},
            "timings_ms": timings,
            "alignment": alignment,
            "depth": depth,
            "unseen_parts": list(detection.unseen_parts),
            "texture": None if texture is None else {"width": texture.width, "height": texture.height,
                                                     "mime_type": texture.mime_type},
        }
        if network is not None and network.last is not None:
            labels = getattr(body, "phenotype_labels", [f"beta{i}" for i in range(len(shape))])
            report["network"] = {"checkpoint": network.path, "forward_ms": round(network.last.forward_ms, 2),
                                 "shape": None if targets.shape_prior is None else
                                 {k: round(float(v), 4) for k, v in zip(labels, targets.shape_prior)}}
        if detection.unseen_parts:
            report["notes"].append(
                "not seen in the photo: " + ", ".join(detection.unseen_parts)
                + " (held by the pose prior: a relaxed standing pose on the floor)")
        return Reconstruction(
            body=body_surface,
            clothed=clothed_surface,
            skeleton=rig["skeleton"],
            pose_axis_angle=rig["pose_axis_angle"],
            root_translation_m=state.translation_m[0].numpy().astype(np.float32),
            shape=shape,
            body_model=options.body_model,
            camera=camera,
            texture=texture,
            report=report,
        )

    def _clothing(self, body, posed, rest_v, posed_v, faces, camera, targets, seed_offsets=None):
        from munet.fitting.clothing import CAP_SMOOTHING_ITERATIONS, fit_clothing, region_caps
        from munet.geometry.mesh import smooth_field, vertex_normals

        dense = body.dense_weights.numpy()
        operator = self._operator(id(body), faces, rest_v.shape[0])
        caps = region_caps(dense, tuple(body.joint_names), vertex_normals(rest_v, faces))
        caps = smooth_field(caps, operator, CAP_SMOOTHING_ITERATIONS)  # no steps between regions
        skin_rotations = np.einsum("vj,jab->vab", dense, posed.global_rotations[0].numpy())
        if seed_offsets is not None:  # start from the network's clothed surface (offsets pulled back to rest)
            # LBS(rest + d) = LBS(rest) + M d with M the vertex's blended rotation (not orthonormal where
            # weights blend), so the rest offset is M^-1 d: the seeded surfaces stay one rig
            rest_offsets = np.linalg.solve(skin_rotations.astype(np.float64), seed_offsets.astype(np.float64)[..., None])[..., 0]
            posed_v = (posed_v + seed_offsets).astype(np.float32)
            rest_v = (rest_v + rest_offsets).astype(np.float32)
        return fit_clothing(posed_v, rest_v, faces, camera, targets.mask, caps, skin_rotations, operator=operator)

    def _rig(self, options, body, state, posed, rotations) -> dict:
        """Skeleton, pose, skin and vertices on the requested skeleton."""
        from munet.body.lbs import matrix_to_axis_angle

        if options.skeleton == "smpl24":
            return {
                "skeleton": body.skeleton(posed.rest_joints_m[0]),
                "pose_axis_angle": matrix_to_axis_angle(rotations[0]).numpy().astype(np.float32),
                "skin": body.skin_weights(),
                "rest_vertices": posed.rest_vertices_m[0].numpy().astype(np.float32),
                "posed_vertices": posed.vertices_m[0].numpy().astype(np.float32),
            }
        from munet.fitting.rig import full_local_rotations

        full = self._body(options.body_model, "full", options.smpl_dir)
        dtype = full.dense_weights.dtype
        translation = state.translation_m[:1].to(dtype)
        with torch.no_grad():
            rest_v, rest_j = full.rest(state.shape[:1].to(dtype))
            local = full_local_rotations(full, posed.global_rotations)
            out = full.pose_rotations(rest_v, rest_j, local, translation)
        dense = full.dense_weights

        def pose_surface(rest_vertices: np.ndarray) -> np.ndarray:
            """Pose another rest surface of this topology with the full skeleton (LBS)."""
            from munet.body.lbs import skin_vertices

            with torch.no_grad():
                posed_surface = skin_vertices(torch.from_numpy(rest_vertices)[None].to(dense.dtype), rest_j,
                                              out.global_rotations, out.joints_m - translation[:, None], dense)
            return (posed_surface + translation[:, None])[0].numpy().astype(np.float32)

        return {
            "skeleton": full.skeleton(rest_j[0]),
            "pose_axis_angle": matrix_to_axis_angle(local[0]).numpy().astype(np.float32),
            "skin": full.skin_weights(),
            "rest_vertices": rest_v[0].numpy().astype(np.float32),
            "posed_vertices": out.vertices_m[0].numpy().astype(np.float32),
            "pose_surface": pose_surface,
        }


def _check_options(options: ReconstructOptions) -> list[str]:
    """Refuse what cannot run here; return notes on what runs differently from what was asked."""
    notes = []
    if options.checkpoint is not None and not os.path.isfile(options.checkpoint):
        raise CheckpointError(
            f"checkpoint {options.checkpoint!r} not found: give the path of a MuNet .safetensors checkpoint (with its "
            ".json beside it), or leave it unset to use the shipped one")
    if options.method == "network" and _network_checkpoint(options.checkpoint) is None:
        notes.append("method 'network' asked, but no network checkpoint ships here: used the fitting pipeline")
    elif options.method == "network" and options.body_model != "anny":
        notes.append("the MuNet checkpoint is trained on Anny's topology: used the fitting pipeline for this body model")
    if options.body_model == "smpl" and options.skeleton != "smpl24":
        raise BadOptionsError("SMPL has only the smpl24 skeleton: use skeleton='smpl24' with body_model='smpl'")
    if options.device == "cuda" and not torch.cuda.is_available():
        raise BadOptionsError("option device='cuda' but no CUDA device is available here: use device='cpu' or 'auto'")
    if options.device in ("cuda", "auto") and torch.cuda.is_available():
        notes.append("the fitting pipeline runs on the CPU (hundreds of tiny steps; a GPU would not speed it up)")
    return notes


def _network_checkpoint(path: str | None):
    """The checkpoint to use: the one given, else the shipped default (None when there is none)."""
    if path is not None:
        return path
    from munet.fitting.network_init import default_checkpoint

    return default_checkpoint()


def _person_height_px(fitter, state, targets) -> float:
    """The person's standing height in pixels at their distance, from the first candidate."""
    from munet.fitting import camera as cam

    with torch.no_grad():
        first = state.select(0)
        _, joints = fitter.landmarks_and_joints(first)
        _, depth = cam.project(joints[:, :1], first.pitch_rad, first.height_m, targets.focal_px, targets.principal_px)
        rest_v, _ = fitter.body.rest(first.shape.to(fitter.body.dense_weights.dtype))
    standing = float(rest_v[0, :, 2].max())
    return standing * targets.focal_px / max(float(depth[0, 0]), 0.1)


def _alignment(fitter, rest_v, posed_v, pelvis_m, clothing, faces, camera, targets, detection) -> dict:
    """2D alignment of the final surfaces: silhouette IoU against the detector's mask and keypoint error."""
    from munet.fitting.landmarks import FACE, LM
    from munet.geometry.metrics import keypoint_error, silhouette_iou
    from munet.geometry.raster import rasterize_silhouette

    width, height = targets.image_size
    uv_body, depth = camera.project(posed_v.astype(np.float64))
    body_sil = rasterize_silhouette(uv_body, faces, height, width)
    out = {"body_iou": round(silhouette_iou(body_sil, targets.mask), 4)}
    if clothing is not None:
        uv_clothed, _ = camera.project(clothing.posed_vertices_m.astype(np.float64))
        out["clothed_iou"] = round(silhouette_iou(rasterize_silhouette(uv_clothed, faces, height, width), targets.mask), 4)
    landmarks = fitter.regress_landmarks(posed_v.astype(np.float64))
    model_px, landmark_depth = camera.project(landmarks.astype(np.float64))
    scored = detection.seen.copy()
    if targets.facing_away:  # MediaPipe's face points land on the back of the head: not scored
        scored[[i for i in FACE if i not in (LM["left_ear"], LM["right_ear"])]] = False
    rest_height = float(rest_v[:, 2].max())
    pelvis_depth = float(camera.project(pelvis_m[None].astype(np.float64))[1][0])
    person_px = rest_height * float(np.mean(camera.focal_px)) / max(pelvis_depth, 0.1)
    error_px = keypoint_error(model_px, detection.keypoints_px, scored.astype(np.float64))
    error_all = keypoint_error(model_px, detection.keypoints_px, detection.seen.astype(np.float64))
    out.update({
        "keypoint_error_px": round(error_px, 2),
        "keypoint_error_fraction": round(error_px / person_px, 5),
        "keypoint_error_all_seen_px": round(error_all, 2),
        "keypoints_scored": int(scored.sum()),
        "person_height_px": round(person_px, 1),
        "model_keypoints_px": np.round(model_px, 1).tolist(),
    })
    return out


_DEFAULT: Pipeline | None = None
_DEFAULT_LOCK = threading.Lock()


def default_pipeline() -> Pipeline:
    """The process-wide pipeline, built on first use (~3-4 s)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = Pipeline()
        return _DEFAULT


def reconstruct(image, options: ReconstructOptions | None = None, progress: ProgressFn | None = None,
                cancel: threading.Event | None = None) -> Reconstruction:
    """Reconstruct one photo with the process-wide ``Pipeline`` (see ``Pipeline.reconstruct``)."""
    return default_pipeline().reconstruct(image, options, progress, cancel)
