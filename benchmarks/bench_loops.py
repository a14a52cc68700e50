"""What a user waits for: the bundles' training epochs and evaluation, against plain PyTorch / MONAI loops.

Training (goal: the bundle within 1.2x of the plain loop's time per item):

- ``unet2d_nacl`` in the demo's slice-wise regime (``protocol_paper.yaml`` with ``DEMO_OVERRIDES`` of
  ``monai_nacl.compare.demo``: 32 fixed 48 x 56 slices, batch 8, the 16-128 UNet without normalisation);
- ``unet3d_nacl`` at its defaults (random 64^3 patches, batch 2 x 2 samples, the 16-128 UNet with batch norm).

The bundle's own ``train#trainer`` runs in-process as ``python -m monai.bundle run`` builds it (its data loader,
transforms, postprocessing, metrics and handlers, logging configured by the bundle's ``logging.conf`` into a file).
After each of its epochs one epoch of a plain loop runs (``zero_grad``, network, loss, ``backward``, Adam ``step``)
on the batches the bundle's loader gave in its first epoch, held in memory as plain tensors, with a copy of the same
network, the same loss and the same learning rate; the two alternate, so drifts in machine load hit both. Validation
rounds are timed apart (the bundle's validator runs once, after the last epoch) and left out of the epoch times.
The first epoch of each is a warm-up and is not counted. Reported: items (slices or patches) per second, median
over the counted epochs, and the time the bundle's loader spent producing batches (``GET_BATCH`` events).
Three ratios per comparison: of the medians, the median of the ratios of neighbouring (alternated) runs, and of the
minimums; on a shared machine the last is the least disturbed by other processes and is the one the goals are read
against in ``docs/performance.md``.

Evaluation (goal: the bundle within 1.3x of MONAI's plain pipeline per case): the bundle's ``evaluate.yaml`` on the
model just trained (sliding window, softmax, inversion to the stored grid, the uncertainty maps, the NIfTI
predictions, every metric of its report) against a ``Dataset`` with the bundle's deterministic transforms, the
same inferer settings (``SliceInferer`` for the 2D bundle, ``SlidingWindowInferer`` for 3D), argmax and MONAI's
``DiceMetric``, on the same test volumes loaded from disk by both; alternated, medians. Peak memory per case: the
rise of the process's resident high-water mark (``VmHWM``, reset via ``/proc/self/clear_refs``) during the run.

``--profile`` writes a cProfile of the bundle's last training epoch (its validation round included; that epoch
is then left out of the timings) and of one more evaluation run to ``bench_results/`` and prints the functions with
the largest cumulative time.

Run: ``python benchmarks/bench_loops.py [--quick] [--datalist PATH] [--threads T]``; writes
``bench_results/loops.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import cProfile
import io
import json
import logging
import logging.config
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench_common import machine_info, reset_peak_rss, rss_kib

from monai_nacl.compare.compared_bundle import EVALUATE, TRAIN, ComparedBundle
from monai_nacl.compare.demo import DEMO_OVERRIDES

TRAINING_GOAL = 1.2
EVALUATION_GOAL = 1.3


def bundle_settings(quick: bool) -> dict[str, dict[str, Any]]:
    """Per benchmarked regime (``bundle`` or ``bundle:defaults``): the bundle, its protocol files, the overrides and
    the number of epochs (``quick``: tiny sizes)."""
    settings = {
        "unet2d_nacl": {
            "bundle": "unet2d_nacl",
            "regime": "demo slice-wise (protocol_paper.yaml + DEMO_OVERRIDES)",
            "protocol": ("protocol_paper.yaml",),
            "overrides": dict(DEMO_OVERRIDES),
            "epochs": 12,
            "item": "slice",
        },
        "unet2d_nacl:defaults": {
            "bundle": "unet2d_nacl",
            "regime": "defaults (random 96 x 96 slices, batch 2 x 8 samples)",
            "protocol": (),
            "overrides": {},
            "epochs": 4,
            "item": "slice",
        },
        "unet3d_nacl": {
            "bundle": "unet3d_nacl",
            "regime": "defaults (random 64^3 patches, batch 2 x 2 samples)",
            "protocol": (),
            "overrides": {},
            "epochs": 4,
            "item": "patch",
        },
        "swinunetr_nacl": {
            "bundle": "swinunetr_nacl",
            "regime": "defaults (random 64^3 patches, batch 1 x 2 samples, feature size 12)",
            "protocol": (),
            "overrides": {},
            "epochs": 2,
            "item": "patch",
        },
    }
    if quick:
        settings["unet2d_nacl"]["overrides"].update(
            {"roi_size": "[16,16]", "train_slices": "2", "train_volumes": "2", "batch_size": "2"}
        )
        settings["unet2d_nacl:defaults"]["overrides"] = {"roi_size": "[16,16]", "num_samples": "2"}
        settings["unet3d_nacl"]["overrides"] = {"roi_size": "[16,16,16]", "sw_batch_size": "2"}
        settings["swinunetr_nacl"]["overrides"] = {"roi_size": "[64,64,64]", "num_samples": "1"}
        for regime in settings.values():
            regime["epochs"] = 3
    return settings


@contextlib.contextmanager
def bundle_logging(bundle: ComparedBundle, log_file: Path) -> Iterator[None]:
    """The bundle's ``logging.conf`` as ``monai.bundle run`` applies it; everything written to the console meanwhile
    (the loggers' handlers, ignite's progress bar) goes to ``log_file`` instead (file descriptors 1 and 2 redirected,
    as the handlers hold the console streams they were made with)."""
    if bundle.logging_file is not None:
        logging.config.fileConfig(bundle.logging_file, disable_existing_loggers=False)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(log_file, "a") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def _peak_rss(fn: Callable[[], object]) -> tuple[float, float | None]:
    """Seconds of ``fn()`` and how far it raised the resident high-water mark, MiB (None where not measurable)."""
    can_reset = reset_peak_rss()
    before = rss_kib("VmRSS")
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    return seconds, ((rss_kib("VmHWM") - before) / 1024.0 if can_reset else None)


def _plain_tensor(value: torch.Tensor) -> torch.Tensor:
    """A MetaTensor's data as a plain tensor (a plain loop holds no metadata), copied out of the batch."""
    return value.as_tensor().clone() if hasattr(value, "as_tensor") else value.clone()


