"""Checks of a datalist before training, or of the cases of an evaluation or inference run: every file there,
readable, consistent, of the shape the bundles take (single-channel 3D volumes), and labels in range.

Reads with nibabel (headers and arrays; no MONAI transforms), so a bundle can run the check at start-up.

``num_classes`` against the labels: a label value ``>= num_classes`` cannot be trained (the loss has no channel for
it) and is a problem of its case. The datalist's MSD-style ``labels`` (``{"0": "background", "1": ...}``) name the
classes: their keys must be ``0..K-1`` and ``K`` must equal ``num_classes``. A datalist without ``labels`` names its
classes only through its label files, so ``num_classes`` above ``max training label + 1`` (an output channel that is
never trained, its Dice undefined) is a problem too; declaring the classes in ``labels`` is what makes a class absent
from the training split legitimate, and it is then only logged as a warning.
"""

from __future__ import annotations

import json
import logging
import math
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from monai.config import PathLike
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError

from monai_nacl.data.files import SECTIONS, case_id, datalist_base_dir, first_image, read_datalist

__all__ = ["DataProblem", "check_cases", "check_datalist"]

logger = logging.getLogger(__name__)

AFFINE_TOLERANCE_MM = 1e-3
IMAGE_DIMS = 3
"""The images every bundle reads: 3D volumes (the 2D bundle trains on their slices)."""


@dataclass(frozen=True)
class _ImageSpec:
    """What the network reads: images of ``dims`` spatial axes (each > 1) and ``channels`` channels per case
    (``None``: any number), the channels on the axes after the spatial ones or one file per channel."""

    dims: int
    channels: int | None


_READ_ERRORS = (ImageFileError, HeaderDataError, OSError, EOFError, ValueError, zlib.error)


@dataclass(frozen=True)
class DataProblem:
    """One problem found by :func:`check_datalist`.

    Attributes:
        case: where it is, ``"<section>[<index>] <case id>"`` (or ``"datalist"`` for the file as a whole).
        file: the file concerned, as written in the datalist (empty when the entry itself is wrong).
        problem: what is wrong.
        value: the offending value (shapes, label values, counts...).
        fix: what to do about it.
    """

    case: str
    file: str
    problem: str
    value: str
    fix: str

    def __str__(self) -> str:
        where = f"{self.case}: {self.file}" if self.file else self.case
        return f"{where}: {self.problem}: {self.value}; fix: {self.fix}"


@dataclass
class _Volume:
    """A readable NIfTI file: its header facts and, when read, its data."""

    shape: tuple[int, ...]
    affine: np.ndarray
    data: np.ndarray | None


def _spatial(shape: Sequence[int]) -> tuple[int, ...]:
    """``shape`` without trailing singleton axes (``(X, Y, Z, 1)`` -> ``(X, Y, Z)``)."""
    shape = tuple(shape)
    while len(shape) > 2 and shape[-1] == 1:
        shape = shape[:-1]
    return shape


