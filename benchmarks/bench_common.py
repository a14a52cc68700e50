"""What every benchmark states beside its figures (date, machine, threads, load) and the busy core of the contended mode."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import platform
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch


def machine_info() -> dict[str, Any]:
    """Date, CPU model, core count, torch version and threads, and the load average (1, 5, 15 min) now."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "cpu_model": model,
        "nproc": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def _spin() -> None:
    while True:
        pass


@contextlib.contextmanager
def busy_core() -> Iterator[None]:
    """One other process keeps a core busy (a pure-Python loop) while the block runs: the normal case of a training
    step sharing the machine with a data loader, or a validation beside another run."""
    busy = multiprocessing.get_context("spawn").Process(target=_spin, daemon=True)
    busy.start()
    try:
        time.sleep(0.5)  # let it start spinning
        yield
    finally:
        busy.terminate()
        busy.join()


def rss_kib(field: str) -> int:
    """``VmRSS``, ``VmHWM``... of this process from ``/proc/self/status``, KiB (0 where not found)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def reset_peak_rss() -> bool:
    """Reset this process's resident high-water mark (``VmHWM``); False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False
