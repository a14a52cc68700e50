"""``python -m monai_nacl compare``: train every loss (x seed) through a bundle, evaluate, and report.

For each variant and seed the bundle's ``train.yaml`` runs with the same seed, split, schedule and
initialisation (the bundle seeds everything from ``seed`` before building the network), then
``evaluate.yaml`` runs on the test split into the same folder. Each run is a subprocess with its own log,
so a failed run is reported and the others go on; finished runs are skipped when the command is rerun.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from monai_nacl.compare.grid import Variant, expand_grid
from monai_nacl.compare.options import CompareOptions, check_bundle_overrides, check_reference
from monai_nacl.compare.progress import Progress, format_duration
from monai_nacl.compare.runs import (
    POSTHOC_DIRS,
    SUMMARY,
    RunSpec,
    bundle_command,
    bundle_loss_names,
    is_finished,
    read_done,
    resolve_bundle,
    run_subprocess,
    write_done,
)

__all__ = ["BundleLayout", "CompareResult", "plan_runs", "run_compare", "variants_for"]

FAILED = "failed"
TRAINED = "trained"
EVALUATED = "evaluated"
FRAGMENTS = Path(__file__).resolve().parent / "configs"
"""Config fragments merged after the bundle's: ``all_voxels.yaml`` (the all-voxel report); ``calibrate.yaml`` and
``posthoc.yaml`` (the post-hoc rows, see :mod:`monai_nacl.compare.posthoc`)."""


@dataclass(frozen=True)
class BundleLayout:
    """How the workflow drives a bundle: which configs to merge for each phase and where the model lands.

    Args:
        train_configs: configs merged to train (names under the bundle's ``configs/``, or absolute paths).
        evaluate_configs: configs merged to evaluate on the test split.
        model_file: the trained weights, relative to the run's folder (the bundle's ``ckpt_dir`` is set to
            ``<run>/models``).
    """

    train_configs: tuple[str, ...] = ("train.yaml",)
    evaluate_configs: tuple[str, ...] = ("train.yaml", "evaluate.yaml", str(FRAGMENTS / "all_voxels.yaml"))
    model_file: str = "models/model.pt"

    def with_protocol(self, configs: tuple[str, ...]) -> BundleLayout:
        """This layout with ``configs`` merged right after ``train.yaml`` (after the first config if absent)."""

        def insert(files: tuple[str, ...]) -> tuple[str, ...]:
            at = files.index("train.yaml") + 1 if "train.yaml" in files else 1
            return files[:at] + configs + files[at:]

        if not configs:
            return self
        return dataclasses.replace(
            self, train_configs=insert(self.train_configs), evaluate_configs=insert(self.evaluate_configs)
        )


@dataclass(frozen=True)
class CompareResult:
    """What :func:`run_compare` produced.

    Args:
        report: path of ``report.md``.
        failed: one line per run that failed in this session (``"nacl seed 1: train failed: ..."``).
    """

    report: Path
    failed: list[str]


def variants_for(options: CompareOptions, bundle_dir: Path) -> list[Variant]:
    """Rows to train: each ``--losses`` name (default all the bundle defines), then each ``--grid`` point.

    Raises:
        ValueError: for a loss name the bundle does not define.
    """
    known = bundle_loss_names(bundle_dir)
    losses = options.losses if options.losses is not None else known
    grid = [v for spec in options.grid for v in expand_grid(spec)]
    unknown = sorted({name for name in losses + [v.loss_name for v in grid] if name not in known})
    if unknown:
        raise ValueError(f"loss(es) {unknown} are not defined by bundle {bundle_dir.name}; it defines {known}.")
    variants = [Variant(name) for name in dict.fromkeys(losses)]
    return variants + [v for v in dict.fromkeys(grid) if v not in variants]


def plan_runs(variants: list[Variant], seeds: list[int], output: Path) -> list[RunSpec]:
    """One :class:`RunSpec` per (variant, seed), folders ``<output>/runs/<run_name>/seed<k>``."""
    return [RunSpec(v, seed, output / "runs" / v.run_name / f"seed{seed}") for v in variants for seed in seeds]


def _base_overrides(options: CompareOptions, bundle_dir: Path) -> dict[str, Any]:
    """Overrides shared by every run: data, schedule, and what the user forwarded.

    The bundles save ``model.pt`` at validation rounds (best validation Dice), so a schedule shorter than
    the bundle's ``val_interval`` would save nothing: ``val_interval`` is then lowered to the epoch count.
    """
    overrides: dict[str, Any] = {}
    if options.dataset_dir is not None:
        overrides["dataset_dir"] = str(Path(options.dataset_dir).resolve())
    if options.datalist is not None:
        overrides["datalist"] = str(Path(options.datalist).resolve())
    if options.epochs is not None:
        overrides["max_epochs"] = options.epochs
        interval = _bundle_value(bundle_dir, "val_interval")
        if "val_interval" not in options.overrides and isinstance(interval, int) and interval > options.epochs:
            overrides["val_interval"] = options.epochs
    overrides.update(options.overrides)
    return overrides


def _config_ids(bundle_dir: Path, configs: list[str]) -> set[str]:
    """Top-level ids of the merged ``configs`` (names under the bundle's ``configs/``, or absolute paths)."""
    from monai.bundle import ConfigParser

    return set(ConfigParser.load_config_files([bundle_dir / "configs" / name for name in configs]))


def _bundle_value(bundle_dir: Path, config_id: str) -> Any:
    """A raw (unparsed) top-level value of the bundle's train.yaml, or None."""
    from monai.bundle import ConfigParser

    return ConfigParser.load_config_files([bundle_dir / "configs" / "train.yaml"]).get(config_id)


def _run_overrides(spec: RunSpec, base: dict[str, Any], layout: BundleLayout, bundle_dir: Path) -> dict[str, Any]:
    """Everything set on the bundle's command line for one run."""
    return {
        "bundle_root": str(bundle_dir),
        **base,
        **spec.variant.overrides(),
        "seed": spec.seed,
        "output_dir": str(spec.run_dir.resolve()),
        "ckpt_dir": str((spec.run_dir / Path(layout.model_file).parent).resolve()),
    }


def _needs_work(spec: RunSpec, posthoc: list[str]) -> bool:
    if not is_finished(spec.run_dir):
        return True
    return any(not is_finished(spec.run_dir / POSTHOC_DIRS[method]) for method in posthoc)


def _fail(run_dir: Path, phase: str, message: str) -> str:
    text = f"{phase} failed: {message}"
    (run_dir / FAILED).write_text(text + "\n")
    return text


def _execute(
    spec: RunSpec,
    bundle_dir: Path,
    layout: BundleLayout,
    base: dict[str, Any],
    options: CompareOptions,
    progress: Progress,
) -> str | None:
    """Train, evaluate (and calibrate post hoc) one run; returns None on success, else what failed.

    The run is finished (``done``) once evaluated; each post-hoc evaluation is a separate result in
    ``<run>/<POSTHOC_DIRS[method]>`` with its own ``done``/``failed`` marker, so its failure leaves the other rows.
    """
    run_dir = spec.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / FAILED).unlink(missing_ok=True)
    overrides = _run_overrides(spec, base, layout, bundle_dir)
    (run_dir / "overrides.json").write_text(json.dumps(overrides, indent=2))
    model = run_dir / layout.model_file
    if not (run_dir / TRAINED).is_file() or not model.is_file():
        progress.start_phase("train")
        command = bundle_command(bundle_dir, list(layout.train_configs), overrides)
        status = run_subprocess(command, run_dir / "train.log", progress.on_line)
        if status != 0:
            return _fail(run_dir, "train", f"exit status {status}, see {run_dir / 'train.log'}")
        if not model.is_file():
            return _fail(run_dir, "train", f"finished but wrote no {model}; see {run_dir / 'train.log'}")
        (run_dir / TRAINED).write_text(time.strftime("%Y-%m-%d %H:%M:%S") + "\n")
    if not (run_dir / EVALUATED).is_file() or not (run_dir / SUMMARY).is_file():
        progress.start_phase("evaluate")
        command = bundle_command(bundle_dir, list(layout.evaluate_configs), overrides)
        status = run_subprocess(command, run_dir / "evaluate.log", progress.on_line)
        if status != 0 or not (run_dir / SUMMARY).is_file():
            return _fail(run_dir, "evaluate", f"exit status {status}, see {run_dir / 'evaluate.log'}")
        (run_dir / EVALUATED).write_text(time.strftime("%Y-%m-%d %H:%M:%S") + "\n")
    if not is_finished(run_dir):
        write_done(run_dir, {"variant": spec.variant.name, "seed": spec.seed, "overrides": overrides})
    errors = []
    for method in options.posthoc:
        if is_finished(run_dir / POSTHOC_DIRS[method]):
            continue
        progress.start_phase(method)
        error = _posthoc(spec, method, bundle_dir, layout, overrides, options, progress)
        if error:
            (run_dir / POSTHOC_DIRS[method] / FAILED).write_text(f"{method} failed: {error}\n")
            errors.append(f"{method} failed: {error}")
    return "; ".join(errors) or None


