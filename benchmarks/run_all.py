"""Run every benchmark of the project (``make bench``); each writes its JSON under ``bench_results/``.

Benchmarks are not tests: they measure speed and memory against the goals in the issues and print the
ratios. Pass ``--quick`` for small sizes (a smoke run).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_losses
import bench_metrics


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    status = 0
    for bench in (bench_losses, bench_metrics):
        print(f"== {bench.__name__} ==", flush=True)
        status |= int(bench.main(argv) or 0)
    return status


if __name__ == "__main__":
    sys.exit(main())
