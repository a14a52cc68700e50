"""The MONAI model zoo's bundle checks, re-implemented to run offline on this project's bundles.

Source: github.com/Project-MONAI/model-zoo at commit dfae206d (``ci/verify_bundle.py``: ``verify`` and the
functions it calls; ``ci/utils.py``: ``download_large_files``, ``prepare_schema``, ``get_json_dict``;
``ci/bundle_custom_data.py``: the exception lists). Each function below keeps the zoo's logic and error messages;
the differences, all forced by running offline inside a test, are:

- ``prepare_schema`` copies the vendored schema (``vendored/meta_schema_20240725.json``) into ``eval/schema.json``
  instead of downloading the metadata's ``schema`` URL (it refuses a metadata naming another schema file);
- ``verify`` does not prepend the bundle to ``sys.path`` (these bundles hold no Python code);
- ``verify_bundle_properties`` checks nothing, as in the zoo at that commit, whose tree holds no
  ``bundle_properties.py`` for any app (``get_app_properties`` then returns None for every entry of
  ``supported_apps``);
- the exception lists are the zoo's plus :data:`ZOO_ADDITIONS`, the entries a submission of these bundles adds to
  ``ci/bundle_custom_data.py``.

The zoo's CI runs ``verify_bundle.py -m min`` on CPU before a merge (``ci/run_premerge_cpu.sh``) and ``-m full`` on
GPU (it adds ``verify_net_in_out`` and a TorchScript export by scripting). Adapted from Apache-2.0 code,
Copyright (c) MONAI Consortium.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from monai.apps.utils import download_url
from monai.bundle import ckpt_export, verify_metadata, verify_net_in_out
from monai.bundle.config_parser import ConfigParser

SCHEMA_FILE = Path(__file__).resolve().parent / "vendored" / "meta_schema_20240725.json"
"""The vendored copy of MONAI's metadata schema (see ``vendored/README.md``)."""

ZOO_ADDITIONS = {
    # no trained weights are hosted, so no models/model.pt: the zoo's exception for bundles without it
    "exclude_verify_preferred_files_list": ["unet2d_nacl", "unet3d_nacl", "swinunetr_nacl"],
    # SwinUNETR cannot be scripted; exported by tracing (python -m monai_nacl bundle torchscript), as the zoo's own
    # swin_unetr_btcv_segmentation is listed here
    "exclude_verify_torchscript_list": ["swinunetr_nacl"],
}
"""What a submission of these bundles adds to the zoo's ``ci/bundle_custom_data.py``."""

# ci/bundle_custom_data.py at dfae206d, plus ZOO_ADDITIONS
exclude_verify_shape_list = [
    "mednist_gan",
    "lung_nodule_ct_detection",
    "pathology_nuclei_segmentation_classification",
    "brats_mri_generative_diffusion",
    "brats_mri_axial_slices_generative_diffusion",
    "maisi_ct_generative",
]
ZOO_EXCLUDE_VERIFY_PREFERRED_FILES = ["pediatric_abdominal_ct_segmentation", "maisi_ct_generative"]
ZOO_EXCLUDE_VERIFY_TORCHSCRIPT = [
    "swin_unetr_btcv_segmentation",
    "renalStructures_UNEST_segmentation",
    "renalStructures_CECT_segmentation",
    "wholeBrainSeg_Large_UNEST_segmentation",
    "breast_density_classification",
    "mednist_reg",
    "brats_mri_axial_slices_generative_diffusion",
    "brats_mri_generative_diffusion",
    "vista3d",
    "maisi_ct_generative",
    "vista2d",
]
exclude_verify_preferred_files_list = [
    *ZOO_EXCLUDE_VERIFY_PREFERRED_FILES,
    *ZOO_ADDITIONS["exclude_verify_preferred_files_list"],
]
exclude_verify_torchscript_list = [*ZOO_EXCLUDE_VERIFY_TORCHSCRIPT, *ZOO_ADDITIONS["exclude_verify_torchscript_list"]]
exclude_download_large_file_list = ["maisi_ct_generative"]