def _posthoc(
    spec: RunSpec,
    method: str,
    bundle_dir: Path,
    layout: BundleLayout,
    overrides: dict[str, Any],
    options: CompareOptions,
    progress: Progress,
) -> str | None:
    """Fit ``method`` on the validation split with the bundle's calibrate config, then evaluate the test split with
    the calibration applied, both into ``<run>/<POSTHOC_DIRS[method]>`` (see :mod:`monai_nacl.compare.posthoc`)."""
    from monai_nacl.calibration import CALIBRATION_FILE
    from monai_nacl.compare.posthoc import (
        calibrate_configs,
        calibrate_overrides,
        posthoc_evaluate_configs,
        posthoc_evaluate_overrides,
    )

    folder = spec.run_dir / POSTHOC_DIRS[method]
    folder.mkdir(exist_ok=True)
    (folder / FAILED).unlink(missing_ok=True)
    (folder / CALIBRATION_FILE).unlink(missing_ok=True)
    fit_overrides = calibrate_overrides(overrides, method, folder, options.ts_region, options.ts_max_voxels)
    command = bundle_command(bundle_dir, calibrate_configs(bundle_dir, list(layout.train_configs)), fit_overrides)
    status = run_subprocess(command, folder / "calibrate.log", progress.on_line)
    if status != 0 or not (folder / CALIBRATION_FILE).is_file():
        return f"fit failed (exit status {status}), see {folder / 'calibrate.log'}"
    configs = posthoc_evaluate_configs(bundle_dir, list(layout.evaluate_configs))
    command = bundle_command(bundle_dir, configs, posthoc_evaluate_overrides(overrides, method, folder))
    status = run_subprocess(command, folder / "evaluate.log", progress.on_line)
    if status != 0 or not (folder / SUMMARY).is_file():
        return f"evaluation failed (exit status {status}), see {folder / 'evaluate.log'}"
    write_done(folder, json.loads((folder / CALIBRATION_FILE).read_text()))
    return None


