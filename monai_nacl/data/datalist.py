"""Datalists from common folder layouts (MSD, ACDC, BraTS, two plain folders), split into train/validation/test.

Every converter returns a list of cases ``{"image", "label", "group"}`` with absolute paths; ``group`` is the
unit the split keeps together (the ACDC patient, whose two frames must not land in different splits).
:func:`write_datalist` splits them and writes an MSD-style JSON whose paths are relative to the JSON's own
folder, so ``monai.data.load_decathlon_datalist(path, True, "training")`` reads it with its default base dir.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from monai.config import PathLike

from monai_nacl.data.files import NIFTI_SUFFIXES, case_id, datalist_base_dir, read_datalist, write_json

__all__ = [
    "BRATS_MODALITIES",
    "LAYOUTS",
    "acdc_cases",
    "brats_cases",
    "class_names",
    "column_safe",
    "folder_cases",
    "image_channels",
    "labels_from_names",
    "make_datalist",
    "msd_cases",
    "num_classes_of",
    "parse_split",
    "split_cases",
    "write_datalist",
]

LAYOUTS = ("msd", "acdc", "brats", "folders")
# channel order of a BraTS image; the names of each modality across releases (2018-2021, then 2023)
BRATS_MODALITIES = {"t1": ("t1", "t1n"), "t1ce": ("t1ce", "t1c"), "t2": ("t2", "t2w"), "flair": ("flair", "t2f")}
BRATS_SEGMENTATION = ("seg",)
LABEL_SUFFIXES = ("_seg", "_label", "_labels", "_gt", "_mask")


def column_safe(name: str) -> str:
    """A class name as a CSV column / identifier part: lower case, each run of characters other than ``a-z`` and
    ``0-9`` replaced by ``_``, no ``_`` at either end (``"background/other"`` -> ``"background_other"``; ``""`` when
    nothing is left)."""
    return re.sub(r"[^a-z0-9]+", "_", str(name).lower()).strip("_")


def class_names(datalist: PathLike | Mapping[str, Any], num_classes: int) -> list[str]:
    """Column-safe names of the label values ``0 .. num_classes - 1`` from a datalist's MSD-style ``labels``.

    ``labels`` maps a label value (``"1"``) to its name (``"grey matter"``); each name goes through
    :func:`column_safe`. A value that ``labels`` does not name (or names with nothing column-safe), and every value
    of a datalist without ``labels``, is called ``class_<k>``. A name already taken by a lower value gets ``_<k>``
    appended, so the names are unique. Values that ``labels`` names beyond ``num_classes`` are ignored (whether the
    datalist and ``num_classes`` agree is the data check's question, not this function's).

    >>> class_names({"labels": {"0": "background/other", "1": "grey matter", "2": "white matter"}}, 3)
    ['background_other', 'grey_matter', 'white_matter']

    Args:
        datalist: path of the datalist JSON, or its already-loaded content.
        num_classes: number of classes including background.

    Raises:
        ValueError: if ``num_classes < 1``, or the file is missing, is not JSON or holds no JSON object.
        TypeError: if its ``labels`` is not a mapping.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}.")
    source = "the datalist" if isinstance(datalist, Mapping) else str(datalist)
    datalist = read_datalist(datalist)
    labels = datalist.get("labels") or {}
    if not isinstance(labels, Mapping):
        raise TypeError(
            f"'labels' of {source} is {labels!r}; write it MSD-style as label value -> name, e.g. "
            '{"0": "background", "1": "liver"}.'
        )
    names: list[str] = []
    for k in range(num_classes):
        name = column_safe(labels.get(str(k), labels.get(k)) or "") or f"class_{k}"
        while name in names:
            name = f"{name}_{k}"
        names.append(name)
    return names


