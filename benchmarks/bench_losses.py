"""Speed and memory of the calibration losses against plain cross-entropy and MONAI / direct implementations.

Forward + backward time on CPU float32 logits, medians over repetitions run interleaved (every method once
per round, so drifts in machine load hit all methods alike), in two modes of one run: ``idle`` and ``contended``
(one other process keeps a core busy, as a data loader or a second run does; a loss that is fast only on an idle
machine is not fast). The goals (NACL <= 1.5x CE, CRaC and mL1-ACE hard <= 3x, soft <= 4x) hold in both modes:

- NACL group: ``F.cross_entropy``, ``monai.losses.NACLLoss`` and ``monai_nacl.losses.NeighborAwareLoss``
  (defaults: 3^d mean window, L1, alpha 0.1).
- SVLS group: a direct SVLS (replicate padding + depthwise convolution with the dense k^d kernel + soft
  cross-entropy, as the authors' code) and ``monai_nacl.losses.SpatialLabelSmoothingLoss``.
- CRaC and mL1-ACE: ``AdaptiveNeighborAwareLoss`` (margin 5, rho 0.1), ``MarginalL1ACELoss`` (CE + hard-binned
  ACE, and soft binning) and the bundles' ``ml1ace`` (Dice + CE + ACE, 0.33 each); goal each <= 3x CE.

Training step (``--no-step`` skips it): one optimiser step of the 3-D bundles' UNet (channels 16-128, two
residual units, batch norm, Adam) on a batch of 4 crops of 64^3 (the ``unet3d_nacl`` defaults: batch 2 x 2
samples, 3 classes; synthetic spheres), with each bundle loss (``create_calibration_loss``) against ``ce``;
goal <= 5 % more time than ``ce``.

Memory (Linux): each method runs in a fresh subprocess: one warm-up forward + backward, then the peak-RSS
mark is reset (``/proc/self/clear_refs``) and reported is how far one more forward + backward raises the
peak resident set size (``VmHWM``) above the resident size before it. It sees every allocation torch makes
on the CPU (tracemalloc does not), at page granularity, including the 4-byte-per-element ``logits.grad``
that every method produces (27 MiB at the full size). glibc's mmap threshold is fixed so
freed large blocks go back to the OS and cannot hide later allocations.

Run: ``python benchmarks/bench_losses.py [--quick] [--repeats N] [--threads T] [--no-contended]``; writes
``bench_results/losses.json`` and prints the ratios.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np
from bench_common import busy_core, machine_info
from monai.data.synthetic import create_test_image_3d
from monai.losses import NACLLoss
from monai.networks.nets import UNet

from monai_nacl.losses import (
    AdaptiveNeighborAwareLoss,
    MarginalL1ACELoss,
    NeighborAwareLoss,
    SpatialLabelSmoothingLoss,
    create_calibration_loss,
    svls_kernel,
)

FULL_SHAPE = (2, 4, 96, 96, 96)
QUICK_SHAPE = (2, 4, 32, 32, 32)
STEP_SHAPE = (4, 1, 64, 64, 64)  # unet3d_nacl: batch_size 2 x num_samples 2 crops of roi 64^3
QUICK_STEP_SHAPE = (2, 1, 32, 32, 32)
STEP_CLASSES = 3
STEP_LOSSES = ("ce", "nacl", "adaptive_nacl", "ml1ace")


def direct_svls(logits: torch.Tensor, labels: torch.Tensor, kernel_size: int = 3, sigma: float = 1.0) -> torch.Tensor:
    """SVLS the authors' way: replicate-pad the one-hot labels, depthwise conv with the dense k^d kernel."""
    num_classes, spatial_dims = logits.shape[1], logits.ndim - 2
    with torch.no_grad():
        onehot = F.one_hot(labels, num_classes).movedim(-1, 1).float()
        pad = kernel_size // 2
        onehot = F.pad(onehot, [pad] * (2 * spatial_dims), mode="replicate")
        weight = svls_kernel(spatial_dims, kernel_size, sigma).expand(num_classes, 1, *[kernel_size] * spatial_dims)
        conv = (F.conv1d, F.conv2d, F.conv3d)[spatial_dims - 1]
        smoothed = conv(onehot, weight.contiguous(), groups=num_classes)
    return -(smoothed * F.log_softmax(logits, dim=1)).sum(1).mean()


def _methods(num_classes: int, spatial_dims: int) -> dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]:
    monai_nacl_loss = NACLLoss(classes=num_classes, dim=spatial_dims)
    ours = NeighborAwareLoss()
    ours_svls = SpatialLabelSmoothingLoss()
    crac = AdaptiveNeighborAwareLoss(num_classes)
    ace_hard, ace_soft = MarginalL1ACELoss(), MarginalL1ACELoss(binning="soft")
    ml1ace = create_calibration_loss("ml1ace")
    return {
        "cross_entropy": lambda x, y: F.cross_entropy(x, y),
        "monai_NACLLoss": lambda x, y: monai_nacl_loss(x, y),
        "NeighborAwareLoss": lambda x, y: ours(x, y),
        "svls_direct_conv": lambda x, y: direct_svls(x, y),
        "SpatialLabelSmoothingLoss": lambda x, y: ours_svls(x, y),
        "AdaptiveNeighborAwareLoss": lambda x, y: crac(x, y),
        "MarginalL1ACELoss": lambda x, y: ace_hard(x, y),
        "MarginalL1ACELoss_soft": lambda x, y: ace_soft(x, y),
        "ml1ace": lambda x, y: ml1ace(x, y),
    }


