"""Argument parsing and grid expansion of ``python -m monai_nacl compare``."""

from __future__ import annotations

from pathlib import Path

import fire
import pytest

from monai_nacl.__main__ import main
from monai_nacl.compare.compared_bundle import (
    ALL_VOXELS_FRAGMENT,
    CALIBRATE,
    EVALUATE,
    EVALUATE_CALIBRATED,
    TRAIN,
    ComparedBundle,
)
from monai_nacl.compare.grid import Variant, expand_grid, parse_grid
from monai_nacl.compare.options import QUICK_EPOCHS, check_bundle_overrides, parse_compare_args
from monai_nacl.compare.overrides import split_overrides
from monai_nacl.compare.workflow import run_compare


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
    assert opts.checkpoint == "both" and opts.checkpoints == ("best", "final")
    assert parse_compare_args(["--bundle", "b", "--checkpoint", "final"]).checkpoints == ("final",)
    with pytest.raises(SystemExit):  # argparse: invalid choice
        parse_compare_args(["--bundle", "b", "--checkpoint", "last"])


def test_quick_and_explicit_epochs():
    assert parse_compare_args(["--bundle", "b", "--quick"]).epochs == QUICK_EPOCHS
    assert parse_compare_args(["--bundle", "b", "--quick", "--max_epochs", "7"]).epochs == 7
    opts = parse_compare_args(
        ["--bundle", "b", "--posthoc", "ts", "--grid", "nacl:alpha=0.1", "--grid", "ls:alpha=0.2"]
    )
    assert opts.posthoc == ["ts"] and opts.grid == ["nacl:alpha=0.1", "ls:alpha=0.2"]
    assert opts.losses is None and opts.seed_values == [0]


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--bundle", "b", "--seed", "3"], "set by compare"),
        (["--bundle", "b", "--output_dir", "x"], "set by compare"),
        (["--bundle", "b", "--losses#nacl#alpha"], "needs a value"),
        (["--bundle", "b", "stray"], "expected '--name value'"),
        (["--bundle", "b", "--losses", " , "], "names no loss"),
    ],
)
def test_bad_arguments(argv, match):
    with pytest.raises(ValueError, match=match):
        parse_compare_args(argv)


def test_overrides_reach_the_bundle_through_fire_as_given():
    """The command runs ``python -m monai.bundle run``, whose arguments ``fire`` parses: each value must arrive as
    compare read it (a Python literal where the text is one, else the text itself, whole)."""
    assert split_overrides(["--a#b", "0.2", "--c=x"]) == {"a#b": "0.2", "c": "x"}
    bundle = ComparedBundle.load("unet2d_nacl")
    overrides = {
        "x": "0.2",
        "y": "True",
        "z": "/tmp/data",
        "w": "['a', 'b']",
        "n": 3,
        "roi_size": "[48,48]",
        "train#dataset#data": "$monai_nacl.bundle.training_data.datalist_section(@datalist, 'training', @dataset_dir)[:1]",
        "names": "ce,nacl",  # fire alone: the tuple ('ce', 'nacl')
        "comment": "abc#def",  # fire alone: 'abc'
        "quoted": "'[1]'",
        "dict": {"a": [1, 2]},
    }
    command = bundle.command(TRAIN, overrides)
    assert command[1:4] == ["-m", "monai.bundle", "run"]
    received = {}
    fire.Fire(lambda **kwargs: received.update(kwargs), command=command[4:])
    assert received.pop("config_file") == [str(bundle.folder / "configs" / "train.yaml")]
    assert received.pop("meta_file") == str(bundle.folder / "configs" / "metadata.json")
    received.pop("logging_file")
    assert received == {
        "x": 0.2,
        "y": True,
        "z": "/tmp/data",
        "w": ["a", "b"],
        "n": 3,
        "roi_size": [48, 48],
        "train#dataset#data": overrides["train#dataset#data"],
        "names": "ce,nacl",
        "comment": "abc#def",
        "quoted": "[1]",
        "dict": {"a": [1, 2]},
    }


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


def test_reference_and_protocol():
    opts = parse_compare_args(["--bundle", "b"])
    assert opts.reference == "ce" and opts.protocol == "default" and opts.protocol_configs == ()
    opts = parse_compare_args(["--bundle", "b", "--losses", "ce,nacl", "--reference", "nacl", "--protocol", "paper"])
    assert opts.reference == "nacl" and opts.protocol_configs == ("protocol_paper.yaml",)
    with pytest.raises(SystemExit):  # argparse: invalid choice
        parse_compare_args(["--bundle", "b", "--protocol", "fast"])
    with pytest.raises(ValueError, match=r"--reference 'ce' is not one of the rows run \['dice_ce', 'nacl'\]"):
        parse_compare_args(["--bundle", "b", "--losses", "dice_ce,nacl"])
    with pytest.raises(ValueError, match="did you mean --reference nacl"):
        parse_compare_args(["--bundle", "b", "--losses", "ce,nacl", "--reference", "nalc"])


