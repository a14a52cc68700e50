"""Evaluation and inference over a list holding broken files: the broken cases are skipped with a report, the others
are written, and the run exits non-zero naming the skipped ones.

The broken files are real: a ``.nii.gz`` cut in the middle of its data, and one whose NIfTI header is overwritten
(``sizeof_hdr`` and magic). They sit between two good cases of the synthetic 64^3 dataset; the network is the 2D
bundle's, freshly initialised and saved as ``model.pt`` (what is tested is the handling of the files, not the model).
Both runs are ``python -m monai.bundle run`` subprocesses started from the bundle folder, as a user would.
"""

from __future__ import annotations

import csv
import gzip
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_helpers import BUNDLES_DIR, MAPS, check_evaluation, config_path, read_json
from monai.bundle import ConfigParser

from monai_nacl.data import SkippedCases

TRUNCATED, WRONG_HEADER = "truncated_case", "wrong_header_case"
REASONS = {TRUNCATED: "truncated or corrupt image data", WRONG_HEADER: "unreadable NIfTI header"}


def truncate(source: Path, target: Path) -> None:
    """``target``: the first half of ``source``'s bytes (the gzip stream ends inside the image data)."""
    data = source.read_bytes()
    target.write_bytes(data[: len(data) // 2])


def break_header(source: Path, target: Path) -> None:
    """``target``: ``source`` with ``sizeof_hdr`` (must be 348) and the NIfTI magic overwritten."""
    raw = bytearray(gzip.decompress(source.read_bytes()))
    raw[0:4] = (999).to_bytes(4, "little")
    raw[344:348] = b"xxxx"
    target.write_bytes(gzip.compress(bytes(raw)))


@pytest.fixture(scope="module")
def broken_inputs(tmp_path_factory: pytest.TempPathFactory, synthetic_3d: tuple[str, str]) -> dict:
    """A folder ``inputs/`` of four images (good, truncated, wrong header, good), a datalist whose ``test`` list
    pairs them with labels, and ``models/model.pt``."""
    dataset_dir, datalist = synthetic_3d
    folder = tmp_path_factory.mktemp("broken_inputs")
    inputs = folder / "inputs"
    inputs.mkdir()
    good = read_json(datalist)["test"][:2]
    cases = []
    for case in good:
        image = inputs / Path(case["image"]).name
        shutil.copy(Path(dataset_dir) / case["image"], image)
        cases.append({"image": str(image), "label": str(Path(dataset_dir) / case["label"])})
    truncate(Path(cases[0]["image"]), inputs / f"{TRUNCATED}.nii.gz")
    break_header(Path(cases[1]["image"]), inputs / f"{WRONG_HEADER}.nii.gz")
    test = [
        cases[0],
        {"image": str(inputs / f"{TRUNCATED}.nii.gz"), "label": cases[0]["label"]},
        {"image": str(inputs / f"{WRONG_HEADER}.nii.gz"), "label": cases[1]["label"]},
        cases[1],
    ]
    (folder / "datalist.json").write_text(json.dumps({"training": [], "validation": [], "test": test}))
    parser = ConfigParser()
    parser.read_config(config_path("unet2d_nacl", "train.yaml"))
    torch.manual_seed(0)
    (folder / "models").mkdir()
    torch.save(parser.get_parsed_content("network_def").state_dict(), folder / "models" / "model.pt")
    return {"folder": folder, "inputs": inputs, "good": cases, "test": test}


def run_cli(configs: list[str], overrides: dict[str, str]) -> subprocess.CompletedProcess:
    """``python -m monai.bundle run`` from the unet2d_nacl folder, with its own logging.conf."""
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", repr([f"configs/{c}" for c in configs])]
    for key, value in overrides.items():
        command += [f"--{key}", value]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        command, check=False, cwd=BUNDLES_DIR / "unet2d_nacl", env=env, capture_output=True, text=True, timeout=300
    )


def assert_reports_skipped(result: subprocess.CompletedProcess, test: list[dict[str, str]]) -> None:
    """Non-zero exit; a log line per broken case and the final error both give its case, file, reason and fix."""
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    final = result.stderr[result.stderr.rindex("ValueError: 2 case(s)") :]
    assert f"were skipped ({TRUNCATED}, {WRONG_HEADER})" in final, final
    logged = [line for line in output.splitlines() if "WARNING - skipping " in line]
    assert len(logged) == 2, logged
    for name, reason in REASONS.items():
        path = next(c["image"] for c in test if name in c["image"])
        assert any(name in line and path in line and reason in line and "fix:" in line for line in logged), logged
        assert any(name in line and path in line and reason in line and "fix:" in line for line in final.splitlines())


@pytest.mark.slow
def test_evaluation_skips_broken_cases_and_fails_at_the_end(broken_inputs: dict, tmp_path: Path) -> None:
    folder = broken_inputs["folder"]
    result = run_cli(
        ["train.yaml", "evaluate.yaml"],
        {"dataset_dir": str(folder), "datalist": str(folder / "datalist.json"), "output_dir": str(tmp_path),
         "ckpt_dir": str(folder / "models")},
    )  # fmt: skip
    assert_reports_skipped(result, broken_inputs["test"])
    # the good cases are complete: rows checked against the written maps and labels, in summary.json the skipped
    check_evaluation(tmp_path, str(folder), broken_inputs["good"], skipped=(TRUNCATED, WRONG_HEADER))
    summary = read_json(tmp_path / "summary.json")
    for record in summary["skipped"]:
        assert [p["problem"] for p in record["problems"]] == [REASONS[record["case"]]]
    written = sorted(p.name for p in (tmp_path / "predictions").iterdir())
    names = [Path(c["image"]).name.removesuffix(".nii.gz") for c in broken_inputs["good"]]
    assert written == sorted(f"{n}_{m}.nii.gz" for n in names for m in MAPS)


@pytest.mark.slow
def test_inference_skips_broken_images_and_fails_at_the_end(broken_inputs: dict, tmp_path: Path) -> None:
    inputs = broken_inputs["inputs"]
    result = run_cli(
        ["inference.yaml"],
        {"input_dir": str(inputs), "output_dir": str(tmp_path), "ckpt_dir": str(broken_inputs["folder"] / "models")},
    )
    assert_reports_skipped(result, broken_inputs["test"])
    predictions = tmp_path / "predictions"
    names = [Path(c["image"]).name.removesuffix(".nii.gz") for c in broken_inputs["good"]]
    maps = sorted(f"{n}_{m}.nii.gz" for n in names for m in MAPS)
    estimates = ["dice_estimate_summary.json", "dice_estimates.csv", "review_list.csv"]  # of the written cases
    assert sorted(p.name for p in predictions.iterdir()) == sorted(maps + estimates)
    with open(predictions / "review_list.csv") as f:
        assert sorted(row["case"] for row in csv.DictReader(f)) == sorted(names)
    for case, name in zip(broken_inputs["good"], names):
        image = nib.load(case["image"])
        seg = np.asarray(nib.load(predictions / f"{name}_seg.nii.gz").dataobj)  # reads the whole file
        conf = np.asarray(nib.load(predictions / f"{name}_max_prob.nii.gz").dataobj)
        entropy = np.asarray(nib.load(predictions / f"{name}_entropy.nii.gz").dataobj)
        assert seg.shape[:3] == conf.shape[:3] == entropy.shape[:3] == image.shape[:3]
        assert set(np.unique(seg)) <= {0, 1, 2}
        assert conf.min() >= 1 / 3 - 1e-5 and conf.max() <= 1 + 1e-5
        assert entropy.min() >= -1e-6 and entropy.max() <= 1 + 1e-5


def test_skipped_cases_keeps_order_logs_and_raises(broken_inputs: dict, caplog: pytest.LogCaptureFixture) -> None:
    test = broken_inputs["test"]
    missing = {"image": str(broken_inputs["folder"] / "no_such_case.nii.gz"), "label": test[0]["label"]}
    skipped = SkippedCases(num_classes=3, section="test")
    with caplog.at_level(logging.WARNING, logger="monai_nacl.data.skipped_cases"):
        kept = skipped.usable([*test, missing])
    assert kept == [test[0], test[3]]
    assert [case.case for case in skipped.skipped] == [TRUNCATED, WRONG_HEADER, "no_such_case"]
    assert len(caplog.records) == 3 and caplog.records[2].getMessage().startswith("skipping test[4] no_such_case: ")
    assert "missing file" in caplog.records[2].getMessage() and "fix:" in caplog.records[2].getMessage()
    records = skipped.records()
    assert records[0]["problems"][0]["file"] == test[1]["image"]
    assert records[0]["problems"][0]["problem"] == REASONS[TRUNCATED]
    with pytest.raises(ValueError, match=r"3 case\(s\) of the test list were skipped") as info:
        skipped.raise_if_any()
    assert all(c["image"] in str(info.value) for c in (test[1], test[2], missing))
    # nothing usable: stop before the loop, naming the cases
    with pytest.raises(ValueError, match="rejected every one of the 2 case"):
        SkippedCases(3, section="test").usable(test[1:3])
    # --check_data false (the CLI passes the string): everything goes through unchecked, nothing is raised
    unchecked = SkippedCases(3, enabled="false")
    assert unchecked.usable(test) == test
    unchecked.raise_if_any()
    SkippedCases(3).raise_if_any()
