"""One training or evaluation run of a bundle, as a subprocess, with its log, progress and `done` marker.

Each (variant, seed) owns a folder ``<output>/runs/<variant.run_name>/seed<k>/``: the bundle's ``output_dir`` for
training (checkpoints in ``models/``) and for the evaluation of the best-validation checkpoint; the final checkpoint
is evaluated in ``final/`` (its weights in ``final/models/``). An evaluation is finished when its ``summary.json`` is
there and its ``done`` marker (written atomically last) says so; a finished one is skipped on the next call.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monai_nacl.compare.checkpoints import BEST, MODEL_FILE
from monai_nacl.compare.grid import Variant
from monai_nacl.utils import atomic_write_text

__all__ = [
    "ALL_VOXELS_DIR",
    "POSTHOC_DIRS",
    "SUMMARY",
    "RunSpec",
    "is_finished",
    "parse_epoch",
    "read_done",
    "run_subprocess",
    "write_done",
]


DONE = "done"
SUMMARY = "summary.json"
POSTHOC_DIRS = {"ts": "temperature_scaled", "vector": "vector_scaled", "lts": "local_temperature_scaled"}
"""Sub-folder of a run holding, per post-hoc method, its ``calibration.json`` and the calibrated evaluation."""
ALL_VOXELS_DIR = "all_voxels"
"""Sub-folder of an evaluation holding the all-voxel report."""

# StatsHandler: "Epoch: 3/10, Iter: 2/8 -- train_loss: 0.41"; ignite: "Epoch[3] Complete. Time taken: ..."
_EPOCH_ITER = re.compile(r"Epoch: (\d+)/(\d+), Iter: (\d+)/(\d+)")
_EPOCH_DONE = re.compile(r"Epoch\[(\d+)\] Complete")


@dataclass(frozen=True)
class RunSpec:
    """One training (+ evaluation) of a variant with one seed.

    Args:
        variant: the loss (and grid parameters) trained.
        seed: the bundle's ``seed``.
        run_dir: its folder, used as the bundle's ``output_dir``.
    """

    variant: Variant
    seed: int
    run_dir: Path

    @property
    def label(self) -> str:
        """Short name for progress lines: ``nacl seed 0``."""
        return f"{self.variant.name} seed {self.seed}"

    def evaluation_dir(self, checkpoint: str) -> Path:
        """Where ``checkpoint`` (``best`` or ``final``) is evaluated: the run's folder, or its ``final/``."""
        return self.run_dir if checkpoint == BEST else self.run_dir / checkpoint

    def ckpt_dir(self, checkpoint: str) -> Path:
        """The bundle's ``ckpt_dir`` holding ``checkpoint``'s ``model.pt``: training writes ``<run>/models``, the
        final weights are written to ``<run>/final/models``."""
        return self.evaluation_dir(checkpoint) / "models"

    def model(self, checkpoint: str) -> Path:
        """``checkpoint``'s weights."""
        return self.ckpt_dir(checkpoint) / MODEL_FILE


def parse_epoch(line: str) -> tuple[int, int | None, bool] | None:
    """``(epoch, max_epochs or None, completed)`` from a line of training output, or None.

    Reads MONAI's ``StatsHandler`` iteration lines (``Epoch: 3/10, Iter: ...``: epoch 3 running) and
    ignite's ``Epoch[3] Complete`` lines (epoch 3 completed).
    """
    match = _EPOCH_ITER.search(line)
    if match:
        return int(match.group(1)), int(match.group(2)), False
    match = _EPOCH_DONE.search(line)
    if match:
        return int(match.group(1)), None, True
    return None


def run_subprocess(
    command: list[str], log_path: Path, on_line: Callable[[str], None] | None = None, env: dict | None = None
) -> int:
    """Run ``command``, writing stdout and stderr to ``log_path`` (and each line to ``on_line``).

    The wall time and the CPU time (user + system) of the command are appended to ``timing.json`` beside the
    log, keyed by the log's name: on a shared machine the CPU time tells what the run costs by itself.

    Returns:
        the exit status.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, env=env
        )
        assert process.stdout is not None
        for line in process.stdout:
            log.write(line)
            if on_line is not None:
                on_line(line)
        # this child's own CPU time (runs may go side by side, so the process-wide children's total would mix them)
        _, raw_status, usage = os.wait4(process.pid, 0)
        status = process.returncode = os.waitstatus_to_exitcode(raw_status)
    timing_path = log_path.parent / "timing.json"
    timing = json.loads(timing_path.read_text()) if timing_path.is_file() else {}
    timing[log_path.stem] = {
        "wall_s": round(time.monotonic() - start, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "status": status,
    }
    timing_path.write_text(json.dumps(timing, indent=2))
    return status


def write_done(run_dir: Path, info: dict[str, Any]) -> None:
    """Write the ``done`` marker atomically, so a killed run never looks finished."""
    atomic_write_text(run_dir / DONE, json.dumps({**info, "finished_at": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=2))


def read_done(run_dir: Path) -> dict[str, Any]:
    """Contents of a run's ``done`` marker ({} when absent or unreadable)."""
    try:
        return json.loads((run_dir / DONE).read_text())
    except (OSError, ValueError):
        return {}


def is_finished(run_dir: Path) -> bool:
    """True when the run's ``summary.json`` exists and its ``done`` marker was written."""
    return (run_dir / SUMMARY).is_file() and (run_dir / DONE).is_file()
