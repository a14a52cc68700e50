"""Raters: Dice and soft reference against loop references, and the simulated raters and acquisitions of the default
dataset measured on the built files (relabelled share, surface distance, Dice, noise and bias)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from monai_nacl.data import default_dataset as dd
from monai_nacl.data import load_mni_template
from monai_nacl.data.raters import inter_rater_dice, pairwise_dice, rater_soft_reference

ndimage = pytest.importorskip("scipy.ndimage")


def _dice_loop(a: np.ndarray, b: np.ndarray, k: int) -> float:
    both = sum(1 for x, y in zip(a.ravel(), b.ravel()) if x == k and y == k)
    total = sum(1 for x in a.ravel() if x == k) + sum(1 for y in b.ravel() if y == k)
    return 2.0 * both / total if total else float("nan")


def test_pairwise_dice_against_a_loop_reference() -> None:
    rng = np.random.default_rng(3)
    labels = [rng.integers(0, 3, size=(5, 6, 4)) for _ in range(3)]  # class 3 drawn by nobody
    expected = []
    for k in range(4):
        values = [_dice_loop(labels[i], labels[j], k) for i, j in itertools.combinations(range(3), 2)]
        expected.append(np.nanmean(values) if not np.isnan(values).all() else np.nan)
    np.testing.assert_allclose(pairwise_dice(labels, 4, include_background=True), expected)
    np.testing.assert_allclose(pairwise_dice(labels, 4), expected[1:])
    # a class one pair never draws is left out of that case's mean, not counted as 0 or 1
    a, b, c = np.array([0, 1]), np.array([0, 1]), np.array([0, 0])
    np.testing.assert_allclose(pairwise_dice([a, b, c], 2), [(1.0 + 0.0 + 0.0) / 3])
    np.testing.assert_allclose(pairwise_dice([c, c], 2), [np.nan])


@pytest.mark.parametrize(
    "labels, message",
    [
        ([np.zeros(3, int)], "at least 2"),
        ([np.zeros(3, int), np.zeros(4, int)], "differ in shape"),
        ([np.zeros(3, int), np.full(3, 3)], r"outside \[0, 3\)"),
    ],
)
def test_pairwise_dice_rejects_bad_input(labels: list[np.ndarray], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pairwise_dice(labels, 3)


def test_rater_soft_reference_is_the_mean_one_hot() -> None:
    rng = np.random.default_rng(4)
    labels = [rng.integers(0, 3, size=(4, 5)) for _ in range(3)]
    reference = rater_soft_reference(labels, 3)
    assert reference.shape == (3, 4, 5) and reference.dtype == np.float32
    for x, y in itertools.product(range(4), range(5)):
        votes = [label[x, y] for label in labels]
        np.testing.assert_allclose(reference[:, x, y], [votes.count(k) / 3 for k in range(3)], rtol=1e-6)
    with pytest.raises(ValueError, match="num_classes"):
        rater_soft_reference(labels, 1)


def test_inter_rater_dice_reads_a_datalist(tmp_path: Path, write_nifti: Callable[..., Path]) -> None:
    a = np.zeros((4, 4, 4), np.uint8)
    a[:2] = 1
    b = a.copy()
    b[1] = 2
    for name, array in (("r1.nii.gz", a), ("r2.nii.gz", b), ("r3.nii.gz", a)):
        write_nifti(tmp_path / "labels" / name, array)
    entry = {"image": "x.nii.gz", "label": "labels/r1.nii.gz"}
    raters = {**entry, "label_raters": ["labels/r1.nii.gz", "labels/r2.nii.gz", "labels/r3.nii.gz"]}
    datalist = {"training": [entry], "validation": [], "test": [raters]}
    (tmp_path / "datalist.json").write_text(json.dumps(datalist))
    result = inter_rater_dice(tmp_path / "datalist.json", 3)
    # GM: pairs (1,2) and (2,3) overlap 16 of 32 + 16 voxels, pair (1,3) fully; WM: only in rater 2, Dice 0 twice
    expected = [(2 * 16 / 48 * 2 + 1.0) / 3, 0.0]
    assert result["classes"] == [1, 2] and list(result["per_case"]) == ["r1"]
    np.testing.assert_allclose(result["per_case"]["r1"], expected)
    np.testing.assert_allclose(result["mean"], expected)
    np.testing.assert_allclose(inter_rater_dice([raters], 3, base_dir=tmp_path)["mean"], expected)
    with pytest.raises(ValueError, match="no case lists two or more rater labels"):
        inter_rater_dice([entry], 3, base_dir=tmp_path)


def test_zero_error_rater_draws_the_argmax_label() -> None:
    t1, soft, _ = load_mni_template()
    _, label, soft_label = dd.simulate_case(np.random.default_rng([0, 0]), t1, soft)
    exact = dd.RaterModel(displacement_std_mm=0.0, threshold_std=0.0)
    np.testing.assert_array_equal(dd.draw_rater_label(np.random.default_rng(1), soft_label, 2.0, exact), label)


def test_rater_draw_against_pointwise_reference() -> None:
    """``argmax_k (q_k(v + w(v)) + b_k)`` with ``w`` and ``b`` drawn as documented, trilinear by hand, zero outside."""
    rng = np.random.default_rng(2)
    shape = (9, 10, 8)
    tissue = rng.dirichlet([1.0, 1.0, 1.0], size=shape).astype(np.float32)
    model = dd.RaterModel(displacement_std_mm=6.0, displacement_spacing_mm=8.0, threshold_std=0.1)
    drawn = dd.draw_rater_label(np.random.default_rng(7), tissue, 2.0, model)
    replay = np.random.default_rng(7)
    displacement = dd.smooth_random_field(replay, shape, 4.0, 3.0, channels=3)
    shift = np.concatenate([[0.0], replay.normal(0.0, 0.1, size=2)])

    def sample(point: np.ndarray) -> np.ndarray:
        base = np.floor(point).astype(int)
        value = np.zeros(2)
        for corner in itertools.product((0, 1), repeat=3):
            index = base + corner
            weight = np.prod([f if c else 1 - f for f, c in zip(point - base, corner)])
            if all(0 <= i < n for i, n in zip(index, shape)):
                value += weight * tissue[tuple(index)][1:]
        return np.clip(value, 0.0, 1.0)

    agree = 0
    for voxel in itertools.product(*[range(n) for n in shape]):
        gm_wm = sample(np.asarray(voxel) + displacement[(slice(None), *voxel)])
        scores = np.concatenate([[np.clip(1.0 - gm_wm.sum(), 0.0, 1.0)], gm_wm]) + shift
        agree += drawn[voxel] == np.argmax(scores)
    assert agree >= drawn.size - 2  # float32 rounding may flip a near-tie


def test_rater_draws_are_deterministic_and_independent(small_default: Path) -> None:
    data = json.loads((small_default / "datalist.json").read_text())
    (test,) = data["test"]
    labels = [np.asarray(nib.load(str(small_default / f)).dataobj) for f in test["label_raters"]]
    soft = np.asarray(nib.load(str(small_default / test["soft_label"])).dataobj)
    for rater, label in enumerate(labels, start=1):
        again = dd.draw_rater_label(np.random.default_rng([0, 2, dd.RATER_STREAM, rater]), soft)
        np.testing.assert_array_equal(again, label)
    assert not np.array_equal(labels[0], labels[1]) and not np.array_equal(labels[1], labels[2])
    # the rater stream is not the case's own stream (numpy pads [seed, case] with zeros)
    case = np.random.default_rng([0, 2]).random(4)
    assert not np.allclose(case, np.random.default_rng([0, 2, dd.RATER_STREAM, 0]).random(4))


def _surface_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean symmetric surface distance (voxels) between the boundaries (voxels with a 6-neighbour outside)."""
    structure = ndimage.generate_binary_structure(3, 1)
    edge_a = a & ~ndimage.binary_erosion(a, structure)
    edge_b = b & ~ndimage.binary_erosion(b, structure)
    to_b = ndimage.distance_transform_edt(~edge_b)
    to_a = ndimage.distance_transform_edt(~edge_a)
    return float((to_b[edge_a].sum() + to_a[edge_b].sum()) / (edge_a.sum() + edge_b.sum()))


