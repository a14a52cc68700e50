"""Each bundle, as ``python -m monai_nacl bundle export`` writes it, passes the MONAI model zoo's own CI checks, run
offline by ``model_zoo_ci`` (the zoo's ``ci/verify_bundle.py`` at dfae206d, re-implemented): ``min`` mode (files,
``large_files.yml``, version and changelog, metadata against the vendored 20240725 schema) on the bare copy, ``full``
mode (also ``verify_net_in_out`` and the TorchScript export by scripting) once the copy holds a ``models/model.pt``.
``required_packages_version`` is what the configs need, at the versions the package declares."""

from __future__ import annotations

import configparser
import hashlib
import json
import re
import shutil
from pathlib import Path

import model_zoo_ci as zoo
import pytest
import torch
from bundle_helpers import BUNDLES, BUNDLES_DIR, REPO, config_path
from monai.apps.utils import HashCheckError
from monai.bundle import ConfigParser
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import monai_nacl
from monai_nacl.bundle.export import export_bundle


def _metadata(bundle: str) -> dict:
    return json.loads(Path(config_path(bundle, "metadata.json")).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The zoo's ``models/`` folder holding the three exported bundles, their schema prepared as the zoo's CI does,
    and a ``model_info.json`` of a zoo that has none of them yet."""
    models = tmp_path_factory.mktemp("zoo") / "models"
    for bundle in BUNDLES:
        export_bundle(bundle, models / bundle)
    (models / "model_info.json").write_text(json.dumps({"spleen_ct_segmentation_v0.6.0": {"checksum": "0"}}))
    zoo.prepare_schema(list(BUNDLES), str(models))
    return models


@pytest.fixture
def trained_copy(exported: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """A copy of the zoo folder whose bundle ``request.param`` holds ``models/model.pt``: the randomly initialised
    ``network_def`` of its inference config, saved as the zoo's ``_produce_fake_weights`` does."""
    bundle = request.param
    models = tmp_path / "models"
    shutil.copytree(exported / bundle, models / bundle)
    shutil.copy(exported / "model_info.json", models / "model_info.json")
    (models / bundle / "models").mkdir()
    torch.manual_seed(0)
    zoo._produce_fake_weights(
        str(models / bundle / "configs" / "inference.yaml"),
        str(models / bundle / "configs" / "metadata.json"),
        bundle,
        "cpu",
        output_file=str(models / bundle / "models" / "model.pt"),
    )
    return models


@pytest.mark.parametrize("bundle", BUNDLES)
def test_min_mode_passes_on_the_exported_bundle(exported: Path, bundle: str) -> None:
    assert (exported / bundle / "large_files.yml").is_file() and not (exported / bundle / "models").exists()
    assert zoo.verify(bundle, str(exported), mode="min") == ["directory", "version", "metadata"]


def test_without_the_zoo_exception_a_bundle_needs_its_weights(exported: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the zoo's CI says of the bare copy without the ``exclude_verify_preferred_files_list`` entry that
    ``large_files.yml`` and the bundle's README ask for: there are no hosted weights to download."""
    monkeypatch.setattr(zoo, "exclude_verify_preferred_files_list", zoo.ZOO_EXCLUDE_VERIFY_PREFERRED_FILES)
    with pytest.raises(ValueError, match="necessary file models/model.pt is not existing"):
        zoo.verify("unet2d_nacl", str(exported), mode="min")


@pytest.mark.parametrize(
    ("trained_copy", "steps"),
    [
        ("unet2d_nacl", ["data shape", "torchscript"]),
        ("unet3d_nacl", ["data shape", "torchscript"]),
        # traced, not scripted: tests/integrations/test_torchscript_export.py
        ("swinunetr_nacl", ["data shape"]),
    ],
    indirect=["trained_copy"],
)
def test_full_mode_passes_with_weights(trained_copy: Path, steps: list[str]) -> None:
    (bundle,) = [p.name for p in trained_copy.iterdir() if p.is_dir()]
    assert zoo.verify(bundle, str(trained_copy), mode="full") == ["directory", "version", "metadata", *steps]
    if "torchscript" in steps:
        assert (trained_copy / bundle / "models" / "verify_model.ts").stat().st_size > 0


@pytest.mark.parametrize("bundle", BUNDLES)
def test_large_files_lists_no_hosted_weights(bundle: str) -> None:
    """The zoo's format, parsed as its CI and MONAI parse it: an empty list, and a comment that says why."""
    path = BUNDLES_DIR / bundle / "large_files.yml"
    parser = ConfigParser()
    parser.read_config(str(path))
    assert parser.get()["large_files"] == []
    text = path.read_text(encoding="utf-8")
    assert f"No trained {bundle} is hosted anywhere" in text and "exclude_verify_preferred_files_list" in text


def test_a_large_files_entry_puts_the_weights_in_place(exported: Path, tmp_path: Path) -> None:
    """The entry format documented in ``large_files.yml``, through the zoo's ``download_large_files`` (a ``file://``
    URL stands for the host): the file lands at its ``path`` with its md5 checked, and a wrong hash is refused."""
    weights = tmp_path / "hosted.pt"
    torch.save({"w": torch.arange(3.0)}, weights)
    md5 = hashlib.md5(weights.read_bytes()).hexdigest()
    bundle = tmp_path / "unet2d_nacl"
    shutil.copytree(exported / "unet2d_nacl", bundle)
    for hash_val, ok in ((md5, True), ("0" * 32, False)):
        shutil.rmtree(bundle / "models", ignore_errors=True)
        entry = {"path": "models/model.pt", "url": weights.as_uri(), "hash_val": hash_val, "hash_type": "md5"}
        (bundle / "large_files.yml").write_text(json.dumps({"large_files": [entry]}))
        if ok:
            zoo.download_large_files(str(bundle), "large_files.yml")
            assert (bundle / "models" / "model.pt").read_bytes() == weights.read_bytes()
        else:
            with pytest.raises(HashCheckError, match="md5 hash check of downloaded file failed"):
                zoo.download_large_files(str(bundle), "large_files.yml")


def test_vendored_schema_is_monais() -> None:
    """The vendored schema is the byte copy its README names (and, beside a checkout that has it, the shared one)."""
    digest = hashlib.sha256(zoo.SCHEMA_FILE.read_bytes()).hexdigest()
    assert digest in (zoo.SCHEMA_FILE.parent / "README.md").read_text(encoding="utf-8")
    shared = REPO.parent / "shared" / "schemas" / zoo.SCHEMA_FILE.name
    if shared.is_file():
        assert shared.read_bytes() == zoo.SCHEMA_FILE.read_bytes()


def test_schema_check_is_not_vacuous(tmp_path: Path) -> None:
    """The zoo's metadata step rejects what the schema rejects: a missing required key, a wrongly typed field."""
    from monai.bundle import verify_metadata

    for broken in ({"copyright": None}, {"network_data_format": {"inputs": {}}}):
        meta = {**_metadata("unet2d_nacl"), **broken}
        meta = {k: v for k, v in meta.items() if v is not None}
        path = tmp_path / "metadata.json"
        path.write_text(json.dumps(meta))
        with pytest.raises(ValueError, match="Failed validating"):
            verify_metadata(meta_file=str(path), filepath=str(zoo.SCHEMA_FILE))


def test_version_check_refuses_a_published_version(exported: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(exported / "unet3d_nacl", models / "unet3d_nacl")
    version = _metadata("unet3d_nacl")["version"]
    (models / "model_info.json").write_text(json.dumps({f"unet3d_nacl_v{version}": {}}))
    with pytest.raises(ValueError, match=f"version number: {version} is already used"):
        zoo.verify_version_changes(str(models), "unet3d_nacl")


@pytest.mark.parametrize("bundle", BUNDLES)
def test_network_matches_network_data_format(bundle: str) -> None:
    """``verify_net_in_out network_def`` of the training config too (the zoo's full mode checks the inference one)."""
    from monai.bundle import verify_net_in_out

    meta = _metadata(bundle)["network_data_format"]
    dims = 2 if bundle == "unet2d_nacl" else 3
    assert len(meta["inputs"]["image"]["spatial_shape"]) == dims
    verify_net_in_out(
        net_id="network_def",
        meta_file=config_path(bundle, "metadata.json"),
        config_file=config_path(bundle, "train.yaml"),
        device="cpu",
    )


def _declared_requirements() -> tuple[dict[str, Requirement], set[str]]:
    """setup.cfg's install_requires and extras (canonical name -> requirement), and the install_requires names."""
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")

    def parse(block: str) -> list[Requirement]:
        return [Requirement(line) for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]

    required = parse(setup["options"]["install_requires"])
    everything = required + [r for extra in setup["options.extras_require"].values() for r in parse(extra)]
    return {canonicalize_name(r.name): r for r in everything}, {canonicalize_name(r.name) for r in required}


@pytest.mark.parametrize("bundle", BUNDLES)
def test_required_packages_are_what_the_configs_need(bundle: str) -> None:
    """The zoo installs ``monai_version``, ``pytorch_version``, ``numpy_version`` and ``required_packages_version``
    (``ci/get_bundle_requirements.py``): together they name ``monai_nacl`` at the package version, every dependency
    the package declares, and what the configs use from its extras (TensorBoard, reliability diagrams with
    matplotlib, einops for SwinUNETR), each at a version setup.cfg admits, under its index name."""
    meta = _metadata(bundle)
    packages = {canonicalize_name(k): v for k, v in meta["required_packages_version"].items()}
    assert packages.pop("monai-nacl") == monai_nacl.__version__
    assert meta["version"] == monai_nacl.__version__ and monai_nacl.__version__ in meta["changelog"]
    declared, install_requires = _declared_requirements()
    pinned = {
        **packages,
        "monai": meta["monai_version"],
        "torch": meta["pytorch_version"],
        "numpy": meta["numpy_version"],
    }
    configs = "\n".join(p.read_text(encoding="utf-8") for p in (BUNDLES_DIR / bundle / "configs").glob("*.yaml"))
    used_extras = {"tensorboard", "matplotlib"} | ({"einops"} if "SwinUNETR" in configs else set())
    assert "TensorBoardStatsHandler" in configs and "ReliabilityDiagramHandler" in configs
    assert set(pinned) == install_requires | used_extras
    for name, version in pinned.items():
        assert declared[name].specifier.contains(version), f"{name} {version} outside setup.cfg's {declared[name]}"


@pytest.mark.parametrize("bundle", BUNDLES)
def test_readme_says_how_to_install_what_the_configs_import(bundle: str) -> None:
    """``monai_nacl`` is not on the package index: the bundle's README gives the install from a checkout or wheel,
    and how the zoo's requirements step then finds it."""
    readme = (BUNDLES_DIR / bundle / "docs" / "README.md").read_text(encoding="utf-8")
    assert "pip install --find-links" in readme and "not on PyPI" in readme
    assert f"monai_nacl=={monai_nacl.__version__}" in readme


def test_one_version_source() -> None:
    """setup.cfg reads the version from ``monai_nacl.__version__``; no other file states it."""
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    assert setup["metadata"]["version"] == "attr: monai_nacl.__version__"
    assert re.fullmatch(r"\d+\.\d+\.\d+", monai_nacl.__version__)
    assert f"## {monai_nacl.__version__}" in (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
