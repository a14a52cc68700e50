"""``python -m monai_nacl bundle {list,export,torchscript}``: the shipped bundles as folders a user owns, and a trained
bundle's network as TorchScript.

The bundles are the repository's top-level ``bundles/`` (package data ``monai_nacl/bundles/<name>/`` of the wheel). ``export`` copies one
into a folder of the user's, without what a run leaves behind (``models/``, ``eval/``, ``logs/``, caches), so the copy
is self-contained and runs from its own folder with MONAI's plain command::

    python -m monai_nacl bundle export unet2d_nacl ~/work/unet2d_nacl
    cd ~/work/unet2d_nacl
    python -m monai.bundle run --config_file configs/train.yaml --meta_file configs/metadata.json

There ``bundle_root`` is the copy (the folder above ``--config_file``), so its checkpoints go to the copy's
``models/`` and its outputs to the copy's ``eval/``, never to the installed package.

``torchscript`` turns a trained copy's ``models/model.pt`` into ``models/model.ts`` with MONAI's ``ckpt_export``:
scripted like the model zoo's CI does, except for the networks TorchScript cannot compile (SwinUNETR), which are
traced at the sliding window's input shape::

    python -m monai_nacl bundle torchscript ~/work/unet2d_nacl
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml
from monai.bundle import ConfigParser, ckpt_export
from monai.config import PathLike
from monai.networks.nets import SwinUNETR

from monai_nacl.bundle.shipped import BUNDLES_DIR, shipped_bundle_names
from monai_nacl.bundle.weights import weight_shape_differences
from monai_nacl.data.files import build_atomically

__all__ = [
    "EXCLUDED_FROM_EXPORT",
    "TRACED_NETWORKS",
    "TorchScriptMismatch",
    "TracedInputSize",
    "bundle_main",
    "export_bundle",
    "export_torchscript",
    "list_bundles",
]

EXCLUDED_FROM_EXPORT = ("models", "eval", "logs", "__pycache__", ".pytest_cache", ".ipynb_checkpoints", "*.pyc")
"""What :func:`export_bundle` leaves out: a run's checkpoints and outputs, and caches (names or glob patterns)."""

TRACED_NETWORKS: tuple[type[torch.nn.Module], ...] = (SwinUNETR,)
"""Networks :func:`export_torchscript` traces instead of scripting. ``torch.jit.script(SwinUNETR(...))`` fails in
MONAI 1.6.1 with torch 2.13 (``Compiled functions can't take variable number of arguments or use keyword-only
arguments with defaults``: its blocks call ``torch.utils.checkpoint.checkpoint(*args, **kwargs)``); the model zoo
lists its own ``swin_unetr_btcv_segmentation`` in ``exclude_verify_torchscript_list`` for the same reason."""


class TorchScriptMismatch(RuntimeError):
    """The exported TorchScript module does not reproduce the eager network."""


class TracedInputSize(torch.nn.Module):
    """A traced network behind a check of its input's spatial size, scripted around it.

    A trace records SwinUNETR's window partition and shifted-window masks for one spatial size; another size fails
    deep in a reshape or, where the window counts happen to agree, gives a wrong output. This wrapper refuses any
    other size with both sizes named.
    """

    def __init__(self, traced: torch.nn.Module, spatial_shape: list[int]) -> None:
        super().__init__()
        self.traced = traced
        self.spatial_shape = spatial_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if list(x.shape[2:]) != self.spatial_shape:
            raise ValueError(
                "this network was traced for inputs of spatial size "
                + str(self.spatial_shape)
                + ", got "
                + str(list(x.shape[2:]))
                + "; run it through a sliding window of that roi_size, or export again with --roi_size"
            )
        return self.traced(x)


def list_bundles() -> dict[str, str]:
    """The shipped bundles: name -> the ``description`` of its ``configs/metadata.json``."""
    bundles = {}
    for name in shipped_bundle_names(BUNDLES_DIR):
        meta = json.loads((BUNDLES_DIR / name / "configs" / "metadata.json").read_text(encoding="utf-8"))
        bundles[name] = meta.get("description", "")
    return bundles