class _CaseChecker:
    """Collects the problems of one datalist entry."""

    def __init__(self, where: str, base_dir: Path, num_classes: int, spec: _ImageSpec) -> None:
        self.where = where
        self.base_dir = base_dir
        self.num_classes = num_classes
        self.spec = spec
        self.problems: list[DataProblem] = []
        self.highest_label: int | None = None

    def report(self, file: str, problem: str, value: Any, fix: str) -> None:
        self.problems.append(DataProblem(self.where, file, problem, str(value), fix))

    def read(self, file: Any, key: str, with_data: bool = True) -> _Volume | None:
        """Open ``file``; report it and return ``None`` if it is missing or unreadable."""
        if not isinstance(file, str) or not file:
            self.report("", f"'{key}' is not a file path", repr(file), f"give '{key}' as a path string")
            return None
        path = self.base_dir / file
        if not path.is_file():
            self.report(
                file, "missing file", path, f"check the path and base_dir ({self.base_dir}), or regenerate the datalist"
            )
            return None
        try:
            image = nib.load(str(path))
            shape, affine = tuple(int(s) for s in image.shape), np.asarray(image.affine, dtype=np.float64)
        except _READ_ERRORS as error:
            self.report(
                file,
                "unreadable NIfTI header",
                f"{type(error).__name__}: {error}",
                "re-export the file as NIfTI (.nii or .nii.gz) or re-copy it; the header is corrupt or not NIfTI",
            )
            return None
        data = None
        if with_data:
            try:
                data = np.asanyarray(image.dataobj)
            except _READ_ERRORS as error:
                self.report(
                    file,
                    "truncated or corrupt image data",
                    f"{type(error).__name__}: {error}",
                    "re-copy or re-export the file; its data ends early or does not match its header",
                )
                return None
        return _Volume(shape, affine, data)

    def check_intensities(self, file: str, volume: _Volume) -> None:
        data = volume.data
        if not np.issubdtype(data.dtype, np.number) or np.issubdtype(data.dtype, np.complexfloating):
            self.report(file, "image data is not real-valued", data.dtype, "save the image with a real numeric type")
            return
        finite = np.isfinite(data)
        if not finite.all():
            nan, inf = int(np.isnan(data).sum()), int((~finite).sum() - np.isnan(data).sum())
            self.report(
                file,
                "image has non-finite intensities",
                f"{nan} NaN and {inf} inf voxels of {data.size}",
                "replace them (e.g. numpy.nan_to_num) and re-save the image",
            )
        values = data[finite]
        if values.size == 0 or values.min() == values.max():
            constant = values.flat[0] if values.size else "none finite"
            self.report(
                file,
                "empty image (every voxel has the same value)",
                f"value {constant}",
                "remove the case from the datalist or re-export the image",
            )

    def check_volume(self, file: str, volume: _Volume) -> int:
        """The image must have ``spec.dims`` spatial axes, each > 1 (a 3D volume ``(X, Y, Z)`` for the bundles), the
        channels on the axes after them; returns its number of channels (the product of those axes)."""
        shape, dims = volume.shape, self.spec.dims
        volume_words = "3D volume (X, Y, Z)" if dims == 3 else f"{dims}D image"
        if len(shape) < dims:
            self.report(
                file,
                f"image is {len(shape)}D, expected {dims}D",
                f"shape {shape}",
                f"save the case as one {volume_words} with all its slices"
                + (" (the bundles read 3D volumes; the 2D bundle trains on their slices)" if dims == 3 else ""),
            )
            return 1
        if min(shape[:dims]) == 1:
            self.report(
                file,
                f"image has a single slice, expected {dims}D",
                f"shape {shape}",
                f"stack the slices of the case into one {volume_words} and save it as one file",
            )
        return math.prod(shape[dims:])

    def check_channels(self, files: Sequence[str], channels: int) -> None:
        """All image files of the case together must give the network's ``in_channels``."""
        expected = self.spec.channels
        if expected is None or channels == expected:
            return
        if len(files) == 1 and expected == 1:
            fix = (
                f"give one single-channel 3D volume per case (e.g. keep one channel of the {channels}-channel file: "
                f"nibabel image.slicer[..., 0]) or train a network with {channels} input channels "
                f"(--network_def#in_channels {channels})"
            )
        else:
            fix = (
                f"list {expected} image file(s) per case, one per channel (a 4D file counts its channels), or train a "
                f"network with {channels} input channel(s) (--network_def#in_channels {channels})"
            )
        value = f"{channels} channel(s) in {len(files)} file(s), the network takes {expected}"
        self.report(files[0], "wrong number of image channels", value, fix)

    def check_grid(self, file: str, volume: _Volume, reference_file: str, reference: _Volume) -> None:
        """``volume`` must lie on the grid of ``reference``: same shape (``reference`` may have one more, channel,
        axis at the end) and same affine."""
        shape, expected = _spatial(volume.shape), _spatial(reference.shape)
        if shape != expected and not (len(expected) == len(shape) + 1 and expected[:-1] == shape):
            self.report(
                file,
                f"shape differs from {reference_file}",
                f"{volume.shape} vs {reference.shape}",
                "resample the label onto the image grid (same size and affine) or fix the pairing in the datalist",
            )
            return
        difference = float(np.abs(volume.affine - reference.affine).max())
        if difference > AFFINE_TOLERANCE_MM:
            self.report(
                file,
                f"affine differs from {reference_file}",
                f"max difference {difference:.4g} mm",
                "resample onto the image grid or copy the image's affine into this file (if only the header is off)",
            )

    def check_labels(self, file: str, volume: _Volume) -> None:
        data = volume.data
        if not np.issubdtype(data.dtype, np.number) or np.issubdtype(data.dtype, np.complexfloating):
            self.report(file, "label data is not numeric", data.dtype, "save the label map with an integer type")
            return
        if np.issubdtype(data.dtype, np.floating):
            bad = ~np.isfinite(data) | (data != np.round(data))
            if bad.any():
                examples = np.unique(data[bad])[:5].tolist()
                self.report(
                    file,
                    "non-integer label values",
                    f"{int(bad.sum())} voxels, e.g. {examples}",
                    "save integer class indices (a probability or resampled map needs rounding / nearest-neighbour "
                    "resampling)",
                )
                return
        values, counts = np.unique(data, return_counts=True)
        if values.size:
            self.highest_label = int(values.max())
        outside = (values < 0) | (values >= self.num_classes)
        if outside.any():
            found = ", ".join(f"{v:g} ({c} voxels)" for v, c in zip(values[outside][:5], counts[outside][:5]))
            highest = int(values.max())
            self.report(
                file,
                f"label values outside [0, {self.num_classes})",
                found,
                f"set --num_classes {highest + 1} if these are real classes, or map them onto 0..{self.num_classes - 1} "
                "(e.g. monai.transforms.MapLabelValued; BraTS: 4 -> 3)",
            )

    def check_soft_label(self, file: str, volume: _Volume, label_file: str, label: _Volume) -> None:
        expected = (*_spatial(label.shape), self.num_classes)
        if tuple(volume.shape) != expected:
            self.report(
                file,
                "soft label shape is not (*label shape, num_classes)",
                f"{volume.shape} vs {expected}",
                "store one probability channel per class, channels last, on the label grid",
            )
        self.check_grid(file, _Volume(volume.shape[:-1], volume.affine, None), label_file, label)


