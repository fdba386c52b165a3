"""The contact sheet: a grid of samples, each shown as (1) the network's input -- the soft mask with
the detected keypoints (green: seen, orange: in the photo but not trusted, red crosses: the truth of
hidden ones) on the crop, the part of the crop outside the photo darkened -- (2) the clothed surface
rendered from the camera into the same crop, and (3) the clothed surface from the side."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from munet.detect.landmarks import MEDIAPIPE_LANDMARKS
from training.data import camera, clothing
from training.data.engine import FAMILY_NAMES
from training.data.render import normal_images, shade

L = {name: i for i, name in enumerate(MEDIAPIPE_LANDMARKS)}
BONES = [
    (L[a], L[b]) for a, b in (
        ("left_shoulder", "right_shoulder"), ("left_hip", "right_hip"), ("left_shoulder", "left_hip"), ("right_shoulder", "right_hip"),
        ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"), ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
        ("left_hip", "left_knee"), ("left_knee", "left_ankle"), ("right_hip", "right_knee"), ("right_knee", "right_ankle"),
        ("left_ankle", "left_foot_index"), ("right_ankle", "right_foot_index"), ("nose", "left_eye"), ("nose", "right_eye"),
    )
]  # fmt: skip


def input_panel(sample: dict, index: int) -> np.ndarray:
    """(R, R, 3) uint8: the soft mask and keypoints of one sample of a stacked batch."""
    mask = sample["mask"][index]
    res = mask.shape[0]
    gray = (40 + 200 * mask).astype(np.uint8)
    rgb = np.repeat(gray[..., None], 3, -1)
    # darken the part of the crop that lies outside the photo
    width, height = sample["image_size"][index]
    side, center = float(sample["crop_side_px"][index]), sample["crop_center_px"][index]
    xs = (np.arange(res) + 0.5) * side / res + center[0] - side / 2
    ys = (np.arange(res) + 0.5) * side / res + center[1] - side / 2
    outside = ~(((ys >= 0) & (ys < height))[:, None] & ((xs >= 0) & (xs < width))[None, :])
    rgb[outside] = (rgb[outside] * 0.35).astype(np.uint8) + np.array([0, 0, 60], np.uint8)
    kp = sample["keypoints_crop"][index]
    seen = sample["seen"][index]
    in_frame = sample["in_frame"][index]
    for a, b in BONES:
        if seen[a] and seen[b]:
            cv2.line(rgb, tuple(np.round(kp[a]).astype(int)), tuple(np.round(kp[b]).astype(int)), (90, 200, 255), 1, cv2.LINE_AA)
    scale = res / side
    corner = center - side / 2
    gt = (sample["gt_keypoints_px"][index] - corner) * scale
    for i in range(len(kp)):
        if not sample["gt_visible"][index][i]:
            p = tuple(np.round(gt[i]).astype(int))
            cv2.drawMarker(rgb, p, (220, 40, 40), cv2.MARKER_TILTED_CROSS, 5, 1)
        color = (40, 220, 40) if seen[i] else (255, 150, 0) if in_frame[i] else None
        if color is not None:
            cv2.circle(rgb, tuple(np.round(kp[i]).astype(int)), 2, color, -1, cv2.LINE_AA)
    return rgb


def render_panels(sample: dict, faces: torch.Tensor, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, R, R, 3) camera views and side views of the clothed surfaces of the chosen samples."""
    res = sample["mask"].shape[1]
    world = torch.from_numpy(sample["clothed_vertices_m"][index]).float()
    R = torch.from_numpy(sample["R_world_to_cam"][index]).float()
    t = torch.from_numpy(sample["t_world_to_cam_m"][index]).float()
    cam = torch.baddbmm(t[:, None], world, R.transpose(1, 2))
    normals, mask = normal_images(cam, faces, torch.from_numpy(sample["K_crop"][index]).float(), res)
    front = shade(normals, mask, color=(0.55, 0.7, 0.9))
    # side: turn the person by 90 degrees about the vertical through their centre, frame them whole
    centre = world.mean(1, keepdim=True)
    rel = world - centre
    side_view = torch.stack([rel[..., 1], -rel[..., 2], -rel[..., 0]], -1)  # camera looks along -X world
    extent = (side_view[..., 1].amax(1) - side_view[..., 1].amin(1)).clamp(min=0.3)
    distance = 8.0
    focal = 0.85 * res * distance / extent
    side_view = side_view + torch.tensor([0.0, 0.0, distance])
    K = torch.zeros(len(index), 3, 3)
    K[:, 0, 0] = K[:, 1, 1] = focal
    K[:, 0, 2] = K[:, 1, 2] = res / 2
    K[:, 2, 2] = 1
    normals, mask = normal_images(side_view, faces, K, res)
    side = shade(normals, mask, color=(0.6, 0.75, 0.6))
    return front, side


def contact_sheet(sample: dict, faces: torch.Tensor, count: int = 24, columns: int = 3) -> np.ndarray:
    """(H, W, 3) uint8 RGB grid of the first ``count`` samples of a stacked batch."""
    count = min(count, len(sample["mask"]))
    index = np.arange(count)
    front, side = render_panels(sample, faces, index)
    tiles = []
    for k in index:
        tile = np.concatenate([input_panel(sample, k), front[k], side[k]], 1)
        top, bottom, outer, hair, _ = sample["garments"][k]
        label = (f"#{sample['index'][k]} {FAMILY_NAMES[sample['family'][k]]} {camera.FRAMINGS[sample['framing'][k]]} | "
                 f"{clothing.TOP_TYPES[top]}/{clothing.BOTTOM_TYPES[bottom]}/{clothing.OUTER_TYPES[outer]}/"
                 f"{clothing.HAIR_TYPES[hair]} {sample['stature_m'][k]:.2f}m")  # fmt: skip
        cv2.putText(tile, label, (4, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (255, 255, 255), 2, cv2.LINE_AA)
        cv2.putText(tile, label, (4, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (20, 20, 20), 1, cv2.LINE_AA)
        tile[:, -1] = tile[-1, :] = 128
        tiles.append(tile)
    while len(tiles) % columns:
        tiles.append(np.full_like(tiles[0], 255))
    rows = [np.concatenate(tiles[r : r + columns], 1) for r in range(0, len(tiles), columns)]
    return np.concatenate(rows, 0)


def save_contact_sheet(path: str, sample: dict, faces: torch.Tensor, count: int = 24) -> None:
    sheet = contact_sheet(sample, faces, count)
    if not cv2.imwrite(str(path), sheet[..., ::-1]):
        raise OSError(f"could not write the contact sheet to {path}")