def export_bundle(name: str, output_dir: PathLike, force: bool = False) -> Path:
    """Copy the shipped bundle ``name`` into ``output_dir``, without :data:`EXCLUDED_FROM_EXPORT`.

    The copy is written into a temporary sibling folder and renamed into place, so an interrupted export leaves no
    half-filled folder.

    Args:
        name: a shipped bundle (:func:`list_bundles`).
        output_dir: the folder to create; an existing empty folder is fine.
        force: replace a non-empty ``output_dir`` (everything in it is deleted, trained models included).

    Returns:
        the absolute path of the copy.

    Raises:
        ValueError: for an unknown bundle name, listing the shipped ones.
        FileExistsError: if ``output_dir`` is not empty and ``force`` is false.
    """
    if name not in shipped_bundle_names(BUNDLES_DIR):
        raise ValueError(f"unknown bundle {name!r}; the shipped bundles are {shipped_bundle_names(BUNDLES_DIR)}.")
    target = Path(output_dir).expanduser().absolute()
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"{target} is a file; choose a folder for the bundle copy.")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise FileExistsError(
            f"{target} is not empty; pass --force to replace its content (trained models included) or choose "
            "another folder."
        )
    source = BUNDLES_DIR / name
    with build_atomically(target, force=True) as staging:
        shutil.copytree(source, staging, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*EXCLUDED_FROM_EXPORT))
    return target


def export_torchscript(
    bundle_dir: PathLike,
    filepath: PathLike | None = None,
    config_file: str = "configs/inference.yaml",
    atol: float = 1e-4,
    **override: Any,
) -> Path:
    """Export ``network_def`` of a trained bundle with its ``models/model.pt`` to TorchScript, and check it.

    MONAI's ``ckpt_export`` does the export (the network, ``configs/metadata.json`` and the config as extra files of
    the ``.ts``). Networks of :data:`TRACED_NETWORKS` are traced with one input of shape ``[1, C, *roi_size]``
    (``C`` from the metadata's ``network_data_format``, ``roi_size`` the config's sliding window): the traced module
    computes its attention windows for that spatial size only, so it serves the bundle's sliding window (any batch
    size) and nothing else. The others are scripted, as the model zoo's CI does, and accept any size the network
    does. Before the export, weights that do not fit the network stop it with the differing parameters named; after
    it, the TorchScript module and the eager network (both in eval mode) must agree on a random input of the traced
    (or the metadata's) shape within ``atol``. A traced module is saved inside :class:`TracedInputSize`, which
    refuses other spatial sizes.

    Args:
        bundle_dir: the bundle folder (a copy made by :func:`export_bundle`, trained: ``models/model.pt`` present).
        filepath: the TorchScript file to write; default ``<bundle_dir>/models/model.ts``.
        config_file: the config holding ``network_def``, relative to ``bundle_dir``.
        atol: largest absolute difference allowed between the TorchScript and the eager outputs.
        override: config overrides, as ``--id value`` on MONAI's command line (``feature_size=48``).

    Returns:
        the path of the TorchScript file.

    Raises:
        FileNotFoundError: without ``models/model.pt`` or the config.
        ValueError: when the weights do not fit ``network_def``.
        TorchScriptMismatch: when the exported module's output differs from the eager network's.
    """
    bundle = Path(bundle_dir).expanduser().absolute()
    config, meta, ckpt = bundle / config_file, bundle / "configs" / "metadata.json", bundle / "models" / "model.pt"
    for required, fix in ((ckpt, "train the bundle first (configs/train.yaml)"), (config, "pass --config_file")):
        if not required.is_file():
            raise FileNotFoundError(f"{required} does not exist; {fix}.")
    target = bundle / "models" / "model.ts" if filepath is None else Path(filepath).expanduser().absolute()
    override = {"bundle_root": str(bundle), **override}
    parser = ConfigParser()
    parser.read_config(str(config))
    parser.read_meta(str(meta))
    parser.update(override)
    network = parser.get_parsed_content("network_def")
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    # a plain state dict (the bundles' CheckpointSaver of one network) or {"model": state_dict, ...}
    key_in_ckpt = "model" if isinstance(state.get("model"), Mapping) else ""
    wrong = weight_shape_differences(network, ckpt)
    if wrong:
        raise ValueError(
            f"{ckpt} does not fit network_def of {config} ({type(network).__name__}): "
            + "; ".join(wrong[:5])
            + ("; ..." if len(wrong) > 5 else "")
            + ". Export with the overrides the model was trained with (e.g. --num_classes, --feature_size)."
        )
    channels = parser.get_parsed_content("_meta_#network_data_format#inputs#image#num_channels")
    use_trace = isinstance(network, TRACED_NETWORKS)
    if use_trace:
        spatial_shape = parser.get_parsed_content("roi_size")
    else:
        spatial_shape = parser.get_parsed_content("_meta_#network_data_format#inputs#image#spatial_shape")
    input_shape = [1, int(channels), *(int(s) for s in spatial_shape)]
    target.parent.mkdir(parents=True, exist_ok=True)
    ckpt_export(
        net_id="network_def",
        filepath=str(target),
        ckpt_file=str(ckpt),
        key_in_ckpt=key_in_ckpt,
        meta_file=str(meta),
        config_file=str(config),
        use_trace=use_trace,
        input_shape=input_shape if use_trace else None,
        **override,
    )
    if use_trace:
        extra_files = {name: "" for name in ("metadata.json", f"{Path(config_file).stem}.json")}
        traced = torch.jit.load(str(target), map_location="cpu", _extra_files=extra_files)
        guarded = torch.jit.script(TracedInputSize(traced, input_shape[2:]))
        torch.jit.save(guarded, str(target), _extra_files=extra_files)
    network.load_state_dict(state[key_in_ckpt] if key_in_ckpt else state)
    exported = torch.jit.load(str(target), map_location="cpu")
    x = torch.randn(input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, got = network.cpu().eval()(x), exported.eval()(x)
    difference = (got - expected).abs().max().item()
    if got.shape != expected.shape or not difference <= atol:
        raise TorchScriptMismatch(
            f"{target} ({'traced' if use_trace else 'scripted'}) gives outputs of shape {tuple(got.shape)}, the "
            f"eager network {tuple(expected.shape)}, largest difference {difference:.3g} (allowed {atol:g}) on an "
            f"input of shape {input_shape}; do not use this file."
        )
    return target


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m monai_nacl bundle", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the shipped bundles")
    export = commands.add_parser("export", help="copy a bundle into a folder of yours, ready to run from there")
    export.add_argument("name", help="bundle name (see 'list')")
    export.add_argument("output_dir", type=Path, help="folder to create")
    export.add_argument("--force", action="store_true", help="replace a non-empty folder (its content is lost)")
    torchscript = commands.add_parser(
        "torchscript",
        help="models/model.pt of a trained bundle as TorchScript (traced for SwinUNETR), checked against the eager "
        "network; further '--id value' options override the config",
    )
    torchscript.add_argument("bundle_dir", type=Path, help="the bundle folder holding models/model.pt")
    torchscript.add_argument("--filepath", type=Path, default=None, help="default: <bundle_dir>/models/model.ts")
    torchscript.add_argument("--config_file", default="configs/inference.yaml", help="relative to bundle_dir")
    return parser


