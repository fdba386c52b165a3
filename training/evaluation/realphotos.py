"""The real-photo check: the pipeline on real photos, scored with the 2D metrics a photo allows
(silhouette IoU of the clothed and the bare body against MediaPipe's mask, keypoint error against
MediaPipe's seen landmarks as a fraction of the person's height), plus an overlay PNG per photo (the
result over the photo with side and top views, ``munet.render_preview``) to judge depth by eye."""

from __future__ import annotations

import logging
import pathlib

import numpy as np

log = logging.getLogger(__name__)
SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


class _RecordingDetector:
    """Wraps MediaPipe and keeps the last detection (for the overlay's detected keypoints)."""

    def __init__(self, detector):
        self.detector = detector
        self.last = None

    def detect(self, image):
        self.last = self.detector.detect(image)
        return self.last

    def close(self) -> None:
        self.detector.close()


def check_photos(folder: pathlib.Path, specs: list[str], overlays: pathlib.Path | None) -> dict:
    """Run each pipeline method of ``specs`` (fitting, network[:CKPT], NAME=SPEC) on every photo."""
    from munet.detect import PoseDetector, load_image
    from munet.errors import MunetError
    from munet.pipeline import Pipeline
    from munet.reconstruction import ReconstructOptions
    from munet.render_preview import encode_png, preview_image

    photos = sorted(p for p in pathlib.Path(folder).iterdir() if p.suffix.lower() in SUFFIXES)
    if not photos:
        raise FileNotFoundError(f"no photos ({', '.join(SUFFIXES)}) in {folder}")
    detector = _RecordingDetector(PoseDetector())
    pipeline = Pipeline(detector=detector)
    results: dict[str, dict] = {}
    rows = []
    try:
        for spec in specs:
            name, _, rest = spec.partition("=") if "=" in spec else (spec.split(":")[0], "", spec)
            kind, _, checkpoint = (rest or spec).partition(":")
            options = ReconstructOptions(method=kind, checkpoint=checkpoint or None, texture=False).validate()
            per_photo = {}
            for photo in photos:
                image = load_image(str(photo))
                try:
                    result = pipeline.reconstruct(image, options)
                except MunetError as e:
                    per_photo[photo.name] = {"failed": f"{e.code}: {e}"}
                    rows.append(f"| {name} | {photo.name} | failed: {e.code} | | | |")
                    continue
                report = result.report
                alignment = report.alignment
                entry = {
                    "clothed_iou": alignment.clothed_iou,
                    "body_iou": alignment.body_iou,
                    "keypoint_error_pct_height": 100.0 * alignment.keypoint_error_fraction,
                    "keypoint_error_px": alignment.keypoint_error_px,
                    "facing": report.facing,
                    "time_ms": report.timings_ms.total_ms,
                    "timings_ms": report.timings_ms.to_json(),
                }
                if overlays is not None:
                    overlays.mkdir(parents=True, exist_ok=True)
                    model_px = alignment.model_keypoints_px.astype(np.float32)
                    png = encode_png(preview_image(result, image.rgb, detector.last.keypoints_px, model_px))
                    path = overlays / f"{photo.stem}_{name}.png"
                    path.write_bytes(png)
                    entry["overlay"] = str(path)
                per_photo[photo.name] = entry
                rows.append(f"| {name} | {photo.name} | {entry['clothed_iou']:.3f} | {entry['body_iou']:.3f} | "
                            f"{entry['keypoint_error_pct_height']:.2f} | {entry['time_ms']:.0f} |")  # fmt: skip
            results[name] = per_photo
    finally:
        pipeline.close()
    header = "| method | photo | IoU clothed | IoU body | 2D kp %h | time ms |\n|---|---|---|---|---|---|"
    return {"folder": str(folder), "photos": results, "table": "\n".join([header, *rows])}
