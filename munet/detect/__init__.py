"""Image front end: decode a photo, find the person with MediaPipe Pose, crop around them.

``load_image`` -> ``LoadedImage``; ``PoseDetector().detect(image)`` -> ``Detection`` (keypoints, world
keypoints, mask, person box, unseen parts); ``crop_params`` / ``crop_image`` for the network's square
crop. Frames and pixel conventions: ``munet.detect.landmarks`` and ``munet.reconstruction``.
"""

from munet.detect.crop import CropParams, crop_image, crop_params
from munet.detect.image_io import MAX_BYTES, MAX_PIXELS, LoadedImage, load_image
from munet.detect.landmarks import (
    BODY_PARTS,
    MEDIAPIPE_LANDMARKS,
    MEDIAPIPE_WORLD_TO_BLENDER,
    mediapipe_world_to_blender,
    unseen_parts,
)
from munet.detect.pose import Detection, PoseDetector, person_box

__all__ = [
    "BODY_PARTS",
    "MAX_BYTES",
    "MAX_PIXELS",
    "MEDIAPIPE_LANDMARKS",
    "MEDIAPIPE_WORLD_TO_BLENDER",
    "CropParams",
    "Detection",
    "LoadedImage",
    "PoseDetector",
    "crop_image",
    "crop_params",
    "load_image",
    "mediapipe_world_to_blender",
    "person_box",
    "unseen_parts",
]
