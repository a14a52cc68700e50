"""The default dataset: packaged asset, simulation pieces against slow references, the built dataset (both
variants; the deterministic one byte for byte as version 2), caching and atomicity. Rater statistics: test_raters.py."""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from monai.data import load_decathlon_datalist

from monai_nacl.data import (
    check_datalist,
    default_dataset_dir,
    ensure_default_dataset,
    load_mni_template,
)
from monai_nacl.data import default_dataset as dd
from monai_nacl.data.files import build_atomically
from monai_nacl.data.raters import inter_rater_dice

ASSETS = Path(dd.__file__).parent / "assets"


def as_json(settings: object) -> dict:
    """A dataclass as the datalist records it (tuples become lists)."""
    return json.loads(json.dumps(asdict(settings)))


def test_asset_size_shape_and_licence() -> None:
    assert (ASSETS / "mni152_2mm.npz").stat().st_size < 1.5e6
    with np.load(ASSETS / "mni152_2mm.npz") as asset:
        for name in ("t1", "gm", "wm"):
            assert asset[name].shape == (98, 116, 94) and asset[name].dtype == np.uint8
        np.testing.assert_array_equal(
            asset["affine"], [[2, 0, 0, -97.5], [0, 2, 0, -133.5], [0, 0, 2, -71.5], [0, 0, 0, 1]]
        )
    notice = (ASSETS / "MNI_LICENSE.txt").read_text()
    assert "Copyright (C) 1993-2009 Louis Collins, McConnell Brain Imaging Centre" in notice
    assert "provided that the above copyright notice appear in all copies" in notice
    assert "Fonov" in notice and "2011" in notice


def test_asset_matches_nilearn_template() -> None:
    """Blocks of the asset equal the rounded mean of the 8 source voxels, which sit where the affine says."""
    struct = pytest.importorskip("nilearn.datasets.struct")
    rng = np.random.default_rng(0)
    with np.load(ASSETS / "mni152_2mm.npz") as asset:
        arrays = {name: asset[name] for name in ("t1", "gm", "wm")}
        affine = asset["affine"]
    for name, path in (("t1", struct.MNI152_FILE_PATH), ("gm", struct.GM_MNI152_FILE_PATH)):
        source = nib.load(str(path))
        data = np.asarray(source.dataobj)
        for _ in range(30):
            i, j, k = (int(rng.integers(20, n - 20)) for n in arrays[name].shape)
            corners = [data[2 * i + a, 2 * j + b, 2 * k + c] for a in (0, 1) for b in (0, 1) for c in (0, 1)]
            assert arrays[name][i, j, k] == round(sum(int(v) for v in corners) / 8)  # half to even, as np.rint
            world = affine @ [i, j, k, 1]
            source_centre = np.mean(
                [source.affine @ [2 * i + a, 2 * j + b, 2 * k + c, 1] for a in (0, 1) for b in (0, 1) for c in (0, 1)],
                axis=0,
            )
            np.testing.assert_allclose(world, source_centre)


def test_template_class_fractions() -> None:
    t1, soft, _ = load_mni_template()
    np.testing.assert_allclose(soft.sum(-1), 1.0, atol=1e-12)
    fractions = np.bincount(soft.argmax(-1).ravel(), minlength=3) / t1.size
    np.testing.assert_allclose(fractions, [0.80, 0.13, 0.07], atol=0.015)
    assert t1.min() == 0.0 and 0.9 < t1.max() <= 1.0


def test_bspline_basis_values() -> None:
    """Cubic B-spline: 1/6, 2/3, 1/6 at knots; 23/48 and 1/48 half-way (spacing 2); rows sum to 1."""
    unit = dd._bspline_matrix(10, 1.0)
    row = unit[5][unit[5] > 1e-12]
    np.testing.assert_allclose(row, [1 / 6, 2 / 3, 1 / 6])
    double = dd._bspline_matrix(11, 2.0)
    odd = np.sort(double[3][double[3] > 1e-12])
    np.testing.assert_allclose(odd, [1 / 48, 1 / 48, 23 / 48, 23 / 48])
    np.testing.assert_allclose(dd._bspline_matrix(98, 10.0).sum(1), 1.0)