class PlainTrainingLoop:
    """One epoch of ``zero_grad``, forward, loss, ``backward``, Adam ``step`` over batches held in memory.

    Args:
        network: a copy of the bundle's network (same architecture and initial weights).
        loss: a copy of the bundle's loss.
        learning_rate: Adam's learning rate (the bundle's).
        device: where the network and batches live.
    """

    def __init__(self, network: torch.nn.Module, loss: torch.nn.Module, learning_rate: float, device: torch.device):
        self.network, self.loss, self.device = network, loss, device
        self.optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate)
        self.batches: list[tuple[torch.Tensor, torch.Tensor]] = []

    def add_batch(self, image: torch.Tensor, label: torch.Tensor) -> None:
        self.batches.append((_plain_tensor(image).to(self.device), _plain_tensor(label).to(self.device)))

    @property
    def items(self) -> int:
        return sum(image.shape[0] for image, _ in self.batches)

    def epoch(self) -> float:
        """Seconds of one pass over the stored batches."""
        self.network.train()
        start = time.perf_counter()
        for image, label in self.batches:
            self.optimizer.zero_grad(set_to_none=True)
            self.loss(self.network(image), label).backward()
            self.optimizer.step()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - start


class AlternatingEpochs:
    """Times the trainer's epochs and runs one plain epoch after each (outside the trainer's timed span).

    Attach after the bundle's handlers, so the end of an epoch is marked after all of them (checkpoints, history) ran.
    Validation rounds are timed by wrapping the validator's ``run`` and subtracted from the epoch they ran in.
    """

    def __init__(
        self, trainer: Any, validator: Any, plain: PlainTrainingLoop, profiler: cProfile.Profile | None = None
    ) -> None:
        from ignite.engine import Events

        self.plain, self.profiler = plain, profiler
        self.bundle_seconds: list[float] = []
        self.plain_seconds: list[float] = []
        self.loader_seconds: list[float] = []
        self.items: list[int] = []
        self.validation_seconds: list[float] = []
        self._start = self._fetch_start = 0.0
        self._validation = self._loader = 0.0
        self._items = 0
        run = validator.run

        def timed_run(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return run(*args, **kwargs)
            finally:
                self.validation_seconds.append(time.perf_counter() - start)
                self._validation += self.validation_seconds[-1]

        validator.run = timed_run
        trainer.add_event_handler(Events.STARTED, self._on_started)
        trainer.add_event_handler(Events.GET_BATCH_STARTED, self._on_fetch_started)
        trainer.add_event_handler(Events.GET_BATCH_COMPLETED, self._on_fetch_completed)
        trainer.add_event_handler(Events.EPOCH_COMPLETED, self._on_epoch)

    def _on_started(self, engine: Any) -> None:
        self._start = time.perf_counter()

    def _on_fetch_started(self, engine: Any) -> None:
        self._fetch_start = time.perf_counter()

    def _on_fetch_completed(self, engine: Any) -> None:
        self._loader += time.perf_counter() - self._fetch_start
        batch = engine.state.batch  # collated here; the postprocessing decollates it into a list later
        self._items += int(batch["image"].shape[0])
        if engine.state.epoch == 1:
            self.plain.add_batch(batch["image"], batch["label"])

    def _on_epoch(self, engine: Any) -> None:
        self.bundle_seconds.append(time.perf_counter() - self._start - self._validation)
        self.loader_seconds.append(self._loader)
        self.items.append(self._items)
        self.plain_seconds.append(self.plain.epoch())
        if self.profiler is not None and engine.state.epoch == engine.state.max_epochs - 1:
            self.profiler.enable()  # the last epoch only, which the timings leave out: cProfile slows Python down
        self._validation = self._loader = 0.0
        self._items = 0
        self._start = time.perf_counter()


def _parser(bundle: ComparedBundle, phase: str, overrides: Mapping[str, Any]):
    parser = bundle.parser(phase, {"bundle_root": str(bundle.folder), **overrides})
    parser.get_parsed_content("initialize")
    return parser


def run_training(
    name: str, settings: Mapping[str, Any], datalist: str, work_dir: Path, loss_name: str, profile: Path | None
) -> dict[str, Any]:
    """Train ``name`` for ``settings["epochs"]`` epochs alternating with the plain loop; returns the timings."""
    bundle = ComparedBundle.load(settings["bundle"], protocol=settings["protocol"], evaluate_fragments=())
    epochs = settings["epochs"] + (profile is not None)  # a profiled epoch is one more, not timed
    overrides = {
        **settings["overrides"],
        "datalist": datalist,
        "output_dir": str(work_dir / name.replace(":", "_") / "train"),
        "loss_name": loss_name,
        "max_epochs": epochs,
        "val_interval": epochs,
    }
    with bundle_logging(bundle, work_dir / f"{name.replace(':', '_')}.log"):
        start = time.perf_counter()
        parser = _parser(bundle, TRAIN, overrides)
        trainer = parser.get_parsed_content("train#trainer")
        validator = parser.get_parsed_content("validate#evaluator")
        startup = time.perf_counter() - start
        network, loss = parser.get_parsed_content("network"), parser.get_parsed_content("loss")
        device = torch.device(parser.get_parsed_content("device"))
        learning_rate = float(parser.get_parsed_content("learning_rate"))
        plain = PlainTrainingLoop(copy.deepcopy(network), copy.deepcopy(loss), learning_rate, device)
        profiler = cProfile.Profile() if profile is not None else None
        timer = AlternatingEpochs(trainer, validator, plain, profiler)
        trainer.run()
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile)
    # the first epoch of each is a warm-up; a profiled last epoch is not timed
    counted = slice(1, -1) if profiler is not None else slice(1, None)
    bundle_rate = [n / s for n, s in zip(timer.items[counted], timer.bundle_seconds[counted])]
    plain_rate = [plain.items / s for s in timer.plain_seconds[counted]]
    bundle_epoch = statistics.median(timer.bundle_seconds[counted])
    plain_epoch = statistics.median(timer.plain_seconds[counted])
    return {
        "regime": settings["regime"],
        "overrides": {k: v for k, v in overrides.items() if k not in ("datalist", "output_dir")},
        "loss_name": loss_name,
        "item": settings["item"],
        "items_per_epoch": timer.items[0],
        "steps_per_epoch": len(plain.batches),
        "batch_shape": list(plain.batches[0][0].shape),
        "epochs_timed": len(timer.bundle_seconds[counted]),
        "startup_seconds": startup,
        "bundle_epoch_seconds": timer.bundle_seconds,
        "plain_epoch_seconds": timer.plain_seconds,
        "bundle_loader_seconds": timer.loader_seconds,
        "validation_round_seconds": timer.validation_seconds,
        "median_bundle_epoch_seconds": bundle_epoch,
        "median_plain_epoch_seconds": plain_epoch,
        "median_bundle_loader_seconds": statistics.median(timer.loader_seconds[counted]),
        "bundle_items_per_second": statistics.median(bundle_rate),
        "plain_items_per_second": statistics.median(plain_rate),
        "ratio_bundle_over_plain": bundle_epoch / plain_epoch * plain.items / timer.items[1],
        **_ratio_statistics(
            [b / n for b, n in zip(timer.bundle_seconds[counted], timer.items[counted])],
            [p / plain.items for p in timer.plain_seconds[counted]],
        ),
        "goal": TRAINING_GOAL,
        "ckpt_dir": str(work_dir / name.replace(":", "_") / "train" / "models"),
    }