def _check_entry(entry: Any, where: str, base_dir: Path, num_classes: int, spec: _ImageSpec) -> _CaseChecker:
    checker = _CaseChecker(where, base_dir, num_classes, spec)
    if not isinstance(entry, Mapping) or "image" not in entry:
        checker.report("", "entry has no 'image'", repr(entry)[:80], "write each case as {'image': ..., 'label': ...}")
        return checker
    image_files = entry["image"] if isinstance(entry["image"], list) else [entry["image"]]
    if not image_files:
        checker.report("", "empty 'image' list", "[]", "list at least one image file")
    images = []
    for file in image_files:
        volume = checker.read(file, "image")
        if volume is not None:
            checker.check_intensities(file, volume)
            images.append((file, volume))
    if images and len(images) == len(image_files):
        checker.check_channels(image_files, sum(checker.check_volume(file, volume) for file, volume in images))
    for file, volume in images[1:]:
        checker.check_grid(file, volume, images[0][0], images[0][1])
    label = None
    if entry.get("label") is not None:
        label = checker.read(entry["label"], "label")
        if label is not None:
            if images:
                checker.check_grid(entry["label"], label, images[0][0], images[0][1])
            checker.check_labels(entry["label"], label)
    if entry.get("soft_label") is not None:
        soft = checker.read(entry["soft_label"], "soft_label", with_data=False)
        if soft is not None and label is not None:
            checker.check_soft_label(entry["soft_label"], soft, entry["label"], label)
    return checker