def _inputs(shape: Sequence[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(*shape, generator=gen).requires_grad_(True)
    labels = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=gen)
    return logits, labels


def _step(fn: Callable, logits: torch.Tensor, labels: torch.Tensor) -> float:
    logits.grad = None
    start = time.perf_counter()
    fn(logits, labels).backward()
    return time.perf_counter() - start


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _peak_memory_child(name: str, shape: Sequence[int], threads: int) -> None:
    torch.set_num_threads(threads)
    logits, labels = _inputs(shape)
    fn = _methods(shape[1], len(shape) - 2)[name]
    fn(logits, labels).backward()  # warm-up: one-time initialisation is not working memory
    logits.grad = None
    gc.collect()
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # reset the peak-RSS mark (VmHWM) to the current RSS
    before = _status_kib("VmRSS")
    fn(logits, labels).backward()
    print(json.dumps({"peak_rss_increase_mib": (_status_kib("VmHWM") - before) / 1024.0}))


def _peak_memory(name: str, shape: Sequence[int], threads: int) -> float:
    cmd = [sys.executable, __file__, "--child", name, "--shape", ",".join(map(str, shape)), "--threads", str(threads)]
    # a fixed mmap threshold makes glibc return every large block to the OS when freed, so the warm-up's
    # freed memory cannot hide the measured call's allocations
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072", "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=REPO, env=env).stdout
    return float(json.loads(out.strip().splitlines()[-1])["peak_rss_increase_mib"])


GOALS = {
    "NeighborAwareLoss / monai_NACLLoss": 0.6,
    "NeighborAwareLoss / cross_entropy": 1.5,
    "AdaptiveNeighborAwareLoss / cross_entropy": 3.0,
    "MarginalL1ACELoss / cross_entropy": 3.0,
    "MarginalL1ACELoss_soft / cross_entropy": 4.0,
}


def _ratios(median: dict[str, float]) -> dict[str, float]:
    return {
        "NeighborAwareLoss / monai_NACLLoss": median["NeighborAwareLoss"] / median["monai_NACLLoss"],
        "NeighborAwareLoss / cross_entropy": median["NeighborAwareLoss"] / median["cross_entropy"],
        "monai_NACLLoss / cross_entropy": median["monai_NACLLoss"] / median["cross_entropy"],
        "SpatialLabelSmoothingLoss / svls_direct_conv": median["SpatialLabelSmoothingLoss"]
        / median["svls_direct_conv"],
        "SpatialLabelSmoothingLoss / cross_entropy": median["SpatialLabelSmoothingLoss"] / median["cross_entropy"],
        **{
            f"{name} / cross_entropy": median[name] / median["cross_entropy"]
            for name in ("AdaptiveNeighborAwareLoss", "MarginalL1ACELoss", "MarginalL1ACELoss_soft", "ml1ace")
        },
    }


def _interleaved(methods: dict[str, Callable], logits: torch.Tensor, labels: torch.Tensor, repeats: int) -> dict:
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeats):
        for name, fn in methods.items():
            times[name].append(_step(fn, logits, labels))
    return {name: statistics.median(values) for name, values in times.items()}


def run(shape: Sequence[int], repeats: int, threads: int, memory: bool = True, contended: bool = True) -> dict:
    """Time every method ``repeats`` times interleaved (after one warm-up round), idle and then with one busy core;
    optionally measure memory."""
    torch.set_num_threads(threads)
    logits, labels = _inputs(shape)
    methods = _methods(shape[1], len(shape) - 2)
    for fn in methods.values():
        _step(fn, logits, labels)
    modes = {"idle": _interleaved(methods, logits, labels, repeats)}
    if contended:
        with busy_core():
            modes["contended"] = _interleaved(methods, logits, labels, repeats)
    result = {
        "shape": list(shape),
        "dtype": "float32",
        "device": "cpu",
        "threads": threads,
        "repeats": repeats,
        "median_seconds_forward_backward": modes["idle"],
        "ratios": _ratios(modes["idle"]),
        "modes": {mode: {"median_seconds": median, "ratios": _ratios(median)} for mode, median in modes.items()},
        "goals": GOALS,
    }
    result["goal_met"] = {
        f"{name} ({mode})": values["ratios"][name] <= goal
        for mode, values in result["modes"].items()
        for name, goal in GOALS.items()
    }
    if memory:
        result["peak_rss_increase_mib"] = {name: _peak_memory(name, shape, threads) for name in methods}
        result["memory_method"] = (
            "fresh subprocess per method, after one warm-up call: peak RSS (VmHWM, reset via /proc/self/clear_refs) "
            "during one forward+backward minus RSS before it; includes logits.grad; MALLOC_MMAP_THRESHOLD_=131072"
        )
    return result