def _ratio_statistics(bundle: Sequence[float], plain: Sequence[float]) -> dict[str, float]:
    """Ratios of alternated timings that a busy machine disturbs less than the ratio of medians: the median of the
    ratios of neighbouring runs (drifts hit both of a pair), and the ratio of the minimums (the least disturbed run
    of each, the closest to what each costs by itself)."""
    return {
        "median_paired_ratio": statistics.median(b / p for b, p in zip(bundle, plain)),
        "ratio_of_minimums": min(bundle) / min(plain),
    }


def _plain_evaluation(parser: Any) -> Callable[[], int]:
    """MONAI's plain pipeline on the bundle's test cases: the deterministic transforms, the inferer, DiceMetric."""
    from monai.data import DataLoader, Dataset
    from monai.inferers import SliceInferer, SlidingWindowInferer
    from monai.metrics import DiceMetric
    from monai.transforms import Compose

    cases = [
        {"image": case["image"], "label": case["label"]} for case in parser.get_parsed_content("validate#dataset#data")
    ]
    dataset = Dataset(cases, transform=Compose(parser.get_parsed_content("train#deterministic_transforms")))
    roi_size = list(parser.get_parsed_content("roi_size"))
    sw_batch_size, device = parser.get_parsed_content("sw_batch_size"), parser.get_parsed_content("device")
    num_classes = int(parser.get_parsed_content("num_classes"))
    if len(roi_size) == 2:
        inferer = SliceInferer(roi_size=roi_size, sw_batch_size=sw_batch_size, overlap=0.25, spatial_dim=2)
    else:
        inferer = SlidingWindowInferer(roi_size=roi_size, sw_batch_size=sw_batch_size, overlap=0.25)
    network = parser.get_parsed_content("network")
    metric = DiceMetric(include_background=False, num_classes=num_classes)

    def run() -> int:
        network.eval()
        metric.reset()
        with torch.no_grad():
            for batch in DataLoader(dataset, batch_size=1, num_workers=0):
                logits = inferer(batch["image"].to(device), network)
                metric(y_pred=logits.argmax(1, keepdim=True), y=batch["label"].to(device))
        metric.aggregate()
        return len(dataset)

    return run