def _check_section(
    cases: Sequence[Any],
    section: str,
    base_dir: Path,
    num_classes: int,
    spec: _ImageSpec,
    first_seen: dict[Path, str],
) -> tuple[list[list[DataProblem]], int | None]:
    """The problems of each case of one section, and the highest label value read in it (``None``: no label read);
    ``first_seen`` (image path -> where) spans the sections."""
    per_case = []
    highest: int | None = None
    for index, entry in enumerate(cases):
        first = first_image(entry)
        where = f"{section}[{index}]" + (f" {case_id(first)}" if isinstance(first, str) else "")
        checker = _check_entry(entry, where, base_dir, num_classes, spec)
        problems = checker.problems
        if checker.highest_label is not None:
            highest = checker.highest_label if highest is None else max(highest, checker.highest_label)
        if isinstance(first, str):
            resolved = (base_dir / first).resolve()
            if resolved in first_seen:
                problems.append(
                    DataProblem(
                        where,
                        first,
                        "image listed twice",
                        f"first as {first_seen[resolved]}",
                        "list each case once, in one split only (training, validation or test)",
                    )
                )
            first_seen.setdefault(resolved, where)
        per_case.append(problems)
    return per_case, highest


def _require_num_classes(num_classes: Any) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes={num_classes!r}: give the number of classes including background, e.g. 3.")
    return int(num_classes)


def _image_spec(image_dims: Any, in_channels: Any) -> _ImageSpec:
    if isinstance(image_dims, bool) or image_dims not in (2, 3):
        raise ValueError(f"image_dims={image_dims!r}: give 3 (volumes, what the bundles read) or 2.")
    if in_channels is not None and (
        isinstance(in_channels, bool) or not isinstance(in_channels, (int, np.integer)) or in_channels < 1
    ):
        raise ValueError(f"in_channels={in_channels!r}: give the network's number of input channels, e.g. 1.")
    return _ImageSpec(int(image_dims), None if in_channels is None else int(in_channels))


def _label_indices(labels: Mapping[Any, Any]) -> list[int] | None:
    """The class indices that the keys of a datalist's ``labels`` name (``"2"`` -> 2), or ``None`` if a key is not
    a non-negative integer written as such (``"01"``, ``"grey"``, ``"-1"``, ``1.0``)."""

    def is_index(key: Any) -> bool:
        if isinstance(key, str):
            return key.isdecimal() and str(int(key)) == key
        return isinstance(key, (int, np.integer)) and not isinstance(key, bool) and key >= 0

    keys = list(labels)
    return [int(key) for key in keys] if all(map(is_index, keys)) else None


def _labels_text(labels: Mapping[Any, Any], shown: int = 8) -> str:
    """``labels`` as JSON-like text, its first ``shown`` entries only (a whole-body datalist names 100 classes)."""

    def text(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, default=str)

    items = [f"{text(str(key))}: {text(value)}" for key, value in labels.items()]
    if len(items) > shown:
        items = [*items[: shown - 1], f"... ({len(items)} entries)"]
    return "{" + ", ".join(items) + "}"


