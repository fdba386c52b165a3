"""The sample format: every field a synthetic sample carries, its shape, dtype, units and frame.

This is the contract between the data engine, the shards on disk, the on-the-fly datasets, the
trainer and the evaluation. Frames (``munet/reconstruction.py``): *world* = Blender's (metres, Z up,
the rest-pose person faces -Y, the floor is z = 0); *camera* = OpenCV's (``x_cam = R X + t``);
*full* pixels are the virtual photo's, *crop* pixels the network input's (``munet.detect.crop``).
``R`` below is the crop resolution, ``V`` = 13,718 Anny vertices.

Detector inputs (what the pipeline gets from MediaPipe on a real photo, simulated):

=====================  =============  =========  ===================================================
field                  shape          dtype      meaning
=====================  =============  =========  ===================================================
mask                   (R, R)         float32    soft person mask in [0, 1] (stored as uint8 / 255)
keypoints_px           (33, 2)        float32    detected landmarks, full pixels, MediaPipe order
keypoints_crop         (33, 2)        float32    the same in crop pixels
visibility             (33,)          float32    the detector's visibility score in [0, 1]
in_frame               (33,)          bool       detected landmark inside the photo
seen                   (33,)          bool       in_frame & visibility >= 0.5
world_keypoints_m      (33, 3)        float32    detector world landmarks: hip-centred, metres,
                                                 camera-aligned Blender frame (X right, Y away, Z up)
image_size             (2,)           int32      (width, height) of the virtual photo
K                      (3, 3)         float32    intrinsics of the full photo
crop_center_px         (2,)           float32    the crop square's centre, full pixels
crop_side_px           ()             float32    its side, full pixels
K_crop                 (3, 3)         float32    intrinsics of the crop (``matrix(R) @ K``)
detected               ()             bool       the detector found the person (only with a calibrated
                                                 detector, ``detector.calibration``; a miss's other
                                                 fields are what it would have reported)
=====================  =============  =========  ===================================================

Ground truth:

=====================  =============  =========  ===================================================
R_world_to_cam         (3, 3)         float32    camera rotation
t_world_to_cam_m       (3,)           float32    camera translation, metres
shape                  (6,)           float32    Anny phenotypes in [0, 1]
pose_axis_angle        (24, 3)        float32    smpl24 local axis-angle (radians), root = global
translation_m          (3,)           float32    added after posing (world)
body_joints_m          (24, 3)        float32    posed smpl24 joints, world
body_vertices_m        (V, 3)         float32    posed body, world
clothed_vertices_m     (V, 3)         float32    clothed surface (body topology), world
gt_keypoints_px        (33, 2)        float32    true landmark projections, full pixels
gt_visible             (33,)          bool       truly visible: inside the photo and not occluded
gt_mask                (R, R)         bool       clean clothed silhouette in the crop
gt_body_mask           (R, R)         bool       clean body silhouette (if stored)
normals                (R, R, 3)      uint8      clothed camera-frame normals (if stored),
                                                 (n + 1) * 127.5, zero background
=====================  =============  =========  ===================================================

Labels (for analysis and stratified metrics): ``family`` (index into ``engine.FAMILY_NAMES``, the
families of ``poses.FAMILY_WEIGHTS``), ``framing`` (index into ``camera.FRAMINGS``), ``garments``
(int16 (5,): top, bottom, outer, hair, skirt flag; indices into ``clothing.*_TYPES``), ``stature_m``
(float32), ``index`` (int64, the sample's index under its seed), ``seed`` (int64).
"""

from __future__ import annotations

import numpy as np

DETECTOR_FIELDS = (
    "mask", "keypoints_px", "keypoints_crop", "visibility", "in_frame", "seen", "world_keypoints_m", "image_size",
    "K", "crop_center_px", "crop_side_px", "K_crop",
)  # fmt: skip
TRUTH_FIELDS = (
    "R_world_to_cam", "t_world_to_cam_m", "shape", "pose_axis_angle", "translation_m", "body_joints_m",
    "body_vertices_m", "clothed_vertices_m", "gt_keypoints_px", "gt_visible", "gt_mask",
)  # fmt: skip
OPTIONAL_FIELDS = ("gt_body_mask", "normals", "detected")
LABEL_FIELDS = ("family", "framing", "garments", "stature_m", "index", "seed")


def to_camera(points_world: np.ndarray, sample: dict) -> np.ndarray:
    """(..., N, 3) world points of a sample (or a batch of samples) -> OpenCV camera frame."""
    R = np.asarray(sample["R_world_to_cam"], np.float64)
    t = np.asarray(sample["t_world_to_cam_m"], np.float64)
    return np.einsum("...ij,...nj->...ni", R, points_world) + t[..., None, :]
