"""The data a training really uses: the datalist's sections, or the lists a client hands in instead.

A bundle reads its cases from ``datalist`` (``train#dataset#data``, ``validate#dataset#data``). MONAI Label's
``BundleTrainTask`` replaces those two ids with its own lists and never sets ``datalist``; had the data check, the
class names and ``task.json`` read ``datalist``, they would have described (and first built) the default dataset,
not the cases trained on. So everything the training says about its data is derived from the two lists:
:func:`datalist_section` loads a section as a list that remembers its datalist, and a list handed in is known by
not remembering one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from monai.config import PathLike

__all__ = [
    "DatalistSection",
    "data_channels",
    "data_class_names",
    "data_num_classes",
    "data_source",
    "datalist_section",
    "describe_source",
    "handed_in",
]

SECTION_IDS = {"training": "train#dataset#data", "validation": "validate#dataset#data"}
"""The bundle ids MONAI Label overrides, by datalist section."""


class DatalistSection(list):
    """The cases of one section of a datalist (absolute paths, as ``load_decathlon_datalist`` returns them), with
    where they come from.

    Attributes:
        datalist: the datalist file.
        section: its section (``training``, ``validation``, ``test``).
        labels: its MSD-style ``labels`` (label value -> name), None when it has none.
        base_dir: the folder its relative paths start from (None: the datalist's folder).
    """

    def __init__(
        self,
        cases: Iterable[Any],
        datalist: str,
        section: str,
        labels: Mapping[str, Any] | None,
        base_dir: str | None = None,
    ) -> None:
        super().__init__(cases)
        self.datalist = datalist
        self.section = section
        self.labels = labels
        self.base_dir = base_dir

    def __getitem__(self, index: Any) -> Any:
        """A case, or for a slice (``datalist_section(...)[:2]``, a subset to train on) the cases as a section of the
        same datalist: still read from it, its class names kept."""
        if isinstance(index, slice):
            return DatalistSection(
                list.__getitem__(self, index), self.datalist, self.section, self.labels, self.base_dir
            )
        return list.__getitem__(self, index)


def datalist_section(datalist: PathLike, section: str, dataset_dir: PathLike | None = None) -> DatalistSection:
    """The cases of ``section`` of ``datalist`` (relative paths joined to ``dataset_dir``), as a
    :class:`DatalistSection`: what ``train#dataset#data`` and ``validate#dataset#data`` load by default."""
    from monai.data import load_decathlon_datalist

    from monai_nacl.data.files import read_datalist

    cases = load_decathlon_datalist(datalist, True, section, dataset_dir)
    labels = read_datalist(datalist).get("labels") or None
    base_dir = None if dataset_dir is None else os.fspath(dataset_dir)
    return DatalistSection(cases, os.fspath(datalist), section, labels, base_dir)


def handed_in(*sections: Sequence[Any]) -> bool:
    """Whether any of ``sections`` was handed in as a list rather than loaded from a datalist (MONAI Label's data)."""
    return any(not isinstance(s, DatalistSection) for s in sections)


def data_source(training: Sequence[Any], validation: Sequence[Any]) -> str | dict[str, Any]:
    """What ``task.json`` records as the data trained on (its ``datalist``): the datalist's path when both sections
    come from one datalist; else, per section, that datalist's path or the cases handed in."""
    sections = {"training": training, "validation": validation}
    sources = {s.datalist for s in sections.values() if isinstance(s, DatalistSection)}
    if not handed_in(training, validation) and len(sources) == 1:
        return sources.pop()
    return {
        name: cases.datalist if isinstance(cases, DatalistSection) else [dict(c) for c in cases]
        for name, cases in sections.items()
    }


def describe_source(training: Sequence[Any], validation: Sequence[Any]) -> str:
    """The data source in one line, for the start-up settings log."""
    source = data_source(training, validation)
    if isinstance(source, str):
        base_dir = training.base_dir if isinstance(training, DatalistSection) else None
        return source if base_dir is None else f"{source} (relative paths from {base_dir})"
    return "; ".join(
        f"{name}: {value if isinstance(value, str) else f'{len(value)} cases handed in ({SECTION_IDS[name]})'}"
        for name, value in source.items()
    )


def data_class_names(
    training: Sequence[Any], validation: Sequence[Any], num_classes: int, bundle_root: PathLike | None = None
) -> list[str]:
    """The names of the classes trained: the ``labels`` of the datalist the data comes from; for data handed in
    without one (MONAI Label), the ``channel_def`` of ``<bundle_root>/configs/metadata.json``, the label names MONAI
    Label annotates with; else ``class_<k>``. Names are column-safe (:func:`monai_nacl.data.class_names`)."""
    from monai_nacl.data import class_names

    for section in (training, validation):
        if isinstance(section, DatalistSection) and section.labels:
            return class_names({"labels": section.labels}, num_classes)
    if bundle_root is not None and handed_in(training, validation):
        channel_def = _channel_def(Path(bundle_root) / "configs" / "metadata.json")
        if channel_def:
            return class_names({"labels": channel_def}, num_classes)
    return class_names({}, num_classes)


def _channel_def(metadata: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads(metadata.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    outputs = (meta.get("network_data_format") or {}).get("outputs") or {}
    pred = next(iter(outputs.values()), None) if isinstance(outputs, Mapping) else None
    channel_def = pred.get("channel_def") if isinstance(pred, Mapping) else None
    return dict(channel_def) if isinstance(channel_def, Mapping) else None


def data_num_classes(training: Sequence[Any], default: int = 3) -> int:
    """The bundles' default ``num_classes``: the count the training datalist's ``labels`` name (values ``0..K-1``),
    else ``default``. ``--num_classes`` replaces it; the data check compares the two when both exist."""
    from monai_nacl.data import num_classes_of

    if isinstance(training, DatalistSection) and training.labels:
        return num_classes_of({"labels": training.labels}, default=default)
    return default


def data_channels(training: Sequence[Any]) -> int | None:
    """The bundles' default ``in_channels``: the image channels of the first training case (one file per channel,
    a 4D file, or both; :func:`monai_nacl.data.image_channels`), so a 4-modality datalist needs no
    ``--network_def#in_channels``. None when that case cannot be read: the start-up data check then names the file,
    and checks every case against the channels of the others."""
    from monai_nacl.data import image_channels

    try:
        return image_channels({"training": [dict(case) for case in training]})
    except (ValueError, TypeError, KeyError):
        return None
