"""A training run's scalars: JSON lines (``scalars.jsonl``), TensorBoard event files, and a loss-curve PNG.

    tensorboard --logdir runs/munet          # the run's folder: its event files are in tensorboard/

Every record is one logging window: the step and samples seen at its end, the means of the loss and of
each term over the window's steps, the learning rate and the window's samples/s. The JSON lines are
the source of truth (the PNG is drawn from them; a resumed run appends to both logs).
"""

from __future__ import annotations

import json
import logging
import pathlib

log = logging.getLogger(__name__)

CURVES = (("loss", "total (weighted)"), ("body_vertices", "body vertices (m)"), ("joints_3d", "landmarks 3D (m)"),
          ("clothed_chamfer", "clothed Chamfer (m)"), ("pve_m", "PVE, finest level (m)"))


class WindowMeans:
    """Running sums of a logging window's scalars (one ``add`` per optimizer step)."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.steps = 0

    def add(self, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.sums[name] = self.sums.get(name, 0.0) + float(value)
        self.steps += 1

    def take(self) -> dict[str, float]:
        """The window's means, and a fresh window."""
        means = {name: total / max(self.steps, 1) for name, total in self.sums.items()}
        self.sums, self.steps = {}, 0
        return means


class ScalarLog:
    """Appends records to ``out/scalars.jsonl`` and, when the ``tensorboard`` package is installed (it is
    pinned in requirements.txt), to TensorBoard event files in ``out/tensorboard/`` (x axis: samples seen)."""

    def __init__(self, out: pathlib.Path, tensorboard: bool = True):
        self.path = out / "scalars.jsonl"
        self.file = open(self.path, "a")
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # the tensorboard package is missing: JSON lines only
                log.warning("tensorboard is not installed (pip install tensorboard==2.20.0): scalars go to %s only", self.path)
            else:
                self.writer = SummaryWriter(str(out / "tensorboard"))

    def write(self, record: dict) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.writer is not None:
            samples = int(record["samples"])
            for name, value in record.items():
                if name not in ("step", "samples") and isinstance(value, (int, float)):
                    group = "loss" if name == "loss" or name == "pve_m" else ("speed" if name in ("lr", "samples_per_s") else "terms")
                    self.writer.add_scalar(f"{group}/{name}", value, samples)
            self.writer.flush()

    def close(self) -> None:
        self.file.close()
        if self.writer is not None:
            self.writer.close()


def read_scalars(path: pathlib.Path) -> list[dict]:
    """The records of a ``scalars.jsonl`` (an unfinished last line is skipped)."""
    records = []
    for line in pathlib.Path(path).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def plot_loss_curves(scalars: pathlib.Path, png: pathlib.Path, title: str = "") -> pathlib.Path | None:
    """Draw the run's loss curves (log scale, x: samples seen) into ``png``; None when nothing is logged."""
    records = read_scalars(scalars)
    if not records:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    samples = [r["samples"] for r in records]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    for name, label in CURVES:
        points = [(s, r[name]) for s, r in zip(samples, records) if name in r and r[name] > 0]
        if points:
            axes[0].plot(*zip(*points), label=label)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("samples seen")
    axes[0].legend(fontsize=8)
    axes[0].grid(alpha=0.3)
    axes[1].plot(samples, [r.get("samples_per_s", 0.0) for r in records], color="tab:gray")
    axes[1].set_xlabel("samples seen")
    axes[1].set_ylabel("samples/s")
    axes[1].grid(alpha=0.3)
    figure.suptitle(title or str(scalars.parent))
    figure.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    tmp = png.with_name(png.stem + ".tmp.png")
    figure.savefig(tmp)
    plt.close(figure)
    tmp.replace(png)
    return png
