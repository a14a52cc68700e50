"""The one source of the shipped bundles: shared templates plus what each bundle does differently.

``monai_nacl/bundles/_shared/`` holds every file the bundles have in common, verbatim (``multi_gpu_*.yaml``,
``logging.conf``, ``calibrate.yaml``, licences) or as a template with ``{{slots}}`` (``train.yaml.in``,
``evaluate.yaml.in``, ``inference.yaml.in``, ``protocol_paper.yaml.in``). :data:`BUNDLE_SPECS` fills the slots of
each bundle, and the ``losses:`` dictionary is written from the package's loss registry
(:data:`monai_nacl.losses.LOSS_DEFAULTS`), so the defaults exist once. The generated files are committed, so
every bundle folder stays self-contained (copy it anywhere and run it); ``python -m monai_nacl bundle generate``
rewrites them and ``tests/bundles/test_bundle_sources.py`` fails when a committed file differs from what the
sources generate.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from pathlib import Path

__all__ = ["BUNDLES_DIR", "BUNDLE_SPECS", "SHARED_DIR", "generate_bundles", "losses_yaml", "render_bundle"]

BUNDLES_DIR = Path(__file__).resolve().parents[1] / "bundles"
"""The shipped bundles (package data of the wheel)."""
SHARED_DIR = BUNDLES_DIR / "_shared"
"""The bundles' shared sources."""

_VERBATIM = {
    "calibrate.yaml": "configs/calibrate.yaml",
    "multi_gpu_train.yaml": "configs/multi_gpu_train.yaml",
    "multi_gpu_evaluate.yaml": "configs/multi_gpu_evaluate.yaml",
    "logging.conf": "configs/logging.conf",
    "LICENSE": "LICENSE",
    "data_license.txt": "docs/data_license.txt",
}
_TEMPLATES = {
    "train.yaml.in": "configs/train.yaml",
    "inference.yaml.in": "configs/inference.yaml",
    "evaluate.yaml.in": "configs/evaluate.yaml",
    "protocol_paper.yaml.in": "configs/protocol_paper.yaml",
}
_SLOT = re.compile(r"\{\{(\w+)\}\}")

_FLIP = "    - _target_: RandFlipd\n      keys: [image, label]\n      prob: 0.5\n      spatial_axis: {axis}\n"
_TASK = (
    "roi_size: {roi}\n{extra}batch_size: {batch}\nnum_samples: {samples}\n"
    "max_epochs: {epochs}\nval_interval: {val}\nlearning_rate: {lr}"
)
_UNET = (
    "network_def:\n  _target_: monai.networks.nets.UNet\n  spatial_dims: {dims}\n  in_channels: 1\n"
    '  out_channels: "@num_classes"\n  channels: [16, 32, 64, 128]\n  strides: [2, 2, 2]\n  num_res_units: {res}\n'
    "  norm: batch\n"
)
_SWIN = (
    'network_def:\n  _target_: monai.networks.nets.SwinUNETR\n  in_channels: 1\n  out_channels: "@num_classes"\n'
    '  feature_size: "@feature_size"\n  spatial_dims: 3\n  use_checkpoint: false\n'
)
_SLIDING = (
    '{indent}inferer:\n{indent}  _target_: SlidingWindowInferer\n{indent}  roi_size: "@roi_size"\n'
    '{indent}  sw_batch_size: "@sw_batch_size"\n{indent}  overlap: 0.25\n'
)
_SLICE = (
    '{indent}inferer:\n{indent}  _target_: SliceInferer\n{indent}  roi_size: "@roi_size"\n{indent}  spatial_dim: 2\n'
    '{indent}  sw_batch_size: "@sw_batch_size"\n{indent}  overlap: 0.25\n'
)
# the authors' 2D UNet (Bala93/MarginLoss): 32 base filters, 5 levels, no normalisation
_PAPER_UNET2D = (
    "# the authors' 2D UNet: 32 base filters, 5 levels, no normalisation\n"
    "network_def#channels: [32, 64, 128, 256, 512]\nnetwork_def#strides: [2, 2, 2, 2]\nnetwork_def#num_res_units: 0\n"
    "network_def#norm: null\n"
)


# the training defaults every bundle shares (train.yaml.in); the roi comes from each bundle's schedule
_NUM_CLASSES, _PIXDIM = 3, "[2.0, 2.0, 2.0]"


def _network_record(network: str) -> str:
    """The ``task#network_def`` block of train.yaml: every argument of ``network_def`` by reference, so that
    overrides (``--network_def#channels``, protocol_paper.yaml) reach ``task.json``."""
    keys = re.findall(r"^  (\w+):", network, flags=re.MULTILINE)
    lines = ["  network_def:", '    target: "@network_def#_target_"', "    args:"]
    lines += [f'      {key}: "@network_def#{key}"' for key in keys if key != "_target_"]
    return "\n".join(lines) + "\n"