def run_evaluation(
    name: str,
    settings: Mapping[str, Any],
    datalist: str,
    work_dir: Path,
    ckpt_dir: str,
    repeats: int,
    profile: Path | None,
) -> dict[str, Any]:
    """The bundle's evaluation of ``ckpt_dir``'s model against the plain pipeline, alternated ``repeats`` times."""
    bundle = ComparedBundle.load(settings["bundle"], protocol=settings["protocol"], evaluate_fragments=())
    overrides = {
        **{k: v for k, v in settings["overrides"].items() if k != "roi_size"},
        "datalist": datalist,
        "output_dir": str(work_dir / name.replace(":", "_") / "evaluate"),
        "ckpt_dir": ckpt_dir,
    }
    with bundle_logging(bundle, work_dir / f"{name.replace(':', '_')}.log"):
        start = time.perf_counter()
        parser = _parser(bundle, EVALUATE, overrides)
        evaluator = parser.get_parsed_content("validate#evaluator")
        startup = time.perf_counter() - start
        num_cases = len(parser.get_parsed_content("validate#dataset"))
        plain = _plain_evaluation(parser)
        bundle_runs: list[tuple[float, float | None]] = []
        plain_runs: list[tuple[float, float | None]] = []
        for _ in range(repeats):
            bundle_runs.append(_peak_rss(evaluator.run))
            plain_runs.append(_peak_rss(plain))
        if profile is not None:
            cProfile.runctx("evaluator.run()", globals(), {"evaluator": evaluator}, str(profile))
    bundle_case = statistics.median(s for s, _ in bundle_runs) / num_cases
    plain_case = statistics.median(s for s, _ in plain_runs) / num_cases
    return {
        "num_cases": num_cases,
        "repeats": repeats,
        "startup_seconds": startup,
        "bundle_seconds_per_case": bundle_case,
        "plain_seconds_per_case": plain_case,
        "bundle_run_seconds": [s for s, _ in bundle_runs],
        "plain_run_seconds": [s for s, _ in plain_runs],
        "bundle_peak_rss_increase_mib": max((m for _, m in bundle_runs if m is not None), default=None),
        "plain_peak_rss_increase_mib": max((m for _, m in plain_runs if m is not None), default=None),
        "ratio_bundle_over_plain": bundle_case / plain_case,
        **_ratio_statistics([s for s, _ in bundle_runs], [s for s, _ in plain_runs]),
        "goal": EVALUATION_GOAL,
    }