def _overrides(extra: list[str]) -> dict[str, Any]:
    """``['--feature_size', '48', ...]`` -> ``{'feature_size': 48}`` (values read as YAML, as literals)."""
    if len(extra) % 2 or not all(key.startswith("--") for key in extra[::2]):
        raise ValueError(f"config overrides must be '--id value' pairs, got {' '.join(extra)!r}.")
    return {key[2:]: yaml.safe_load(value) for key, value in zip(extra[::2], extra[1::2])}


def bundle_main(argv: list[str]) -> int:
    """The ``bundle`` command; exit status 0, 2 on bad usage."""
    parser = _parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra and args.command != "torchscript":
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exit_:
        return int(exit_.code or 0)
    if args.command == "torchscript":
        try:
            overrides = _overrides(extra)
            path = export_torchscript(args.bundle_dir, args.filepath, args.config_file, **overrides)
        except (ValueError, FileNotFoundError, TorchScriptMismatch) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(f"exported {args.bundle_dir}/models/model.pt to {path}")
        return 0
    if args.command == "list":
        for name, description in list_bundles().items():
            print(f"{name}: {description} ({BUNDLES_DIR / name})")
        return 0
    try:
        copy = export_bundle(args.name, args.output_dir, force=args.force)
    except (ValueError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        f"exported {args.name} to {copy}; run it from there:\n  cd {copy}\n  python -m monai.bundle run "
        "--config_file configs/train.yaml --meta_file configs/metadata.json"
    )
    return 0