def _bundle(
    name: str, dims: int, header: str, schedule: dict, sw_batch: int, network: str, paper_network: str
) -> dict[str, str]:
    three_d = dims == 3
    return {
        "name": name,
        "header": header,
        "task": _TASK.format(**schedule),
        "inference_task": f"{schedule['extra']}sw_batch_size: {sw_batch}",
        "num_classes": str(_NUM_CLASSES),
        "pixdim": _PIXDIM,
        "task_defaults": f"{{num_classes: {_NUM_CLASSES}, pixdim: {_PIXDIM}, roi_size: {schedule['roi']}}}",
        "network_record": _network_record(network),
        "sw_batch_size": f"sw_batch_size: {sw_batch}",
        "network_def": network,
        "patch_size": '"@roi_size"' if three_d else "$@roi_size + [1]",
        "train_comment": (
            "random patches centred on foreground and background voxels in equal numbers "
            if three_d
            else "random 2D slices (H, W, 1) centred on foreground and background voxels, squeezed to (H, W) "
        ).ljust(103, "-"),
        "squeeze": "" if three_d else "    - _target_: SqueezeDimd\n      keys: [image, label]\n      dim: -1\n",
        "flips": "".join(_FLIP.format(axis=axis) for axis in range(dims)),
        "validate_comment": (
            "whole volumes with a sliding window; Dice picks the checkpoint "
            if three_d
            else "whole volumes, slice by slice along the superior axis; Dice picks the checkpoint "
        ).ljust(101, "-"),
        "validate_inferer": (_SLIDING if three_d else _SLICE).format(indent="  "),
        "inference_inferer": (_SLIDING if three_d else _SLICE).format(indent=""),
        "paper_network": paper_network,
    }


BUNDLE_SPECS: dict[str, dict[str, str]] = {
    "unet2d_nacl": _bundle(
        "unet2d_nacl",
        2,
        "# unet2d_nacl: 2D UNet trained on axial slices of 3D NIfTI volumes with a selectable calibration loss\n"
        "# (NACL by default), validated on whole volumes slice by slice, as in Murugesan et al. (MICCAI 2023).\n",
        {"roi": "[96, 96]", "extra": "", "batch": 2, "samples": 8, "epochs": 40, "val": 5, "lr": 0.001},
        16,
        _UNET.format(dims=2, res=1),
        _PAPER_UNET2D,
    ),
    "unet3d_nacl": _bundle(
        "unet3d_nacl",
        3,
        "# unet3d_nacl: 3D UNet trained on patches of 3D NIfTI volumes with a selectable calibration loss (NACL by\n"
        "# default), validated on whole volumes with a sliding window.\n",
        {"roi": "[64, 64, 64]", "extra": "", "batch": 2, "samples": 2, "epochs": 10, "val": 5, "lr": 0.001},
        4,
        _UNET.format(dims=3, res=2),
        "",
    ),
    "swinunetr_nacl": _bundle(
        "swinunetr_nacl",
        3,
        "# swinunetr_nacl: SwinUNETR (3D) trained on patches of 3D NIfTI volumes with a selectable calibration loss\n"
        "# (NACL by default), validated on whole volumes with a sliding window. Patches: every side divisible by 32\n"
        "# and >= 64; feature_size a multiple of 12.\n",
        {
            "roi": "[64, 64, 64]",
            "extra": "feature_size: 12\n",
            "batch": 1,
            "samples": 2,
            "epochs": 3,
            "val": 3,
            "lr": 0.0005,
        },
        2,
        _SWIN,
        "",
    ),
}
"""What each bundle fills into the shared templates."""


def _yaml_scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"' if value.startswith("@") else value
    return repr(value)


def losses_yaml() -> str:
    """The bundles' ``losses:`` dictionary, written from :data:`monai_nacl.losses.LOSS_DEFAULTS`.

    A constructor argument without a default that the bundle knows (``num_classes``) is bound to the bundle's id.
    """
    from monai_nacl.losses import LOSS_DEFAULTS

    lines = ["losses:"]
    for name, (cls, defaults) in LOSS_DEFAULTS.items():
        lines += [f"  {name}:", f"    _target_: {cls.__module__.split('.')[0]}.losses.{cls.__name__}"]
        required = [
            p.name
            for p in inspect.signature(cls).parameters.values()
            if p.default is inspect.Parameter.empty and p.kind is p.POSITIONAL_OR_KEYWORD and p.name not in defaults
        ]
        arguments = {**{p: f"@{p}" for p in required}, **defaults}
        lines += [f"    {key}: {_yaml_scalar(value)}" for key, value in arguments.items()]
    return "\n".join(lines) + "\n"


def _fill(template: str, slots: Mapping[str, str], source: str) -> str:
    def slot(match: re.Match) -> str:
        if match.group(1) not in slots:
            raise KeyError(f"{source}: no value for the slot {{{{{match.group(1)}}}}}; add it to BUNDLE_SPECS.")
        return slots[match.group(1)]

    return _SLOT.sub(slot, template)


def render_bundle(name: str) -> dict[str, str]:
    """The generated files of one bundle: relative path -> text."""
    if name not in BUNDLE_SPECS:
        raise ValueError(f"unknown bundle {name!r}; the shipped bundles are {sorted(BUNDLE_SPECS)}.")
    slots = {**BUNDLE_SPECS[name], "losses": losses_yaml()}
    files = {target: (SHARED_DIR / source).read_text(encoding="utf-8") for source, target in _VERBATIM.items()}
    for source, target in _TEMPLATES.items():
        files[target] = _fill((SHARED_DIR / source).read_text(encoding="utf-8"), slots, source)
    return files


def generate_bundles(root: Path = BUNDLES_DIR, check: bool = False) -> list[Path]:
    """Write (or, with ``check``, only compare) the generated files of every bundle under ``root``.

    Returns:
        the files that differed from the sources (all written unless ``check``).
    """
    changed = []
    for name in BUNDLE_SPECS:
        for relative, text in render_bundle(name).items():
            path = root / name / relative
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                changed.append(path)
                if not check:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(text, encoding="utf-8")
    return changed