def test_warp_trilinear_against_pointwise_reference() -> None:
    rng = np.random.default_rng(1)
    volume = rng.random((5, 6, 7, 2))
    points = rng.uniform(-2.0, 8.0, size=(3, 40))

    def value(x: int, y: int, z: int) -> np.ndarray:
        inside = 0 <= x < 5 and 0 <= y < 6 and 0 <= z < 7
        return volume[x, y, z] if inside else np.zeros(2)

    expected = []
    for x, y, z in points.T:
        x0, y0, z0 = int(np.floor(x)), int(np.floor(y)), int(np.floor(z))
        total = np.zeros(2)
        for a in (0, 1):
            for b in (0, 1):
                for c in (0, 1):
                    weight = (x - x0 if a else 1 - (x - x0)) * (y - y0 if b else 1 - (y - y0))
                    weight *= z - z0 if c else 1 - (z - z0)
                    total += weight * value(x0 + a, y0 + b, z0 + c)
        expected.append(total)
    np.testing.assert_allclose(dd.warp_trilinear(volume, points), expected, atol=2e-4)


def test_deformation_is_a_few_millimetres() -> None:
    """Least-squares affine part: a near-identity similarity; the rest (elastic): a few mm, invertible."""
    shape = (98, 116, 94)
    identity = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")).reshape(3, -1)
    design = np.concatenate([identity, np.ones((1, identity.shape[1]))]).T
    for index in range(2):
        grid = dd.random_sampling_grid(np.random.default_rng([0, index]), shape, 2.0)
        coefficients, *_ = np.linalg.lstsq(design, grid.reshape(3, -1).T, rcond=None)
        singular = np.linalg.svd(coefficients[:3].T, compute_uv=False)
        assert singular.min() > 0.92 and singular.max() < 1.08
        residual_mm = 2.0 * np.sqrt(((grid.reshape(3, -1) - (design @ coefficients).T) ** 2).sum(0))
        assert 1.0 < np.sqrt((residual_mm**2).mean()) < 5.0 and residual_mm.max() < 15.0
        total_mm = 2.0 * np.sqrt(((grid.reshape(3, -1) - identity) ** 2).sum(0))
        assert total_mm.max() < 30.0
        jacobian = np.linalg.det(np.stack([np.stack(np.gradient(grid[i]), -1) for i in range(3)], -2))
        assert jacobian.min() > 0.4 and jacobian.max() < 2.5  # smooth and invertible