def _step_inputs(shape: Sequence[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Synthetic spheres (``STEP_CLASSES`` labels) with noise: images ``(B, 1, *spatial)``, labels ``(B, *spatial)``."""
    rng = np.random.RandomState(seed)
    pairs = [
        create_test_image_3d(
            *shape[2:], rad_max=min(shape[2:]) // 3, num_seg_classes=STEP_CLASSES - 1, noise_max=0.5, random_state=rng
        )
        for _ in range(shape[0])
    ]
    images = torch.from_numpy(np.stack([image for image, _ in pairs])[:, None]).float()
    labels = torch.from_numpy(np.stack([label for _, label in pairs])).long()
    return images, labels


def run_training_step(shape: Sequence[int], repeats: int, threads: int) -> dict:
    """Median time of one UNet training step (forward, loss, backward, Adam step) per bundle loss, interleaved."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    network = UNet(3, 1, STEP_CLASSES, channels=(16, 32, 64, 128), strides=(2, 2, 2), num_res_units=2, norm="batch")
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
    images, labels = _step_inputs(shape)
    losses = {
        name: create_calibration_loss(name, **({"num_classes": STEP_CLASSES} if name == "adaptive_nacl" else {}))
        for name in STEP_LOSSES
    }

    def step(loss: Callable) -> float:
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss(network(images), labels).backward()
        optimizer.step()
        return time.perf_counter() - start

    for loss in losses.values():
        step(loss)
    times: dict[str, list[float]] = {name: [] for name in losses}
    for _ in range(repeats):
        for name, loss in losses.items():
            times[name].append(step(loss))
    median = {name: statistics.median(values) for name, values in times.items()}
    return {
        "input_shape": list(shape),
        "num_classes": STEP_CLASSES,
        "network": "UNet(3D, channels 16-128, strides 2, num_res_units 2, batch norm) + Adam",
        "threads": threads,
        "repeats": repeats,
        "median_seconds_step": median,
        "ratios": {f"{name} / ce": median[name] / median["ce"] for name in losses if name != "ce"},
        "goals": {f"{name} / ce": 1.05 for name in losses if name != "ce"},
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, write ``bench_results/losses.json`` (or ``--output``), print the ratios; returns 0.

    Options other benchmarks take (``benchmarks/run_all.py`` passes one command line to all) are ignored.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"small logits {QUICK_SHAPE} instead of {FULL_SHAPE}")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 7, quick 5)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--no-memory", action="store_true", help="skip the subprocess memory measurement")
    parser.add_argument("--no-step", action="store_true", help="skip the UNet training-step timing")
    parser.add_argument("--no-contended", action="store_true", help="skip the timing with one busy core")
    parser.add_argument("--output", default=str(REPO / "bench_results" / "losses.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--shape", help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args(argv)
    if args.child:
        _peak_memory_child(args.child, [int(s) for s in args.shape.split(",")], args.threads)
        return 0
    shape = QUICK_SHAPE if args.quick else FULL_SHAPE
    repeats = args.repeats or (5 if args.quick else 7)
    result = {"machine": machine_info()}
    result.update(run(shape, repeats, args.threads, memory=not args.no_memory, contended=not args.no_contended))
    if not args.no_step:
        result["training_step"] = run_training_step(
            QUICK_STEP_SHAPE if args.quick else STEP_SHAPE, max(3, repeats // 2), args.threads
        )
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2))
    modes = list(result["modes"])
    print(
        f"logits {tuple(shape)} float32 CPU, {args.threads} thread(s), median of {repeats} forward+backward "
        f"({' / '.join(modes)}; load average {result['machine']['load_average'][0]} before):"
    )
    for name in result["median_seconds_forward_backward"]:
        times = " / ".join(f"{result['modes'][mode]['median_seconds'][name] * 1000:8.1f}" for mode in modes)
        mem = result.get("peak_rss_increase_mib", {}).get(name)
        print(f"  {name:28s} {times} ms" + (f"   peak RSS +{mem:7.1f} MiB" if mem is not None else ""))
    for name in result["ratios"]:
        ratios = " / ".join(f"{result['modes'][mode]['ratios'][name]:5.2f}x" for mode in modes)
        goal = result["goals"].get(name)
        print(f"  {name:46s} {ratios}" + (f"  (goal <= {goal}x)" if goal else ""))
    if "training_step" in result:
        step = result["training_step"]
        print(f"UNet training step, images {tuple(step['input_shape'])}, median of {step['repeats']}:")
        for name, seconds in step["median_seconds_step"].items():
            print(f"  {name:28s} {seconds * 1000:9.1f} ms")
        for name, ratio in step["ratios"].items():
            print(f"  {name:46s} {ratio:5.3f}x  (goal <= {step['goals'][name]}x)")
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
