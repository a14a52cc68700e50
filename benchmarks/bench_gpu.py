"""The GPU section of ``make bench``: losses, metrics and one training step per bundle on CUDA, fp32 and AMP.

Skips cleanly (a line saying why, ``bench_results/gpu.json`` with ``skipped``, exit status 0) without a CUDA device.
On one (``torch.cuda.current_device()``, its name recorded):

- losses at ``(2, 4, 128, 128, 128)``: forward + backward of cross-entropy, MONAI's ``NACLLoss`` and every loss of
  ``bench_losses`` with float32 logits, and under ``torch.autocast`` with bfloat16 and float16 logits (what a network
  under AMP hands the loss); median of ``--repeats`` synchronised calls, and the peak CUDA memory a call allocates
  above what was allocated before it (``torch.cuda.max_memory_allocated``);
- metrics on softmax probabilities of the same shape: ours (top-label ECE + classwise ECE in one pass) against
  torchmetrics' ``multiclass_calibration_error`` (ECE only), time and peak memory;
- one optimiser step of each bundle's network (its ``network_def``, default loss, learning rate, batch of
  ``batch_size * num_samples`` crops of ``roi_size``, random labels) in float32 and under AMP bf16 / fp16 (fp16 with
  a ``GradScaler``, as MONAI's trainer with ``amp: true``): median step time and peak memory, to size a GPU.

Every function takes a ``device``, so the same code runs on CPU at tiny sizes (``tests/test_benchmarks.py``).
Run: ``python benchmarks/bench_gpu.py [--quick] [--repeats N]``; writes ``bench_results/gpu.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench_common import machine_info

LOSS_SHAPE = (2, 4, 128, 128, 128)
QUICK_LOSS_SHAPE = (2, 4, 32, 32, 32)
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
BUNDLES = ("unet2d_nacl", "unet3d_nacl", "swinunetr_nacl")


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def _autocast(device: torch.device, precision: str) -> Iterator[None]:
    if precision == "fp32":
        yield
    else:
        with torch.autocast(device.type, dtype=PRECISIONS[precision]):
            yield


def timed(fn: Callable[[], object], device: torch.device, repeats: int) -> dict[str, Any]:
    """Median seconds of ``fn`` over ``repeats`` synchronised calls after one warm-up, and the peak memory (MiB) one
    call allocates above what was allocated before it (CUDA only; None on CPU). A call that raises (out of memory,
    a dtype an implementation refuses) gives ``{"error": message}``, so one failure does not hide the other figures.
    """
    try:
        return _timed(fn, device, repeats)
    except (RuntimeError, ValueError, TypeError) as error:
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return {"median_seconds": None, "peak_mib": None, "error": f"{type(error).__name__}: {error}"[:500]}


def _timed(fn: Callable[[], object], device: torch.device, repeats: int) -> dict[str, Any]:
    fn()
    _synchronize(device)
    peak = None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        _synchronize(device)
        peak = (torch.cuda.max_memory_allocated(device) - before) / 2**20
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _synchronize(device)
        times.append(time.perf_counter() - start)
    return {"median_seconds": statistics.median(times), "peak_mib": peak}


def loss_section(
    shape: Sequence[int], device: torch.device, repeats: int, precisions: Sequence[str] = tuple(PRECISIONS)
) -> dict[str, Any]:
    """Forward + backward of each loss of ``bench_losses`` per precision; ratios to cross-entropy."""
    import bench_losses

    methods = bench_losses._methods(shape[1], len(shape) - 2)
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(*shape, generator=gen)
    labels = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=gen).to(device)
    result: dict[str, Any] = {"shape": list(shape)}
    for precision in precisions:
        logits = base.to(device, PRECISIONS[precision]).requires_grad_(True)
        per_method = {}
        for name, fn in methods.items():

            def step(fn: Callable = fn, logits: torch.Tensor = logits, precision: str = precision) -> None:
                logits.grad = None
                with _autocast(device, precision):
                    loss = fn(logits, labels)
                loss.backward()

            per_method[name] = timed(step, device, repeats)
        ce = per_method["cross_entropy"]["median_seconds"]
        result[precision] = {
            "methods": per_method,
            "ratios_to_cross_entropy": {
                name: t["median_seconds"] / ce if ce and t["median_seconds"] else None for name, t in per_method.items()
            },
        }
        del logits
    return result


def metric_section(shape: Sequence[int], device: torch.device, repeats: int, num_bins: int = 15) -> dict[str, Any]:
    """Ours (ECE + CECE) against torchmetrics' ECE on softmax probabilities ``shape``."""
    from torchmetrics.functional.classification import multiclass_calibration_error

    from monai_nacl.metrics import calibration_statistics, calibration_values

    gen = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(*shape, generator=gen) * 3.0, 1).to(device)
    labels = torch.randint(0, shape[1], (shape[0], 1, *shape[2:]), generator=gen).to(device)
    classes = shape[1]

    def ours() -> None:
        values = calibration_values(calibration_statistics(probs, labels, num_bins=num_bins))
        float(values["ece"]), float(values["cece"])

    def torchmetrics_ece() -> None:
        flat = probs.movedim(1, -1).reshape(-1, classes)
        float(multiclass_calibration_error(flat, labels.reshape(-1), classes, n_bins=num_bins))

    result = {
        "ours_ece_and_cece": timed(ours, device, repeats),
        "torchmetrics_ece": timed(torchmetrics_ece, device, repeats),
    }
    ours_s, theirs_s = result["ours_ece_and_cece"]["median_seconds"], result["torchmetrics_ece"]["median_seconds"]
    result["ratio_ours_over_torchmetrics"] = ours_s / theirs_s if ours_s and theirs_s else None
    return {"shape": list(shape), **result}


