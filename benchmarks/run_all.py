"""Run every benchmark of the project (``make bench``); each writes its JSON under ``bench_results/``.

Benchmarks are not tests: they measure speed and memory against the goals in the issues and print the
ratios with their goals. In order: the losses (idle and with one busy core), the metrics, the bundles' training
and evaluation loops against plain PyTorch / MONAI loops (``bench_loops``), and the GPU section (skipped without
CUDA). Pass ``--quick`` for small sizes (a smoke run); ``--only loops,gpu`` runs some of them. Every figure is
stated with the machine, threads and load average it was measured under (``docs/performance.md``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_gpu
import bench_loops
import bench_losses
import bench_metrics

BENCHMARKS = {"losses": bench_losses, "metrics": bench_metrics, "loops": bench_loops, "gpu": bench_gpu}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    names = list(BENCHMARKS)
    if "--only" in argv:
        at = argv.index("--only")
        names = [n.strip() for n in argv[at + 1].split(",") if n.strip()] if at + 1 < len(argv) else []
        del argv[at : at + 2]
        unknown = [n for n in names if n not in BENCHMARKS]
        if unknown or not names:
            raise SystemExit(f"--only {','.join(names) or '(nothing)'}: choose among {','.join(BENCHMARKS)}.")
    status = 0
    for name in names:
        print(f"== {BENCHMARKS[name].__name__} ==", flush=True)
        status |= int(BENCHMARKS[name].main(argv) or 0)
    return status


if __name__ == "__main__":
    sys.exit(main())