def num_classes_of(datalist: PathLike | Mapping[str, Any], default: int = 3) -> int:
    """The number of classes a datalist declares: ``K`` when its MSD-style ``labels`` name the values ``0..K-1``.

    What the bundles' ``num_classes`` defaults to, so that a datalist that names its classes needs no
    ``--num_classes``. A datalist without ``labels`` gives ``default``; ``labels`` whose keys are not exactly
    ``0..K-1`` also give ``default``, and the data check then names the mismatch and its fix.

    >>> num_classes_of({"labels": {"0": "background", "1": "liver", "2": "kidney", "3": "bone"}})
    4
    >>> num_classes_of({"training": []}, default=3)
    3

    Raises:
        ValueError: if the file is missing, is not JSON or holds no JSON object.
    """
    labels = read_datalist(datalist).get("labels")
    if not isinstance(labels, Mapping) or not labels:
        return default
    keys = []
    for key in labels:
        try:
            keys.append(int(key))
        except (TypeError, ValueError):
            return default
    return len(keys) if sorted(keys) == list(range(len(keys))) and len(keys) >= 2 else default


def image_channels(
    datalist: PathLike | Mapping[str, Any], dataset_dir: PathLike | None = None, section: str = "training"
) -> int:
    """The image channels of a datalist's cases, what a network's ``in_channels`` must be (headers only).

    One file per channel (``"image": ["t1.nii.gz", "t1ce.nii.gz", "t2.nii.gz", "flair.nii.gz"]``, BraTS-style), a 4D
    file whose fourth axis holds the channels, or both: the channels of the first case of ``section`` summed over
    its files. The data check then requires every case to have as many.

    >>> import tempfile, nibabel as nib, numpy as np
    >>> folder = Path(tempfile.mkdtemp())
    >>> for m in ("t1", "t2"):
    ...     nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 2), np.float32), np.eye(4)), folder / f"{m}.nii.gz")
    >>> image_channels({"training": [{"image": ["t1.nii.gz", "t2.nii.gz"], "label": "l.nii.gz"}]}, folder)
    4

    Raises:
        ValueError: when ``section`` holds no case or the first case's image files cannot be read, naming the file
            and the fix.
    """
    import nibabel as nib

    data = read_datalist(datalist)
    cases = data.get(section)
    if not isinstance(cases, list) or not cases or not isinstance(cases[0], Mapping) or "image" not in cases[0]:
        raise ValueError(
            f"cannot count the image channels: the datalist's '{section}' holds no case with an 'image'; list the "
            "cases (python -m monai_nacl.data datalist) or set --network_def#in_channels."
        )
    files = cases[0]["image"]
    files = list(files) if isinstance(files, (list, tuple)) else [files]
    base = datalist_base_dir(datalist, dataset_dir)
    channels = 0
    for file in files:
        path = Path(file) if Path(file).is_absolute() else base / file
        try:
            shape = nib.load(str(path)).shape
        except Exception as error:
            raise ValueError(
                f"cannot count the image channels: {path} is not a readable NIfTI ({error}); run python -m "
                "monai_nacl.data check on the datalist."
            ) from error
        channels += int(np.prod(shape[3:])) if len(shape) > 3 else 1
    return channels


def labels_from_names(names: Sequence[str] | str) -> dict[str, str]:
    """An MSD-style ``labels`` mapping (``{"0": "background", "1": "liver", ...}``) from class names in order.

    ``names`` is a sequence or a comma-separated string, label value 0 (background) first.

    >>> labels_from_names("background, liver, kidney")
    {'0': 'background', '1': 'liver', '2': 'kidney'}

    Raises:
        ValueError: for fewer than two names, an empty name or a name given twice.
    """
    items = [n.strip() for n in names.split(",")] if isinstance(names, str) else [str(n).strip() for n in names]
    if len(items) < 2:
        raise ValueError(
            f"class names {items}: give one name per label value, background (0) first, at least two, e.g. "
            "--class_names background,liver,kidney."
        )
    if not all(items):
        raise ValueError(f"class names {items}: label value {items.index('')} has an empty name; name every value.")
    repeated = sorted({n for n in items if items.count(n) > 1})
    if repeated:
        raise ValueError(f"class names {items}: {repeated} named twice; give each label value its own name.")
    return {str(k): name for k, name in enumerate(items)}


