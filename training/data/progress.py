"""A dependency-free progress bar on stderr (items done, rate, ETA); silent when stderr is not a
terminal except for a line every ``log_every`` seconds."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int, label: str, unit: str = "samples", log_every: float = 10.0, stream=None):
        self.total, self.label, self.unit = int(total), label, unit
        self.done = 0
        self.started = time.perf_counter()
        self._last = 0.0
        self.stream = sys.stderr if stream is None else stream
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.log_every = log_every

    @property
    def rate(self) -> float:
        elapsed = time.perf_counter() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def update(self, count: int = 1, extra: str = "") -> None:
        self.done += count
        now = time.perf_counter()
        if not self.tty and now - self._last < self.log_every and self.done < self.total:
            return
        if self.tty and now - self._last < 0.1 and self.done < self.total:
            return
        self._last = now
        rate = self.rate
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        width = 28
        filled = int(width * self.done / max(self.total, 1))
        bar = "#" * filled + "." * (width - filled)
        line = (f"{self.label} [{bar}] {self.done}/{self.total} {self.unit} "
                f"{rate:.1f}/s ETA {_duration(eta)} {extra}")  # fmt: skip
        if self.tty:
            self.stream.write("\r" + line.ljust(110))
            if self.done >= self.total:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def _duration(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"
