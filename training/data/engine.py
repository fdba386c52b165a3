"""The generator: seeds in, samples out (``training/data/sample.py`` lists the fields).

``SampleGenerator(config).generate(seed, indices)`` draws every random choice of sample ``i`` from
its own stream ``numpy.random.default_rng([seed, i])`` and computes the geometry of a batch together
in torch (single-threaded by the callers: parallelism comes from processes). A sample is therefore a
pure function of (config, seed, index, batch composition); callers keep batches aligned to multiples
of ``config.batch_size`` so regenerating a dataset reproduces it bit for bit.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np
import torch

from munet.body.lbs import forward_kinematics
from munet.body.skeleton import SMPL24_INDEX
from munet.geometry.projection import project_pinhole
from training.data import bodies, camera, clothing, detector, poses
from training.data.config import DataConfig

log = logging.getLogger(__name__)

J = SMPL24_INDEX
FAMILY_NAMES = tuple(poses.FAMILY_WEIGHTS) + poses.EXTRA_FAMILIES
MAX_POSE_TRIES = 12
CAMERA_POINTS_STRIDE = 13  # every 13th clothed vertex frames the camera (~1k points)


@dataclasses.dataclass
class StageTimes:
    """Seconds spent per stage over the generator's life (for throughput reports)."""

    seconds: dict[str, float] = dataclasses.field(default_factory=dict)

    def add(self, stage: str, started: float) -> float:
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - started
        return now


