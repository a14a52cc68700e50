"""`monai.bundle ckpt_export` turns each bundle's `network_def` into TorchScript that matches the eager network.

UNet (2D, 3D) is scriptable; SwinUNETR is not (`torch.utils.checkpoint` takes ``*args``), so it is exported with
``--use_trace true --input_shape [1,1,64,64,64]`` (64: each spatial size must be divisible by 32 and leave more than
one voxel at the bottleneck, where the export traces the network in training mode with instance norm).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser, ckpt_export

from tests.bundles.bundle_helpers import BUNDLES_DIR, config_path

# bundle -> (overrides keeping the network small, trace input shape or None for scripting, test input shape)
CASES = {
    "unet2d_nacl": ({}, None, (2, 1, 32, 48)),
    "unet3d_nacl": ({}, None, (1, 1, 32, 32, 48)),
    "swinunetr_nacl": (
        {"feature_size": 12, "network_def#depths": [1, 1, 1, 1]},
        [1, 1, 64, 64, 64],
        (1, 1, 64, 64, 64),
    ),
}


@pytest.mark.parametrize("bundle", list(CASES))
@pytest.mark.parametrize("config", ["inference.yaml", "train.yaml"])
def test_ckpt_export_matches_eager(bundle: str, config: str, tmp_path: Path) -> None:
    if config == "train.yaml" and bundle == "swinunetr_nacl":
        pytest.skip("train.yaml holds the same network_def as inference.yaml; tracing SwinUNETR twice costs ~10 s")
    overrides, trace_shape, x_shape = CASES[bundle]
    # bundle_root: found from --config_file on a command line, named here in-process (inference.yaml's network
    # reads num_classes from the task.json the bundle's models/ would hold, the bundle's defaults without it)
    overrides = {"device": "$torch.device('cpu')", "bundle_root": str(BUNDLES_DIR / bundle), **overrides}
    parser = ConfigParser()
    parser.read_config(config_path(bundle, config))
    parser.update(overrides)
    torch.manual_seed(0)
    eager = parser.get_parsed_content("network_def")
    torch.save(eager.state_dict(), tmp_path / "model.pt")

    extra = {"use_trace": True, "input_shape": trace_shape} if trace_shape else {}
    ts_file = tmp_path / f"{bundle}.ts"
    ckpt_export(
        "network_def",
        filepath=str(ts_file),
        ckpt_file=str(tmp_path / "model.pt"),
        meta_file=config_path(bundle, "metadata.json"),
        config_file=config_path(bundle, config),
        **overrides,
        **extra,
    )
    scripted = torch.jit.load(str(ts_file), map_location="cpu")
    scripted.eval()
    eager.eval()
    x = torch.randn(x_shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = eager(x)
        got = scripted(x)
    assert got.shape == expected.shape == (x_shape[0], 3, *x_shape[2:])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    # the export embeds the bundle's metadata next to the network
    extra_files = {"metadata.json": ""}
    torch.jit.load(str(ts_file), _extra_files=extra_files)
    metadata = extra_files["metadata.json"]
    assert b"network_data_format" in (metadata if isinstance(metadata, bytes) else metadata.encode())
