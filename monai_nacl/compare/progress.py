"""Progress lines while a comparison runs: which run, which epoch, and the time left.

The time left is extrapolated from the runs finished in this session (mean wall time per run); before
the first one finishes, from the current run's epoch rate.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from monai_nacl.compare.runs import parse_epoch

__all__ = ["Progress", "format_duration"]


def format_duration(seconds: float) -> str:
    """``75`` -> ``"1m15s"``, ``3700`` -> ``"1h01m"``."""
    seconds = max(0, round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class Progress:
    """Tracks runs done and prints one line per training epoch and per phase.

    Args:
        total: number of runs to do in this session (skipped, already finished runs excluded).
        stream: where lines go (stdout by default).
        first_index: runs counted before this one's (its lines say ``[first_index + 1/total]``).
    """

    def __init__(self, total: int, stream: TextIO | None = None, first_index: int = 0) -> None:
        self.total = total
        self.stream = stream or sys.stdout
        self.durations: list[float] = []
        self.after_training: list[float] = []
        self.index = first_index
        self.label = ""
        self.phase = ""
        self.run_start = self.phase_start = time.monotonic()
        self.train_end: float | None = None
        self.epoch = 0
        self.completed = 0
        self.seen_complete_lines = False
        self.max_epochs: int | None = None

    def start_run(self, label: str, max_epochs: int | None = None) -> None:
        """A new run begins (``label`` e.g. ``nacl seed 0``)."""
        self.index += 1
        self.label = label
        self.run_start = self.phase_start = time.monotonic()
        self.train_end = None
        self.epoch = 0
        self.completed = 0
        self.seen_complete_lines = False
        self.max_epochs = max_epochs
        self.phase = ""

    def start_phase(self, phase: str) -> None:
        """``train`` / ``evaluate`` / ``temperature`` within the current run."""
        now = time.monotonic()
        if self.phase == "train" and self.train_end is None:
            self.train_end = now
        self.phase, self.phase_start = phase, now
        self._print(f"{phase} started")

    def end_run(self) -> None:
        """The current run finished (successfully or not); its times feed the estimate."""
        now = time.monotonic()
        self.durations.append(now - self.run_start)
        if self.train_end is not None:
            self.after_training.append(now - self.train_end)

    def time_left(self) -> float | None:
        """Seconds left for this session's runs, or None before anything can be estimated.

        The current run: in training, the remaining epochs at its own epoch rate plus the mean time finished
        runs spent after training (evaluation); later, that mean minus the time already spent. Each run still
        to start: the mean wall time of the finished runs (or the current run's projection before any).
        """
        now = time.monotonic()
        elapsed = now - self.run_start
        after = sum(self.after_training) / len(self.after_training) if self.after_training else 0.0
        current: float | None = None
        if self.phase == "train" and self.completed and self.max_epochs:
            current = elapsed / self.completed * (self.max_epochs - self.completed) + after
        elif self.train_end is not None and self.after_training:
            current = max(after - (now - self.train_end), 0.0)
        elif self.durations:
            current = max(sum(self.durations) / len(self.durations) - elapsed, 0.0)
        if current is None:
            return None
        per_run = sum(self.durations) / len(self.durations) if self.durations else elapsed + current
        return current + per_run * (self.total - self.index)

    def on_line(self, line: str) -> None:
        """Feed one line of bundle output; prints when a training epoch starts or completes."""
        parsed = parse_epoch(line) if self.phase == "train" else None
        if parsed is None:
            return
        epoch, max_epochs, completed = parsed
        self.max_epochs = max_epochs or self.max_epochs
        if completed:
            self.seen_complete_lines = True
            if epoch > self.completed:
                self.completed = epoch
                self._print(f"epoch {epoch}/{self.max_epochs or '?'} done")
        elif epoch != self.epoch:
            self.epoch = epoch
            self.completed = max(self.completed, epoch - 1)
            if not self.seen_complete_lines:
                self._print(f"epoch {epoch}/{self.max_epochs or '?'}")

    def _print(self, what: str) -> None:
        left = self.time_left()
        elapsed = format_duration(time.monotonic() - self.run_start)
        estimate = f", ~{format_duration(left)} left" if left is not None else ""
        print(
            f"[{self.index}/{self.total}] {self.label} {self.phase}: {what} ({elapsed} in run{estimate})",
            file=self.stream,
            flush=True,
        )
