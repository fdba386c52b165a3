"""A synthetic engine for tests and benchmarks of the service, never for users.

Served by ``munet serve`` only when ``MUNET_ENGINE=tests.doubles.fake_engine:FakeEngine`` (see
``backend.service.engine_factory``; the test helpers in ``tests.doubles.processes`` set it). It returns a real
``munet.reconstruction.Reconstruction`` of production size (a ~14k-vertex capsule "body", a clothed
copy, sparse skin weights over ``smpl24``, per-corner UVs and a ~1 MB PNG texture) without any model,
so the wire, the server and the clients can be tested and timed without the model.

It behaves like the pipeline at the edges: it decodes the photo (``bad_image`` when it cannot,
``image_too_large`` over 50 Mpixel), reports ``no_person_found`` for a photo of one flat colour and
``smpl_files_missing`` for ``body_model="smpl"``, calls ``progress`` between stages and honours
``cancel``. Knobs (environment):

* ``MUNET_FAKE_STAGE_S``: seconds per stage (5 stages), default 0.
* ``MUNET_FAKE_BUSY=1``: spend the stage time computing in Python (holds the GIL like a real model's
  Python code) instead of sleeping.
* ``MUNET_FAKE_VERTICES``: body vertex count, default 13,688 (118 rings x 116 segments).
* ``MUNET_FAKE_TEXTURE_BYTES``: approximate PNG size, default 1 MiB.
* ``MUNET_FAKE_LOAD_S``: seconds ``load`` takes, default 0.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import threading
import time
from typing import Any

import numpy as np

from backend import protocol
from backend.service import EngineInfo, ProgressFn, runtime_versions

log = logging.getLogger(__name__)

STAGES = ("detect", "network", "fit", "refine", "texture")
MAX_PIXELS = 50_000_000

SMPL24_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle", "right_ankle",
    "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand",
)
SMPL24_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def capsule_mesh(num_vertices: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A closed-ish capsule 1.7 m tall standing on z=0: (V, 3) float32 vertices, (F, 3) int32 faces,
    (F, 3, 2) float32 per-corner UVs."""
    segments = 116
    rings = max(2, round(num_vertices / segments))
    z = np.linspace(0.0, 1.7, rings, dtype=np.float32)
    theta = np.linspace(0.0, 2 * np.pi, segments, endpoint=False, dtype=np.float32)
    radius = 0.05 + 0.2 * np.sin(np.pi * z / 1.7)
    x = radius[:, None] * np.cos(theta)[None, :]
    y = radius[:, None] * np.sin(theta)[None, :]
    vertices = np.stack([x, y, np.broadcast_to(z[:, None], x.shape)], -1).reshape(-1, 3).astype(np.float32)
    r, s = np.meshgrid(np.arange(rings - 1), np.arange(segments), indexing="ij")
    a, b = r * segments + s, r * segments + (s + 1) % segments
    c, d = a + segments, b + segments
    faces = np.concatenate([np.stack([a, b, d], -1).reshape(-1, 3), np.stack([a, d, c], -1).reshape(-1, 3)]).astype(np.int32)
    uv_vertex = np.stack([(np.arange(rings * segments) % segments) / segments,
                          (np.arange(rings * segments) // segments) / max(1, rings - 1)], -1).astype(np.float32)
    return vertices, faces, uv_vertex[faces]


def noise_png(nbytes: int, seed: int = 0) -> tuple[bytes, int, int]:
    """A PNG of RGB noise of about ``nbytes`` bytes: (bytes, width, height)."""
    from PIL import Image

    side = max(8, int((nbytes / 3) ** 0.5))
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG", compress_level=1)
    return out.getvalue(), side, side


def check_image(image: bytes) -> tuple[int, int]:
    """Decode enough of ``image`` to judge it like the pipeline would: (width, height)."""
    from PIL import Image, UnidentifiedImageError

    from munet.errors import BadImageError, ImageTooLargeError, NoPersonFoundError

    try:
        img = Image.open(io.BytesIO(image))
        width, height = img.size
        if width * height > MAX_PIXELS:
            raise ImageTooLargeError(f"the photo has {width}x{height} pixels, more than {MAX_PIXELS}: downscale it")
        if width * height == 0:
            raise BadImageError("the photo has no pixels")
        img.draft("RGB", (64, 64))
        small = np.asarray(img.convert("L").resize((16, 16)))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise BadImageError(f"the photo could not be decoded ({e}): send a JPEG or PNG file") from e
    if int(small.max()) == int(small.min()):
        raise NoPersonFoundError("no person found: the photo is one flat colour")
    return width, height


class FakeEngine:
    """Synthetic results of production size (see the module docstring). One per worker thread."""

    def __init__(self, device: str = "auto", checkpoint: str | None = None, smpl_dir: str | None = None):
        del checkpoint, smpl_dir  # the engine constructor's contract (see backend.service.engine_factory); no model here
        self.device = "cpu" if device == "auto" else device
        self.stage_s = _env_float("MUNET_FAKE_STAGE_S", 0.0)
        self.busy = os.environ.get("MUNET_FAKE_BUSY") == "1"
        self.num_vertices = int(os.environ.get("MUNET_FAKE_VERTICES", 13_688))
        self.texture_bytes = int(os.environ.get("MUNET_FAKE_TEXTURE_BYTES", 1 << 20))
        self.load_s = _env_float("MUNET_FAKE_LOAD_S", 0.0)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self._template: dict[str, Any] = {}

    def load(self) -> None:
        if self.load_s:
            time.sleep(self.load_s)  # stands in for model loading time; nothing to wait for
        vertices, faces, uv = capsule_mesh(self.num_vertices)
        rng = np.random.default_rng(0)
        V, K = len(vertices), 4
        joint_indices = np.sort(rng.integers(0, 24, (V, K)), axis=1).astype(np.int32)
        weights = rng.random((V, K), dtype=np.float32)
        weights /= weights.sum(1, keepdims=True)
        png, width, height = noise_png(self.texture_bytes)
        self._template = dict(vertices=vertices, faces=faces, uv=uv, joint_indices=joint_indices, weights=weights,
                              png=png, png_size=(width, height))

    def info(self) -> EngineInfo:
        return EngineInfo(engine="fake (synthetic results for tests, no model)", device=self.device,
                          body_models=("anny",), skeletons=("smpl24", "full"),
                          checkpoint={"id": "fake-0", "metrics": {}}, versions=runtime_versions())

    def _stage(self, cancel: threading.Event) -> None:
        from munet.errors import CancelledError

        if not self.busy:
            if cancel.wait(self.stage_s):
                raise CancelledError("the request was cancelled")
            return
        end = time.monotonic() + self.stage_s
        while time.monotonic() < end:
            sum(i * i for i in range(2000))  # Python work that holds the GIL in bursts
            if cancel.is_set():
                raise CancelledError("the request was cancelled")

    def reconstruct(self, image: bytes, options: protocol.Options, progress: ProgressFn, cancel: threading.Event) -> Any:
        from munet.errors import SmplFilesMissingError
        from munet.reconstruction import Camera, Reconstruction, Skeleton, SkinnedSurface, SkinWeights, Texture
        from munet.report import PlainReport

        start = time.monotonic()
        width, height = check_image(image)
        if options.body_model == "smpl":
            raise SmplFilesMissingError("the fake engine has no SMPL files (set MUNET_SMPL_DIR on the server)")
        for i, stage in enumerate(STAGES):
            progress(stage, i / len(STAGES))
            self._stage(cancel)
        t = self._template
        if options.skeleton == "smpl24":
            names, parents = SMPL24_NAMES, np.array(SMPL24_PARENTS, np.int32)
        else:
            names, parents = tuple(f"bone_{i:03d}" for i in range(104)), np.arange(-1, 103, dtype=np.int32)
        J = len(names)
        rest_joints = np.stack([np.zeros(J), np.zeros(J), np.linspace(0.9, 1.6, J)], -1).astype(np.float32)
        skin = SkinWeights(np.minimum(t["joint_indices"], J - 1), t["weights"].copy())
        uv = t["uv"].copy() if options.texture else None
        body = SkinnedSurface(t["vertices"].copy(), t["vertices"] + np.float32(0.01), t["faces"].copy(), skin, uv)
        clothed = None
        if options.clothed:
            grown = t["vertices"] * np.array([1.05, 1.05, 1.0], np.float32)
            clothed = SkinnedSurface(grown, grown + np.float32(0.01), t["faces"].copy(), skin, uv)
        focal = 1.2 * float(np.hypot(width, height))
        texture = None
        if options.texture:
            texture = Texture(t["png"], "image/png", *t["png_size"])
        return Reconstruction(
            body=body, clothed=clothed,
            skeleton=Skeleton(options.skeleton, names, parents, rest_joints),
            pose_axis_angle=np.zeros((J, 3), np.float32), root_translation_m=np.zeros(3, np.float32),
            shape=np.full(11, 0.5, np.float32), body_model=options.body_model,
            camera=Camera((focal, focal), (width / 2, height / 2), (width, height),
                          np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]), np.array([0.0, 0.85, 3.0])),
            texture=texture,
            report=PlainReport({"engine": "fake", "worker": self.worker, "thread": threading.current_thread().name,
                                "image_size": [width, height], "vertices": len(t["vertices"]),
                                "timings_ms": {"total": round(1000 * (time.monotonic() - start), 3)}}),
        )