def bundle_parts(name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """A bundle's network (``network_def``), default loss, learning rate and training batch shape, from its config."""
    from monai_nacl.compare.compared_bundle import TRAIN, ComparedBundle

    bundle = ComparedBundle.load(name, evaluate_fragments=())
    parser = bundle.parser(TRAIN, {"bundle_root": str(bundle.folder), **(overrides or {})})
    network = parser.get_parsed_content("network_def")
    roi_size = list(parser.get_parsed_content("roi_size"))
    batch = int(parser.get_parsed_content("batch_size")) * int(parser.get_parsed_content("num_samples"))
    return {
        "network": network,
        "loss": parser.get_parsed_content("loss"),
        "learning_rate": float(parser.get_parsed_content("learning_rate")),
        "image_shape": [batch, int(parser.get_parsed_content("network_def#in_channels")), *roi_size],
        "num_classes": int(parser.get_parsed_content("num_classes")),
        "loss_name": parser.get_parsed_content("loss_name"),
    }


def training_step_section(
    name: str,
    device: torch.device,
    repeats: int,
    overrides: dict[str, Any] | None = None,
    precisions: Sequence[str] = tuple(PRECISIONS),
) -> dict[str, Any]:
    """One optimiser step of bundle ``name`` per precision: median seconds and peak memory."""
    parts = bundle_parts(name, overrides)
    network, loss = parts["network"].to(device), parts["loss"].to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=parts["learning_rate"])
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(*parts["image_shape"], generator=gen).to(device)
    labels = torch.randint(0, parts["num_classes"], (images.shape[0], 1, *images.shape[2:]), generator=gen).to(device)
    result: dict[str, Any] = {k: parts[k] for k in ("image_shape", "num_classes", "loss_name", "learning_rate")}
    network.train()
    for precision in precisions:
        scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None

        def step(precision: str = precision, scaler: Any = scaler) -> None:
            optimizer.zero_grad(set_to_none=True)
            with _autocast(device, precision):
                value = loss(network(images), labels)
            if scaler is None:
                value.backward()
                optimizer.step()
            else:
                scaler.scale(value).backward()
                scaler.step(optimizer)
                scaler.update()

        result[precision] = timed(step, device, repeats)
    return result


def _describe(timing: dict[str, Any], ratio: float | None = None) -> str:
    if timing.get("error"):
        return f"failed: {timing['error']}"
    text = f"{timing['median_seconds'] * 1000:9.2f} ms"
    if ratio is not None:
        text += f"  {ratio:5.2f}x CE"
    return text + (f"  peak {timing['peak_mib']:8.1f} MiB" if timing["peak_mib"] is not None else "")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the GPU section, or say why it is skipped; write ``bench_results/gpu.json`` (or ``--output``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"losses and metrics at {QUICK_LOSS_SHAPE}")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls (default 10, quick 3)")
    parser.add_argument("--output", default=str(REPO / "bench_results" / "gpu.json"))
    args, _ = parser.parse_known_args(argv)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"machine": machine_info()}
    if not torch.cuda.is_available():
        reason = f"no CUDA device (torch {torch.__version__}, built with CUDA {torch.version.cuda})"
        print(f"GPU section skipped: {reason}", flush=True)
        output.write_text(json.dumps({**result, "skipped": reason}, indent=2))
        return 0
    device = torch.device("cuda", torch.cuda.current_device())
    result["device"] = torch.cuda.get_device_name(device)
    repeats = args.repeats or (3 if args.quick else 10)
    shape = QUICK_LOSS_SHAPE if args.quick else LOSS_SHAPE
    print(f"GPU: {result['device']}, losses and metrics at {shape}, median of {repeats}", flush=True)
    result["losses"] = loss_section(shape, device, repeats)
    for precision in PRECISIONS:
        print(f"  losses {precision}: forward + backward ms (x CE), peak MiB", flush=True)
        section = result["losses"][precision]
        for name, timing in section["methods"].items():
            print(f"    {name:28s} {_describe(timing, section['ratios_to_cross_entropy'][name])}", flush=True)
    result["metrics"] = metric_section(shape, device, repeats)
    metrics = result["metrics"]
    print(
        f"  metrics: ours ECE+CECE {_describe(metrics['ours_ece_and_cece'])}; torchmetrics ECE "
        f"{_describe(metrics['torchmetrics_ece'])}",
        flush=True,
    )
    result["training_step"] = {}
    for name in BUNDLES:
        section = training_step_section(name, device, repeats)
        result["training_step"][name] = section
        print(f"  {name} step, batch {tuple(section['image_shape'])}:", flush=True)
        for precision in PRECISIONS:
            print(f"    {precision} {_describe(section[precision])}", flush=True)
    output.write_text(json.dumps(result, indent=2))
    print(f"wrote {output}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