def test_rater_model_statistics(small_default: Path) -> None:
    """Two raters of a test case: about a quarter of the tissue relabelled, boundaries about a voxel apart (mean
    symmetric surface distance 0.8-0.9 voxels measured), inter-rater Dice about 0.77-0.79; each rater is closer to
    the tissue maps' argmax than to another rater (independent errors of equal size)."""
    data = json.loads((small_default / "datalist.json").read_text())
    (test,) = data["test"]
    labels = [np.asarray(nib.load(str(small_default / f)).dataobj) for f in test["label_raters"]]
    argmax = np.asarray(nib.load(str(small_default / test["soft_label"])).dataobj).argmax(-1)
    for first, second in itertools.combinations(labels, 2):
        tissue = (first > 0) | (second > 0)
        relabelled = (first != second)[tissue].mean()
        assert 0.18 < relabelled < 0.32, relabelled
        to_argmax = (first != argmax)[(first > 0) | (argmax > 0)].mean()
        assert 0.12 < to_argmax < relabelled, (to_argmax, relabelled)
        dice = pairwise_dice([first, second], 3)
        assert ((0.72 < dice) & (dice < 0.85)).all(), dice
    for k in (1, 2):
        distance = _surface_distance(labels[0] == k, labels[1] == k)
        assert 0.65 < distance < 1.1, (k, distance)
    assert 0.75 < _surface_distance(labels[0] > 0, labels[1] > 0) < 1.2
    assert set(np.unique(labels[0])) == {0, 1, 2}
    for label in labels:
        fractions = np.bincount(label.ravel(), minlength=3) / label.size
        np.testing.assert_allclose(fractions, [0.785, 0.135, 0.08], atol=0.03)