def _check_num_classes(
    data: Mapping[str, Any], name: str, num_classes: int, highest_training: int | None
) -> DataProblem | None:
    """``num_classes`` against the classes the datalist declares in ``labels``, or, without ``labels``, against the
    highest training label (``highest_training``; ``None``: no training label read)."""
    labels = data.get("labels")
    absent = [] if highest_training is None else list(range(highest_training + 1, num_classes))
    if labels is None:
        if not absent:
            return None
        example = '"labels": {"0": "background", ..., ' + f'"{num_classes - 1}": "<name>"' + "}"
        return DataProblem(
            "datalist",
            name,
            "num_classes above the classes of the training labels",
            f"num_classes={num_classes}, the training labels go up to {highest_training}: class(es) {absent} never "
            "occur in training (their output channels would not be trained, their Dice undefined)",
            f"--num_classes {highest_training + 1}, or declare the classes in the datalist ({example}) if the "
            f"training split is meant to lack class(es) {absent}",
        )
    if not isinstance(labels, Mapping):
        return DataProblem(
            "datalist",
            name,
            "'labels' is not a mapping of class index to name",
            f"{type(labels).__name__} {repr(labels)[:80]}",
            'write the classes as "labels": {"0": "background", "1": "<name>", ...}, one entry per class',
        )
    indices = _label_indices(labels)
    if indices is None or sorted(indices) != list(range(len(labels))):
        return DataProblem(
            "datalist",
            name,
            "the keys of 'labels' are not the classes 0..K-1",
            f"keys {[str(k) for k in labels]}",
            "key the datalist's labels by the class indices 0, 1, ..., K-1 (background 0), one entry per class, as "
            "in an MSD dataset.json; if the label files use other values, map them (e.g. "
            "monai.transforms.MapLabelValued)",
        )
    declared = len(labels)
    if declared != num_classes:
        if declared < num_classes:
            edit = f"add classes {list(range(declared, num_classes))} to the datalist's labels if they are real classes"
        else:
            edit = (
                f"remove classes {list(range(num_classes, declared))} from the datalist's labels (and map their "
                "voxels onto the remaining classes)"
            )
        fix = f"--num_classes {declared}, or {edit}" if declared else f"{edit}, or remove the empty labels"
        return DataProblem(
            "datalist",
            name,
            "num_classes contradicts the datalist's labels",
            f"num_classes={num_classes}, labels name {declared} classes: {_labels_text(labels)}",
            fix,
        )
    if absent:
        logger.warning(
            "%s: class(es) %s, named in the datalist's labels, never occur in the training labels (which go up to "
            "%d): their output channels are not trained and their Dice is undefined.",
            name,
            absent,
            highest_training,
        )
    return None


def check_cases(
    cases: Sequence[Any],
    num_classes: int,
    base_dir: PathLike | None = None,
    section: str = "cases",
    *,
    in_channels: int | None = 1,
    image_dims: int = IMAGE_DIMS,
) -> list[list[DataProblem]]:
    """Check each case of one list (a datalist section, or the inputs of an inference run); see :func:`check_datalist`.

    Args:
        cases: ``[{"image": ..., "label": ...}, ...]``; ``label`` (and ``soft_label``) are optional.
        num_classes: number of classes including background (for the label values).
        base_dir: folder that relative paths start from; default: the working directory.
        section: name of the list in the problems' ``case`` (``"test[3] case_003"``).
        in_channels: channels the network takes, counted over the image file(s) of a case (``None``: any number).
        image_dims: spatial axes of an image file (3: volumes, what the bundles read).

    Returns:
        One list of problems per case, in the order of ``cases`` (an empty list: the case is fine). An image
        listed twice is reported at its second occurrence.

    Raises:
        ValueError: if ``num_classes`` or ``in_channels`` is not a positive integer, or ``image_dims`` not 2 or 3.
    """
    base = Path.cwd() if base_dir is None else Path(base_dir)
    spec = _image_spec(image_dims, in_channels)
    return _check_section(cases, section, base, _require_num_classes(num_classes), spec, {})[0]


