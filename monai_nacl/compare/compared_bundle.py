"""The bundle being compared, read once: its folder, the configs each phase merges, and what compare needs from them.

``compare`` drives a bundle in four phases, each a ``python -m monai.bundle run`` of merged config files (names under
the bundle's ``configs/``, or absolute paths of the fragments in :data:`FRAGMENTS`):

- ``train``: ``train.yaml``, then the protocol's files (``--protocol paper``: ``protocol_paper.yaml``);
- ``evaluate``: those, then ``evaluate.yaml`` and the all-voxel report (``all_voxels.yaml``);
- ``calibrate``: the training files, then the bundle's ``calibrate.yaml`` (or, for a bundle without it, the generic
  :data:`CALIBRATE_FRAGMENT`);
- ``evaluate_calibrated``: the evaluation files, then ``posthoc.yaml`` when the bundle's evaluation applies no
  calibration itself (defines no ``calibration_dir``).

:meth:`ComparedBundle.load` reads each file once and keeps the merged raw configs; the loss names, the top-level ids
that forwarded overrides are checked against and the raw ``val_interval`` come from them, and
:meth:`ComparedBundle.parser` / :meth:`ComparedBundle.command` start from them.
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monai_nacl.bundle.shipped import BUNDLES_DIR, shipped_bundle_names
from monai_nacl.compare.overrides import command_line_value, literal

__all__ = [
    "ALL_VOXELS_FRAGMENT",
    "CALIBRATE",
    "CALIBRATE_FRAGMENT",
    "EVALUATE",
    "EVALUATE_CALIBRATED",
    "FRAGMENTS",
    "PHASES",
    "POSTHOC_FRAGMENT",
    "TRAIN",
    "ComparedBundle",
    "resolve_bundle",
]

FRAGMENTS = Path(__file__).resolve().parent / "configs"
"""Config fragments merged after a bundle's own files: :data:`ALL_VOXELS_FRAGMENT`, :data:`POSTHOC_FRAGMENT` and
:data:`CALIBRATE_FRAGMENT`."""
ALL_VOXELS_FRAGMENT = FRAGMENTS / "all_voxels.yaml"
"""Adds a second evaluation report over all voxels (``<output_dir>/all_voxels/``)."""
POSTHOC_FRAGMENT = FRAGMENTS / "posthoc.yaml"
"""Applies the saved calibrator before the evaluation's postprocessing, for a bundle whose evaluation does not."""
CALIBRATE_FRAGMENT = FRAGMENTS / "calibrate.yaml"
"""Fits and saves a calibrator (merged after ``train.yaml``) for a bundle without ``configs/calibrate.yaml``: the
bundle's ``network`` over its ``validate#dataloader`` (the shipped bundles' own ``calibrate.yaml`` also reads
``task.json``)."""

TRAIN, EVALUATE, CALIBRATE, EVALUATE_CALIBRATED = "train", "evaluate", "calibrate", "evaluate_calibrated"
PHASES = (TRAIN, EVALUATE, CALIBRATE, EVALUATE_CALIBRATED)


def resolve_bundle(bundle: str | os.PathLike) -> Path:
    """The folder of a bundle given by path, or by the name of a shipped bundle (``unet2d_nacl``: the repository's
    top-level ``bundles/unet2d_nacl``, package data ``monai_nacl/bundles/unet2d_nacl`` of the wheel).

    Raises:
        ValueError: when neither the path nor the shipped bundle of that name holds ``configs/train.yaml``.
    """
    candidates = [Path(bundle), BUNDLES_DIR / str(bundle)]
    for candidate in candidates:
        if (candidate / "configs" / "train.yaml").is_file():
            return candidate.resolve()
    raise ValueError(
        f"--bundle {str(bundle)!r}: no configs/train.yaml in {[str(c) for c in candidates]}. "
        f"Give a bundle folder or one of {shipped_bundle_names()}."
    )


