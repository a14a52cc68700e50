"""The post-hoc rows of compare: options, row names, and the bundle configs that fit and apply the calibration
(parsed in-process on a tiny bundle; the workflow runs the same configs and overrides as subprocesses)."""

from __future__ import annotations

import json
import math
import textwrap

import pytest
import torch

from monai_nacl.calibration import CALIBRATION_FILE, fit_temperature
from monai_nacl.compare.compared_bundle import (
    CALIBRATE,
    CALIBRATE_FRAGMENT,
    EVALUATE_CALIBRATED,
    POSTHOC_FRAGMENT,
    ComparedBundle,
)
from monai_nacl.compare.grid import Variant
from monai_nacl.compare.options import parse_compare_args, parse_posthoc
from monai_nacl.compare.posthoc import calibrate_overrides, posthoc_evaluate_overrides
from monai_nacl.compare.report import build_rows, run_metrics
from monai_nacl.compare.runs import POSTHOC_DIRS, RunSpec

TRAIN = """
imports:
  - $import os
  - $import torch
device: cpu
losses: {ce: {}}
seed: 0
amp: false
output_dir: /nonexistent
ckpt_dir: $os.path.join(@output_dir, 'models')
cases: "$[{'image': torch.randn(1, 1, 6, 5, generator=torch.Generator().manual_seed(i)),
           'label': torch.randint(0, 2, (1, 1, 6, 5), generator=torch.Generator().manual_seed(10 + i))}
          for i in range(3)]"
network_def:
  _target_: torch.nn.Conv2d
  in_channels: 1
  out_channels: 2
  kernel_size: 1
network: $@network_def.to(@device)
validate:
  dataloader: "@cases"
  inferer:
    _target_: SimpleInferer
  postprocessing:
    _target_: Activationsd
    keys: pred
    softmax: true
  evaluator:
    postprocessing: "@validate#postprocessing"
"""


def _cases() -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [
        (
            torch.randn(1, 1, 6, 5, generator=torch.Generator().manual_seed(i)),
            torch.randint(0, 2, (1, 1, 6, 5), generator=torch.Generator().manual_seed(10 + i)),
        )
        for i in range(3)
    ]


@pytest.fixture()
def bundle(tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "train.yaml").write_text(textwrap.dedent(TRAIN))
    (tmp_path / "configs" / "evaluate.yaml").write_text("save_predictions: false\n")
    (tmp_path / "models").mkdir()
    torch.manual_seed(3)
    net = torch.nn.Conv2d(1, 2, 1)
    with torch.no_grad():
        net.weight.mul_(8.0)  # an over-confident model, so the fitted T is clearly > 1
    torch.save({"model": net.state_dict()}, tmp_path / "models" / "model.pt")
    return tmp_path, net


def test_posthoc_option_and_row_names():
    assert parse_compare_args(["--bundle", "b", "--posthoc", "ts,vector,lts"]).posthoc == ["ts", "vector", "lts"]
    assert parse_compare_args(["--bundle", "b", "--posthoc", "lts,ts,lts"]).posthoc == ["lts", "ts"]
    assert parse_posthoc(None) == []
    with pytest.raises(
        ValueError, match=r"\['platt'\] are not post-hoc methods; choose from \['lts', 'ts', 'vector'\]"
    ):
        parse_posthoc("ts,platt")
    with pytest.raises(ValueError, match="names no method"):
        parse_posthoc(" , ")
    names = [Variant("nacl", posthoc=m).name for m in ("ts", "vector", "lts")]
    assert names == ["nacl + TS", "nacl + VS", "nacl + LTS"]
    with pytest.raises(ValueError, match="posthoc must be one of"):
        Variant("nacl", posthoc="TS")


def test_calibrate_config_fits_the_trained_model_on_the_validation_split(bundle):
    folder, net = bundle
    out = folder / "runs" / POSTHOC_DIRS["ts"]
    bundle = ComparedBundle.load(folder, evaluate_fragments=())
    assert bundle.files[CALIBRATE] == ("train.yaml", str(CALIBRATE_FRAGMENT))
    overrides = calibrate_overrides({"output_dir": str(folder)}, "ts", out, "all", 200_000)
    record = bundle.parser(CALIBRATE, overrides).get_parsed_content("calibrate")
    assert record == json.loads((out / CALIBRATION_FILE).read_text())
    with torch.no_grad():
        logits = torch.cat([net(image)[0].reshape(2, -1).T for image, _ in _cases()])
    labels = torch.cat([label.reshape(-1) for _, label in _cases()])
    expected = fit_temperature(logits, labels)
    assert expected > 1.5 and math.isclose(record["parameters"]["temperature"], expected, rel_tol=1e-6)
    assert (record["fit"]["voxels"], record["fit"]["cases"], record["fit"]["region"]) == (90, 3, "all")

    (folder / "configs" / "calibrate.yaml").write_text("calibrate: 1\n")
    own = ComparedBundle.load(folder, evaluate_fragments=())
    assert own.files[CALIBRATE] == ("train.yaml", "calibrate.yaml") and own.configs[CALIBRATE]["calibrate"] == 1