def top_functions(profile: Path, count: int = 25) -> str:
    """The ``count`` functions with the largest cumulative time in a cProfile dump."""
    out = io.StringIO()
    pstats.Stats(str(profile), stream=out).sort_stats("cumulative").print_stats(count)
    return out.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the loop benchmarks, write ``bench_results/loops.json`` (or ``--output``) and print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--datalist", default=None, help="datalist (default: the embedded default dataset)")
    parser.add_argument(
        "--bundles",
        default="unet2d_nacl,unet3d_nacl",
        help="comma list of regimes: unet2d_nacl (the demo's), unet2d_nacl:defaults, unet3d_nacl, swinunetr_nacl",
    )
    parser.add_argument("--loss_name", default="nacl", help="the bundles' loss (default nacl, their default)")
    parser.add_argument("--eval_repeats", type=int, default=None, help="alternated evaluation runs (default 3)")
    parser.add_argument("--profile", action="store_true", help="cProfile the bundles' epochs and evaluation")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs timed per bundle (default 12 / 4)")
    parser.add_argument("--no-eval", action="store_true", help="time the training only")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="ID=VALUE",
        help="a bundle override in both phases, to measure what a config change gains (e.g. "
        "'train#additional_metrics={}'); repeatable",
    )
    parser.add_argument("--output", default=str(REPO / "bench_results" / "loops.json"))
    args, _ = parser.parse_known_args(argv)
    torch.set_num_threads(args.threads)
    extra = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set {item!r}: write ID=VALUE, e.g. --set 'train#additional_metrics={{}}'.")
        extra[key] = value
    if args.datalist is None:
        from monai_nacl.data import ensure_default_dataset

        args.datalist = ensure_default_dataset()
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    settings = bundle_settings(args.quick)
    for bundle in settings.values():
        bundle["overrides"].update(extra)
        bundle["epochs"] = args.epochs or bundle["epochs"]
    result: dict[str, Any] = {"machine": machine_info(), "datalist": str(args.datalist), "bundles": {}}
    with tempfile.TemporaryDirectory(prefix="bench_loops_") as tmp:
        for name in [n.strip() for n in args.bundles.split(",") if n.strip()]:
            if name not in settings:
                raise SystemExit(f"--bundles: {name!r} is not benchmarked; choose among {sorted(settings)}.")
            profile = {
                kind: output.parent / f"profile_{name.replace(':', '_')}_{kind}.prof" for kind in ("train", "evaluate")
            }
            print(f"== {name}: training ({settings[name]['regime']}) ==", flush=True)
            training = run_training(
                name,
                settings[name],
                args.datalist,
                Path(tmp),
                args.loss_name,
                profile["train"] if args.profile else None,
            )
            ckpt_dir = training.pop("ckpt_dir")
            print_training(name, training)
            result["bundles"][name] = {"training": training}
            if args.no_eval:
                continue
            evaluation = run_evaluation(
                name,
                settings[name],
                args.datalist,
                Path(tmp),
                ckpt_dir,
                args.eval_repeats or (1 if args.quick else 3),
                profile["evaluate"] if args.profile else None,
            )
            result["bundles"][name]["evaluation"] = evaluation
            print_evaluation(name, evaluation)
            if args.profile:
                for kind, path in profile.items():
                    if not path.is_file():
                        continue
                    print(f"-- cProfile of {name} {kind} ({path}):\n{top_functions(path)}", flush=True)
    result["machine"]["load_average_after"] = list(os.getloadavg())
    output.write_text(json.dumps(result, indent=2))
    print(f"wrote {output}", flush=True)
    return 0


