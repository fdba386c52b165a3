"""torch datasets over the engine: shards on disk (map-style) or samples made on the fly (iterable).

Both yield the same per-sample dicts of numpy arrays (``training/data/sample.py``), which torch's
default collate turns into batched tensors::

    loader = DataLoader(ShardDataset("data/train"), batch_size=64, shuffle=True, num_workers=4)
    loader = DataLoader(SyntheticStream(config, seed=1, count=100_000), batch_size=64, num_workers=4)

``SyntheticStream`` splits its batches of ``config.batch_size`` samples across the DataLoader's
workers (each builds its own generator, single-threaded), so a sample is the same whatever the number
of workers; the order in which batches arrive interleaves the workers.
"""

from __future__ import annotations

import bisect
import pathlib

import numpy as np
import torch

from training.data.config import DataConfig
from training.data.shards import ShardReader, read_manifest


class ShardDataset(torch.utils.data.Dataset):
    """Random access over a generated dataset directory (manifest + shards)."""

    def __init__(self, root: str | pathlib.Path, fields: tuple[str, ...] | None = None):
        self.root = pathlib.Path(root)
        self.manifest = read_manifest(self.root)
        self.shards = self.manifest["shards"]
        self.fields = fields
        self._starts = [s["offset"] for s in self.shards]
        self._readers: dict[int, ShardReader] = {}

    def __len__(self) -> int:
        return sum(s["count"] for s in self.shards)

    def _reader(self, k: int) -> ShardReader:
        if k not in self._readers:  # opened lazily: each DataLoader worker opens its own
            self._readers[k] = ShardReader(self.root / self.shards[k]["file"])
        return self._readers[k]

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range ({len(self)} samples)")
        k = bisect.bisect_right(self._starts, index) - 1
        sample = self._reader(k)[index - self._starts[k]]
        return sample if self.fields is None else {f: sample[f] for f in self.fields}


class SyntheticStream(torch.utils.data.IterableDataset):
    """``count`` samples under ``seed`` (indices ``start`` .. ``start + count - 1``), generated as they
    are consumed. ``batched=True`` yields whole generator batches (use ``DataLoader(batch_size=None)``).
    """

    def __init__(self, config: DataConfig = DataConfig(), seed: int = 0, count: int = 10_000, start: int = 0,
                 batched: bool = False, fields: tuple[str, ...] | None = None):
        if start % config.batch_size:
            raise ValueError(f"start ({start}) must be a multiple of batch_size ({config.batch_size}) to keep samples reproducible")
        self.config, self.seed, self.count, self.start = config, int(seed), int(count), int(start)
        self.batched = batched
        self.fields = fields

    def __len__(self) -> int:
        return self.count

    def __iter__(self):
        from training.data.engine import SampleGenerator

        info = torch.utils.data.get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        if info is not None:
            torch.set_num_threads(1)
        generator = SampleGenerator(self.config)
        size = self.config.batch_size
        first, end = self.start, self.start + self.count
        for b, batch_start in enumerate(range(first, end, size)):
            if b % workers != worker:
                continue
            indices = np.arange(batch_start, min(batch_start + size, end))
            batch = generator.generate(self.seed, indices)
            if self.fields is not None:
                batch = {f: batch[f] for f in self.fields}
            if self.batched:
                yield batch
            else:
                for i in range(len(indices)):
                    yield {k: v[i] for k, v in batch.items()}
