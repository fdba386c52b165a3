"""The work side of the server: engines, jobs and the worker threads that run them. No sockets here.

An ``Engine`` turns photo bytes into a ``munet.reconstruction.Reconstruction``-like object. The real
one (``PipelineEngine``) wraps ``munet.pipeline`` and is imported lazily, so this module stays cheap to
import and testable without the model. ``engine_factory`` picks it, or, only when the environment names
one as ``MUNET_ENGINE=module:attribute``, another engine class: the tests and benchmarks serve the
synthetic ``tests.doubles.fake_engine:FakeEngine`` that way. The product never imports test code; the
named module must be importable by the server (the test helpers put the repository on ``PYTHONPATH``).

Each worker thread builds its own engine once (a model holds ~1 GB and state that is not thread-safe)
and takes jobs from a bounded queue. Replies leave through a ``send(job, message)`` callback that the
server provides; a job ends with exactly one terminal reply, whoever sends it first (worker, timeout,
cancel or shutdown) wins ``Job.finish()``.
"""

from __future__ import annotations

import collections
import dataclasses
import importlib
import logging
import os
import platform
import sys
import threading
import time
from typing import Any, Callable, Protocol

from . import protocol

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, float], None]

#: Environment variable naming another engine class as ``module:attribute`` (tests and benchmarks
#: only, e.g. ``tests.doubles.fake_engine:FakeEngine``). Unset for the real pipeline.
ENGINE_ENV = "MUNET_ENGINE"


@dataclasses.dataclass(frozen=True)
class EngineInfo:
    """What an engine can do, for the ``info`` reply."""

    engine: str
    device: str
    body_models: tuple[str, ...]
    skeletons: tuple[str, ...]
    checkpoint: dict[str, Any] | None
    versions: dict[str, str]


class Engine(Protocol):
    """A loaded reconstruction model. An engine class is built as ``cls(device=, checkpoint=, smpl_dir=)``
    (the server's settings; see ``engine_factory``); ``load`` runs once, in the worker thread that owns
    the engine."""

    def load(self) -> None: ...

    def info(self) -> EngineInfo: ...

    def reconstruct(self, image: bytes, options: protocol.Options, progress: ProgressFn, cancel: threading.Event) -> Any:
        """Return a Reconstruction-like object; raise ``munet.errors.MunetError`` for user errors and
        ``munet.errors.CancelledError`` once ``cancel`` is set (checked between stages)."""
        ...


def runtime_versions() -> dict[str, str]:
    """Versions of the runtime pieces a bug report needs (torch only when already imported)."""
    import msgpack
    import numpy
    import zmq

    versions = {"python": platform.python_version(), "numpy": numpy.__version__, "pyzmq": zmq.__version__,
                "libzmq": zmq.zmq_version(), "msgpack": ".".join(map(str, msgpack.version))}
    if "torch" in sys.modules:
        versions["torch"] = sys.modules["torch"].__version__
    return versions


class PipelineEngine:
    """The real engine: one ``munet.pipeline.Pipeline`` per worker, built by ``load`` and called per
    request. The device, checkpoint and SMPL directory are the server's settings, merged into each
    request's ``ReconstructOptions``.
    """

    def __init__(self, device: str = "auto", checkpoint: str | None = None, smpl_dir: str | None = None):
        self.device = device
        self.checkpoint = checkpoint
        self.smpl_dir = smpl_dir
        self._pipeline: Any = None

    def _options(self, options: protocol.Options) -> Any:
        from munet.reconstruction import ReconstructOptions

        return ReconstructOptions(**options.to_wire(), device=self.device, checkpoint=self.checkpoint,
                                  smpl_dir=self.smpl_dir).validate()

    def load(self) -> None:
        """Build the pipeline and load the network's checkpoint now: a missing or corrupt checkpoint fails
        the server's start (``CheckpointError``, exit code 7), not its first request."""
        from munet.pipeline import Pipeline

        from munet.errors import CheckpointError, MunetError

        self._pipeline = Pipeline(smpl_dir=self.smpl_dir)
        try:
            self._pipeline.prepare(self._options(protocol.Options()))  # the fitter is built: this loads the network
        except MunetError:
            raise
        except Exception as e:  # noqa: BLE001 - a corrupt file surfaces as whatever its reader raises
            raise CheckpointError(f"the checkpoint {self.checkpoint or '(the shipped one)'} cannot be loaded "
                                  f"({type(e).__name__}: {e}): give a valid MuNet checkpoint with --checkpoint, "
                                  "or reinstall the backend") from e

    def info(self) -> EngineInfo:
        from munet.reconstruction import ReconstructOptions

        details = dict(self._pipeline.info()) if self._pipeline is not None else {}
        path = details.get("checkpoint")
        return EngineInfo(
            engine="munet.pipeline",
            device=str(details.get("device", self.device)),
            body_models=tuple(details.get("body_models", ReconstructOptions.CHOICES["body_model"])),
            skeletons=tuple(details.get("skeletons", ReconstructOptions.CHOICES["skeleton"])),
            checkpoint=checkpoint_facts(path) if isinstance(path, str) else None,
            versions={**runtime_versions(), **{k[:-len("_version")]: str(v) for k, v in details.items() if k.endswith("_version")}},
        )

    def reconstruct(self, image: bytes, options: protocol.Options, progress: ProgressFn, cancel: threading.Event) -> Any:
        if self._pipeline is None:
            raise RuntimeError("PipelineEngine.reconstruct called before load()")
        return self._pipeline.reconstruct(image, self._options(options), progress=progress, cancel=cancel)


