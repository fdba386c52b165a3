"""Runs the calibration in chunks: the data engine draws people, each is rendered and given to the real
MediaPipe (or the simulator's own output is taken), and each chunk's records are written to its own
file as soon as it is done, so an interrupted run resumes where it stopped.

Determinism: sample ``i`` is the engine's sample ``(seed, i)`` (batches aligned to the engine's batch
size); its render draws from ``numpy.random.default_rng([seed, i, RENDER_STREAM])``. Chunks are
``CHUNK`` consecutive indices, computed by single-threaded worker processes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import pathlib

import numpy as np

from training.calibration import records
from training.data.config import DataConfig, data_config_from_dict
from training.data.progress import Progress

log = logging.getLogger("training.calibrate")

CHUNK = 64
RENDER_STREAM = 17
_WORKER: dict = {}


def _init_worker(config_dict: dict, real: bool, max_side: int) -> None:
    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    from training.data.engine import SampleGenerator

    _WORKER["generator"] = SampleGenerator(data_config_from_dict(config_dict))
    _WORKER["max_side"] = max_side
    if real:
        from munet.detect.pose import PoseDetector

        _WORKER["detector"] = PoseDetector()


def _real_detections(sample: dict, seed: int) -> dict[str, np.ndarray]:
    """Render each person of a batch and run MediaPipe on it."""
    import torch

    from munet.errors import NoPersonFoundError
    from training.calibration import scene

    generator, detector = _WORKER["generator"], _WORKER["detector"]
    count = len(sample["index"])
    out = records.empty_detection(count)
    R, t = sample["R_world_to_cam"].astype(np.float64), sample["t_world_to_cam_m"].astype(np.float64)
    clothed_cam = records.to_camera(sample["clothed_vertices_m"].astype(np.float64), R, t)
    offsets = np.linalg.norm(sample["clothed_vertices_m"] - sample["body_vertices_m"], axis=-1)
    resolution = sample["gt_mask"].shape[-1]
    for k in range(count):
        rng = np.random.default_rng([int(seed), int(sample["index"][k]), RENDER_STREAM])
        regions = scene.garment_regions(generator.atlas, offsets[k])
        colours = scene.palette(rng, bool(sample["garments"][k, 2] > 0))
        photo = scene.render_photo(
            rng, torch.from_numpy(clothed_cam[k]), generator.faces, sample["K"][k].astype(np.float64),
            tuple(int(v) for v in sample["image_size"][k]), regions, colours, _WORKER["max_side"],
        )  # fmt: skip
        try:
            detection = detector.detect(photo.rgb)
        except NoPersonFoundError:
            continue
        crop = np.array([*sample["crop_center_px"][k], sample["crop_side_px"][k]], np.float64)
        records.real_detection(out, k, detection, photo.scale, crop, sample["gt_mask"][k].reshape(resolution, resolution))
    return out


def run_chunk(task: tuple[int, int, int, bool]) -> tuple[int, dict[str, np.ndarray]]:
    """Records of ``count`` consecutive samples from ``first`` under ``seed`` (real or simulated)."""
    seed, first, count, real = task
    generator = _WORKER["generator"]
    size = generator.config.batch_size
    parts = []
    for start in range(first, first + count, size):
        sample = generator.generate(seed, np.arange(start, min(start + size, first + count)))
        truth = records.truth_records(sample, generator.regressor)
        detection = _real_detections(sample, seed) if real else records.simulated_detection(sample)
        parts.append({**truth, **detection})
    return first, {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def run_identity(config: DataConfig, seed: int, real: bool, max_side: int) -> dict:
    """What makes a chunk reusable: the config (and the content of its calibration file), seed, mode
    and render size."""
    identity = {"data_config": config.fingerprint(), "seed": int(seed), "real": bool(real), "max_side": int(max_side), "chunk": CHUNK}
    if config.detector.calibration:
        from training.data.detector_calibrated import resolve

        identity["calibration"] = json.loads(resolve(config.detector.calibration).read_text())["hash"]
    return identity


def chunk_dir(work: pathlib.Path, identity: dict) -> pathlib.Path:
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
    return work / f"{'real' if identity['real'] else 'sim'}_{identity['seed']}_{digest}"


def collect(config: DataConfig, seed: int, count: int, real: bool, workers: int, max_side: int, work: pathlib.Path) -> dict[str, np.ndarray]:
    """Records of samples 0..count-1, reusing the chunks already on disk under ``work``."""
    if config.batch_size > CHUNK or CHUNK % config.batch_size:
        raise ValueError(f"the engine's batch_size ({config.batch_size}) must divide {CHUNK}")
    identity = run_identity(config, seed, real, max_side)
    folder = chunk_dir(work, identity)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "identity.json").write_text(json.dumps(identity, indent=1))
    firsts = list(range(0, count, CHUNK))
    todo = [(seed, f, min(CHUNK, count - f), real) for f in firsts if not _chunk_path(folder, f, count).is_file()]
    progress = Progress(sum(task[2] for task in todo), "calibrate" if real else "simulate", unit="images")
    if todo:
        log.info("%d chunk(s) to compute in %s (%d already done)", len(todo), folder, len(firsts) - len(todo))
        for first, chunk in _map(todo, config, real, max_side, workers):
            path = _chunk_path(folder, first, count)
            tmp = path.with_suffix(".tmp.npz")
            np.savez_compressed(tmp, **chunk)
            tmp.replace(path)
            progress.update(len(chunk["detected"]), f"detected {np.mean(chunk['detected']):.2f}")
    parts = []
    for f in firsts:
        with np.load(_chunk_path(folder, f, count)) as data:
            parts.append({k: data[k] for k in data.files})
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _chunk_path(folder: pathlib.Path, first: int, count: int) -> pathlib.Path:
    return folder / f"chunk_{first:07d}_{min(CHUNK, count - first):03d}.npz"


def _map(tasks: list, config: DataConfig, real: bool, max_side: int, workers: int):
    args = (config.to_dict(), real, max_side)
    if workers <= 0:
        _init_worker(*args)
        for task in tasks:
            yield run_chunk(task)
        return
    context = multiprocessing.get_context("spawn")
    with context.Pool(min(workers, len(tasks)), initializer=_init_worker, initargs=args) as pool:
        yield from pool.imap_unordered(run_chunk, tasks)