def test_compared_bundle_merges_each_phase_once():
    """The shipped bundle with the paper protocol: files per phase, merged raw configs, and what compare reads."""
    bundle = ComparedBundle.load("unet2d_nacl", ("protocol_paper.yaml",))
    assert bundle.name == "unet2d_nacl" and bundle.folder.is_absolute()
    assert bundle.files[TRAIN] == ("train.yaml", "protocol_paper.yaml")
    assert bundle.files[EVALUATE] == ("train.yaml", "protocol_paper.yaml", "evaluate.yaml", str(ALL_VOXELS_FRAGMENT))
    assert bundle.files[CALIBRATE] == ("train.yaml", "protocol_paper.yaml", "calibrate.yaml")
    assert bundle.applies_calibration and bundle.files[EVALUATE_CALIBRATED] == bundle.files[EVALUATE]
    assert {"ce", "nacl", "dice_ce"} <= set(bundle.loss_names) and isinstance(bundle.val_interval, int)
    assert {"trained_task", "all_voxels_report", "max_epochs", "losses"} <= bundle.ids
    assert "calibrate" in bundle.configs[CALIBRATE] and "calibrate" not in bundle.configs[TRAIN]
    assert EVALUATE_CALIBRATED not in bundle.configs  # merged when a post-hoc evaluation is parsed
    # the protocol's values win over train.yaml's, as in MONAI's own merge
    from monai.bundle import ConfigParser

    folder = bundle.folder / "configs"
    expected = ConfigParser.load_config_files([folder / "train.yaml", folder / "protocol_paper.yaml"])
    assert bundle.configs[TRAIN] == expected
    parser = bundle.parser(TRAIN, {"max_epochs": "7"})
    assert parser.get_parsed_content("max_epochs") == 7
    assert ComparedBundle.load("unet2d_nacl").files[TRAIN] == ("train.yaml",)


@pytest.mark.parametrize(
    "argv, suggestion",
    [
        (["--bundle", "b", "--quik"], "unknown option '--quik' (did you mean --quick?)"),
        (["--checkpont", "--bundle", "b"], "(did you mean --checkpoint"),
    ],
)
def test_misspelled_flag_is_refused_with_suggestion(argv, suggestion):
    with pytest.raises(ValueError) as error:
        parse_compare_args(argv)
    assert suggestion in str(error.value)


def test_bundle_overrides_checked_against_bundle_ids():
    ids = {"max_epochs", "device", "losses", "num_classes", "val_interval"}
    check_bundle_overrides({"device": "cpu", "losses#nacl#new_argument": "1", "num_classes": "4"}, ids, "b")
    for overrides, suggestion in [
        ({"epochs": "1"}, "--epochs (did you mean --max_epochs?)"),
        ({"devise": "cpu"}, "--devise (did you mean --device?)"),
        ({"loss#nacl#alpha": "0.2"}, "--loss#nacl#alpha (did you mean --losses#nacl#alpha?)"),
        ({"totally_unrelated": "1"}, "--totally_unrelated. They are not compare options"),
    ]:
        with pytest.raises(ValueError) as error:
            check_bundle_overrides(overrides, ids, "b")
        assert suggestion in str(error.value) and "nothing was run" in str(error.value)


def test_compare_refuses_before_training(tmp_path):
    # the shipped bundle: a misspelled option and a misspelled id fail at once, nothing is written
    output = tmp_path / "out"
    for typo, suggestion in [("--epochs", "did you mean --max_epochs"), ("--devise", "did you mean --device")]:
        options = parse_compare_args(["--bundle", "unet2d_nacl", "--output", str(output), typo, "1"])
        with pytest.raises(ValueError, match=suggestion):
            run_compare(options)
    options = parse_compare_args(
        ["--bundle", "unet2d_nacl", "--output", str(output), "--losses", "nacl", "--grid", "nacl:alpha=0.2"]
    )
    with pytest.raises(
        ValueError, match=r"--reference 'ce' is not one of the rows run \['nacl', 'nacl\(alpha=0.2\)'\]"
    ):
        run_compare(options)
    bundle = tmp_path / "bundle"
    (bundle / "configs").mkdir(parents=True)
    (bundle / "configs" / "train.yaml").write_text("losses: {ce: {}}\nmax_epochs: 2\n")
    with pytest.raises(ValueError, match="bundle bundle has no configs/protocol_paper.yaml"):
        run_compare(parse_compare_args(["--bundle", str(bundle), "--output", str(output), "--protocol", "paper"]))
    assert not output.exists()