def _nifti_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(NIFTI_SUFFIXES))


def _require_dir(folder: PathLike, what: str) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{what} {folder} is not a folder; pass the folder that holds the data.")
    return folder


def msd_cases(task_dir: PathLike) -> list[dict[str, Any]]:
    """The labelled cases of a Medical Segmentation Decathlon task folder, from its ``dataset.json``.

    Only ``training`` entries (image and label) are used: the decathlon's ``test`` images have no labels.

    Raises:
        ValueError: if ``dataset.json`` is missing or has no ``training`` list.
    """
    task_dir = _require_dir(task_dir, "MSD task folder")
    meta_path = task_dir / "dataset.json"
    if not meta_path.is_file():
        raise ValueError(f"{meta_path} does not exist; an MSD task folder (e.g. Task09_Spleen) holds dataset.json.")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    training = meta.get("training")
    if not isinstance(training, list) or not training:
        raise ValueError(f"{meta_path} has no 'training' list of {{'image', 'label'}} cases; is it an MSD task?")
    cases = []
    for entry in training:
        image, label = (task_dir / entry["image"]).resolve(), (task_dir / entry["label"]).resolve()
        cases.append({"image": str(image), "label": str(label), "group": case_id(image)})
    return cases


def acdc_cases(root: PathLike) -> list[dict[str, Any]]:
    """The labelled frames of an ACDC-style folder: ``patientXXX/patientXXX_frameYY.nii.gz`` + ``..._gt``.

    Searched recursively (``training/`` and ``testing/`` subfolders both work); frames without a ``_gt`` file
    and the 4D cine files are ignored. The group of a frame is its patient folder.

    Raises:
        ValueError: if no labelled frame is found.
    """
    root = _require_dir(root, "ACDC folder")
    cases = []
    for label in sorted(root.rglob("patient*_frame*_gt.nii*")):
        stem = case_id(label)[: -len("_gt")]
        image = next((label.with_name(stem + s) for s in NIFTI_SUFFIXES if label.with_name(stem + s).is_file()), None)
        if image is not None:
            cases.append({"image": str(image.resolve()), "label": str(label.resolve()), "group": label.parent.name})
    if not cases:
        raise ValueError(
            f"no ACDC frames found under {root}: expected patientXXX/patientXXX_frameYY.nii.gz with "
            "patientXXX_frameYY_gt.nii.gz beside it."
        )
    return cases


def _find_modality(files: Sequence[Path], names: Sequence[str]) -> Path | None:
    for file in files:
        stem = case_id(file).lower()
        if any(stem.endswith(sep + name) for name in names for sep in ("_", "-")):
            return file
    return None


def brats_cases(root: PathLike) -> list[dict[str, Any]]:
    """BraTS-style cases: one folder per case holding t1, t1ce, t2, flair and seg NIfTI files.

    The image of a case is the list ``[t1, t1ce, t2, flair]`` (stacked as channels by ``LoadImaged`` +
    ``EnsureChannelFirstd``). File names end in ``_t1``/``_t1ce``/``_t2``/``_flair``/``_seg`` (BraTS 2018-2021)
    or ``-t1n``/``-t1c``/``-t2w``/``-t2f``/``-seg`` (BraTS 2023). Folders without a segmentation (validation
    releases) are skipped. BraTS labels are {0, 1, 2, 4}: map 4 to 3 before training with 4 classes.

    Raises:
        ValueError: if a case folder lacks a modality, or no labelled case is found.
    """
    root = _require_dir(root, "BraTS folder")
    cases = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = _nifti_files(folder)
        segmentation = _find_modality(files, BRATS_SEGMENTATION)
        if segmentation is None:
            continue
        images = {name: _find_modality(files, aliases) for name, aliases in BRATS_MODALITIES.items()}
        missing = [name for name, path in images.items() if path is None]
        if missing:
            raise ValueError(
                f"BraTS case {folder} has no {missing} file (expected names ending in e.g. _t1.nii.gz, _t1ce.nii.gz, "
                f"_t2.nii.gz, _flair.nii.gz); add the files or move the folder out of {root}."
            )
        cases.append(
            {
                "image": [str(images[name].resolve()) for name in BRATS_MODALITIES],
                "label": str(segmentation.resolve()),
                "group": folder.name,
            }
        )
    if not cases:
        raise ValueError(f"no BraTS case found under {root}: expected one folder per case with *_seg.nii.gz inside.")
    return cases


