"""unet2d_nacl with protocol_paper.yaml trains slice-wise: an epoch is one pass over the selected training slices."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
from bundle_helpers import adam_steps, load_checkpoint, run_bundle, split_list


def test_an_epoch_is_one_pass_over_the_selected_slices(tmp_path: Path, synthetic_3d: tuple[str, str]) -> None:
    dataset_dir, datalist = synthetic_3d
    volumes, per_volume, batch_size, epochs = 3, 3, 4, 2
    run_bundle(
        "unet2d_nacl",
        ["train.yaml", "protocol_paper.yaml"],
        datalist=datalist,
        dataset_dir=dataset_dir,
        output_dir=str(tmp_path),
        pixdim=[4.0, 4.0, 4.0],  # 16^3 volumes
        roi_size=[16, 16],  # the authors' 5-level UNet divides by 16
        train_slices=per_volume,
        train_volumes=volumes,
        batch_size=batch_size,
        max_epochs=epochs,
        **{"validate#dataset#data": split_list(datalist, "validation", 1)},
    )
    steps = math.ceil(volumes * per_volume / batch_size)  # 9 slices in batches of 4: 3 steps
    checkpoint = load_checkpoint(tmp_path / "models" / "checkpoint_last.pt")
    assert checkpoint["trainer"]["epoch_length"] == steps == 3
    assert checkpoint["trainer"]["iteration"] == epochs * steps
    assert adam_steps(checkpoint) == {epochs * steps}
    with open(tmp_path / "history.csv") as f:
        assert [int(row["epoch"]) for row in csv.DictReader(f)] == [1, 2]
    assert (tmp_path / "models" / "model.pt").is_file()


def test_too_many_slices_per_volume_stops_the_run(tmp_path: Path, synthetic_3d: tuple[str, str]) -> None:
    dataset_dir, datalist = synthetic_3d
    with pytest.raises(RuntimeError, match="Failed to instantiate component 'monai_nacl.data.SliceDataset'") as info:
        run_bundle(
            "unet2d_nacl",
            ["train.yaml", "protocol_paper.yaml"],
            datalist=datalist,
            dataset_dir=dataset_dir,
            output_dir=str(tmp_path),
            pixdim=[4.0, 4.0, 4.0],  # 17 axial slices, 10 to 15 of them with foreground
            roi_size=[16, 16],
            train_slices=12,
            max_epochs=1,
        )
    message = str(info.value.__cause__)
    assert "slices=12 asks for 12 axial slices with foreground (label > 0) per volume" in message
    assert "volume 0 (case_000.nii.gz): 11 of 17" in message and "Use slices <= 10, " in message
    assert not (tmp_path / "models").exists()