def _noise_and_bias(image: np.ndarray, white_matter: np.ndarray) -> tuple[float, float]:
    """Relative noise (neighbour differences inside white matter) and bias spread (std of the log of the smoothed
    white-matter intensity) of an image."""
    pairs = white_matter[1:] & white_matter[:-1]
    differences = (image[1:] - image[:-1])[pairs].astype(np.float64)
    median = float(np.median(image[white_matter]))
    mask = white_matter.astype(np.float64)
    smooth = ndimage.gaussian_filter(np.where(white_matter, image, 0.0), 3.0) / np.maximum(
        ndimage.gaussian_filter(mask, 3.0), 1e-6
    )
    return float(differences.std() / np.sqrt(2) / median), float(np.log(smooth[white_matter]).std())


def test_test_acquisition_is_noisier_and_more_biased(small_default: Path) -> None:
    t1, soft, _ = load_mni_template()
    measured = {}
    for name, acquisition in (("training", dd.TRAINING_ACQUISITION), ("test", dd.TEST_ACQUISITION)):
        image, _, soft_label = dd.simulate_case(np.random.default_rng([3, 1]), t1, soft, 2.0, acquisition)
        measured[name] = _noise_and_bias(image, soft_label[..., 2] > 0.95)  # same rng: same anatomy, same quantiles
    assert measured["test"][0] > 1.7 * measured["training"][0], measured
    assert measured["test"][1] > 1.3 * measured["training"][1], measured
    data = json.loads((small_default / "datalist.json").read_text())
    noise = {}
    for section in ("training", "validation", "test"):
        (entry,) = data[section]
        image = np.asarray(nib.load(str(small_default / entry["image"])).dataobj)
        wm = np.asarray(nib.load(str(small_default / entry["soft_label"])).dataobj)[..., 2] > 0.95
        noise[section] = _noise_and_bias(image, wm)[0]
    assert noise["test"] > 1.3 * max(noise["training"], noise["validation"]), noise
