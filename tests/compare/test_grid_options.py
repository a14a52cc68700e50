"""Argument parsing and grid expansion of ``python -m monai_nacl compare``."""

from __future__ import annotations

from pathlib import Path

import pytest

from monai_nacl.__main__ import main
from monai_nacl.compare.grid import Variant, expand_grid, parse_grid
from monai_nacl.compare.options import QUICK_EPOCHS, parse_compare_args
from monai_nacl.compare.overrides import parse_overrides, split_overrides


def test_defaults_and_forwarded_overrides():
    opts = parse_compare_args(
        [
            "--bundle",
            "unet2d_nacl",
            "--losses",
            "ce, nacl",
            "--seeds",
            "3",
            "--first_seed",
            "5",
            "--losses#nacl#alpha",
            "0.2",
            "--device",
            "cpu",
            "--amp=False",
        ]
    )
    assert opts.bundle == "unet2d_nacl"
    assert opts.losses == ["ce", "nacl"]
    assert opts.seed_values == [5, 6, 7]
    assert opts.overrides == {"losses#nacl#alpha": "0.2", "device": "cpu", "amp": "False"}
    assert opts.output == Path("outputs/compare")
    assert opts.epochs is None and opts.posthoc == [] and opts.grid == []


def test_quick_and_explicit_epochs():
    assert parse_compare_args(["--bundle", "b", "--quick"]).epochs == QUICK_EPOCHS
    assert parse_compare_args(["--bundle", "b", "--quick", "--max_epochs", "7"]).epochs == 7
    opts = parse_compare_args(
        ["--bundle", "b", "--temperature-scaling", "--grid", "nacl:alpha=0.1", "--grid", "ls:alpha=0.2"]
    )
    assert opts.posthoc == ["ts"] and opts.grid == ["nacl:alpha=0.1", "ls:alpha=0.2"]
    assert opts.losses is None and opts.seed_values == [0]


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--bundle", "b", "--seed", "3"], "set by compare"),
        (["--bundle", "b", "--output_dir", "x"], "set by compare"),
        (["--bundle", "b", "--losses#nacl#alpha"], "has no value"),
        (["--bundle", "b", "stray"], "expected '--name value'"),
        (["--bundle", "b", "--losses", " , "], "names no loss"),
    ],
)
def test_bad_arguments(argv, match):
    with pytest.raises(ValueError, match=match):
        parse_compare_args(argv)


def test_override_literals_follow_fire():
    assert split_overrides(["--a#b", "0.2", "--c=x"]) == {"a#b": "0.2", "c": "x"}
    parsed = parse_overrides(["--x", "0.2", "--y", "True", "--z", "/tmp/data", "--w", "['a', 'b']", "--n", "3"])
    assert parsed == {"x": 0.2, "y": True, "z": "/tmp/data", "w": ["a", "b"], "n": 3}


def test_grid_expansion_order_names_and_overrides():
    variants = expand_grid("nacl:alpha=0.05,0.1,0.2;kernel_size=3,5")
    assert [v.name for v in variants] == [
        "nacl(alpha=0.05,kernel_size=3)",
        "nacl(alpha=0.05,kernel_size=5)",
        "nacl(alpha=0.1,kernel_size=3)",
        "nacl(alpha=0.1,kernel_size=5)",
        "nacl(alpha=0.2,kernel_size=3)",
        "nacl(alpha=0.2,kernel_size=5)",
    ]
    assert variants[-1].overrides() == {"loss_name": "nacl", "losses#nacl#alpha": "0.2", "losses#nacl#kernel_size": "5"}
    assert variants[-1].run_name == "nacl__alpha-0.2_kernel_size-5"
    assert Variant("ce", posthoc="ts").name == "ce + TS"
    assert parse_grid(" svls : sigma = 0.5 , 1 ") == ("svls", {"sigma": ["0.5", "1"]})


@pytest.mark.parametrize("spec", ["alpha=0.1", "nacl:", "nacl:alpha", "nacl:alpha=", "nacl:a=1;a=2"])
def test_bad_grid(spec):
    with pytest.raises(ValueError, match="--grid"):
        expand_grid(spec)


def test_cli_usage_errors(capsys, tmp_path):
    assert main([]) == 2 and "python -m monai_nacl demo" in capsys.readouterr().out
    assert main(["train"]) == 2 and "unknown command 'train'" in capsys.readouterr().err
    assert main(["compare", "--bundle", str(tmp_path / "nowhere")]) == 2
    assert "no configs/train.yaml" in capsys.readouterr().err