def _strip_suffix(name: str, suffixes: Sequence[str]) -> str:
    for suffix in suffixes:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def folder_cases(images_dir: PathLike, labels_dir: PathLike) -> list[dict[str, Any]]:
    """Cases from a folder of images and a folder of labels, matched by name.

    An image ``X.nii.gz`` (or nnU-Net's ``X_0000.nii.gz``) matches the label ``X.nii.gz`` (or ``X_seg``,
    ``X_label``, ``X_labels``, ``X_gt``, ``X_mask``).

    Raises:
        ValueError: if some image has no label or some label no image (the names are listed), or if
            two files map onto the same case name.
    """
    images_dir, labels_dir = _require_dir(images_dir, "images folder"), _require_dir(labels_dir, "labels folder")
    images = {_strip_suffix(case_id(p), ("_0000",)): p for p in _nifti_files(images_dir)}
    labels = {_strip_suffix(case_id(p), LABEL_SUFFIXES): p for p in _nifti_files(labels_dir)}
    for found, folder in ((images, images_dir), (labels, labels_dir)):
        if len(found) != len(_nifti_files(folder)):
            raise ValueError(
                f"two files of {folder} map onto the same case name (e.g. X.nii.gz and X_0000.nii.gz); keep one "
                "file per case (multi-channel nnU-Net images are not supported: stack the channels first)."
            )
    unmatched_images, unmatched_labels = sorted(set(images) - set(labels)), sorted(set(labels) - set(images))
    if unmatched_images or unmatched_labels:
        raise ValueError(
            f"images without label: {unmatched_images[:5]} ({len(unmatched_images)}), labels without image: "
            f"{unmatched_labels[:5]} ({len(unmatched_labels)}) in {images_dir} / {labels_dir}; give each image a "
            "label of the same name (optionally ending in _seg/_label/_gt/_mask) or remove the unmatched files."
        )
    if not images:
        raise ValueError(f"no NIfTI files (.nii, .nii.gz) in {images_dir}.")
    return [
        {"image": str(images[name].resolve()), "label": str(labels[name].resolve()), "group": name}
        for name in sorted(images)
    ]


def parse_split(text: str) -> tuple[float, float, float]:
    """``"0.7,0.15,0.15"`` -> ``(0.7, 0.15, 0.15)``: three non-negative fractions summing to 1.

    Raises:
        ValueError: for anything else, with the expected form.
    """
    try:
        fractions = tuple(float(part) for part in text.split(","))
    except ValueError:
        fractions = ()
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6 or fractions[0] == 0:
        raise ValueError(
            f"--split {text!r}: give three fractions train,validation,test that sum to 1 with train > 0, "
            "e.g. --split 0.7,0.15,0.15."
        )
    return fractions


