"""The ``--preview`` image: the result over the photo, plus a side view and a top view to judge depth.

Plain numpy + OpenCV drawing on our own z-buffer (``munet.geometry.rasterize_zbuffer``), flat-shaded.
Panels, left to right, all the photo's height:

1. **Overlay**: the clothed surface (or body) rendered through the reconstructed camera, blended over the
   photo; detected keypoints as white dots, the model's as coloured ones.
2. **Side view**: the posed mesh seen from the right of the camera (looking along world +X),
   orthographic, with the floor (z = 0) drawn: the camera is at the left (an arrow on the border when it
   lies beyond the panel), so the farther from the camera, the farther right.
3. **Top view**: seen from above (looking down -Z), the camera at the bottom: the farther from the camera,
   the higher in the panel.

Colours: the person's left side blue, right side red, the middle grey, so a swapped or misplaced leg is
obvious in the side and top views.
"""

from __future__ import annotations

import io

import cv2
import numpy as np

from munet.geometry.mesh import face_normals
from munet.geometry.raster import rasterize_zbuffer
from munet.reconstruction import Camera, Reconstruction

LEFT_COLOUR = np.array([70, 120, 235], np.float64)  # RGB
RIGHT_COLOUR = np.array([230, 80, 70], np.float64)
MIDDLE_COLOUR = np.array([190, 190, 190], np.float64)
BACKGROUND = np.array([30, 30, 34], np.uint8)
MAX_PANEL_HEIGHT = 900
MIN_PANEL_HEIGHT = 640


def side_colours(skin_dense: np.ndarray, joint_names: tuple[str, ...]) -> np.ndarray:
    """(V, 3) float RGB per vertex from its skinning weights: left joints blue, right red, others grey."""
    left = np.array([n.startswith("left_") or n.endswith(".L") for n in joint_names], np.float64)
    right = np.array([n.startswith("right_") or n.endswith(".R") for n in joint_names], np.float64)
    wl, wr = skin_dense @ left, skin_dense @ right
    wm = np.clip(1.0 - wl - wr, 0.0, 1.0)
    return wl[:, None] * LEFT_COLOUR + wr[:, None] * RIGHT_COLOUR + wm[:, None] * MIDDLE_COLOUR


def _shade(vertices_view: np.ndarray, faces: np.ndarray, face_ids: np.ndarray, colours: np.ndarray,
           light_dir: np.ndarray) -> np.ndarray:
    """Flat shading of the visible faces: (H, W, 3) float RGB and (H, W) bool coverage."""
    covered = face_ids >= 0
    normals = face_normals(vertices_view, faces)
    lambert = np.abs(normals @ light_dir)  # two-sided
    face_colour = colours[faces].mean(1) * (0.35 + 0.65 * lambert)[:, None]
    image = np.zeros(face_ids.shape + (3,), np.float64)
    image[covered] = face_colour[face_ids[covered]]
    return image, covered


def render_overlay(rgb: np.ndarray, vertices_m: np.ndarray, faces: np.ndarray, camera: Camera, colours: np.ndarray,
                   alpha: float = 0.6) -> np.ndarray:
    """The mesh rendered through ``camera`` and blended over the photo (H, W, 3) uint8."""
    height, width = rgb.shape[:2]
    uv, depth = camera.project(vertices_m.astype(np.float64))
    uv = uv * (np.array([width, height], np.float64) / np.asarray(camera.image_size, np.float64))  # a downscaled photo
    face_ids, _ = rasterize_zbuffer(uv, depth, faces, height, width)
    cam_vertices = vertices_m @ camera.R_world_to_cam.T + camera.t_world_to_cam_m
    image, covered = _shade(cam_vertices, faces, face_ids, colours, np.array([0.3, -0.4, -0.87]))
    out = rgb.astype(np.float64)
    out[covered] = (1 - alpha) * out[covered] + alpha * image[covered]
    return np.clip(out, 0, 255).astype(np.uint8)