def test_built_dataset_layout_and_consistency(small_default: Path) -> None:
    datalist = small_default / "datalist.json"
    data = json.loads(datalist.read_text())
    assert [len(data[s]) for s in ("training", "validation", "test")] == data["split"] == [1, 1, 1]
    assert data["variant"] == "raters" and data["version"] == dd.DATASET_VERSIONS["raters"]
    assert (small_default / "LICENSE.txt").read_text() == (ASSETS / "MNI_LICENSE.txt").read_text()
    assert check_datalist(datalist, 3) == []
    items = load_decathlon_datalist(str(datalist), True, "training", base_dir=str(small_default))
    _, _, template_affine = load_mni_template()
    for entry in data["training"] + data["validation"] + data["test"]:
        image = nib.load(str(small_default / entry["image"]))
        label = np.asarray(nib.load(str(small_default / entry["label"])).dataobj)
        soft = np.asarray(nib.load(str(small_default / entry["soft_label"])).dataobj)
        np.testing.assert_allclose(image.affine, template_affine)
        assert nib.aff2axcodes(image.affine) == ("R", "A", "S")
        assert image.shape == label.shape == soft.shape[:3] == (98, 116, 94) and soft.shape[3] == 3
        assert label.dtype == np.uint8 and image.get_data_dtype() == np.float32
        np.testing.assert_allclose(soft.sum(-1), 1.0, atol=1e-5)
        assert soft.min() >= 0.0
        # a rater's label follows the tissue maps up to its boundary errors
        assert 0.6 < (label == soft.argmax(-1))[(label > 0) | (soft.argmax(-1) > 0)].mean() < 0.95
        pixels = np.asarray(image.dataobj)
        assert pixels.min() >= 0.0 and np.isfinite(pixels).all()
        assert (label[pixels == 0] > 0).mean() < 0.01  # tissue lies inside the (skull-stripped) image
        wm, gm = pixels[label == 2], pixels[label == 1]
        assert np.median(wm) > 1.15 * np.median(gm)  # T1 contrast survives bias, gamma and noise
    for entry in data["training"] + data["validation"]:
        assert "label_raters" not in entry
    (test,) = data["test"]
    assert test["label_raters"][0] == test["label"] and len(test["label_raters"]) == dd.DEFAULT_TEST_RATERS
    assert test["label_raters"][1:] == [
        "labelsRatersTs/case_002_rater2.nii.gz",
        "labelsRatersTs/case_002_rater3.nii.gz",
    ]
    for file in test["label_raters"]:
        rater = nib.load(str(small_default / file))
        np.testing.assert_allclose(rater.affine, template_affine)
        assert rater.get_data_dtype() == np.uint8 and rater.shape == (98, 116, 94)
    recorded = [data["inter_rater_dice"][name] for name in ("grey matter", "white matter")]
    np.testing.assert_allclose(recorded, inter_rater_dice(datalist, 3)["mean"], atol=1e-4)
    assert data["acquisition"]["test"] == as_json(dd.TEST_ACQUISITION)
    assert data["acquisition"]["training"] == data["acquisition"]["validation"] == as_json(dd.TRAINING_ACQUISITION)
    assert data["raters"]["model"] == as_json(dd.DEFAULT_RATER_MODEL)
    assert items[0]["image"] == str(small_default / data["training"][0]["image"])
    assert set(json.loads(datalist.read_text())["class_fractions"]) == {
        "background/other",
        "grey matter",
        "white matter",
    }


# sha256 of every file of the deterministic 3-case build of seed 0 (.nii.gz: of the decompressed NIfTI, so a
# different zlib cannot change it), computed with the code before the raters variant existed (dataset version 2)
VERSION_2_SHA256 = {
    "LICENSE.txt": "db72d7302a217010dca9c63260cf8ff0a53b8c82d8f950259e0af37bbe6818c3",
    "datalist.json": "059c64928922a70d366ca47b291caaf81977bc0580e40ba245b7915ba8718038",
    "imagesTr/case_000.nii.gz": "2347a7bab01458bcdb8d1e136f0b06172a8e624e9ebc9b5606b2a986b8dbee4d",
    "imagesTr/case_001.nii.gz": "90892edf534684877c82f6de696fca811e7a51c5cbe96d8d44eebac6d024449e",
    "imagesTr/case_002.nii.gz": "9c7bcc5dbb9acb99287e6aa0957ca261da3099a5735b798fc1dad957b0d47391",
    "labelsTr/case_000.nii.gz": "57012b321b02fc0a6cf5c1f6813ed3f8efde3fe5753ca2314a37b6e47a2dc5ac",
    "labelsTr/case_001.nii.gz": "375263d9cabb1c85d331eb2bb1c8afb77f9b955cdfe098901c26ddbce95424d9",
    "labelsTr/case_002.nii.gz": "bbad61ea7ca939f93f8e3738d166d4b04e2399d7136a895defb84d26c371f683",
    "softlabelsTr/case_000.nii.gz": "35b3bba42e69f0ed5b77608950696990a94e16c468f0c7d4704655e6b66cc1ae",
    "softlabelsTr/case_001.nii.gz": "b71a5bd98d68a7aabb2cd314c4cfe989bb54b9da705710b0c5c0d23e51129876",
    "softlabelsTr/case_002.nii.gz": "a55a33b21f36e90f06a0f170cb2b4085b9ccc2123ec2a86d5a9730e3b08494ec",
}