def _ratios(section: Mapping[str, Any]) -> str:
    return (
        f"{section['ratio_of_minimums']:5.2f}x of the minimums, {section['median_paired_ratio']:5.2f}x median of pairs, "
        f"{section['ratio_bundle_over_plain']:5.2f}x of the medians"
    )


def print_training(name: str, training: Mapping[str, Any]) -> None:
    item = training["item"]
    items = {"slice": "slices", "patch": "patches"}.get(item, item + "s")
    print(
        f"{name} training, {training['items_per_epoch']} {items} per epoch in {training['steps_per_epoch']} steps of "
        f"{tuple(training['batch_shape'])}, median of {training['epochs_timed']} epochs:\n"
        f"  bundle {training['bundle_items_per_second']:8.2f} {items}/s  (epoch "
        f"{training['median_bundle_epoch_seconds']:.3f} s, of which loader {training['median_bundle_loader_seconds']:.3f} s)\n"
        f"  plain  {training['plain_items_per_second']:8.2f} {items}/s  (epoch {training['median_plain_epoch_seconds']:.3f} s)\n"
        f"  bundle / plain time per {item}: {_ratios(training)}  (goal <= {training['goal']}x)\n"
        f"  one validation round {training['validation_round_seconds'][-1]:.2f} s; start-up {training['startup_seconds']:.1f} s",
        flush=True,
    )


def print_evaluation(name: str, evaluation: Mapping[str, Any]) -> None:
    print(
        f"{name} evaluation, {evaluation['num_cases']} cases, median of {evaluation['repeats']} runs:\n"
        f"  bundle {evaluation['bundle_seconds_per_case']:7.3f} s/case  peak RSS "
        f"+{evaluation['bundle_peak_rss_increase_mib']:.1f} MiB\n"
        f"  plain  {evaluation['plain_seconds_per_case']:7.3f} s/case  peak RSS "
        f"+{evaluation['plain_peak_rss_increase_mib']:.1f} MiB\n"
        f"  bundle / plain: {_ratios(evaluation)}  (goal <= {evaluation['goal']}x); start-up "
        f"{evaluation['startup_seconds']:.1f} s",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
