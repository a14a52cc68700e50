"""Data for monai_nacl: the offline default dataset, synthetic test sets, datalist converters, data checks and the
slice-wise training dataset.

Command line: ``python -m monai_nacl.data {build-default,synthetic,datalist,check} ...`` (``--help`` on each).
"""

from __future__ import annotations

from monai_nacl.data.checks import DataProblem, check_cases, check_datalist
from monai_nacl.data.datalist import (
    acdc_cases,
    brats_cases,
    class_names,
    column_safe,
    folder_cases,
    image_channels,
    labels_from_names,
    make_datalist,
    msd_cases,
    num_classes_of,
    parse_split,
    split_cases,
    write_datalist,
)
from monai_nacl.data.default_dataset import (
    DEFAULT_NUM_CASES,
    RaterModel,
    build_default_dataset,
    default_dataset_dir,
    ensure_default_dataset,
    load_mni_template,
    simulate_case,
)
from monai_nacl.data.files import datalist_base_dir
from monai_nacl.data.raters import inter_rater_dice, pairwise_dice, rater_soft_reference
from monai_nacl.data.skipped_cases import SkippedCase, SkippedCases
from monai_nacl.data.slices import SliceDataset, select_slices
from monai_nacl.data.synthetic import make_synthetic_dataset
from monai_nacl.data.writers import AtomicNibabelWriter

__all__ = [
    "DEFAULT_NUM_CASES",
    "AtomicNibabelWriter",
    "DataProblem",
    "RaterModel",
    "SkippedCase",
    "SkippedCases",
    "SliceDataset",
    "acdc_cases",
    "brats_cases",
    "build_default_dataset",
    "check_cases",
    "check_datalist",
    "class_names",
    "column_safe",
    "datalist_base_dir",
    "default_dataset_dir",
    "ensure_default_dataset",
    "folder_cases",
    "image_channels",
    "inter_rater_dice",
    "labels_from_names",
    "load_mni_template",
    "make_datalist",
    "make_synthetic_dataset",
    "msd_cases",
    "num_classes_of",
    "pairwise_dice",
    "parse_split",
    "rater_soft_reference",
    "select_slices",
    "simulate_case",
    "split_cases",
    "write_datalist",
]