def checkpoint_facts(path: str) -> dict[str, Any] | None:
    """What ``info`` says about a checkpoint: ``id`` (the file's stem and the first 12 hex digits of its
    SHA-256: two different weights never share an id), ``file`` (its name, not the server's path), and from
    its JSON metadata the training ``commit``, ``steps`` and ``metrics`` (a map, empty when none)."""
    import hashlib
    import json
    import pathlib

    weights = pathlib.Path(path)
    try:
        digest = hashlib.sha256()
        with open(weights, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        meta_path = weights.with_suffix(".json")
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    except (OSError, ValueError) as e:
        log.warning("cannot describe checkpoint %s: %s", weights, e)
        return None
    metrics = meta.get("metrics")
    return {"id": f"{weights.stem}-{digest.hexdigest()[:12]}", "file": weights.name, "commit": meta.get("commit"),
            "steps": meta.get("steps"), "metrics": metrics if isinstance(metrics, dict) else {}}


def load_engine_class(spec: str) -> Callable[..., Engine]:
    """The engine class named by ``spec``, ``"package.module:ClassName"`` (see ``ENGINE_ENV``)."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"{ENGINE_ENV}={spec!r}: name the engine class as module:attribute "
                         "(unset it for the real pipeline)")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"{ENGINE_ENV}={spec!r}: cannot load it ({type(e).__name__}: {e}); "
                         "unset it for the real pipeline") from e


def engine_factory(device: str = "auto", checkpoint: str | None = None, smpl_dir: str | None = None) -> Callable[[], Engine]:
    """A callable that builds one engine per worker: the real pipeline, or the engine class that
    ``MUNET_ENGINE=module:attribute`` names (built with the same keyword arguments as ``PipelineEngine``)."""
    spec = os.environ.get(ENGINE_ENV, "")
    engine_cls: Callable[..., Engine] = PipelineEngine
    if spec:
        engine_cls = load_engine_class(spec)
        log.warning("%s=%s: serving the results of this engine, not of the model", ENGINE_ENV, spec)
    return lambda: engine_cls(device=device, checkpoint=checkpoint, smpl_dir=smpl_dir)


# --------------------------------------------------------------------------------------------------
# Jobs


@dataclasses.dataclass(eq=False)
class Job:
    """One accepted ``reconstruct`` request.

    envelope: the ZeroMQ routing frames that address the client (one per hop).
    deadline: ``time.monotonic()`` after which the request ends with ``timeout``.
    stage, fraction: the latest progress (repeated as keepalive).
    """

    envelope: tuple[bytes, ...]
    request: protocol.Reconstruct
    deadline: float
    timeout_s: float
    cancel: threading.Event = dataclasses.field(default_factory=threading.Event)
    stage: str = "queued"
    fraction: float = 0.0
    started: float | None = None
    last_sent: float = dataclasses.field(default_factory=time.monotonic)
    _done: bool = False
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    @property
    def id(self) -> str:
        return self.request.id

    @property
    def key(self) -> tuple[tuple[bytes, ...], str]:
        return self.envelope, self.request.id

    @property
    def done(self) -> bool:
        return self._done

    def finish(self) -> bool:
        """Claim the right to send the terminal reply: True exactly once."""
        with self._lock:
            if self._done:
                return False
            self._done = True
            return True


class WorkerPool:
    """``workers`` threads, each with its own engine, over one bounded FIFO queue of jobs.

    ``submit`` refuses when ``workers + queue_size`` jobs are already queued or running (a cancelled
    job still counts while its worker finishes its current stage). ``send(job, message)`` is
    called from worker threads for progress and terminal replies.
    """

    def __init__(self, make_engine: Callable[[], Engine], workers: int, queue_size: int,
                 send: Callable[[Job, protocol.Message], None]):
        if workers < 1 or queue_size < 0:
            raise ValueError("workers must be >= 1 and queue_size >= 0")
        self.workers = workers
        self.queue_size = queue_size
        self._make_engine = make_engine
        self._send = send
        self._cond = threading.Condition()
        self._queue: collections.deque[Job] = collections.deque()
        self._running: set[Job] = set()
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._loaded = 0
        self.engine_info: EngineInfo | None = None
        self.load_error: BaseException | None = None

    # -- lifecycle

    def start(self) -> None:
        for i in range(self.workers):
            thread = threading.Thread(target=self._worker, name=f"munet-worker-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    @property
    def ready(self) -> bool:
        return self._loaded == self.workers

    def stop(self) -> list[Job]:
        """Stop taking jobs; return every queued and running job. The caller claims each one's reply
        (``Job.finish``) and then sets its cancel event; workers exit after their current stage."""
        with self._cond:
            self._stopping = True
            jobs = list(self._queue) + list(self._running)
            self._queue.clear()
            self._cond.notify_all()
        return jobs

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the workers; True when all have exited."""
        end = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, end - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    # -- queue

    def submit(self, job: Job) -> int | None:
        """Queue ``job``: its 0-based queue position, or None when the queue is full."""
        with self._cond:
            if self._stopping or len(self._queue) + len(self._running) >= self.workers + self.queue_size:
                return None
            self._queue.append(job)
            self._cond.notify()
            return len(self._queue) - 1

    def remove(self, job: Job) -> bool:
        """Take a job out of the queue (cancel, timeout, client gone); False if it is not queued."""
        with self._cond:
            try:
                self._queue.remove(job)
                return True
            except ValueError:
                return False

    def snapshot(self) -> tuple[list[Job], list[Job]]:
        """(queued in order, running) jobs, copied under the lock."""
        with self._cond:
            return list(self._queue), list(self._running)

    def find(self, key: tuple[tuple[bytes, ...], str]) -> Job | None:
        queued, running = self.snapshot()
        return next((job for job in queued + running if job.key == key), None)

    def _next(self) -> Job | None:
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            if self._stopping:
                return None
            job = self._queue.popleft()
            self._running.add(job)
            return job

    # -- worker thread

    def _worker(self) -> None:
        try:
            engine = self._make_engine()
            engine.load()
            with self._cond:
                if self.engine_info is None:
                    self.engine_info = engine.info()
                self._loaded += 1
            log.info("%s: engine loaded", threading.current_thread().name)
        except BaseException as e:  # noqa: BLE001 - reported to the server loop, which stops with it
            from munet.errors import MunetError

            if isinstance(e, MunetError):
                log.error("loading the engine failed: %s", e)
            else:
                log.exception("loading the engine failed")
            self.load_error = e
            return
        while (job := self._next()) is not None:
            try:
                if not job.done:
                    self._run(engine, job)
            finally:
                with self._cond:
                    self._running.discard(job)

    def _run(self, engine: Engine, job: Job) -> None:
        from munet.errors import CancelledError, MunetError

        job.started = time.monotonic()

        def progress(stage: str, fraction: float) -> None:
            if job.cancel.is_set():
                raise CancelledError("the request was cancelled")
            job.stage, job.fraction = str(stage)[:64], min(1.0, max(0.0, float(fraction)))
            if job.request.progress and not job.done:
                job.last_sent = time.monotonic()
                self._send(job, protocol.Progress(job.id, job.stage, job.fraction))

        try:
            progress("started", 0.0)
            reconstruction = engine.reconstruct(bytes(job.request.image), job.request.options, progress, job.cancel)
            message: protocol.Message = protocol.Result(job.id, protocol.ResultReconstruction.from_reconstruction(reconstruction))
        except MunetError as e:
            message = protocol.Error(job.id, e.code, str(e))
        except Exception as e:  # noqa: BLE001 - a pipeline bug must cost one request, not the server
            log.exception("request %s failed", job.id)
            message = protocol.Error(job.id, "internal", f"{type(e).__name__}: {e} (see the server log)")
        elapsed = time.monotonic() - job.started
        if job.finish():
            self._send(job, message)
            log.info("request %s: %s in %.2f s", job.id, message.TYPE if not isinstance(message, protocol.Error) else message.code, elapsed)
        else:
            log.info("request %s finished after its reply was sent (%.2f s): result dropped", job.id, elapsed)