def check_datalist(
    datalist: PathLike | Mapping[str, Any],
    num_classes: int,
    base_dir: PathLike | None = None,
    sections: Iterable[str] | None = None,
    *,
    required_sections: Iterable[str] = (),
    in_channels: int | None = 1,
    image_dims: int = IMAGE_DIMS,
) -> list[DataProblem]:
    """Check every case of an MSD-style datalist and return the problems found (empty list: all good).

    Per case: the image file(s), label and soft label exist and are readable NIfTI (header, then the whole
    data, so a truncated ``.nii.gz`` is caught; soft labels are checked by header only, to keep this fast);
    images are real-valued, finite, not constant, of ``image_dims`` spatial axes each > 1 (3D volumes by default: a
    2D image or a single slice is rejected) with ``in_channels`` channels over the case's file(s) (axes after the
    spatial ones count as channels: a 4D file ``(X, Y, Z, C)`` has ``C``); the files of a
    multi-file image, the label and the soft label share the image's spatial shape and affine (within 1e-3 mm);
    labels are integers in ``[0, num_classes)``; a soft label has shape ``(*label shape, num_classes)``. Across the
    datalist: the checked sections exist and are lists, the datalist holds at least one case, the explicitly
    named and the required sections hold at least one case each, and no image is listed twice (within or across
    sections). ``num_classes`` must match the datalist's classes: with an MSD-style ``labels`` mapping, its keys are
    ``0..K-1`` and ``K == num_classes`` (a declared class absent from the training split is logged as a warning);
    without one, ``num_classes`` must not exceed the highest training label + 1.

    Args:
        datalist: path of the JSON file, or the loaded dictionary.
        num_classes: number of classes including background.
        base_dir: folder that relative paths start from; default: :func:`~monai_nacl.data.datalist_base_dir`
            (the datalist's folder, or the working directory for a dictionary).
        sections: keys to check; default: whichever of ``training``, ``validation``, ``test`` are present.
        required_sections: keys that must be present and hold at least one case (checked too); a training bundle
            needs ``("training", "validation")``.
        in_channels: channels the network takes (``None``: any number; the shipped bundles take 1).
        image_dims: spatial axes of an image file (3: volumes, what the bundles read; 2 for 2D image sets).

    Raises:
        ValueError: if ``num_classes`` or ``in_channels`` is not a positive integer, or ``image_dims`` not 2 or 3.
    """
    num_classes, spec = _require_num_classes(num_classes), _image_spec(image_dims, in_channels)
    name = "datalist" if isinstance(datalist, Mapping) else str(datalist)
    try:
        data = read_datalist(datalist)
    except ValueError as error:
        fix = "check the path, or write the datalist again (python -m monai_nacl.data datalist ...)"
        return [DataProblem("datalist", name, "cannot read the datalist", str(error).split(";")[0], fix)]
    base_dir = datalist_base_dir(datalist, base_dir)
    sections = None if sections is None else list(sections)
    required = list(dict.fromkeys([*(sections or ()), *required_sections]))
    if sections is None:
        sections = [s for s in SECTIONS if s in data]
        if not sections and not required:
            fix = "write the cases under 'training', 'validation' and 'test' (python -m monai_nacl.data datalist)"
            return [DataProblem("datalist", name, "no case lists", f"keys {sorted(data)}", fix)]
    sections = list(dict.fromkeys([*sections, *required]))
    problems: list[DataProblem] = []
    empty: list[str] = []
    highest_training: int | None = None
    first_seen: dict[Path, str] = {}
    for section in sections:
        cases = data.get(section)
        if not isinstance(cases, list):
            problems.append(
                DataProblem(
                    "datalist",
                    name,
                    f"section '{section}' is missing or not a list",
                    type(cases).__name__,
                    f"add a '{section}' list of cases or leave the section out of the check",
                )
            )
            continue
        if not cases:
            empty.append(section)
        per_case, highest = _check_section(cases, section, base_dir, num_classes, spec, first_seen)
        for case_problems in per_case:
            problems += case_problems
        if section == "training":
            highest_training = highest
    if empty and not any(isinstance(data.get(s), list) and data[s] for s in {*SECTIONS, *sections}):
        fix = "list the cases under 'training', 'validation' and 'test' (python -m monai_nacl.data datalist ...)"
        problems.append(DataProblem("datalist", name, "the datalist holds no case", f"empty sections {empty}", fix))
    else:
        for section in (s for s in empty if s in required):
            problems.append(
                DataProblem(
                    "datalist",
                    name,
                    f"section '{section}' holds no case",
                    "[]",
                    f"move some cases into '{section}' (the bundles train on 'training' and choose their checkpoint "
                    "on 'validation'), e.g. write the datalist again with python -m monai_nacl.data datalist --split "
                    "0.7,0.15,0.15",
                )
            )
    mismatch = _check_num_classes(data, name, num_classes, highest_training)
    if mismatch is not None:
        problems.append(mismatch)
    return problems