# ci/verify_bundle.py
necessary_files_list = ["configs/metadata.json", "LICENSE"]
preferred_files_list = ["models/model.pt", "configs/inference.json"]


def get_json_dict(json_dict_path: str) -> dict:
    with open(json_dict_path) as f:
        return json.load(f)


def download_large_files(bundle_path: str, large_file_name: str = "large_file.yml") -> None:
    """ci/utils.py: every entry of ``large_files`` downloaded to its ``path`` in the bundle (hash checked)."""
    parser = ConfigParser()
    parser.read_config(os.path.join(bundle_path, large_file_name))
    large_files_list = parser.get()["large_files"]
    for lf_data in large_files_list:
        lf_data["fuzzy"] = True
        if "hash_val" in lf_data and lf_data.get("hash_val", "") == "":
            lf_data.pop("hash_val")
        if "hash_type" in lf_data and lf_data.get("hash_type", "") == "":
            lf_data.pop("hash_type")
        lf_data["filepath"] = os.path.join(bundle_path, lf_data["path"])
        lf_data.pop("path")
        download_url(**lf_data)


def prepare_schema(bundle_list: list[str], root_path: str) -> None:
    """ci/utils.py, offline: the metadata's schema (the vendored copy) into each bundle's ``eval/schema.json``."""
    for bundle_name in bundle_list:
        bundle_path = os.path.join(root_path, bundle_name)
        schema_url = get_json_dict(os.path.join(bundle_path, "configs/metadata.json"))["schema"]
        if schema_url.split("/")[-1] != SCHEMA_FILE.name:
            raise ValueError(f"{bundle_name} names the schema {schema_url}; only {SCHEMA_FILE.name} is vendored.")
        os.makedirs(os.path.join(bundle_path, "eval"), exist_ok=True)
        shutil.copyfile(SCHEMA_FILE, os.path.join(bundle_path, "eval/schema.json"))


def _find_bundle_file(root_dir: str, file: str, suffix: tuple[str, ...] = ("json", "yaml", "yml")) -> str | None:
    file_name = None
    for name in suffix:
        full_name = f"{file}.{name}"
        if full_name in os.listdir(root_dir):
            file_name = full_name
    return file_name


def _get_weights_names(bundle: str) -> tuple[str, str]:
    return "model.pt", "model.ts"  # the zoo's default; its exceptions name other bundles


def _get_net_id(bundle: str) -> str:
    return "network_def"


def _produce_fake_weights(config_file: str, meta_file: str, bundle: str, device: str, output_file: str) -> None:
    """ci/verify_bundle.py: the randomly initialised ``network_def`` saved as the weights file (the zoo writes it
    to the working directory; here to ``output_file``)."""
    parser = ConfigParser()
    parser.read_config(f=config_file)
    parser.read_meta(f=meta_file)
    network = parser.get_parsed_content(_get_net_id(bundle)).to(device)
    torch.save(network.state_dict(), output_file)


def _find_license_file(bundle_path: str) -> str | None:
    license_exact_path = os.path.join(bundle_path, "LICENSE")
    return license_exact_path if os.path.exists(license_exact_path) else None


def verify_bundle_directory(models_path: str, bundle_name: str, mode: str) -> None:
    bundle_path = os.path.join(models_path, bundle_name)
    if bundle_name in exclude_download_large_file_list and mode == "min":
        print(f"skip downloading large files for bundle: {bundle_name}.")
    else:
        large_file_name = _find_bundle_file(bundle_path, "large_files")
        if large_file_name is not None:
            try:
                download_large_files(bundle_path=bundle_path, large_file_name=large_file_name)
            except Exception as e:
                raise ValueError(f"Download large files in {bundle_path} error.") from e

    for file in necessary_files_list:
        if file == "LICENSE":
            if _find_license_file(bundle_path) is None:
                raise ValueError(f"necessary file {file} is not existing.")
        elif not os.path.exists(os.path.join(bundle_path, file)):
            raise ValueError(f"necessary file {file} is not existing.")

    if bundle_name not in exclude_verify_preferred_files_list:
        for file in preferred_files_list:
            if file == "configs/inference.json":
                if _find_bundle_file(os.path.join(bundle_path, "configs"), "inference") is None:
                    raise ValueError("inference config file is not existing.")
            elif not os.path.exists(os.path.join(bundle_path, file)):
                raise ValueError(f"necessary file {file} is not existing.")


