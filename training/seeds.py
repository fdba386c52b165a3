"""The data engine's seed ranges: training, validation, test and calibration never share a seed.

A sample is a pure function of (config, seed, index) (``training.data.engine``), so two data sets are
disjoint when their seeds differ. The ranges (half-open, ``[first, end)``):

* ``TRAIN``        0 .. 999,999           shards (``python -m training.data.generate --seed 1``) and the
  on-the-fly stream (``data.stream_seed`` + rank, ``stream_seeds``);
* ``TEST``         2,000,000 .. 2,000,999  the held-out test set (``training/configs/testset*.yaml``: 2,000,003);
* ``VALIDATION``   3,000,000 .. 3,000,999  choices made on held-out data (``--config
  training/configs/testset.yaml --seed 3000001``);
* ``CALIBRATION``  4,000,000 .. 4,000,999  the people rendered for the detector calibration
  (``python -m training.calibrate``, seed 4,000,001).

Training refuses a seed outside ``TRAIN`` (``check_training_seed``); generating data refuses a held-out
seed with a training config, and a held-out config (one that fixes a held-out seed itself) with a
training seed (``check_generation_seed``).
"""

from __future__ import annotations

import dataclasses


class SeedRangeError(ValueError):
    """A seed used for a purpose its range is not for (e.g. training on the test set's seed)."""


@dataclasses.dataclass(frozen=True)
class SeedRange:
    name: str
    first: int
    end: int  # exclusive

    def __contains__(self, seed: int) -> bool:
        return self.first <= int(seed) < self.end

    def __str__(self) -> str:
        return f"{self.name} seeds {self.first:,}..{self.end - 1:,}"


TRAIN = SeedRange("training", 0, 1_000_000)
TEST = SeedRange("test", 2_000_000, 2_001_000)
VALIDATION = SeedRange("validation", 3_000_000, 3_001_000)
CALIBRATION = SeedRange("calibration", 4_000_000, 4_001_000)
HELD_OUT = (TEST, VALIDATION, CALIBRATION)


def range_of(seed: int) -> SeedRange | None:
    """The range holding ``seed``, or None when it lies in none of them."""
    return next((r for r in (TRAIN, *HELD_OUT) if seed in r), None)


def check_training_seed(seed: int, what: str = "training data") -> int:
    """``seed`` when it is a training seed; else ``SeedRangeError`` naming its range."""
    if seed in TRAIN:
        return int(seed)
    where = range_of(seed)
    problem = f"it is one of the {where}" if where else "it lies outside every seed range"
    raise SeedRangeError(f"{what}: seed {seed:,} is refused for training ({problem}); training seeds are {TRAIN} "
                         "(training/seeds.py)")


def stream_seeds(base: int, world: int) -> list[int]:
    """The on-the-fly stream's seed of each DDP rank: ``base + rank``, every one a training seed (a
    resumed run continues each rank's stream at a later index, never at another seed)."""
    seeds = [int(base) + rank for rank in range(world)]
    for rank, seed in enumerate(seeds):
        check_training_seed(seed, f"data.stream_seed {base} + rank {rank}")
    return seeds


def stream_start(samples_seen: int, world: int, batch_size: int) -> int:
    """Where a rank's stream resumes: the samples each rank has consumed, rounded down to the engine's
    batch size (``DataConfig.batch_size``; a few samples are seen twice, none is skipped)."""
    return (int(samples_seen) // max(world, 1)) // batch_size * batch_size


def check_generation_seed(seed: int, config_seed: int | None, config_name: str) -> None:
    """Data generation: a held-out seed only with a held-out config (one whose file fixes a held-out seed,
    ``config_seed``), and a held-out config only with a held-out seed. ``SeedRangeError`` otherwise."""
    held_out_config = config_seed is not None and range_of(config_seed) in HELD_OUT
    target = range_of(seed)
    if target in HELD_OUT and not held_out_config:
        raise SeedRangeError(f"seed {seed:,} is one of the {target}: held-out sets are generated from their own config "
                             f"(e.g. --config training/configs/testset.yaml), not {config_name}")
    if held_out_config and target not in HELD_OUT:
        raise SeedRangeError(f"{config_name} is a held-out config (seed {config_seed:,}, {range_of(config_seed)}); "
                             f"seed {seed:,} is not a held-out seed ({', '.join(map(str, HELD_OUT))})")