class SampleGenerator:
    """Builds the body model, regressor, clothing atlas and pose library once (~3 s), then generates
    batches. Not thread-safe; one per process."""

    def __init__(self, config: DataConfig = DataConfig()):
        from munet.body.anny_model import AnnyBody
        from munet.body.keypoints import MediaPipeRegressor

        self.config = config
        self.body = AnnyBody(skeleton="smpl24")
        self.regressor = MediaPipeRegressor()
        self.faces = self.body.faces
        with torch.no_grad():
            rest_v, rest_j = self.body.rest(self.body.default_shape)
            rest_landmarks = self.regressor(rest_v)[0].numpy()
        self.atlas = clothing.build_atlas(rest_v[0].numpy(), rest_j[0].numpy(), self.body.dense_weights.numpy())
        self.stature_table = bodies.stature_table(self.body)
        self.landmark_tolerance = detector.landmark_tolerances(rest_v[0].numpy(), rest_landmarks)
        self.landmark_vertex = self.regressor.indices[:, 0]  # (33,) main vertex of each landmark
        self.library = poses.pose_library()
        self.times = StageTimes()

    # ---- sampling of the random parameters (per sample streams) ------------------------------

    def _poses(self, rngs: list[np.random.Generator], rest_v: torch.Tensor, rest_j: torch.Tensor):
        """Poses without self-intersection: redraw failures from their own streams."""
        cfg = self.config
        radii = poses.capsule_radii(rest_v, rest_j, self.body.dense_weights)
        drawn = [poses.sample_poses(r, 1, noise_scale=cfg.pose_noise, family_weights=cfg.family_weights or None) for r in rngs]
        batch = poses.PoseBatch.concat([d[0] for d in drawn])
        families = [d[1].family[0] for d in drawn]
        pending = np.arange(len(rngs))
        for attempt in range(MAX_POSE_TRIES + 1):
            rotations = poses.local_rotations(
                torch.from_numpy(batch.euler_deg[pending]), torch.from_numpy(batch.hinge_deg[pending]), rest_j[pending]
            )
            _, joints = forward_kinematics(rotations, rest_j[pending], self.body.parents)  # joints only: cheap
            bad = poses.capsule_intersections(joints, radii[pending]).numpy()
            pending = pending[bad]
            if len(pending) == 0:
                break
            for i in pending:
                if attempt < MAX_POSE_TRIES:
                    new, draw = poses.sample_poses(rngs[i], 1, noise_scale=cfg.pose_noise, family_weights=cfg.family_weights or None)
                else:  # give up: a plain standing pose with little noise
                    new, draw = poses.sample_poses(rngs[i], 1, noise_scale=0.2, family_weights={"stand": 1.0})
                batch.euler_deg[i], batch.hinge_deg[i] = new.euler_deg[0], new.hinge_deg[0]
                families[i] = draw.family[0]
        return batch, families

    def generate(self, seed: int, indices: np.ndarray | list[int]) -> dict[str, np.ndarray]:
        """Samples ``indices`` under ``seed``: a dict of arrays stacked along a first axis (see
        ``training/data/sample.py``). The stages draw from each sample's stream in a fixed order:
        body shape, pose, clothing, camera, crop box, detector noise."""
        indices = np.asarray(indices, np.int64)
        rngs = [np.random.default_rng([int(seed), int(i)]) for i in indices]
        with torch.no_grad():
            people = self._people(rngs)
            views = self._views(rngs, people)
            crops, masks, zbuffer, body_masks = self._silhouettes(rngs, views)
            detections = self._detections(rngs, people, views, crops, masks, zbuffer)
            t0 = time.perf_counter()
            sample = _sample_fields(seed, indices, people, views, crops, masks, detections)
            if self.config.detector.calibration:  # the calibrated detector misses people at times
                sample["detected"] = detections.detected
            if self.config.store_body_mask:
                sample["gt_body_mask"] = body_masks
            if self.config.store_normals:
                sample["normals"] = _normal_image(views.clothed_cam, self.faces, crops, self.config.resolution)
            self.times.add("assemble", t0)
        return sample

    # ---- the stages of ``generate`` (under no_grad; each adds its time to ``self.times``) -----

    def _people(self, rngs: list[np.random.Generator]) -> "_People":
        """Shapes, poses without self-intersection, clothing; feet on the floor, pelvis over the origin."""
        cfg = self.config
        t0 = time.perf_counter()
        shapes = np.concatenate([bodies.sample_shapes(r, 1, self.stature_table, cfg.population) for r in rngs])
        rest_v, rest_j = self.body.rest(torch.from_numpy(shapes))
        t0 = self.times.add("body_rest", t0)
        pose_batch, families = self._poses(rngs, rest_v, rest_j)
        axis_angle = poses.to_axis_angle(pose_batch, rest_j).float()
        posed = self.body.pose(rest_v, rest_j, axis_angle)
        t0 = self.times.add("pose", t0)
        verts = posed.vertices_m
        translation = torch.zeros(len(rngs), 3)
        translation[:, :2] = -posed.joints_m[:, J["pelvis"], :2]
        translation[:, 2] = -verts[..., 2].amin(1)
        if cfg.off_floor_m:  # jumpers leave the floor (drawn only when the config asks: default streams unchanged)
            for k, (r, family) in enumerate(zip(rngs, families)):
                if family in poses.AIRBORNE_FAMILIES:
                    translation[k, 2] += float(r.uniform(*cfg.off_floor_m))
        female = shapes[:, 0]
        garments = [clothing.sample_clothing(r, [f], female[k : k + 1], cfg.loose_bias) for k, (r, f) in enumerate(zip(rngs, families))]
        params = clothing.ClothingParams(**{k: np.concatenate([g.as_dict()[k] for g in garments]) for k in garments[0].as_dict()})
        clothed, _ = clothing.dress_bodies(
            verts, rest_v, posed.joints_m, rest_j, posed.global_rotations, self.faces, self.atlas, params
        )
        self.times.add("clothing", t0)
        return _People(
            shapes, rest_v, axis_angle, families, params, translation, verts + translation[:, None],
            clothed + translation[:, None], posed.joints_m + translation[:, None], (clothed - verts).norm(dim=-1),
        )  # fmt: skip

    def _views(self, rngs: list[np.random.Generator], people: "_People") -> "_Views":
        """Cameras framed on the clothed person (the framing's cut heights from the joints); the people
        in the camera frame and the clothed surface in full-photo pixels."""
        t0 = time.perf_counter()
        clothed_np = people.clothed_world.numpy()
        joints_np = people.joints_world.numpy()
        knee = joints_np[:, [J["left_knee"], J["right_knee"]], 2].mean(1)
        hip = joints_np[:, J["pelvis"], 2]
        spine = joints_np[:, J["spine2"], 2]
        cut = np.stack([np.minimum(knee, hip) - 0.05, np.maximum(spine, hip + 0.05)], 1)
        cams = camera.sample_cameras(rngs, clothed_np[:, ::CAMERA_POINTS_STRIDE].astype(np.float64), self.config.framing_weights, cut)
        R = torch.from_numpy(np.stack([c.R for c in cams])).float()
        t = torch.from_numpy(np.stack([c.t for c in cams])).float()
        K = np.stack([c.K for c in cams])

        def to_cam(points_world: torch.Tensor) -> torch.Tensor:
            return torch.baddbmm(t[:, None], points_world, R.transpose(1, 2))

        clothed_cam = to_cam(people.clothed_world)
        views = _Views(
            cams, R, t, K, np.array([c.image_size for c in cams], np.int32), to_cam(people.body_world), clothed_cam,
            to_cam(self.regressor(people.body_world)), project_pinhole(clothed_cam, torch.from_numpy(K).float()).numpy(),
        )  # fmt: skip
        self.times.add("camera", t0)
        return views

    def _silhouettes(self, rngs: list[np.random.Generator], views: "_Views"):
        """The pipeline's crop around each person and the clean silhouettes in it: (crops, clothed masks
        (B, R, R) bool, clothed z-buffer (B, R, R), body masks or None)."""
        cfg = self.config
        t0 = time.perf_counter()
        crops = detector.person_crops(views.clothed_px, views.image_sizes, rngs, cfg.resolution, cfg.detector, views.K)
        masks, zbuffer, body_masks = detector.render_crops(
            views.clothed_cam, views.body_cam if cfg.store_body_mask else None, self.faces, crops, cfg.resolution
        )
        self.times.add("raster", t0)
        return crops, masks, zbuffer, body_masks

    def _detections(self, rngs: list[np.random.Generator], people: "_People", views: "_Views",
                    crops: detector.CropGeometry, masks: np.ndarray, zbuffer: np.ndarray) -> "_Detections":
        """True landmarks and their visibility (frame bounds, occlusion by the clothed surface), then what
        a noisy detector reports: keypoints with visibility scores, a soft mask, world landmarks."""
        cfg, res, count = self.config, self.config.resolution, len(rngs)
        t0 = time.perf_counter()
        gt_px = project_pinhole(views.landmarks_cam, torch.from_numpy(views.K).float()).numpy()
        offsets = people.cloth_offsets[:, self.landmark_vertex].numpy()  # (B, 33)
        gt_crop = np.stack([_to_crop(gt_px[k], crops, k, res) for k in range(count)])
        hidden = detector.occlusion(gt_crop, views.landmarks_cam[..., 2].numpy(), zbuffer, self.landmark_tolerance + offsets)
        gt_in_frame = np.stack([detector.seen_flags(gt_px[k], np.ones(33), tuple(views.image_sizes[k]))[0] for k in range(count)])
        gt_visible = gt_in_frame & ~hidden
        statures = (people.rest_v[..., 2].amax(1)).numpy()
        heights_px = np.ptp(views.clothed_px[..., 1], axis=1)
        keypoints = np.zeros((count, 33, 2), np.float32)
        visibility = np.zeros((count, 33), np.float32)
        soft_masks = np.zeros((count, res, res), np.float32)
        world_kp = np.zeros((count, 33, 3), np.float32)
        found = np.ones(count, bool)
        pitch = detector.camera_pitch_deg(views.R.numpy())
        for k, r in enumerate(rngs):
            det = detector.simulate(r, gt_px[k], gt_visible[k], gt_in_frame[k], float(heights_px[k]), masks[k], crops.inside_photo[k],
                                    views.landmarks_cam[k].numpy(), float(statures[k]), float(pitch[k]), cfg.detector)  # fmt: skip
            keypoints[k], visibility[k], soft_masks[k], world_kp[k], found[k] = det.keypoints, det.visibility, det.mask, det.world, det.detected
        flags = [detector.seen_flags(keypoints[k], visibility[k], tuple(views.image_sizes[k])) for k in range(count)]
        keypoints_crop = np.stack([_to_crop(keypoints[k], crops, k, res) for k in range(count)]).astype(np.float32)
        self.times.add("detector", t0)
        return _Detections(
            gt_px, gt_visible, statures, keypoints, keypoints_crop, visibility, np.stack([f[0] for f in flags]),
            np.stack([f[1] for f in flags]), soft_masks, world_kp, found,
        )  # fmt: skip