def verify_version_changes(models_path: str, bundle_name: str) -> None:
    bundle_path = os.path.join(models_path, bundle_name)
    metadata = get_json_dict(os.path.join(bundle_path, "configs/metadata.json"))
    if "version" not in metadata:
        raise ValueError(f"'version' is missing in configs/metadata.json of bundle: {bundle_name}.")
    if "changelog" not in metadata:
        raise ValueError(f"'changelog' is missing in configs/metadata.json of bundle: {bundle_name}.")
    latest_version = metadata["version"]
    if latest_version not in metadata["changelog"]:
        raise ValueError(
            f"version number: {latest_version} is missing in 'changelog' in configs/metadata.json of bundle: "
            f"{bundle_name}."
        )
    model_info = get_json_dict(os.path.join(models_path, "model_info.json"))
    if f"{bundle_name}_v{latest_version}" in model_info:
        raise ValueError(
            f"version number: {latest_version} is already used of bundle: {bundle_name}. Please change it."
        )


def verify_metadata_format(bundle_path: str) -> None:
    verify_metadata(
        meta_file=os.path.join(bundle_path, "configs/metadata.json"),
        filepath=os.path.join(bundle_path, "eval/schema.json"),
    )


def verify_data_shape(bundle_path: str, net_id: str, config_file: str) -> None:
    verify_net_in_out(
        net_id=net_id,
        meta_file=os.path.join(bundle_path, "configs/metadata.json"),
        config_file=os.path.join(bundle_path, config_file),
        bundle_root=bundle_path,
    )


def verify_torchscript(
    bundle_path: str, net_id: str, config_file: str, model_name: str = "model.pt", ts_name: str | None = "model.ts"
) -> None:
    ckpt_export(
        net_id=net_id,
        filepath=os.path.join(bundle_path, "models/verify_model.ts"),
        ckpt_file=os.path.join(bundle_path, "models", model_name),
        meta_file=os.path.join(bundle_path, "configs/metadata.json"),
        config_file=os.path.join(bundle_path, config_file),
        bundle_root=bundle_path,
    )
    if ts_name is not None:
        ts_model_path = os.path.join(bundle_path, "models", ts_name)
        if os.path.exists(ts_model_path):
            torch.jit.load(ts_model_path)


def verify_bundle_properties(model_path: str, bundle: str) -> None:
    """No check: at dfae206d the zoo holds no ``bundle_properties.py`` for any app in ``supported_apps``."""


def verify(bundle: str, models_path: str = "models", mode: str = "full") -> list[str]:
    """ci/verify_bundle.py ``verify``; returns the steps that ran (the zoo prints them)."""
    steps = []
    verify_bundle_directory(models_path, bundle, mode)
    steps.append("directory")
    if mode != "regular":
        verify_version_changes(models_path, bundle)
        steps.append("version")
    bundle_path = os.path.join(models_path, bundle)
    verify_metadata_format(bundle_path)
    steps.append("metadata")
    if mode in ["min", "regular"]:
        return steps

    verify_bundle_properties(models_path, bundle)
    net_id = _get_net_id(bundle)
    inference_file_name = _find_bundle_file(os.path.join(bundle_path, "configs"), "inference")
    config_file = os.path.join("configs", inference_file_name)
    if bundle not in exclude_verify_shape_list:
        verify_data_shape(bundle_path, net_id, config_file)
        steps.append("data shape")
    if bundle not in exclude_verify_torchscript_list:
        model_name, ts_name = _get_weights_names(bundle=bundle)
        verify_torchscript(bundle_path, net_id, config_file, model_name, ts_name)
        steps.append("torchscript")
    return steps
