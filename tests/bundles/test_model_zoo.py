"""The bundles pass the model zoo's own checks, offline: ``verify_metadata`` against MONAI's metadata schema and
``verify_net_in_out`` of ``network_def`` against ``network_data_format``; ``required_packages_version`` names real
distributions at the versions the package declares, and the package version comes from one place."""

from __future__ import annotations

import configparser
import json
import re
from pathlib import Path

import pytest
from bundle_helpers import BUNDLES, REPO, config_path
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import monai_nacl

SCHEMA_NAME = "meta_schema_20240725.json"
# the copy of MONAI's schema beside the repository (shared/schemas/README.md); MONAI skips its download for an
# existing file, so verify_metadata runs offline
SCHEMA_FILE = REPO.parent / "shared" / "schemas" / SCHEMA_NAME


def _schema_file() -> Path:
    pytest.importorskip("jsonschema", reason="monai.bundle.verify_metadata needs jsonschema (the test extras have it)")
    if not SCHEMA_FILE.is_file():
        pytest.skip(f"no offline copy of MONAI's metadata schema at {SCHEMA_FILE}; verify_metadata would download it")
    return SCHEMA_FILE


def _metadata(bundle: str) -> dict:
    return json.loads(Path(config_path(bundle, "metadata.json")).read_text(encoding="utf-8"))


def _declared_requirements() -> dict[str, Requirement]:
    """setup.cfg's install_requires and every extra: canonical name -> requirement."""
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    lines = setup["options"]["install_requires"].splitlines()
    for extra in setup["options.extras_require"].values():
        lines += extra.splitlines()
    requirements = [Requirement(line) for line in lines if line.strip() and not line.strip().startswith("#")]
    return {canonicalize_name(r.name): r for r in requirements}


@pytest.mark.parametrize("bundle", BUNDLES)
def test_metadata_is_valid_against_the_model_zoo_schema(bundle: str) -> None:
    from monai.bundle import verify_metadata

    schema = _schema_file()
    meta = _metadata(bundle)
    assert meta["schema"].endswith("/" + SCHEMA_NAME)
    verify_metadata(meta_file=config_path(bundle, "metadata.json"), filepath=str(schema))


def test_schema_check_is_not_vacuous(tmp_path: Path) -> None:
    """The same call rejects what the model zoo rejects: a missing required key, a wrongly typed field."""
    from monai.bundle import verify_metadata

    schema = _schema_file()
    for broken in ({"copyright": None}, {"network_data_format": {"inputs": {}}}):
        meta = {**_metadata("unet2d_nacl"), **broken}
        meta = {k: v for k, v in meta.items() if v is not None}
        path = tmp_path / "metadata.json"
        path.write_text(json.dumps(meta))
        with pytest.raises(ValueError, match="Failed validating"):
            verify_metadata(meta_file=str(path), filepath=str(schema))


@pytest.mark.parametrize("bundle", BUNDLES)
def test_network_matches_network_data_format(bundle: str) -> None:
    """``python -m monai.bundle verify_net_in_out network_def``: a random input of the metadata's channels and spatial
    shape (2D ``[96, 96]`` for the slice-wise UNet, 3D patches for the others) gives the metadata's output channels
    and dtype."""
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


@pytest.mark.parametrize("bundle", BUNDLES)
def test_required_packages_are_what_a_user_installs(bundle: str) -> None:
    """Every entry of required_packages_version is ``monai_nacl`` at the package version, or a distribution that
    setup.cfg declares (real index names: ``pytorch-ignite``, not ``ignite``) at a version its specifier admits."""
    meta = _metadata(bundle)
    packages = meta["required_packages_version"]
    assert packages.pop("monai_nacl") == monai_nacl.__version__
    assert meta["version"] == monai_nacl.__version__ and monai_nacl.__version__ in meta["changelog"]
    declared = _declared_requirements()
    for name, version in packages.items():
        assert canonicalize_name(name) in declared, f"{name} is not a dependency declared in setup.cfg"
        assert declared[canonicalize_name(name)].specifier.contains(version), f"{name} {version}"
    assert declared["monai"].specifier.contains(meta["monai_version"])
    assert declared["torch"].specifier.contains(meta["pytorch_version"])


def test_one_version_source() -> None:
    """setup.cfg reads the version from ``monai_nacl.__version__``; no other file states it."""
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    assert setup["metadata"]["version"] == "attr: monai_nacl.__version__"
    assert re.fullmatch(r"\d+\.\d+\.\d+", monai_nacl.__version__)
    assert f"## {monai_nacl.__version__}" in (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
