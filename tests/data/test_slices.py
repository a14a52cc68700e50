"""SliceDataset: the axial slices of volumes as training items, against slices cut independently with NumPy."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import DistributedSampler
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

from monai_nacl.data import SliceDataset, make_synthetic_dataset, select_slices


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, str]]]:
    """6 synthetic cases of 32^3 (4 training); returns the folder and the training list with absolute paths."""
    folder = tmp_path_factory.mktemp("slices")
    datalist = json.loads(Path(make_synthetic_dataset(folder, num_cases=6, size=32, seed=3)).read_text())
    return folder, [{k: str(folder / case[k]) for k in ("image", "label")} for case in datalist["training"]]


def load() -> Compose:
    return Compose([LoadImaged(["image", "label"], image_only=True), EnsureChannelFirstd(["image", "label"])])


def numpy_slices(case: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """The volume's image and label as float32 arrays, slices first: ``(Z, X, Y)``."""
    image, label = (np.asarray(nib.load(case[k]).dataobj, dtype=np.float32) for k in ("image", "label"))
    return np.moveaxis(image, -1, 0), np.moveaxis(label, -1, 0)


class Counting:
    """A transform that counts its calls and makes channel-first tensors of in-memory arrays."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, item: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        return {k: torch.as_tensor(item[k])[None] for k in ("image", "label")}


def volume(foreground_slices: list[int], shape: tuple[int, int, int] = (6, 5, 12), value: int = 1) -> dict:
    """Image: its voxel index; label: ``value`` in one voxel of each slice listed, 0 elsewhere."""
    image = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    label = np.zeros(shape, np.float32)
    for z in foreground_slices:
        label[z % shape[0], 2, z] = value
    return {"image": image, "label": label}


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_shuffled_epoch_sees_every_slice_once(synthetic: tuple[Path, list], num_workers: int) -> None:
    _, cases = synthetic
    dataset = SliceDataset(cases, load(), spatial_size=(32, 32))
    expected = Counter()
    for case in cases:
        images, labels = numpy_slices(case)
        expected.update((i.tobytes(), lab.tobytes()) for i, lab in zip(images, labels))
    assert len(dataset) == 4 * 32 and len(expected) == 4 * 32  # the noise makes every slice unique
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(dataset, batch_size=5, shuffle=True, num_workers=num_workers)
    seen, order = Counter(), []
    batches = list(loader)
    assert len(batches) == 26  # ceil(128 / 5)
    for batch in batches:
        assert batch["image"].dtype == torch.float32 and batch["image"].shape[1:] == (1, 32, 32)
        assert batch["label"].shape[1:] == (1, 32, 32)
        for image, label in zip(batch["image"].numpy(), batch["label"].numpy()):
            seen[(image[0].tobytes(), label[0].tobytes())] += 1
            order.append(image[0].tobytes())
    assert seen == expected
    unshuffled = [dataset[i]["image"][0].numpy().tobytes() for i in range(len(dataset))]
    assert order != unshuffled and sorted(order) == sorted(unshuffled)


def test_slices_are_the_volumes_last_axis(synthetic: tuple[Path, list]) -> None:
    _, cases = synthetic
    dataset = SliceDataset(cases, load(), spatial_size=(32, 32), slices="foreground", num_volumes=2)
    for item, (v, z) in enumerate(dataset.slice_index):
        images, labels = numpy_slices(cases[v])
        np.testing.assert_array_equal(dataset[item]["image"][0].numpy(), images[z])
        np.testing.assert_array_equal(dataset[item]["label"][0].numpy(), labels[z])


# (in-plane size of the volume, spatial_size, the kept rows [start, stop) or the zero rows added (before, after))
CROPS = [(7, 4, (1, 5)), (8, 5, (1, 6)), (8, 4, (2, 6)), (7, 6, (0, 6)), (9, 9, (0, 9))]
PADS = [(7, 10, (1, 2)), (8, 11, (1, 2)), (8, 10, (1, 1)), (7, 8, (0, 1))]


@pytest.mark.parametrize("n, size, kept", CROPS)
@pytest.mark.parametrize("m, size_w, padded", PADS)
def test_centre_crop_and_pad(n: int, size: int, kept: tuple, m: int, size_w: int, padded: tuple) -> None:
    """Crop the first in-plane axis and pad the second; then the other way round."""
    data = volume([0, 1, 2], shape=(n, m, 3))
    dataset = SliceDataset([data], Counting(), spatial_size=(size, size_w))
    expected = np.pad(data["image"][kept[0] : kept[1]], [(0, 0), padded, (0, 0)])
    assert len(dataset) == 3
    for z in range(3):
        assert tuple(dataset[z]["image"].shape) == (1, size, size_w) and dataset[z]["label"].shape == (1, size, size_w)
        np.testing.assert_array_equal(dataset[z]["image"][0].numpy(), expected[..., z])
    transposed = {k: np.ascontiguousarray(np.swapaxes(a, 0, 1)) for k, a in data.items()}
    dataset = SliceDataset([transposed], Counting(), spatial_size=(size_w, size))
    for z in range(3):
        np.testing.assert_array_equal(dataset[z]["image"][0].numpy(), expected[..., z].T)


def test_the_transform_runs_once_per_volume() -> None:
    transform = Counting()
    data = [volume([1, 5]), volume([3]), volume([0, 11])]
    dataset = SliceDataset(data, transform, spatial_size=(8, 8))
    assert transform.calls == 3 and len(dataset) == 3 * 12
    for _ in range(2):
        assert sum(len(b["image"]) for b in torch.utils.data.DataLoader(dataset, batch_size=7, shuffle=True)) == 36
    assert transform.calls == 3
    transform = Counting()
    assert len(SliceDataset(data, transform, spatial_size=(8, 8), num_volumes=2)) == 24 and transform.calls == 2


@pytest.mark.parametrize(
    "slices, expected",
    [
        ("all", list(range(12))),
        ("foreground", [2, 3, 4, 5, 6, 7, 8, 9]),
        (1, [6]),  # fg[floor(0.5 * 8)]
        (3, [3, 6, 8]),  # fg[floor(1.33)], fg[floor(4)], fg[floor(6.67)]
        (4, [3, 5, 7, 9]),  # fg[1], fg[3], fg[5], fg[7]
        (8, [2, 3, 4, 5, 6, 7, 8, 9]),
    ],
)
def test_slice_options_select_the_right_slices(slices: str | int, expected: list[int]) -> None:
    first, second = volume(list(range(2, 10))), volume(list(range(2, 10)), value=2)  # any label > 0 is foreground
    dataset = SliceDataset([first, second], Counting(), spatial_size=(6, 5), slices=slices)
    assert dataset.slice_index == [(0, z) for z in expected] + [(1, z) for z in expected]
    for item, (v, z) in enumerate(dataset.slice_index):
        source = (first, second)[v]
        np.testing.assert_array_equal(dataset[item]["image"][0].numpy(), source["image"][..., z])
        np.testing.assert_array_equal(dataset[item]["label"][0].numpy(), source["label"][..., z])


def test_select_slices_spreads_the_chosen_slices() -> None:
    foreground = [z in range(10, 30) for z in range(40)]
    assert select_slices(foreground, 5) == [12, 16, 20, 24, 28]  # the middles of 5 runs of 4 foreground slices
    assert select_slices(foreground, 20) == list(range(10, 30))
    assert select_slices(foreground, 21) == list(range(10, 30))  # too few: SliceDataset reports it


def test_num_volumes_keeps_the_first_volumes() -> None:
    data = [volume([z]) for z in range(5)]
    dataset = SliceDataset(data, Counting(), spatial_size=(6, 5), slices=1, num_volumes=3)
    assert dataset.slice_index == [(0, 0), (1, 1), (2, 2)]


def test_distributed_sampler_shares_out_the_slices() -> None:
    dataset = SliceDataset([volume([1]), volume([2])], Counting(), spatial_size=(6, 5))
    shares = [
        list(DistributedSampler(dataset, even_divisible=True, num_replicas=3, rank=r, shuffle=True)) for r in range(3)
    ]
    assert [len(s) for s in shares] == [8, 8, 8]  # 24 slices, 3 ranks
    assert sorted(i for s in shares for i in s) == list(range(24))


def test_volume_without_foreground_is_named() -> None:
    data = [volume([1, 2]), volume([]), volume([4])]
    with pytest.raises(ValueError, match=r"asks for at least one axial slice .* volume 1: 0 of 12\. Use slices='all'"):
        SliceDataset(data, Counting(), spatial_size=(6, 5), slices="foreground")
    assert len(SliceDataset(data, Counting(), spatial_size=(6, 5))) == 36  # all slices: no foreground needed


def test_too_few_foreground_slices_names_every_short_volume(tmp_path: Path) -> None:
    cases = []
    for i, fg in enumerate([[1, 2, 3], [4], [5, 6]]):
        data = volume(fg)
        case = {}
        for key in ("image", "label"):
            case[key] = str(tmp_path / f"{key}_{i}.nii.gz")
            nib.save(nib.Nifti1Image(data[key], np.eye(4)), case[key])
        cases.append(case)
    message = (
        r"slices=2 asks for 2 axial slices .* per volume; .* volume 1 \(image_1\.nii\.gz\): 1 of 12\. Use slices <= 1, "
    )
    with pytest.raises(ValueError, match=message):
        SliceDataset(cases, load(), spatial_size=(6, 5), slices=2)
    assert len(SliceDataset(cases, load(), spatial_size=(6, 5), slices=1)) == 3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"slices": "some"}, "slices='some': use 'all', 'foreground' or a positive number"),
        ({"slices": 0}, "slices=0"),
        ({"slices": True}, "slices=True"),
        ({"slices": 2.5}, "slices=2.5"),
        ({"num_volumes": 0}, "num_volumes=0: give a positive int"),
        ({"num_volumes": 3}, "num_volumes=3 but data has only 2 volumes: use num_volumes <= 2"),
        ({"spatial_size": (8,)}, r"spatial_size=\[8\]: give two positive ints"),
        ({"spatial_size": (8, 0)}, r"spatial_size=\[8, 0\]"),
        ({"data": []}, "data is empty"),
    ],
)
def test_bad_options(kwargs: dict, message: str) -> None:
    options = {"data": [volume([1]), volume([2])], "transform": Counting(), "spatial_size": (6, 5), **kwargs}
    with pytest.raises(ValueError, match=message):
        SliceDataset(**options)


def test_bad_transform_output() -> None:
    data = [volume([1])]
    with pytest.raises(ValueError, match=r"volume 0: image \(6, 5, 12\) and label \(6, 5, 12\) .* EnsureChannelFirstd"):
        SliceDataset(data, None, spatial_size=(6, 5))
    with pytest.raises(TypeError, match="volume 0: the transform returned list, not one dict"):
        SliceDataset(data, lambda item: [item, item], spatial_size=(6, 5))
    with pytest.raises(KeyError, match=r"volume 0: no \['label'\] after the transform"):
        SliceDataset(data, lambda item: {"image": torch.zeros(1, 6, 5, 12)}, spatial_size=(6, 5))
