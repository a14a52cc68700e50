"""``python -m monai_nacl bundle torchscript``: a trained bundle's ``network_def`` as TorchScript equal to the eager
network, through MONAI's ``ckpt_export``.

UNet (2D, 3D) is scripted, as the model zoo's CI exports it, and then accepts other sizes. SwinUNETR cannot be
scripted (``torch.utils.checkpoint`` takes ``*args``), so it is traced at ``[1, 1, *roi_size]``; the traced module
serves that spatial size, any batch size, and refuses another size (a trace of SwinUNETR's shifted windows
fails or computes wrongly at another size). Weights that do not fit stop the export with the
parameters named.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from monai.bundle import ConfigParser

from monai_nacl.__main__ import main
from monai_nacl.bundle.export import export_bundle, export_torchscript

# bundle -> (overrides keeping the network small, input shapes the exported module must reproduce the network on)
CASES: dict[str, tuple[dict[str, Any], list[tuple[int, ...]]]] = {
    "unet2d_nacl": ({}, [(1, 1, 96, 96), (2, 1, 32, 48)]),
    "unet3d_nacl": ({}, [(1, 1, 64, 64, 64), (1, 1, 32, 32, 48)]),
    # SwinUNETR traced at roi_size 64^3: that size at another batch size
    "swinunetr_nacl": ({"network_def#depths": [1, 1, 1, 1]}, [(2, 1, 64, 64, 64)]),
}


def _trained_copy(bundle: str, folder: Path, overrides: dict[str, Any], **network_args: Any) -> torch.nn.Module:
    """Export ``bundle`` into ``folder`` and save a seeded random ``network_def`` (with ``overrides`` and
    ``network_args``) as its ``models/model.pt``; return that network."""
    export_bundle(bundle, folder)
    parser = ConfigParser()
    parser.read_config(str(folder / "configs" / "inference.yaml"))
    parser.update({"bundle_root": str(folder), **overrides, **network_args})
    torch.manual_seed(0)
    network = parser.get_parsed_content("network_def")
    (folder / "models").mkdir()
    torch.save(network.state_dict(), folder / "models" / "model.pt")
    return network.eval()


@pytest.mark.parametrize("bundle", list(CASES))
def test_export_matches_eager(bundle: str, tmp_path: Path) -> None:
    overrides, shapes = CASES[bundle]
    folder = tmp_path / bundle
    eager = _trained_copy(bundle, folder, overrides)
    path = export_torchscript(folder, **overrides)
    assert path == folder / "models" / "model.ts"
    extra_files = {"metadata.json": "", "inference.json": ""}
    exported = torch.jit.load(str(path), map_location="cpu", _extra_files=extra_files).eval()
    assert json.loads(extra_files["metadata.json"])["name"] == bundle
    assert "network_def" in json.loads(extra_files["inference.json"])
    for shape in shapes:
        x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            expected, got = eager(x), exported(x)
        assert got.shape == expected.shape == (shape[0], 3, *shape[2:])
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    traced = bundle == "swinunetr_nacl"
    assert isinstance(exported, torch.jit.ScriptModule) and hasattr(exported, "code")
    if traced:  # attention windows fixed at the traced size: another size is refused, not computed wrongly
        with pytest.raises(
            torch.jit.Error, match=r"traced for inputs of spatial size \[64, 64, 64\], got \[64, 64, 96\]"
        ):
            exported(torch.randn(1, 1, 64, 64, 96))


def test_weights_that_do_not_fit_stop_the_export(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "unet2d_nacl"
    _trained_copy("unet2d_nacl", folder, {}, num_classes=4)
    with pytest.raises(ValueError, match=r"does not fit network_def .*\(UNet\): .*: \(4,.*\) in model.pt, \(3,"):
        export_torchscript(folder)
    assert not (folder / "models" / "model.ts").exists()
    assert main(["bundle", "torchscript", str(folder), "--num_classes", "4"]) == 0
    assert (folder / "models" / "model.ts").is_file()
    assert main(["bundle", "torchscript", str(tmp_path / "nowhere")]) == 2
    assert "model.pt does not exist; train the bundle first" in capsys.readouterr().err
    assert main(["bundle", "torchscript", str(folder), "--num_classes"]) == 2
    assert "must be '--id value' pairs" in capsys.readouterr().err