def test_posthoc_evaluation_applies_the_saved_calibration_before_the_softmax(bundle):
    folder, _ = bundle
    out = folder / "runs" / POSTHOC_DIRS["vector"]
    bundle = ComparedBundle.load(folder, evaluate_fragments=())
    fit = calibrate_overrides({"output_dir": str(folder)}, "vector", out, "all", 200_000)
    bundle.parser(CALIBRATE, fit).get_parsed_content("calibrate")
    temperatures = torch.tensor(json.loads((out / CALIBRATION_FILE).read_text())["parameters"]["temperatures"])
    assert not bundle.applies_calibration
    assert bundle.files[EVALUATE_CALIBRATED] == ("train.yaml", "evaluate.yaml", str(POSTHOC_FRAGMENT))
    overrides = posthoc_evaluate_overrides({"output_dir": str(folder)}, "vector", out)
    assert overrides["output_dir"] == overrides["calibration_dir"] == str(out.resolve())
    parser = bundle.parser(EVALUATE_CALIBRATED, overrides)
    postprocessing = parser.get_parsed_content("validate#evaluator#postprocessing")
    logits = torch.randn(2, 6, 5) * 4
    result = postprocessing({"pred": logits, "image": torch.zeros(1, 6, 5)})
    torch.testing.assert_close(result["pred"], torch.softmax(logits / temperatures.view(2, 1, 1), dim=0))

    wrong = posthoc_evaluate_overrides({"output_dir": str(folder)}, "lts", out)
    postprocessing = bundle.parser(EVALUATE_CALIBRATED, wrong).get_parsed_content("validate#evaluator#postprocessing")
    with pytest.raises(RuntimeError, match="applying transform") as error:  # Compose wraps the transform's error
        postprocessing({"pred": logits})
    assert "'lts' was requested but" in str(error.value.__cause__) and "holds method 'vector'" in str(
        error.value.__cause__
    )

    (folder / "configs" / "evaluate.yaml").write_text("calibration_dir: '@ckpt_dir'\n")
    own = ComparedBundle.load(folder, evaluate_fragments=())
    assert own.applies_calibration and own.files[EVALUATE_CALIBRATED] == ("train.yaml", "evaluate.yaml")


def test_report_rows_per_method(tmp_path):
    run_dir = tmp_path / "runs" / "ce" / "seed0"
    summary = {"mean": {"mean_dice": 0.9, "ece": 0.05}, "pooled": {}}
    for sub in ("", *POSTHOC_DIRS.values()):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
        (run_dir / sub / "summary.json").write_text(json.dumps(summary))
        (run_dir / sub / "done").write_text("{}")
    (run_dir / POSTHOC_DIRS["ts"] / CALIBRATION_FILE).write_text(
        json.dumps({"method": "ts", "parameters": {"temperature": 1.25}})
    )
    rows, folders = build_rows([RunSpec(Variant("ce"), 0, run_dir)], ["ts", "lts"])
    assert [row.name for row in rows] == ["ce", "ce + TS", "ce + LTS"]
    assert folders["ce + LTS (best)"] == [run_dir / POSTHOC_DIRS["lts"]]
    # the final checkpoint's rows read final/ (not evaluated here: failures, no folders)
    rows, folders = build_rows([RunSpec(Variant("ce"), 0, run_dir)], ["ts"], checkpoint="final")
    assert [row.key for row in rows] == ["ce (final)", "ce + TS (final)"] and folders["ce (final)"] == []
    assert rows[1].failures == [f"seed 0: not run (no {run_dir / 'final' / POSTHOC_DIRS['ts'] / 'summary.json'})"]
    assert run_metrics(run_dir / POSTHOC_DIRS["ts"])["temperature"] == 1.25
    assert "temperature" not in run_metrics(run_dir / POSTHOC_DIRS["lts"])