def test_deterministic_variant_is_version_2(tmp_path: Path) -> None:
    """The ambiguity-free variant writes the same bytes as before the raters variant; its labels are the argmax."""
    folder = Path(dd.build_default_dataset(tmp_path / "det", num_cases=3, seed=0, variant="deterministic")).parent
    hashes = {}
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        payload = file.read_bytes()
        hashes[file.relative_to(folder).as_posix()] = hashlib.sha256(
            gzip.decompress(payload) if file.name.endswith(".gz") else payload
        ).hexdigest()
    assert hashes == VERSION_2_SHA256
    data = json.loads((folder / "datalist.json").read_text())
    for entry in data["training"] + data["validation"] + data["test"]:
        label = np.asarray(nib.load(str(folder / entry["label"])).dataobj)
        soft = np.asarray(nib.load(str(folder / entry["soft_label"])).dataobj)
        # hard labels = argmax of the soft labels, ties to the lower label
        expected = np.zeros(label.shape, dtype=np.uint8)
        best = soft[..., 0].copy()
        for k in (1, 2):
            better = soft[..., k] > best
            expected[better], best[better] = k, soft[..., k][better]
        np.testing.assert_array_equal(label, expected)


def test_raters_variant_shares_the_training_images(small_default: Path) -> None:
    """Training and validation images are version 2's bytes; the test image differs by its acquisition only."""
    for name in ("imagesTr/case_000.nii.gz", "imagesTr/case_001.nii.gz"):
        payload = gzip.decompress((small_default / name).read_bytes())
        assert hashlib.sha256(payload).hexdigest() == VERSION_2_SHA256[name]
    t1, soft, _ = load_mni_template()
    test, _, _ = dd.simulate_case(np.random.default_rng([0, 2]), t1, soft, 2.0, dd.TEST_ACQUISITION)
    np.testing.assert_array_equal(np.asarray(nib.load(str(small_default / "imagesTr/case_002.nii.gz")).dataobj), test)


def test_cases_are_deformed_versions_of_the_template(small_default: Path) -> None:
    _, soft, _ = load_mni_template()
    template = soft.argmax(-1)
    labels = [np.asarray(nib.load(str(p)).dataobj) for p in sorted((small_default / "labelsTr").glob("*.nii.gz"))]
    for label in labels:
        for k in (1, 2):
            dice = 2 * ((label == k) & (template == k)).sum() / ((label == k).sum() + (template == k).sum())
            assert 0.3 < dice < 0.95, (k, dice)
        fractions = np.bincount(label.ravel(), minlength=3) / label.size
        np.testing.assert_allclose(fractions, [0.79, 0.135, 0.075], atol=0.04)
    assert not np.array_equal(labels[0], labels[1])


