"""``Pipeline``: holds the heavy objects (body model ~2 s, keypoint regressor ~1 s, MediaPipe, the MuNet
checkpoint), loaded once, and runs the stages of ``munet.pipeline.stages`` in order for each photo: each
stage timed, ``progress(stage, fraction)`` called as it starts, ``cancel`` checked between stages.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from typing import Any, Callable

import numpy as np
import torch

from munet import __version__
from munet.errors import BadOptionsError, CancelledError, CheckpointError
from munet.paths import MISSING_CHECKPOINT_HINT
from munet.pipeline import stages
from munet.pipeline.assemble import StageRecords, assemble
from munet.pipeline.stages import FIT_ITERATIONS
from munet.reconstruction import Reconstruction, ReconstructOptions
from munet.report import Timings

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, float], None]

STAGES = ("detect", "initialise", "fit", "refine", "clothing", "rig", "texture", "metrics")
# rough share of the total time each stage takes, for progress fractions
_STAGE_START = {"detect": 0.0, "initialise": 0.07, "fit": 0.15, "refine": 0.5, "clothing": 0.7, "rig": 0.8,
                "texture": 0.82, "metrics": 0.9}

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


def idle_cpu_seconds() -> float | None:
    """Seconds all CPUs have spent idle since boot (``/proc/stat``: Linux), or None where unknown."""
    try:
        with open("/proc/stat", "rb") as stat:
            fields = stat.readline().split()
        return (int(fields[4]) + int(fields[5])) / os.sysconf("SC_CLK_TCK")  # idle + iowait
    except (OSError, ValueError, IndexError, AttributeError):
        return None


IDLE_CORE_SHARE = 0.7
"""Cores left free by other processes (beyond this process's one) for ``refine_thread_count``'s second thread."""


def refine_thread_count(idle_since_s: float | None, cpu_since_s: float, elapsed_s: float) -> int:
    """Torch threads for the ``refine`` stage: 2 while a core is free for a second thread, else 1.

    The refinement's Jacobians (~77 parameter rows x ~3,000 residuals, float64) are the pipeline's only
    tensor work large enough to split across threads: on an idle 2-core machine a second thread took the
    stage's median from 472 to 391 ms (lunge.jpg, 20 interleaved runs, faster in 95 % of them; the results
    are the same). On busy cores OpenMP's threads wait on each other (several times slower), so the second
    thread is used only if other processes left at least ``IDLE_CORE_SHARE`` of a core beyond this
    process's own thread since the reconstruction began: ``idle_since_s`` (``idle_cpu_seconds()`` then) and
    ``cpu_since_s`` (this process's ``time.process_time()`` then; its detector's threads count as its own),
    ``elapsed_s`` the wall time since. Where the idle time is unknown (not Linux), machines with 4 or more
    cores are taken to have one to spare."""
    cores = os.cpu_count() or 1
    if cores < 2:
        return 1
    idle_now = idle_cpu_seconds()
    if idle_since_s is None or idle_now is None or elapsed_s <= 0.05:
        return 2 if cores >= 4 else 1
    busy = cores * elapsed_s - (idle_now - idle_since_s)
    others = max(0.0, busy - (time.process_time() - cpu_since_s)) / elapsed_s  # cores other processes used
    return 2 if cores - 1 - others >= IDLE_CORE_SHARE else 1


class _StageClock:
    """Times stages, reports progress, honours cancellation."""

    def __init__(self, progress: ProgressFn | None, cancel: threading.Event | None):
        self.progress = progress
        self.cancel = cancel
        self.timings_ms: dict[str, float] = {}
        self.started = time.perf_counter()
        self.idle_at_start_s = idle_cpu_seconds()  # for ``refine_thread_count``
        self.cpu_at_start_s = time.process_time()
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

    def finish(self) -> Timings:
        self.end()
        total = round(1000.0 * (time.perf_counter() - self.started), 1)
        if self.progress is not None:
            self.progress("done", 1.0)
        return Timings(dict(self.timings_ms), total)


class Pipeline:
    """Holds the body model(s), the keypoint regressor and the detector; reconstructs photos.

    body_model: the model loaded up front (others load on first use). initialiser: where fits start
    (default: ``munet.fitting.keypoint_init.default_initialiser()``). fit_threads: torch threads during the
    reconstruction (None leaves torch's setting alone). refine_threads: torch threads during the ``refine``
    stage ("auto": ``refine_thread_count``, 2 while a core is idle; None: as ``fit_threads``). explain_depth:
    when the feet are seen on the floor, also fit the candidates without the floor term (in the ``fit``
    batch) so the report can say whether the ground plane decided the legs' depth. One reconstruction runs
    at a time per instance.
    """

    def __init__(self, body_model: str = "anny", smpl_dir: str | None = None, initialiser=None,
                 fit_threads: int | None = 1, detector=None, explain_depth: bool = True,
                 refine_threads: int | str | None = "auto"):
        from munet.detect import PoseDetector
        from munet.fitting.keypoint_init import default_initialiser

        self._models: dict[tuple[str, str], Any] = {}
        self._fitters: dict[str, Any] = {}
        self._operators: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.fit_threads = fit_threads
        self.refine_threads = refine_threads
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

    def prepare(self, options: ReconstructOptions | None = None) -> None:
        """Load now what ``options`` need (body model, fitter, the network and its checkpoint), so the first
        reconstruction is as fast as the next and a missing or corrupt checkpoint fails here
        (``CheckpointError``), not in the first request."""
        options = (options or ReconstructOptions()).validate()
        _check_options(options)
        with self._lock:
            self._fitter(options.body_model, options.smpl_dir)
            self._network(options)

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
            return self._reconstruct(image, options, notes, _StageClock(progress, cancel))

    def _reconstruct(self, image, options: ReconstructOptions, notes: list[str], clock: _StageClock) -> Reconstruction:
        clock.begin("detect")
        detected = stages.detect(image, self.detector)
        body = self._body(options.body_model, "smpl24", options.smpl_dir)
        fitter = self._fitter(options.body_model, options.smpl_dir)
        clock.begin("initialise")
        initialised = stages.initialise(detected, fitter, self.initialiser, self._network(options))
        clock.begin("fit")
        fitted = stages.fit(detected, initialised, fitter, self.explain_depth, FIT_ITERATIONS)
        clock.begin("refine")
        threads = self.refine_threads
        if threads == "auto":
            threads = refine_thread_count(clock.idle_at_start_s, clock.cpu_at_start_s, time.perf_counter() - clock.started)
        with _torch_threads(threads):
            refined = stages.refine(detected, initialised, fitted, fitter, body, options.refine_iterations)
        clothing = None
        if options.clothed:
            clock.begin("clothing")
            operator = self._operator(id(body), refined.faces, refined.rest_vertices_m.shape[0])
            clothing = stages.fit_clothes(body, detected, initialised, refined, operator)
        clock.begin("rig")
        full = None if options.skeleton == "smpl24" else self._body(options.body_model, "full", options.smpl_dir)
        rig = stages.build_rig(body, full, refined, clothing)
        textured = stages.Textured()
        if options.texture:
            clock.begin("texture")
            textured = stages.project_photo(detected, refined, clothing, body, options.texture_size)
        clock.begin("metrics")
        alignment = stages.measure_alignment(fitter, detected, refined, clothing)
        depth = stages.measure_depth(detected, initialised, fitted, refined)
        labels = getattr(body, "phenotype_labels", [f"beta{i}" for i in range(refined.state.shape.shape[1])])
        return assemble(StageRecords(
            options=options, notes=tuple(notes), shape_labels=tuple(labels), detected=detected,
            initialised=initialised, fitted=fitted, refined=refined, clothing=clothing, rig=rig, textured=textured,
            alignment=alignment, depth=depth, timings=clock.finish(),
        ))


def _check_options(options: ReconstructOptions) -> list[str]:
    """Refuse what cannot run here; return notes on what runs differently from what was asked."""
    notes = []
    if options.checkpoint is not None and not os.path.isfile(options.checkpoint):
        raise CheckpointError(
            f"checkpoint {options.checkpoint!r} not found: give the path of a MuNet .safetensors checkpoint (with its "
            ".json beside it), or leave it unset to use the shipped one")
    if options.method == "network" and _network_checkpoint(options.checkpoint) is None:
        notes.append(f"method 'network' asked, but no network checkpoint was found: used the fitting pipeline "
                     f"({MISSING_CHECKPOINT_HINT})")
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
