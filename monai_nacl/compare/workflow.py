"""``python -m monai_nacl compare``: train every loss (x seed) through a bundle, evaluate, and report.

For each variant and seed the bundle's ``train.yaml`` runs with the same seed, split, schedule and
initialisation (the bundle seeds everything from ``seed`` before building the network), then
``evaluate.yaml`` runs on the test split once per checkpoint reported (``--checkpoint``: the best-validation
``model.pt`` in the run's folder, the final weights in its ``final/``). Each run is a subprocess with its own log,
so a failed run is reported and the others go on; finished runs are skipped when the command is rerun.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from monai_nacl.compare.checkpoints import BEST, FINAL, write_final_model
from monai_nacl.compare.compared_bundle import CALIBRATE, EVALUATE, EVALUATE_CALIBRATED, TRAIN, ComparedBundle
from monai_nacl.compare.grid import Variant, expand_grid
from monai_nacl.compare.options import CompareOptions, check_bundle_overrides, check_reference
from monai_nacl.compare.progress import Progress, format_duration
from monai_nacl.compare.runs import (
    POSTHOC_DIRS,
    SUMMARY,
    RunSpec,
    is_finished,
    read_done,
    run_subprocess,
    write_done,
)

__all__ = ["CompareResult", "plan_runs", "run_compare", "variants_for"]

FAILED = "failed"
TRAINED = "trained"


@dataclass(frozen=True)
class CompareResult:
    """What :func:`run_compare` produced.

    Args:
        report: path of ``report.md``.
        failed: one line per run that failed in this session (``"nacl seed 1: train failed: ..."``).
    """

    report: Path
    failed: list[str]


def variants_for(options: CompareOptions, bundle: ComparedBundle) -> list[Variant]:
    """Rows to train: each ``--losses`` name (default all the bundle defines), then each ``--grid`` point.

    Raises:
        ValueError: for a loss name the bundle does not define.
    """
    known = list(bundle.loss_names)
    losses = options.losses if options.losses is not None else known
    grid = [v for spec in options.grid for v in expand_grid(spec)]
    unknown = sorted({name for name in losses + [v.loss_name for v in grid] if name not in known})
    if unknown:
        raise ValueError(f"loss(es) {unknown} are not defined by bundle {bundle.name}; it defines {known}.")
    variants = [Variant(name) for name in dict.fromkeys(losses)]
    return variants + [v for v in dict.fromkeys(grid) if v not in variants]


def plan_runs(variants: list[Variant], seeds: list[int], output: Path) -> list[RunSpec]:
    """One :class:`RunSpec` per (variant, seed), folders ``<output>/runs/<run_name>/seed<k>``."""
    return [RunSpec(v, seed, output / "runs" / v.run_name / f"seed{seed}") for v in variants for seed in seeds]


def _base_overrides(options: CompareOptions, bundle: ComparedBundle) -> dict[str, Any]:
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
        interval = bundle.val_interval
        if "val_interval" not in options.overrides and isinstance(interval, int) and interval > options.epochs:
            overrides["val_interval"] = options.epochs
    overrides.update(options.overrides)
    return overrides


def _run_overrides(
    spec: RunSpec, base: dict[str, Any], bundle: ComparedBundle, checkpoint: str = BEST
) -> dict[str, Any]:
    """Everything set on the bundle's command line for one run: training and the best checkpoint's evaluation write
    to the run's folder; the final checkpoint's evaluation reads its weights from, and writes to, ``final/``."""
    return {
        "bundle_root": str(bundle.folder),
        **base,
        **spec.variant.overrides(),
        "seed": spec.seed,
        "output_dir": str(spec.evaluation_dir(checkpoint).resolve()),
        "ckpt_dir": str(spec.ckpt_dir(checkpoint).resolve()),
    }


def _needs_work(spec: RunSpec, checkpoints: tuple[str, ...], posthoc: list[str]) -> bool:
    folders = [spec.evaluation_dir(c) for c in checkpoints]
    return any(not is_finished(f) or any(not is_finished(f / POSTHOC_DIRS[m]) for m in posthoc) for f in folders)


def _fail(folder: Path, phase: str, message: str) -> str:
    text = f"{phase} failed: {message}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / FAILED).write_text(text + "\n")
    return text


def _execute(
    spec: RunSpec, bundle: ComparedBundle, base: dict[str, Any], options: CompareOptions, progress: Progress
) -> str | None:
    """Train, evaluate each checkpoint (and calibrate it post hoc) for one run; None on success, else what failed.

    Each checkpoint's evaluation is finished (``done``) once evaluated; each post-hoc evaluation is a separate
    result in ``<evaluation>/<POSTHOC_DIRS[method]>`` with its own ``done``/``failed`` marker, so a failure leaves the
    other rows.
    """
    run_dir = spec.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / FAILED).unlink(missing_ok=True)
    overrides = _run_overrides(spec, base, bundle)
    (run_dir / "overrides.json").write_text(json.dumps(overrides, indent=2))
    model = spec.model(BEST)
    if not (run_dir / TRAINED).is_file() or not model.is_file():
        progress.start_phase("train")
        # a failed or interrupted training left its files here: this run owns the folder and starts it afresh
        command = bundle.command(TRAIN, {**overrides, "overwrite": True})
        status = run_subprocess(command, run_dir / "train.log", progress.on_line, options.subprocess_env)
        if status != 0:
            return _fail(run_dir, "train", f"exit status {status}, see {run_dir / 'train.log'}")
        if not model.is_file():
            return _fail(run_dir, "train", f"finished but wrote no {model}; see {run_dir / 'train.log'}")
        (run_dir / TRAINED).write_text(time.strftime("%Y-%m-%d %H:%M:%S") + "\n")
    errors = []
    for checkpoint in options.checkpoints:
        error = _evaluate(spec, checkpoint, bundle, base, options, progress)
        if error:
            errors.append(error if checkpoint == BEST else f"{checkpoint} checkpoint: {error}")
    return "; ".join(errors) or None


def _evaluate(
    spec: RunSpec,
    checkpoint: str,
    bundle: ComparedBundle,
    base: dict[str, Any],
    options: CompareOptions,
    progress: Progress,
) -> str | None:
    """Evaluate one checkpoint of a trained run on the test split, then its post-hoc rows."""
    folder = spec.evaluation_dir(checkpoint)
    suffix = "" if checkpoint == BEST else f" {checkpoint}"
    overrides = _run_overrides(spec, base, bundle, checkpoint)
    if not is_finished(folder):
        (folder / FAILED).unlink(missing_ok=True)
        if checkpoint == FINAL:
            try:
                write_final_model(spec.ckpt_dir(BEST), spec.ckpt_dir(FINAL))
            except (OSError, ValueError) as error:
                return _fail(folder, "evaluate", str(error))
        progress.start_phase("evaluate" + suffix)
        log = folder / "evaluate.log"
        status = run_subprocess(bundle.command(EVALUATE, overrides), log, progress.on_line, options.subprocess_env)
        if status != 0 or not (folder / SUMMARY).is_file():
            return _fail(folder, "evaluate", f"exit status {status}, see {log}")
        write_done(
            folder, {"variant": spec.variant.name, "seed": spec.seed, "checkpoint": checkpoint, "overrides": overrides}
        )
    errors = []
    for method in options.posthoc:
        if is_finished(folder / POSTHOC_DIRS[method]):
            continue
        progress.start_phase(method + suffix)
        error = _posthoc(folder, method, bundle, overrides, options, progress)
        if error:
            (folder / POSTHOC_DIRS[method] / FAILED).write_text(f"{method} failed: {error}\n")
            errors.append(f"{method} failed: {error}")
    return "; ".join(errors) or None


def _posthoc(
    evaluation_dir: Path,
    method: str,
    bundle: ComparedBundle,
    overrides: dict[str, Any],
    options: CompareOptions,
    progress: Progress,
) -> str | None:
    """Fit ``method`` on the validation split for the checkpoint evaluated in ``evaluation_dir`` (its ``ckpt_dir`` is
    in ``overrides``), then evaluate the test split with the calibration applied, both into
    ``<evaluation_dir>/<POSTHOC_DIRS[method]>`` (see :mod:`monai_nacl.compare.posthoc`)."""
    from monai_nacl.calibration import CALIBRATION_FILE
    from monai_nacl.compare.posthoc import calibrate_overrides, posthoc_evaluate_overrides

    folder = evaluation_dir / POSTHOC_DIRS[method]
    folder.mkdir(exist_ok=True)
    (folder / FAILED).unlink(missing_ok=True)
    (folder / CALIBRATION_FILE).unlink(missing_ok=True)
    fit_overrides = calibrate_overrides(overrides, method, folder, options.ts_region, options.ts_max_voxels)
    command = bundle.command(CALIBRATE, fit_overrides)
    status = run_subprocess(command, folder / "calibrate.log", progress.on_line, options.subprocess_env)
    if status != 0 or not (folder / CALIBRATION_FILE).is_file():
        return f"fit failed (exit status {status}), see {folder / 'calibrate.log'}"
    command = bundle.command(EVALUATE_CALIBRATED, posthoc_evaluate_overrides(overrides, method, folder))
    status = run_subprocess(command, folder / "evaluate.log", progress.on_line, options.subprocess_env)
    if status != 0 or not (folder / SUMMARY).is_file():
        return f"evaluation failed (exit status {status}), see {folder / 'evaluate.log'}"
    write_done(folder, json.loads((folder / CALIBRATION_FILE).read_text()))
    return None


def _write_context(output: Path, bundle: ComparedBundle, base: dict[str, Any], options: CompareOptions) -> None:
    """Record in ``compare.json`` what the report needs: the resolved datalist and data folder, bins, schedule,
    checkpoints, and what reproduces it (protocol and merged configs, classes, reference, datalist sha256, versions,
    command).

    The bundle's own expressions resolve the defaults (e.g. the embedded dataset, built if absent).
    """
    from monai_nacl.compare.report import reproducibility_record

    parser = bundle.parser(TRAIN, {"bundle_root": str(bundle.folder), **base})
    context: dict[str, Any] = {
        "bundle": str(bundle.folder),
        "protocol": options.protocol,
        "train_configs": list(bundle.files[TRAIN]),
        "evaluate_configs": list(bundle.files[EVALUATE]),
        "reference": options.reference,
        "checkpoints": list(options.checkpoints),
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
    options: CompareOptions, bundle: ComparedBundle | None = None, stream: TextIO | None = None
) -> CompareResult:
    """Run the whole comparison and write the report.

    Runs already finished in ``options.output`` are skipped; one finished with other settings than the
    current ones is kept and a warning names the difference (delete its folder to run it again).

    Args:
        options: parsed ``compare`` arguments.
        bundle: the bundle compared; default ``ComparedBundle.load(options.bundle, options.protocol_configs)``
            (``--bundle NAME``: a shipped bundle, ``--bundle PATH``: a bundle folder).
        stream: where progress and the final table are printed (stdout by default).
    """
    from monai_nacl.compare.report import write_report

    if bundle is None:
        bundle = ComparedBundle.load(options.bundle, options.protocol_configs)
    variants = variants_for(options, bundle)
    check_reference(options.reference, [v.name for v in variants])
    check_bundle_overrides(options.overrides, bundle.ids, bundle.name)
    output = Path(options.output)
    output.mkdir(parents=True, exist_ok=True)
    specs = plan_runs(variants, options.seed_values, output)
    todo = [s for s in specs if _needs_work(s, options.checkpoints, options.posthoc)]
    progress = Progress(len(todo), stream)
    print(
        f"compare: bundle {bundle.name}, {len(variants)} variant(s) x {len(options.seed_values)} seed(s) = "
        f"{len(specs)} run(s), {len(specs) - len(todo)} already finished in {output}, {len(todo)} to do",
        file=progress.stream,
        flush=True,
    )
    base = _base_overrides(options, bundle)
    _write_context(output, bundle, base, options)
    for spec in (s for s in specs if s not in todo):
        changed = set()
        for checkpoint in options.checkpoints:
            recorded = read_done(spec.evaluation_dir(checkpoint)).get("overrides")
            current = json.loads(json.dumps(_run_overrides(spec, base, bundle, checkpoint)))
            if recorded is not None:
                changed |= {k for k in set(recorded) | set(current) if recorded.get(k) != current.get(k)}
        if changed:
            print(
                f"warning: {spec.label} was finished with other settings ({', '.join(sorted(changed))}); kept as is. "
                f"Delete {spec.run_dir} to run it again with the current ones.",
                file=progress.stream,
            )
    start = time.monotonic()

    def execute(index: int, spec: RunSpec) -> str | None:
        # one Progress per run: with --jobs > 1 runs go side by side, each printing its own labelled lines
        run_progress = progress if options.jobs == 1 else Progress(len(todo), progress.stream, first_index=index)
        run_progress.start_run(spec.label, options.epochs)
        error = _execute(spec, bundle, base, options, run_progress)
        run_progress.end_run()
        status = f"FAILED ({error})" if error else "done"
        print(f"[{run_progress.index}/{len(todo)}] {spec.label}: {status}", file=progress.stream, flush=True)
        return f"{spec.label}: {error}" if error else None

    with ThreadPoolExecutor(max_workers=options.jobs) as pool:
        outcomes = list(pool.map(execute, range(len(todo)), todo))
    failed = [outcome for outcome in outcomes if outcome]
    report = write_report(output, specs, options.posthoc, bundle.name, options.reference, options.checkpoints)
    print(report.read_text(), file=progress.stream)
    print(
        f"compare: {len(todo)} run(s) in {format_duration(time.monotonic() - start)}, {len(failed)} failed; "
        f"report: {report}",
        file=progress.stream,
        flush=True,
    )
    return CompareResult(report, failed)