@dataclasses.dataclass
class _People:
    """The generated people of a batch (B samples): shape (B, 6) phenotypes; rest_v (B, V, 3) rest
    vertices; axis_angle (B, 24, 3) the pose; families (B,) pose family names; params the garments;
    translation (B, 3) world; body_world / clothed_world (B, V, 3) and joints_world (B, 24, 3) posed,
    world frame, metres; cloth_offsets (B, V) distance of the clothed surface from the body, metres."""

    shapes: np.ndarray
    rest_v: torch.Tensor
    axis_angle: torch.Tensor
    families: list[str]
    params: clothing.ClothingParams
    translation: torch.Tensor
    body_world: torch.Tensor
    clothed_world: torch.Tensor
    joints_world: torch.Tensor
    cloth_offsets: torch.Tensor


@dataclasses.dataclass
class _Views:
    """The virtual photos: cams (B,) ``camera.Camera``; R (B, 3, 3), t (B, 3) world -> OpenCV camera;
    K (B, 3, 3) float64 intrinsics; image_sizes (B, 2) int32 (width, height); body_cam / clothed_cam
    (B, V, 3) and landmarks_cam (B, 33, 3) camera frame, metres; clothed_px (B, V, 2) full pixels."""

    cams: list
    R: torch.Tensor
    t: torch.Tensor
    K: np.ndarray
    image_sizes: np.ndarray
    body_cam: torch.Tensor
    clothed_cam: torch.Tensor
    landmarks_cam: torch.Tensor
    clothed_px: np.ndarray


