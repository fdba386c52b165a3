"""`munet reconstruct PHOTO -o OUT.glb`: one photo (or a folder of photos) to a rigged, textured character.

Writes a skinned GLB (one armature, ``Body`` and ``Clothed``), and on request the report JSON, OBJ, NPZ
a preview PNG (the result over the photo, with side and top views) and a turntable PNG (front, side, back and
rest views of the textured character). With a folder as PHOTO, every
image in it is reconstructed into the ``-o`` folder with a progress bar; a photo that fails is reported
and the rest go on (the exit code is then that of the first failure).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pathlib
import sys
import time

HELP = "reconstruct a rigged body and clothed surface from a photo (or a folder of photos)"
TURNTABLE_PANEL_PX = 512
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("photo", metavar="PHOTO", help="a photo (JPEG, PNG, ...) or a folder of photos")
    parser.add_argument("-o", "--output", metavar="OUT.glb",
                        help="the skinned GLB to write (default: PHOTO's name with .glb, in the current folder); "
                             "with a folder of photos: the output folder")
    parser.add_argument("--report", metavar="OUT.json", help="write the reconstruction report (JSON)")
    parser.add_argument("--obj", metavar="STEM", help="also write STEM_body.obj and STEM_clothed.obj (posed)")
    parser.add_argument("--npz", metavar="OUT.npz", help="also write every array as a NumPy .npz")
    parser.add_argument("--preview", metavar="OUT.png", help="also render the result over the photo, with side and "
                                                              "top views, to a PNG")
    parser.add_argument("--turntable", metavar="OUT.png", help="also render front, side, back and rest-pose views of "
                                                                 "the textured character to a PNG")
    parser.add_argument("--texture-size", type=int, default=2048, metavar="N",
                        help="side of the baked texture atlas in pixels, 1024-4096 (default 2048)")
    parser.add_argument("--body-model", choices=("anny", "smpl"), default="anny",
                        help="body model (smpl needs your licensed SMPL files, see --smpl-dir)")
    parser.add_argument("--smpl-dir", metavar="DIR", help="folder holding smpl/SMPL_NEUTRAL.pkl (or $MUNET_SMPL_DIR)")
    parser.add_argument("--skeleton", choices=("smpl24", "full"), default="smpl24",
                        help="smpl24: SMPL's 24 joints; full: Anny's own 104 bones (fingers, toes)")
    parser.add_argument("--no-clothed", action="store_true", help="skip the clothed surface")
    parser.add_argument("--no-texture", action="store_true", help="do not texture the surface from the photo")
    parser.add_argument("--method", choices=("network", "fitting"), default="network",
                        help="network (default: the shipped MuNet checkpoint + refinement) or fitting (optimisation only)")
    parser.add_argument("--refine-iterations", type=int, default=40, metavar="N",
                        help="test-time refinement iterations (0: off)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--checkpoint", metavar="PATH", help="a MuNet checkpoint for --method network (default: checkpoints/munet.safetensors)")


def _options(args: argparse.Namespace):
    from munet.reconstruction import ReconstructOptions

    return ReconstructOptions(
        body_model=args.body_model, smpl_dir=args.smpl_dir, skeleton=args.skeleton, clothed=not args.no_clothed,
        method=args.method, refine_iterations=args.refine_iterations, texture=not args.no_texture,
        texture_size=args.texture_size, device=args.device, checkpoint=args.checkpoint,
    ).validate()


def run(args: argparse.Namespace) -> int:
    from munet.errors import BadImageError

    from munet.detect import load_image

    options = _options(args)
    photo = pathlib.Path(args.photo)
    if photo.is_dir():
        return _run_folder(photo, args, options)
    if not photo.exists():
        raise BadImageError(f"no such photo: {photo}: check the path")
    image = load_image(photo)  # refuse a bad photo before loading any model
    outputs = _reconstruct_one(_pipeline(options), photo, _single_outputs(photo, args), options, show_progress=True,
                               image=image)
    for path in outputs:
        print(path)
    return 0


def _pipeline(options):
    """The process-wide pipeline for the default body model (built once, reused by later calls in the same
    process), a dedicated one for another."""
    from munet.pipeline import Pipeline, default_pipeline

    if options.body_model == "anny":
        return default_pipeline()
    return Pipeline(body_model=options.body_model, smpl_dir=options.smpl_dir)


def _single_outputs(photo: pathlib.Path, args: argparse.Namespace) -> dict:
    return {
        "glb": args.output or f"{photo.stem}.glb",
        "report": args.report,
        "obj": args.obj,
        "npz": args.npz,
        "preview": args.preview,
        "turntable": args.turntable,
    }


def _reconstruct_one(pipeline, photo: pathlib.Path, outputs: dict, options, show_progress: bool = False,
                     image=None) -> list[str]:
    """Reconstruct one photo and write the requested outputs; returns the paths written."""
    from munet import export  # the GLB/OBJ/NPZ writers
    from munet.detect import load_image

    image = image if image is not None else load_image(photo)
    progress = _StageBar(photo.name) if show_progress else None
    reconstruction = pipeline.reconstruct(image, options, progress=progress)
    if progress is not None:
        progress.close()
    started = time.perf_counter()
    written = []
    for key in ("glb", "report", "npz", "preview", "turntable"):
        if outputs.get(key):
            pathlib.Path(outputs[key]).parent.mkdir(parents=True, exist_ok=True)
    if outputs.get("glb"):
        export.write_glb(reconstruction, outputs["glb"])
        written.append(str(outputs["glb"]))
    if outputs.get("obj"):
        pathlib.Path(outputs["obj"]).parent.mkdir(parents=True, exist_ok=True)
        written.extend(export.write_obj(reconstruction, outputs["obj"]))
    if outputs.get("npz"):
        export.write_npz(reconstruction, outputs["npz"])
        written.append(str(outputs["npz"]))
    report = reconstruction.report.with_export_ms(1000.0 * (time.perf_counter() - started))
    if outputs.get("preview"):
        from munet.render_preview import encode_png, preview_image

        png = encode_png(preview_image(reconstruction, image.rgb, model_px=report.alignment.model_keypoints_px))
        _write_bytes(outputs["preview"], png)
        written.append(str(outputs["preview"]))
    if outputs.get("turntable"):
        from munet.render_preview import encode_png
        from munet.turntable import render_turntable

        _write_bytes(outputs["turntable"], encode_png(render_turntable(reconstruction, TURNTABLE_PANEL_PX)))
        written.append(str(outputs["turntable"]))
    if outputs.get("report"):
        _write_bytes(outputs["report"], json.dumps(report.to_json(), indent=1).encode())
        written.append(str(outputs["report"]))
    return written


def _write_bytes(path: str | os.PathLike, data: bytes) -> None:
    tmp = f"{os.fspath(path)}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _run_folder(folder: pathlib.Path, args: argparse.Namespace, options) -> int:
    from munet.errors import BadOptionsError, MunetError

    from ..cli import EXIT_CODES

    photos = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not args.output:
        raise BadOptionsError("with a folder of photos, -o must name the output folder")
    out = pathlib.Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    if not photos:
        print(f"munet reconstruct: no photos ({', '.join(IMAGE_SUFFIXES)}) in {folder}", file=sys.stderr)
        return 0
    summary, first_failure = [], 0
    bar = _Bar(len(photos))
    pipeline = _pipeline(options)
    for index, photo in enumerate(photos):
        bar.update(index, photo.name)
        stem = out / photo.stem
        outputs = {
            "glb": f"{stem}.glb",
            "report": f"{stem}.json",
            "obj": str(stem) if args.obj else None,
            "npz": f"{stem}.npz" if args.npz else None,
            "preview": f"{stem}_preview.png" if args.preview else None,
            "turntable": f"{stem}_turntable.png" if args.turntable else None,
        }
        started = time.perf_counter()
        try:
            written = _reconstruct_one(pipeline, photo, outputs, options)
        except MunetError as e:  # one bad photo does not stop the batch
            code = EXIT_CODES.get(e.code, 1)
            first_failure = first_failure or code
            bar.message(f"{photo.name}: error [{e.code}]: {e}")
            summary.append({"photo": str(photo), "ok": False, "code": e.code, "message": str(e)})
            continue
        summary.append({"photo": str(photo), "ok": True, "outputs": written,
                        "seconds": round(time.perf_counter() - started, 2)})
    bar.update(len(photos), "done")
    bar.close()
    _write_bytes(out / "summary.json", json.dumps(summary, indent=1).encode())
    failed = sum(not s["ok"] for s in summary)
    print(f"{len(photos) - failed} of {len(photos)} photos reconstructed into {out} (summary.json lists each)")
    return first_failure


class _Bar:
    """A one-line text progress bar on stderr (a plain line per step when stderr is not a terminal)."""

    def __init__(self, total: int, width: int = 30):
        self.total, self.width = total, width
        self.tty = sys.stderr.isatty()

    def update(self, done: int, label: str) -> None:
        filled = int(self.width * done / max(self.total, 1))
        line = f"[{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total} {label}"
        if self.tty:
            sys.stderr.write("\r" + line[:100].ljust(100))
            sys.stderr.flush()
        else:
            print(line, file=sys.stderr)

    def message(self, text: str) -> None:
        if self.tty:
            sys.stderr.write("\n")
        print(text, file=sys.stderr)

    def close(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


class _StageBar:
    """Stage-by-stage progress of one reconstruction (``Pipeline.reconstruct``'s ``progress``)."""

    def __init__(self, name: str):
        self.name = name
        self.bar = _Bar(100)

    def __call__(self, stage: str, fraction: float) -> None:
        if self.bar.tty:
            self.bar.update(int(round(100 * fraction)), f"{self.name}: {stage}")

    def close(self) -> None:
        self.bar.close()
