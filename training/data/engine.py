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
from munet.body.skeleton import SMPL24_JOINTS
from training.data import bodies, camera, clothing, detector, poses
from training.data.config import DataConfig

log = logging.getLogger(__name__)

J = {name: i for i, name in enumerate(SMPL24_JOINTS)}
FAMILY_NAMES = tuple(poses.FAMILY_WEIGHTS)
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
        ``training/data/sample.py``)."""
        cfg = self.config
        indices = np.asarray(indices, np.int64)
        count = len(indices)
        rngs = [np.random.default_rng([int(seed), int(i)]) for i in indices]
        res = cfg.resolution
        t0 = time.perf_counter()
        with torch.no_grad():
            shapes = np.concatenate([bodies.sample_shapes(r, 1, self.stature_table, cfg.population) for r in rngs])
            shape_t = torch.from_numpy(shapes)
            rest_v, rest_j = self.body.rest(shape_t)
            t0 = self.times.add("body_rest", t0)
            pose_batch, families = self._poses(rngs, rest_v, rest_j)
            axis_angle = poses.to_axis_angle(pose_batch, rest_j).float()
            posed = self.body.pose(rest_v, rest_j, axis_angle)
            t0 = self.times.add("pose", t0)

            # feet on the floor, pelvis over the origin
            verts = posed.vertices_m
            translation = torch.zeros(count, 3)
            translation[:, :2] = -posed.joints_m[:, J["pelvis"], :2]
            translation[:, 2] = -verts[..., 2].amin(1)
            female = shapes[:, 0]
            garments = [clothing.sample_clothing(r, [f], female[k : k + 1], cfg.loose_bias) for k, (r, f) in enumerate(zip(rngs, families))]
            params = clothing.ClothingParams(**{k: np.concatenate([g.as_dict()[k] for g in garments]) for k in garments[0].as_dict()})
            clothed, _ = clothing.dress_bodies(
                verts, rest_v, posed.joints_m, rest_j, posed.global_rotations, self.faces, self.atlas, params
            )
            body_world = verts + translation[:, None]
            clothed_world = clothed + translation[:, None]
            joints_world = posed.joints_m + translation[:, None]
            t0 = self.times.add("clothing", t0)

            # cameras, framed on the clothed person
            clothed_np = clothed_world.numpy()
            joints_np = joints_world.numpy()
            knee = joints_np[:, [J["left_knee"], J["right_knee"]], 2].mean(1)
            hip = joints_np[:, J["pelvis"], 2]
            spine = joints_np[:, J["spine2"], 2]
            cut = np.stack([np.minimum(knee, hip) - 0.05, np.maximum(spine, hip + 0.05)], 1)
            cams = camera.sample_cameras(rngs, clothed_np[:, ::CAMERA_POINTS_STRIDE].astype(np.float64), cfg.framing_weights, cut)
            R = torch.from_numpy(np.stack([c.R for c in cams])).float()
            t = torch.from_numpy(np.stack([c.t for c in cams])).float()
            K = np.stack([c.K for c in cams])
            image_sizes = np.array([c.image_size for c in cams], np.int32)
            body_cam = torch.baddbmm(t[:, None], body_world, R.transpose(1, 2))
            clothed_cam = torch.baddbmm(t[:, None], clothed_world, R.transpose(1, 2))
            landmarks_cam = torch.baddbmm(t[:, None], self.regressor(body_world), R.transpose(1, 2))
            K_t = torch.from_numpy(K).float()
            clothed_px = detector.project(clothed_cam, K_t).numpy()
            t0 = self.times.add("camera", t0)

            # the detector: crops, silhouettes, visibility, noise
            crops = detector.person_crops(clothed_px, image_sizes, rngs, res, cfg.detector, K)
            masks, zbuffer, body_masks = detector.render_crops(
                clothed_cam, body_cam if cfg.store_body_mask else None, self.faces, crops, res
            )
            t0 = self.times.add("raster", t0)
            gt_px = detector.project(landmarks_cam, K_t).numpy()
            landmark_depth = landmarks_cam[..., 2].numpy()
            offsets = (clothed - verts).norm(dim=-1)[:, self.landmark_vertex].numpy()  # (B, 33)
            gt_crop = np.stack([_to_crop(gt_px[k], crops, k, res) for k in range(count)])
            hidden = detector.occlusion(gt_crop, landmark_depth, zbuffer, self.landmark_tolerance + offsets)
            gt_in_frame = np.stack([detector.seen_flags(gt_px[k], np.ones(33), tuple(image_sizes[k]))[0] for k in range(count)])
            gt_visible = gt_in_frame & ~hidden
            statures = (rest_v[..., 2].amax(1)).numpy()
            heights_px = np.ptp(clothed_px[..., 1], axis=1)

            keypoints = np.zeros((count, 33, 2), np.float32)
            visibility = np.zeros((count, 33), np.float32)
            soft_masks = np.zeros((count, res, res), np.float32)
            world_kp = np.zeros((count, 33, 3), np.float32)
            for k, r in enumerate(rngs):
                keypoints[k], visibility[k] = detector.noisy_keypoints(
                    r, gt_px[k], gt_visible[k], gt_in_frame[k], float(heights_px[k]), cfg.detector
                )
                soft_masks[k] = detector.noisy_mask(r, masks[k], crops.inside_photo[k], cfg.detector)
                world_kp[k] = detector.noisy_world_keypoints(r, landmarks_cam[k].numpy(), float(statures[k]))
            flags = [detector.seen_flags(keypoints[k], visibility[k], tuple(image_sizes[k])) for k in range(count)]
            in_frame = np.stack([f[0] for f in flags])
            seen = np.stack([f[1] for f in flags])
            keypoints_crop = np.stack([_to_crop(keypoints[k], crops, k, res) for k in range(count)]).astype(np.float32)
            t0 = self.times.add("detector", t0)

            sample = {
                "mask": soft_masks,
                "keypoints_px": keypoints,
                "keypoints_crop": keypoints_crop,
                "visibility": visibility,
                "in_frame": in_frame,
                "seen": seen,
                "world_keypoints_m": world_kp,
                "image_size": image_sizes,
                "K": K.astype(np.float32),
                "crop_center_px": crops.center.astype(np.float32),
                "crop_side_px": crops.side.astype(np.float32),
                "K_crop": crops.K_crop.astype(np.float32),
                "R_world_to_cam": R.numpy(),
                "t_world_to_cam_m": t.numpy(),
                "shape": shapes,
                "pose_axis_angle": axis_angle.numpy(),
                "translation_m": translation.numpy(),
                "body_joints_m": joints_world.numpy(),
                "body_vertices_m": body_world.numpy(),
                "clothed_vertices_m": clothed_np,
                "gt_keypoints_px": gt_px.astype(np.float32),
                "gt_visible": gt_visible,
                "gt_mask": masks,
                "family": np.array([FAMILY_NAMES.index(f) for f in families], np.int16),
                "framing": np.array([c.framing for c in cams], np.int16),
                "garments": np.stack(
                    [params.top, params.bottom, params.outer, params.hair, params.has_skirt()], 1
                ).astype(np.int16),
                "stature_m": statures.astype(np.float32),
                "index": indices,
                "seed": np.full(count, seed, np.int64),
            }
            if cfg.store_body_mask:
                sample["gt_body_mask"] = body_masks
            if cfg.store_normals:
                from training.data.render import normal_images

                normals, _ = normal_images(clothed_cam, self.faces, torch.from_numpy(crops.K_crop).float(), res)
                sample["normals"] = np.where(
                    np.any(normals != 0, -1, keepdims=True), np.round((normals + 1.0) * 127.5), 0
                ).astype(np.uint8)
            self.times.add("assemble", t0)
        return sample


def _to_crop(points_px: np.ndarray, crops: detector.CropGeometry, k: int, resolution: int) -> np.ndarray:
    scale = resolution / crops.side[k]
    corner = crops.center[k] - 0.5 * crops.side[k]
    return (points_px - corner) * scale
