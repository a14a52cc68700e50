"""Start-up helpers of the bundles: where the weights go, which loss to train with, whether the data is usable,
whether the output folder holds another run, which images an inference run reads, and the effective settings in the log.

These are the few decisions a bundle config cannot express by itself; everything else stays in the YAML.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from monai.config import PathLike

from monai_nacl.utils import as_flag, is_rank_zero

__all__ = [
    "RUN_FILES",
    "DataCheckFailed",
    "OutputDirInUse",
    "default_ckpt_dir",
    "inference_inputs",
    "log_settings",
    "require_fresh_output",
    "require_valid_data",
    "require_valid_datalist",
    "select_loss",
]


def log_settings(settings: Mapping[str, object], title: str = "effective settings") -> None:
    """Log the run's effective settings at start-up (rank 0), one ``id: value`` per line, so that an override that
    did not take (a misspelled ``--max_epoch 5`` adds an unused id and leaves ``max_epochs`` as it was) is visible."""
    if is_rank_zero():
        import logging

        lines = "\n".join(f"  {key}: {value}" for key, value in settings.items())
        logging.getLogger("monai_nacl").info("%s:\n%s", title, lines)


def default_ckpt_dir(bundle_root: PathLike, output_dir: PathLike) -> str:
    """Where the weights go unless ``--ckpt_dir`` says otherwise: ``<bundle_root>/models`` (the model zoo's place)
    while ``output_dir`` is the bundle's own ``<bundle_root>/eval``, else ``<output_dir>/models``, so that
    ``--output_dir DIR`` moves everything a run writes into ``DIR`` and never into the bundle folder."""
    bundle_root, output_dir = Path(bundle_root).resolve(), Path(output_dir).resolve()
    if output_dir == bundle_root / "eval":
        return os.fspath(bundle_root / "models")
    return os.fspath(output_dir / "models")


def select_loss(losses: Mapping[str, torch.nn.Module], loss_name: str) -> torch.nn.Module:
    """The loss called ``loss_name`` among the bundle's ``losses`` dictionary.

    Args:
        losses: loss name -> instantiated loss module (the bundle's ``losses`` id).
        loss_name: the chosen name (the bundle's ``loss_name`` id, ``--loss_name`` on the command line).

    Raises:
        ValueError: for an unknown name, listing the valid ones.
    """
    if loss_name not in losses:
        raise ValueError(
            f"unknown loss_name '{loss_name}'; choose one of {sorted(losses)} (e.g. --loss_name nacl), or add an "
            f"entry to the 'losses' dictionary of the config (e.g. --losses#mine \"{{'_target_': 'pkg.MyLoss'}}\")."
        )
    return losses[loss_name]


class DataCheckFailed(SystemExit):
    """The start-up data check found problems: the message ends with one line per problem.

    A ``SystemExit``, not a ``ValueError``: ``monai.bundle run`` wraps every ``Exception`` raised by a config
    expression in a ``RuntimeError`` and Python prints the chained tracebacks, which buried the list of bad cases
    30 lines above the end of the output. A ``SystemExit`` passes through MONAI untouched, and the interpreter prints
    its message, and nothing else, to stderr and exits with status 1. Catch it (or ``SystemExit``) to handle the
    failure in-process; :attr:`problems` holds the list.
    """

    def __init__(self, message: str, problems: Sequence[object]) -> None:
        super().__init__(message)
        self.problems = list(problems)


def require_valid_datalist(
    datalist: PathLike,
    num_classes: int,
    base_dir: PathLike | None = None,
    enabled: bool | str = True,
    in_channels: int = 1,
    required_sections: Sequence[str] = ("training", "validation"),
) -> str:
    """Run the data check on a datalist before training and stop with a readable report.

    The checks themselves are ``monai_nacl.data.check_datalist`` (files exist, images are single-channel 3D
    volumes, images and labels share shape and affine, labels are integers in ``[0, num_classes)``, the training
    and validation splits hold cases...).

    Args:
        datalist: MSD-style JSON with ``training``/``validation``/``test`` lists of ``{"image", "label"}``.
        num_classes: number of classes including background (the bundle's ``num_classes``).
        base_dir: folder the datalist's relative paths start from (the bundle's ``dataset_dir``); ``None``: the
            datalist's folder.
        enabled: ``False`` skips the check (``--check_data false``; read with :func:`as_flag`).
        in_channels: image channels per case the network takes (the bundle's ``network_def#in_channels``).
        required_sections: splits that must be present and hold cases (training needs both of the default).

    Returns:
        ``datalist`` as a string, so a config can chain on it.

    Raises:
        DataCheckFailed: a ``SystemExit`` whose message is a summary line followed by one line per problem
            (``<case>: <file>: <problem>: <value>; fix: <fix>``), so the problems are the last lines of the output.
    """
    _check(datalist, os.fspath(datalist), num_classes, base_dir, enabled, in_channels, required_sections)
    return os.fspath(datalist)


def require_valid_data(
    training: Sequence[Mapping[str, object]],
    validation: Sequence[Mapping[str, object]],
    num_classes: int,
    enabled: bool | str = True,
    in_channels: int = 1,
) -> None:
    """Run the data check (:func:`require_valid_datalist`) on the cases this training reads, its
    ``train#dataset#data`` and ``validate#dataset#data``.

    Both loaded from one datalist (:func:`~monai_nacl.bundle.training_data.datalist_section`, the bundles' default):
    the datalist is checked, all its sections. Otherwise (lists handed in, as MONAI Label's ``BundleTrainTask`` does)
    these lists are, with the ``labels`` of a datalist one of them comes from.

    Raises:
        DataCheckFailed: as :func:`require_valid_datalist`.
    """
    from monai_nacl.bundle.training_data import DatalistSection, data_source

    source = data_source(training, validation)
    if isinstance(source, str):
        base_dir = training.base_dir if isinstance(training, DatalistSection) else None
        _check(source, source, num_classes, base_dir, enabled, in_channels, ("training", "validation"))
        return
    data: dict[str, object] = {"training": list(training), "validation": list(validation)}
    labels = next((s.labels for s in (training, validation) if isinstance(s, DatalistSection) and s.labels), None)
    if labels:
        data["labels"] = labels
    name = "the cases handed in through train#dataset#data and validate#dataset#data"
    _check(data, name, num_classes, None, enabled, in_channels, ("training", "validation"))


def _check(
    datalist: PathLike | Mapping[str, object],
    name: str,
    num_classes: int,
    base_dir: PathLike | None,
    enabled: bool | str,
    in_channels: int,
    required_sections: Sequence[str],
) -> None:
    if not as_flag(enabled, "check_data"):
        return
    from monai_nacl.data import check_datalist, datalist_base_dir

    problems = check_datalist(
        datalist, num_classes, base_dir=base_dir, required_sections=required_sections, in_channels=in_channels
    )
    if problems:
        folder = datalist_base_dir(datalist, base_dir)
        header = (
            f"the data check of {name} (relative paths from {folder}, num_classes={num_classes}, "
            f"in_channels={in_channels}) found {len(problems)} problem(s); fix the datalist or the files (or "
            "--dataset_dir, --num_classes), or skip the check with --check_data false:"
        )
        raise DataCheckFailed("\n".join([header, *map(str, problems)]), problems)


RUN_FILES = {"output_dir": ("history.csv",), "ckpt_dir": ("model.pt", "checkpoint_last.pt", "task.json")}
"""The files a training writes that tell a previous run is there, by the folder they lie in."""


class OutputDirInUse(SystemExit):
    """A training was started into folders that hold another run's files (:attr:`files`).

    A ``SystemExit`` for the reason :class:`DataCheckFailed` gives: the message is the last line of the output.
    """

    def __init__(self, message: str, files: Sequence[Path]) -> None:
        super().__init__(message)
        self.files = list(files)


def require_fresh_output(
    output_dir: PathLike,
    ckpt_dir: PathLike,
    resume: bool | str = False,
    overwrite: bool | str = False,
    retrain: bool = False,
) -> str:
    """Stop a training that would mix its files with a previous run's, before anything is written.

    A new training into a finished run's folders would overwrite ``history.csv`` and ``checkpoint_last.pt`` and keep
    the old ``model.pt`` and ``task.json`` until the first better epoch: a folder that describes no run. The previous
    run's files are :data:`RUN_FILES`.

    MONAI Label trains a bundle in place, again at every request, into the folder it serves the model from, and
    cannot pass ``--overwrite``: that is ``retrain``. The previous run's ``history.csv`` and ``checkpoint_last.pt``
    are deleted (they would describe, or resume, another run); its ``model.pt`` and ``task.json`` stay, still served
    and loaded as the starting weights (MONAI Label's ``pretrained``), until this run's first validation replaces
    both (the first validation always saves).

    Args:
        output_dir: the run's ``output_dir`` (``history.csv``).
        ckpt_dir: the run's ``ckpt_dir`` (``model.pt``, ``checkpoint_last.pt``, ``task.json``).
        resume: ``True``: the run continues the one there (``--resume true``); nothing is checked.
        overwrite: ``True``: the previous run's files are deleted (on rank 0; the user's other files stay).
        retrain: ``True``: the run replaces the model there, as MONAI Label retrains (see above); the bundles set it
            when the data is handed in rather than read from a datalist
            (:func:`~monai_nacl.bundle.training_data.handed_in`).

    Returns:
        ``output_dir`` as a string, so a config can chain on it.

    Raises:
        OutputDirInUse: a ``SystemExit`` naming the folder, the files found and the fixes, when neither ``resume``,
            ``overwrite`` nor ``retrain`` is set and a previous run's file is present, or when both ``resume`` and
            ``overwrite`` are set.
    """
    resume, overwrite = as_flag(resume, "resume"), as_flag(overwrite, "overwrite")
    if resume and overwrite:
        raise OutputDirInUse("--resume true and --overwrite true contradict each other: choose one.", [])
    folders = {"output_dir": Path(output_dir), "ckpt_dir": Path(ckpt_dir)}
    found = [folders[key] / name for key, names in RUN_FILES.items() for name in names]
    found = [path for path in found if path.is_file()]
    if resume or not found:
        return os.fspath(output_dir)
    if overwrite or retrain:
        kept = ("model.pt", "task.json") if retrain and not overwrite else ()
        if is_rank_zero():
            for path in found:
                if path.name not in kept:
                    path.unlink(missing_ok=True)
        return os.fspath(output_dir)
    raise OutputDirInUse(
        f"--output_dir {os.fspath(output_dir)} holds a previous run ({', '.join(map(os.fspath, found))}); continue "
        "it with --resume true, start afresh replacing it with --overwrite true, or choose another --output_dir.",
        found,
    )


def inference_inputs(
    input_files: Sequence[PathLike] | None = None,
    input_dir: PathLike | None = None,
    datalist: PathLike | None = None,
    dataset_dir: PathLike | None = None,
) -> list[dict[str, str]]:
    """The images an inference run reads, as ``[{"image": path}, ...]``.

    The first source given wins: ``input_files``; else every ``*.nii``/``*.nii.gz`` file of ``input_dir``
    (sorted); else the ``test`` list of ``datalist`` (relative paths joined to ``dataset_dir``); else the ``test``
    list of the default dataset (``monai_nacl.data.ensure_default_dataset(dataset_dir)``, built if absent).

    Args:
        input_files: NIfTI paths (``--input_files "['a.nii.gz', 'b.nii.gz']"``).
        input_dir: a folder of NIfTI files (``--input_dir /data/images``).
        datalist: an MSD-style datalist JSON whose ``test`` list is read (labels not needed).
        dataset_dir: base folder of the datalist's relative paths.

    Raises:
        ValueError: when the chosen source holds no image, or a given file or folder does not exist.
    """
    if input_files:
        files = [os.fspath(f) for f in input_files]
        missing = [f for f in files if not os.path.isfile(f)]
        if missing:
            raise ValueError(f"input_files lists {len(missing)} missing file(s): {missing[:5]}; check the paths.")
        source = "input_files"
    elif input_dir:
        if not os.path.isdir(input_dir):
            raise ValueError(f"input_dir {os.fspath(input_dir)!r} is not a folder; pass a folder of NIfTI images.")
        files = sorted(str(p) for p in Path(input_dir).iterdir() if p.name.endswith((".nii", ".nii.gz")))
        source = f"input_dir {os.fspath(input_dir)!r}"
    else:
        from monai.data import load_decathlon_datalist

        if not datalist:
            from monai_nacl.data import ensure_default_dataset

            datalist = ensure_default_dataset(dataset_dir)
            dataset_dir = dataset_dir or os.path.dirname(os.fspath(datalist))
        files = [item["image"] for item in load_decathlon_datalist(datalist, False, "test", dataset_dir)]
        source = f"the 'test' list of {os.fspath(datalist)!r}"
    if not files:
        raise ValueError(
            f"no image to run inference on in {source}; pass --input_dir DIR, --input_files \"['a.nii.gz']\" "
            "or --datalist FILE (its 'test' list)."
        )
    return [{"image": f} for f in files]