def _write_context(
    output: Path, bundle_dir: Path, layout: BundleLayout, base: dict[str, Any], options: CompareOptions
) -> None:
    """Record in ``compare.json`` what the report needs: the resolved datalist and data folder, bins, schedule,
    and what reproduces it (protocol and merged configs, classes, reference, datalist sha256, versions, command).

    The bundle's own expressions resolve the defaults (e.g. the embedded dataset, built if absent).
    """
    from monai_nacl.compare.posthoc import parse_bundle
    from monai_nacl.compare.report import reproducibility_record

    parser = parse_bundle(bundle_dir, list(layout.train_configs), {"bundle_root": str(bundle_dir), **base})
    context: dict[str, Any] = {
        "bundle": str(bundle_dir),
        "protocol": options.protocol,
        "train_configs": list(layout.train_configs),
        "evaluate_configs": list(layout.evaluate_configs),
        "reference": options.reference,
        "overrides": base,
        "seeds": options.seed_values,
        "ts_region": options.ts_region,
    }
    for config_id in ("dataset_dir", "datalist", "num_bins", "max_epochs", "num_classes"):
        if config_id in parser:
            value = parser.get_parsed_content(config_id)
            context[config_id] = value if isinstance(value, (int, float)) else str(value)
    context.update(reproducibility_record(context.get("datalist")))
    (output / "compare.json").write_text(json.dumps(context, indent=2))