def test_same_seed_gives_identical_files(small_default: Path, tmp_path: Path) -> None:
    again = Path(dd.build_default_dataset(tmp_path / "again", num_cases=3, seed=0)).parent
    files = sorted(p.relative_to(small_default) for p in small_default.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for name in files:
        assert (small_default / name).read_bytes() == (again / name).read_bytes(), name
    t1, soft, _ = load_mni_template()
    other_seed, _, _ = dd.simulate_case(np.random.default_rng([1, 0]), t1, soft)
    assert not np.array_equal(other_seed, np.asarray(nib.load(str(small_default / "imagesTr/case_000.nii.gz")).dataobj))


def test_ensure_reuses_an_existing_dataset(small_default: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONAI_NACL_DATA", str(small_default))
    assert default_dataset_dir() == small_default
    stamp = (small_default / "datalist.json").stat().st_mtime_ns
    assert ensure_default_dataset() == str(small_default / "datalist.json")
    assert ensure_default_dataset(small_default) == str(small_default / "datalist.json")
    assert (small_default / "datalist.json").stat().st_mtime_ns == stamp
    monkeypatch.delenv("MONAI_NACL_DATA")
    assert default_dataset_dir() == Path.home() / ".cache" / "monai_nacl" / "mni152_tissue"


def test_ensure_rebuilds_an_older_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An older deterministic build (no "variant" key) is rebuilt with its cohort size and seed; an older raters build
    with its split and seed."""
    folder = tmp_path / "old"
    with build_atomically(folder) as staging:
        old = {"name": "mni152_tissue", "version": 0, "numCases": 3, "seed": 5, "training": []}
        (staging / "datalist.json").write_text(json.dumps(old))
    path = ensure_default_dataset(folder, variant="deterministic")
    data = json.loads(Path(path).read_text())
    assert data["version"] == dd.DATASET_VERSIONS["deterministic"] and data["seed"] == 5 and len(data["test"]) == 1
    assert "variant" not in data and check_datalist(path, 3) == []
    assert ensure_default_dataset(folder, variant="deterministic") == path
    old_raters = {"name": "mni152_tissue", "version": 0, "variant": "raters", "split": [2, 1, 3], "seed": 5}
    (folder / "datalist.json").write_text(json.dumps(old_raters))
    calls = []
    monkeypatch.setattr(dd, "build_default_dataset", lambda *args, **kwargs: calls.append((args, kwargs)) or "built")
    assert ensure_default_dataset(folder) == "built"
    assert calls == [((folder,), {"seed": 5, "force": True, "variant": "raters", "split": [2, 1, 3]})]


def test_ensure_rebuilds_another_variant_with_its_default_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "det"
    dd.build_default_dataset(folder, num_cases=3, seed=4, variant="deterministic")
    calls = []
    monkeypatch.setattr(dd, "build_default_dataset", lambda *args, **kwargs: calls.append((args, kwargs)) or "built")
    assert ensure_default_dataset(folder, variant="deterministic") == str(folder / "datalist.json")
    assert ensure_default_dataset(folder) == "built"
    assert calls == [((folder,), {"seed": 4, "force": True, "variant": "raters"})]
    with pytest.raises(ValueError, match="variant='noisy' is not one of"):
        ensure_default_dataset(folder, variant="noisy")


def test_ensure_refuses_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds no datalist.json.*--force"):
        ensure_default_dataset(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_interrupted_build_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = dd.simulate_case

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(dd, "simulate_case", failing)
    with pytest.raises(KeyboardInterrupt):
        ensure_default_dataset(tmp_path / "data")
    assert list(tmp_path.iterdir()) == []


def test_existing_dataset_needs_force(tmp_path: Path) -> None:
    target = tmp_path / "data"
    with build_atomically(target) as staging:
        (staging / "a.txt").write_text("old")
    with pytest.raises(FileExistsError, match="--force"), build_atomically(target):
        pass
    with build_atomically(target, force=True) as staging:
        (staging / "b.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["data"]
    with pytest.raises(ValueError, match="at least 3 cases"):
        dd.build_default_dataset(tmp_path / "tiny", num_cases=2)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"split": (4, 0, 2)}, "each at least 1"),
        ({"split": (4, 2)}, "three counts"),
        ({"num_cases": 5, "split": (2, 2, 2)}, "sums to 6"),
        ({"variant": "noisy"}, "is not one of"),
        ({"test_raters": 1}, "at least 2 raters"),
    ],
)
def test_builder_rejects_bad_arguments(tmp_path: Path, arguments: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dd.build_default_dataset(tmp_path / "bad", **arguments)
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize(
    "num_cases, variant, sizes",
    [
        (3, "deterministic", (1, 1, 1)),
        (16, "deterministic", (10, 3, 3)),
        (20, "deterministic", (12, 4, 4)),
        (40, "deterministic", (24, 8, 8)),
        (3, "raters", (1, 1, 1)),
        (22, "raters", (10, 4, 8)),
        (11, "raters", (5, 2, 4)),
    ],
)
def test_split_sizes(num_cases: int, variant: str, sizes: tuple[int, int, int]) -> None:
    assert dd.split_sizes(num_cases, variant) == sizes
    assert sum(dd.DEFAULT_SPLITS["raters"]) == dd.DEFAULT_NUM_CASES == 22


def test_command_line_builds_and_summarises(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from monai_nacl.data.__main__ import main

    folder = tmp_path / "cli"
    assert main(["build-default", "--output", str(folder), "--split", "1,1,1", "--test_raters", "2"]) == 0
    printed = capsys.readouterr().out
    assert "(raters)" in printed and "1 training, 1 validation, 1 test" in printed
    assert "inter-rater Dice (test, 2 raters per case" in printed and "'grey matter': 0.80" in printed
    (test,) = json.loads((folder / "datalist.json").read_text())["test"]
    assert len(test["label_raters"]) == 2
    assert main(["build-default", "--output", str(folder), "--split", "1,x"]) == 2
    assert "give three integer counts" in capsys.readouterr().err