def split_cases(
    cases: Sequence[dict[str, Any]], fractions: Sequence[float] = (0.7, 0.15, 0.15), seed: int = 0
) -> dict[str, list[dict[str, Any]]]:
    """Split ``cases`` into ``training``/``validation``/``test`` by group, at random with ``seed``.

    The sorted group names are shuffled with ``numpy.random.default_rng(seed)``; ``round(f * groups)`` groups go
    to validation and to test, the rest to training. Cases keep their input order within a split.

    Raises:
        ValueError: if no group is left for training.
    """
    groups = sorted({case["group"] for case in cases})
    order = np.random.default_rng(seed).permutation(len(groups))
    n_val, n_test = round(fractions[1] * len(groups)), round(fractions[2] * len(groups))
    if len(groups) - n_val - n_test < 1:
        raise ValueError(
            f"{len(groups)} cases/patients cannot be split {list(fractions)} with at least one for training; "
            "lower the validation and test fractions (--split)."
        )
    assignment = {}
    for rank, index in enumerate(order):
        section = "validation" if rank < n_val else "test" if rank < n_val + n_test else "training"
        assignment[groups[index]] = section
    return {
        section: [case for case in cases if assignment[case["group"]] == section]
        for section in ("training", "validation", "test")
    }


def write_datalist(
    cases: Sequence[dict[str, Any]],
    output: PathLike,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    force: bool = False,
    metadata: dict[str, Any] | None = None,
) -> str:
    """Split ``cases`` (:func:`split_cases`) and write them as an MSD-style datalist; returns its path.

    Paths are written relative to the folder of ``output``. ``metadata`` keys are added beside the splits.

    Raises:
        FileExistsError: if ``output`` exists and ``force`` is false.
    """
    output = Path(output).absolute()
    start = output.parent
    sections = split_cases(cases, fractions, seed)
    data: dict[str, Any] = dict(metadata or {})
    data.update({"seed": seed, "split": list(fractions)})
    for section, members in sections.items():
        data[section] = [
            {
                "image": [os.path.relpath(p, start) for p in case["image"]]
                if isinstance(case["image"], list)
                else os.path.relpath(case["image"], start),
                "label": os.path.relpath(case["label"], start),
            }
            for case in members
        ]
    write_json(data, output, force=force)
    return str(output)


def make_datalist(
    layout: str,
    input_dir: PathLike,
    output: PathLike,
    labels_dir: PathLike | None = None,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    force: bool = False,
    class_names: Sequence[str] | str | None = None,
) -> str:
    """Read a dataset folder of the given ``layout`` and write its split datalist to ``output``.

    Args:
        layout: ``msd`` (task folder with dataset.json), ``acdc``, ``brats`` or ``folders``.
        input_dir: the dataset folder (for ``folders``: the images folder).
        output: JSON file to write.
        labels_dir: the labels folder (``folders`` layout only).
        fractions: train, validation, test fractions.
        seed: seed of the split.
        force: overwrite an existing ``output``.
        class_names: names of the label values, background first (a sequence or ``"background,liver,..."``),
            written as the datalist's MSD-style ``labels``; they replace the names a layout brings (``msd``,
            ``acdc``). The bundles take their class count and names from them.

    Raises:
        ValueError: for an unknown layout, a missing ``labels_dir`` with ``folders``, a folder that does not
            match the layout, or unusable class names.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {list(LAYOUTS)}.")
    named = None if class_names is None else labels_from_names(class_names)
    if (layout == "folders") != (labels_dir is not None):
        raise ValueError("--labels DIR is required with --layout folders (images in --input) and only there.")
    metadata: dict[str, Any] = {"layout": layout, "source": str(Path(input_dir).resolve())}
    if layout == "msd":
        cases = msd_cases(input_dir)
        meta = json.loads((Path(input_dir) / "dataset.json").read_text(encoding="utf-8"))
        metadata.update({key: meta[key] for key in ("name", "labels", "modality", "licence") if key in meta})
    elif layout == "acdc":
        cases = acdc_cases(input_dir)
        metadata["labels"] = {"0": "background", "1": "right ventricle", "2": "myocardium", "3": "left ventricle"}
    elif layout == "brats":
        cases = brats_cases(input_dir)
        metadata["modality"] = {str(i): name for i, name in enumerate(BRATS_MODALITIES)}
    else:
        cases = folder_cases(input_dir, labels_dir)
    if named is not None:
        metadata["labels"] = named
    return write_datalist(cases, output, fractions, seed, force=force, metadata=metadata)