def render_orthographic(vertices_m: np.ndarray, faces: np.ndarray, colours: np.ndarray, view: str, size: tuple[int, int],
                        camera: Camera | None = None, extent_points: np.ndarray | None = None) -> np.ndarray:
    """An orthographic view (``"side"``: looking along +X; ``"top"``: looking down -Z) of a mesh, with the
    floor line (side) and the camera position (both) drawn. size: (width, height). Returns uint8 RGB."""
    width, height = size
    if view == "side":
        # screen x = world Y (away from the camera goes right), screen y = -Z; depth = X
        to_screen = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
        light = np.array([0.4, -0.5, 0.77])
    elif view == "top":
        # screen x = world X, screen y = -Y (farther from the camera goes up); depth = -Z (from above)
        to_screen = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])
        light = np.array([0.3, 0.4, 0.87])
    else:
        raise ValueError(f"view must be 'side' or 'top', got {view!r}")
    pts = vertices_m @ to_screen.T
    centre_pts = pts if extent_points is None else np.concatenate([pts, extent_points @ to_screen.T])
    lo, hi = centre_pts[:, :2].min(0), centre_pts[:, :2].max(0)
    span = np.maximum(hi - lo, 1e-3)
    scale = 0.85 * min(width / span[0], height / span[1])
    offset = np.array([width, height]) / 2 - scale * (lo + hi) / 2
    screen = pts[:, :2] * scale + offset
    depth = pts[:, 2] - pts[:, 2].min() + 1.0
    face_ids, _ = rasterize_zbuffer(screen, depth, faces, height, width)
    image, covered = _shade(pts, faces, face_ids, colours, light / np.linalg.norm(light))
    out = np.empty((height, width, 3), np.uint8)
    out[:] = BACKGROUND
    out[covered] = np.clip(image[covered], 0, 255).astype(np.uint8)

    def to_px(point_world: np.ndarray) -> tuple[int, int]:
        p = (point_world @ to_screen.T)[:2] * scale + offset
        return int(round(p[0])), int(round(p[1]))

    if view == "side":
        floor_y = to_px(np.zeros(3))[1]
        cv2.line(out, (0, floor_y), (width - 1, floor_y), (120, 160, 120), 1, cv2.LINE_AA)
    if camera is not None:  # the camera, pulled onto the panel's border when it lies beyond it
        centre = -camera.R_world_to_cam.T @ camera.t_world_to_cam_m
        forward = camera.R_world_to_cam[2]
        c = np.array(to_px(centre), np.float64)
        tip = np.array(to_px(centre + 0.5 * forward), np.float64)
        direction = (tip - c) / max(np.linalg.norm(tip - c), 1e-9)
        margin = 14.0
        clipped = np.clip(c, margin, [width - margin, height - margin])
        distance = float(np.linalg.norm(centre - vertices_m.mean(0)))
        p0 = tuple(int(round(v)) for v in clipped)
        p1 = tuple(int(round(v)) for v in clipped + 40 * direction)
        cv2.circle(out, p0, 7, (250, 220, 90), -1, cv2.LINE_AA)
        cv2.arrowedLine(out, p0, p1, (250, 220, 90), 2, cv2.LINE_AA, tipLength=0.3)
        text_at = (int(min(max(clipped[0] + 10, 4), width - 150)), int(min(max(clipped[1] - 12, 40), height - 6)))
        cv2.putText(out, f"camera {distance:.1f} m", text_at, cv2.FONT_HERSHEY_SIMPLEX, 0.45, (250, 220, 90), 1,
                    cv2.LINE_AA)
    return out


def _label(image: np.ndarray, text: str) -> None:
    cv2.putText(image, text, (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)


def render_preview(rgb: np.ndarray, vertices_m: np.ndarray, faces: np.ndarray, camera: Camera, colours: np.ndarray,
                   detected_px: np.ndarray | None = None, model_px: np.ndarray | None = None,
                   caption: str = "") -> np.ndarray:
    """The three panels side by side, (H', W', 3) uint8 RGB (the photo scaled to at most
    ``MAX_PANEL_HEIGHT`` rows). detected_px / model_px: optional (N, 2) keypoints in photo pixels."""
    overlay = render_overlay(rgb, vertices_m, faces, camera, colours)
    if detected_px is not None:
        for x, y in np.asarray(detected_px):
            if np.isfinite(x) and np.isfinite(y):
                cv2.circle(overlay, (int(x), int(y)), 5, (255, 255, 255), -1, cv2.LINE_AA)
    if model_px is not None:
        for x, y in np.asarray(model_px):
            if np.isfinite(x) and np.isfinite(y):
                cv2.circle(overlay, (int(x), int(y)), 3, (255, 200, 0), -1, cv2.LINE_AA)
    height, width = overlay.shape[:2]
    factor = min(max(1.0, MIN_PANEL_HEIGHT / height), MAX_PANEL_HEIGHT / height)
    if factor != 1.0:
        interpolation = cv2.INTER_AREA if factor < 1.0 else cv2.INTER_LINEAR
        overlay = cv2.resize(overlay, (int(round(width * factor)), int(round(height * factor))), interpolation=interpolation)
    panel_h = overlay.shape[0]
    panel_w = max(int(panel_h * 0.75), 240)
    side = render_orthographic(vertices_m, faces, colours, "side", (panel_w, panel_h), camera)
    top = render_orthographic(vertices_m, faces, colours, "top", (panel_w, panel_h), camera)
    _label(overlay, caption or "overlay")
    _label(side, "side view: camera at left")
    _label(top, "top view: camera at bottom")
    return np.concatenate([overlay, side, top], axis=1)


def preview_image(reconstruction: Reconstruction, rgb: np.ndarray, detected_px: np.ndarray | None = None,
                  model_px: np.ndarray | None = None) -> np.ndarray:
    """``render_preview`` for a reconstruction: the clothed surface when there is one, else the body."""
    surface = reconstruction.clothed or reconstruction.body
    dense = surface.skin.dense(reconstruction.skeleton.num_joints)
    colours = side_colours(dense, reconstruction.skeleton.joint_names)
    alignment = getattr(reconstruction.report, "alignment", None)  # None: a report received as plain JSON
    iou = float("nan") if alignment is None else alignment.body_iou if alignment.clothed_iou is None else alignment.clothed_iou
    error = float("nan") if alignment is None else alignment.keypoint_error_fraction
    caption = "IoU {:.2f}  kp err {:.1f}%".format(iou, 100 * error)
    return render_preview(rgb, surface.posed_vertices_m, surface.faces, reconstruction.camera, colours, detected_px,
                          model_px, caption)


def encode_png(rgb: np.ndarray) -> bytes:
    """(H, W, 3) uint8 RGB -> PNG bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()