def run_compare(
    options: CompareOptions, layout: BundleLayout | None = None, stream: TextIO | None = None
) -> CompareResult:
    """Run the whole comparison and write the report.

    Runs already finished in ``options.output`` are skipped; one finished with other settings than the
    current ones is kept and a warning names the difference (delete its folder to run it again).

    Args:
        options: parsed ``compare`` arguments.
        layout: how to drive the bundle (defaults fit the bundles under ``bundles/``).
        stream: where progress and the final table are printed (stdout by default).
    """
    from monai_nacl.compare.report import write_report

    layout = (layout or BundleLayout()).with_protocol(options.protocol_configs)
    bundle_dir = resolve_bundle(options.bundle)
    missing = [name for name in options.protocol_configs if not (bundle_dir / "configs" / name).is_file()]
    if missing:
        raise ValueError(f"--protocol {options.protocol}: bundle {bundle_dir.name} has no configs/{missing[0]}.")
    variants = variants_for(options, bundle_dir)
    check_reference(options.reference, [v.name for v in variants])
    config_files = dict.fromkeys(layout.train_configs + layout.evaluate_configs)
    check_bundle_overrides(options.overrides, _config_ids(bundle_dir, list(config_files)), bundle_dir.name)
    output = Path(options.output)
    output.mkdir(parents=True, exist_ok=True)
    specs = plan_runs(variants, options.seed_values, output)
    todo = [s for s in specs if _needs_work(s, options.posthoc)]
    progress = Progress(len(todo), stream)
    print(
        f"compare: bundle {bundle_dir.name}, {len(variants)} variant(s) x {len(options.seed_values)} seed(s) = "
        f"{len(specs)} run(s), {len(specs) - len(todo)} already finished in {output}, {len(todo)} to do",
        file=progress.stream,
        flush=True,
    )
    base = _base_overrides(options, bundle_dir)
    _write_context(output, bundle_dir, layout, base, options)
    for spec in specs:
        recorded = read_done(spec.run_dir).get("overrides")
        current = json.loads(json.dumps(_run_overrides(spec, base, layout, bundle_dir)))
        if spec not in todo and recorded is not None and recorded != current:
            changed = sorted(k for k in set(recorded) | set(current) if recorded.get(k) != current.get(k))
            print(
                f"warning: {spec.label} was finished with other settings ({', '.join(changed)}); kept as is. "
                f"Delete {spec.run_dir} to run it again with the current ones.",
                file=progress.stream,
            )
    start = time.monotonic()
    failed = []
    for spec in todo:
        progress.start_run(spec.label, options.epochs)
        error = _execute(spec, bundle_dir, layout, base, options, progress)
        progress.end_run()
        if error:
            failed.append(f"{spec.label}: {error}")
        status = f"FAILED ({error})" if error else "done"
        print(f"[{progress.index}/{progress.total}] {spec.label}: {status}", file=progress.stream, flush=True)
    report = write_report(output, specs, options.posthoc, bundle_dir.name, options.reference)
    print(report.read_text(), file=progress.stream)
    print(
        f"compare: {len(todo)} run(s) in {format_duration(time.monotonic() - start)}, {len(failed)} failed; "
        f"report: {report}",
        file=progress.stream,
        flush=True,
    )
    return CompareResult(report, failed)