@dataclasses.dataclass
class _Detections:
    """Truth and the simulated detector, per sample (B, 33, ...): gt_px full pixels, gt_visible bool,
    statures (B,) metres; the detector's keypoints (full and crop pixels), visibility scores, in_frame
    and seen flags, soft masks (B, R, R), world landmarks (B, 33, 3) and detected (B,) bool."""

    gt_px: np.ndarray
    gt_visible: np.ndarray
    statures: np.ndarray
    keypoints: np.ndarray
    keypoints_crop: np.ndarray
    visibility: np.ndarray
    in_frame: np.ndarray
    seen: np.ndarray
    soft_masks: np.ndarray
    world_kp: np.ndarray
    detected: np.ndarray


def _sample_fields(seed: int, indices: np.ndarray, people: _People, views: _Views, crops: detector.CropGeometry,
                   masks: np.ndarray, det: _Detections) -> dict[str, np.ndarray]:
    """The sample dict (``training/data/sample.py``) of a generated batch, optional fields aside."""
    params = people.params
    return {
        "mask": det.soft_masks,
        "keypoints_px": det.keypoints,
        "keypoints_crop": det.keypoints_crop,
        "visibility": det.visibility,
        "in_frame": det.in_frame,
        "seen": det.seen,
        "world_keypoints_m": det.world_kp,
        "image_size": views.image_sizes,
        "K": views.K.astype(np.float32),
        "crop_center_px": crops.center.astype(np.float32),
        "crop_side_px": crops.side.astype(np.float32),
        "K_crop": crops.K_crop.astype(np.float32),
        "R_world_to_cam": views.R.numpy(),
        "t_world_to_cam_m": views.t.numpy(),
        "shape": people.shapes,
        "pose_axis_angle": people.axis_angle.numpy(),
        "translation_m": people.translation.numpy(),
        "body_joints_m": people.joints_world.numpy(),
        "body_vertices_m": people.body_world.numpy(),
        "clothed_vertices_m": people.clothed_world.numpy(),
        "gt_keypoints_px": det.gt_px.astype(np.float32),
        "gt_visible": det.gt_visible,
        "gt_mask": masks,
        "family": np.array([FAMILY_NAMES.index(f) for f in people.families], np.int16),
        "framing": np.array([c.framing for c in views.cams], np.int16),
        "garments": np.stack([params.top, params.bottom, params.outer, params.hair, params.has_skirt()], 1).astype(np.int16),
        "stature_m": det.statures.astype(np.float32),
        "index": indices,
        "seed": np.full(len(indices), seed, np.int64),
    }


def _normal_image(clothed_cam: torch.Tensor, faces: torch.Tensor, crops: detector.CropGeometry, resolution: int) -> np.ndarray:
    """(B, R, R, 3) uint8 camera-frame normals of the clothed surface in the crop, (n + 1) * 127.5, zero background."""
    from training.data.render import normal_images

    normals, _ = normal_images(clothed_cam, faces, torch.from_numpy(crops.K_crop).float(), resolution)
    return np.where(np.any(normals != 0, -1, keepdims=True), np.round((normals + 1.0) * 127.5), 0).astype(np.uint8)


def _to_crop(points_px: np.ndarray, crops: detector.CropGeometry, k: int, resolution: int) -> np.ndarray:
    scale = resolution / crops.side[k]
    corner = crops.center[k] - 0.5 * crops.side[k]
    return (points_px - corner) * scale