def _merged(configs_dir: Path, base: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """``base`` with the files ``names`` merged on top, as ``ConfigParser.load_config_files`` merges files."""
    from monai.bundle import ConfigParser
    from monai.bundle.utils import merge_kv

    parser = ConfigParser(config=copy.deepcopy(dict(base)))
    for name in names:
        for key, value in ConfigParser.load_config_file(configs_dir / name).items():
            try:
                merge_kv(parser, key, value)
            except (KeyError, ValueError) as error:
                raise ValueError(
                    f"{configs_dir / name} sets {key!r}, which the configs merged before it ({configs_dir.parent}) do "
                    f"not hold ({error}); compare merges it for every bundle, so the bundle must define that part."
                ) from error
    return parser.get()


@dataclass(frozen=True)
class ComparedBundle:
    """A bundle as ``compare`` drives it (build it with :meth:`load`).

    Args:
        folder: the bundle folder (``bundle_root`` of every run).
        files: per phase (:data:`PHASES`), the config files merged in order (names under ``configs/``, or absolute
            paths).
        configs: per phase, the merged raw config (nothing parsed or instantiated); ``evaluate_calibrated`` is merged
            only when a post-hoc evaluation is parsed (:meth:`parser`), as its fragment expects the bundle's
            ``validate#evaluator``.
        loss_names: the ``loss_name`` values the bundle accepts (the keys of its top-level ``losses``).
        ids: the top-level ids of the training and evaluation configs (what a forwarded override may name).
        val_interval: the raw ``val_interval`` of the training configs (None if absent).
        applies_calibration: whether the bundle's own evaluation applies a saved calibration (defines
            ``calibration_dir``).
    """

    folder: Path
    files: Mapping[str, tuple[str, ...]]
    configs: Mapping[str, Mapping[str, Any]]
    loss_names: tuple[str, ...]
    ids: frozenset[str]
    val_interval: Any
    applies_calibration: bool

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def meta_file(self) -> Path | None:
        path = self.folder / "configs" / "metadata.json"
        return path if path.is_file() else None

    @property
    def logging_file(self) -> Path | None:
        path = self.folder / "configs" / "logging.conf"
        return path if path.is_file() else None

    @classmethod
    def load(
        cls,
        bundle: str | os.PathLike,
        protocol: Sequence[str] = (),
        evaluate_fragments: Sequence[str | os.PathLike] = (ALL_VOXELS_FRAGMENT,),
    ) -> ComparedBundle:
        """Read the bundle's configs once and merge them per phase.

        Args:
            bundle: a bundle folder, or the name of a shipped bundle (:func:`resolve_bundle`).
            protocol: config files under ``configs/`` merged right after ``train.yaml`` in every phase.
            evaluate_fragments: files merged after ``evaluate.yaml`` to evaluate (default: the all-voxel report).

        Raises:
            ValueError: for a bundle that is not found, lacks a protocol file or ``configs/evaluate.yaml``, or
                defines no top-level ``losses`` dict.
        """
        folder = resolve_bundle(bundle)
        configs_dir = folder / "configs"
        for name in (*protocol, "evaluate.yaml"):
            if not (configs_dir / name).is_file():
                raise ValueError(f"bundle {folder.name} has no configs/{name} (in {configs_dir}).")
        own_calibrate = (configs_dir / "calibrate.yaml").is_file()
        train = ("train.yaml", *protocol)
        evaluate = (*train, "evaluate.yaml", *(str(f) for f in evaluate_fragments))
        calibrate = (*train, "calibrate.yaml" if own_calibrate else str(CALIBRATE_FRAGMENT))

        merged = {TRAIN: _merged(configs_dir, {}, train)}
        merged[CALIBRATE] = _merged(configs_dir, merged[TRAIN], calibrate[len(train) :])
        merged[EVALUATE] = _merged(configs_dir, merged[TRAIN], evaluate[len(train) :])
        applies_calibration = "calibration_dir" in merged[EVALUATE]
        evaluate_calibrated = evaluate if applies_calibration else (*evaluate, str(POSTHOC_FRAGMENT))

        losses = merged[TRAIN].get("losses")
        if not isinstance(losses, dict) or not losses:
            raise ValueError(
                f"{configs_dir / 'train.yaml'} has no top-level 'losses' dict keyed by loss_name, which compare "
                "selects each run's loss from; add one (see the shipped bundles' train.yaml)."
            )
        return cls(
            folder=folder,
            files={TRAIN: train, EVALUATE: evaluate, CALIBRATE: calibrate, EVALUATE_CALIBRATED: evaluate_calibrated},
            configs=merged,
            loss_names=tuple(losses),
            ids=frozenset(merged[TRAIN]) | frozenset(merged[EVALUATE]),
            val_interval=merged[TRAIN].get("val_interval"),
            applies_calibration=applies_calibration,
        )

    def parser(self, phase: str, overrides: Mapping[str, Any]):
        """A ``ConfigParser`` holding the phase's merged config, the metadata and ``overrides`` (text values read as
        Python literals where they are one, as on the command line)."""
        from monai.bundle import ConfigParser

        config = self.configs.get(phase)
        if config is None:
            extra = self.files[phase][len(self.files[EVALUATE]) :]
            config = _merged(self.folder / "configs", self.configs[EVALUATE], extra)
        parser = ConfigParser(config=copy.deepcopy(dict(config)))
        if self.meta_file is not None:
            parser.read_meta(str(self.meta_file))
        for key, value in overrides.items():
            parser[key] = literal(value) if isinstance(value, str) else value
        return parser

    def command(self, phase: str, overrides: Mapping[str, Any]) -> list[str]:
        """The command line running the phase: ``python -m monai.bundle run`` with the phase's files, the bundle's
        metadata and logging configuration, and ``--id value`` per override (see
        :func:`~monai_nacl.compare.overrides.command_line_value`)."""
        files = [str(self.folder / "configs" / name) for name in self.files[phase]]
        command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", repr(files)]
        if self.meta_file is not None:
            command += ["--meta_file", str(self.meta_file)]
        if self.logging_file is not None:
            command += ["--logging_file", str(self.logging_file)]
        for key, value in overrides.items():
            command += [f"--{key}", command_line_value(value)]
        return command
