"""The default dataset: brain tissue (grey / white matter) on a cohort simulated from the MNI152 2009a template.

Offline and deterministic. The template (T1 image, GM and WM probability maps at 2 mm, shipped as
``assets/mni152_2mm.npz`` by ``scripts/derive_mni_asset.py``; MNI/McGill notice in ``assets/MNI_LICENSE.txt``;
Fonov et al., NeuroImage 2009 / 2011) is turned into a cohort of cases. For case ``i`` of seed ``s`` the random
generator is ``numpy.random.default_rng([s, i])``, so a case does not depend on how many cases are built, and:

1. Soft labels of the template: ``(other, GM, WM) = (1 - GM - WM, GM, WM)`` (other is background, CSF and
   whatever is neither tissue; clipped at 0 and renormalised where rounding made GM + WM exceed 1).
2. Deformation: the output voxel ``v`` samples the template at ``A (v - c) + c + t + u(v)`` (voxel units), with
   ``c`` the grid centre, ``A`` a rotation of at most ``MAX_ROTATION_DEG`` about each axis times an isotropic
   scale in ``SCALE_RANGE``, ``t`` a shift of at most ``MAX_SHIFT_MM``, and ``u`` a smooth random displacement:
   a cubic B-spline with control points every ``ELASTIC_SPACING_MM`` whose coefficients are normal with
   standard deviation ``ELASTIC_STD_MM``. The T1 image, the GM and WM maps and the brain mask are all
   warped by the same map with trilinear interpolation (zero outside the template); the warped "other" is
   ``1 - GM - WM`` (trilinear weights are convex, so this equals the warped "other" channel).
3. Hard labels: ``argmax`` over the warped soft labels (0 other, 1 GM, 2 WM; ties go to the lower label), not a
   nearest-neighbour warp of template labels, so labels and soft labels of a case always agree.
4. Intensities, inside the warped brain mask only (the images stay skull-stripped, zero outside the brain):
   ``s = gain * bias(v) * t1(v) ** gamma`` with ``t1`` in [0, 1], ``gamma`` log-uniform in ``GAMMA_RANGE``,
   ``gain = 1000 * U(GAIN_RANGE)``, ``bias = exp(b)`` where ``b`` is a cubic B-spline field (control points
   every ``BIAS_SPACING_MM``, coefficients normal with standard deviation ``BIAS_STD``); then Rician noise,
   ``sqrt((s + n1)^2 + n2^2)`` with ``n1, n2 ~ N(0, (sigma * gain)^2)`` and ``sigma`` uniform in ``NOISE_RANGE``
   (as a fraction of the brightest template intensity).

Cases are split in order: the first ``num_cases - 2 n`` for training, then ``n`` validation and ``n`` test cases,
``n = max(1, round(3 * num_cases / 16))`` (16 cases: 10 / 3 / 3). Each case is written with the template
affine (RAS, 2 mm) as ``imagesTr/case_XXX.nii.gz`` (float32), ``labelsTr/case_XXX.nii.gz`` (uint8) and
``softlabelsTr/case_XXX.nii.gz`` (float32, shape ``(X, Y, Z, 3)``); ``datalist.json`` lists them MSD-style with
paths relative to the dataset folder (read it with ``monai.data.load_decathlon_datalist(path, True, "training",
base_dir=dataset_dir)``) and also records labels, class fractions, seed and licence.

Measured with the defaults (seed 0, 16 cases, one CPU core): the elastic part moves voxels by 2.9 mm RMS
(about 7 mm at most), local volume change 0.6-1.6x; classes other / GM / WM 78.5 / 13.8 / 7.7 % of voxels;
about 12 s to build, 64 MB on disk.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from monai.config import PathLike

from monai_nacl.data.files import build_atomically, save_nifti, write_json

__all__ = [
    "DEFAULT_NUM_CASES",
    "build_default_dataset",
    "default_dataset_dir",
    "ensure_default_dataset",
    "load_mni_template",
    "simulate_case",
    "split_sizes",
]

ASSETS = Path(__file__).resolve().parent / "assets"
TEMPLATE_ASSET = ASSETS / "mni152_2mm.npz"
LICENSE_ASSET = ASSETS / "MNI_LICENSE.txt"
DATALIST_NAME = "datalist.json"
LABEL_NAMES = {"0": "background/other", "1": "grey matter", "2": "white matter"}
DEFAULT_NUM_CASES = 16
DEFAULT_SEED = 0
# bump when the simulation changes: ensure_default_dataset rebuilds a cached dataset of another version
DATASET_VERSION = 2

MAX_ROTATION_DEG = 5.0
SCALE_RANGE = (0.94, 1.06)
MAX_SHIFT_MM = 4.0
ELASTIC_SPACING_MM = 30.0
ELASTIC_STD_MM = 5.0
GAMMA_RANGE = (0.9, 1.11)
GAIN_RANGE = (0.8, 1.2)
BIAS_SPACING_MM = 40.0
BIAS_STD = 0.15
NOISE_RANGE = (0.01, 0.025)


def default_dataset_dir() -> Path:
    """Folder of the default dataset: ``$MONAI_NACL_DATA`` if set, else ``~/.cache/monai_nacl/mni152_tissue``."""
    env = os.environ.get("MONAI_NACL_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "monai_nacl" / "mni152_tissue"


def load_mni_template() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The packaged template: ``(t1, soft_labels, affine)``.

    Returns:
        ``t1`` float64 ``(X, Y, Z)`` in [0, 1] (brain-masked); ``soft_labels`` float64 ``(X, Y, Z, 3)`` with
        channels (other, GM, WM) summing to 1; ``affine`` the 4x4 voxel-to-RAS-mm matrix.
    """
    with np.load(TEMPLATE_ASSET) as asset:
        t1 = asset["t1"].astype(np.float64) / 255.0
        gm = asset["gm"].astype(np.float64) / 255.0
        wm = asset["wm"].astype(np.float64) / 255.0
        affine = asset["affine"].astype(np.float64)
    tissue = gm + wm
    scale = np.where(tissue > 1.0, 1.0 / np.maximum(tissue, 1e-12), 1.0)
    gm, wm = gm * scale, wm * scale
    soft = np.stack([np.clip(1.0 - gm - wm, 0.0, 1.0), gm, wm], axis=-1)
    return t1, soft, affine


def split_sizes(num_cases: int) -> tuple[int, int, int]:
    """``(train, validation, test)`` counts: ``n = max(1, round(3 * num_cases / 16))`` each for validation and test.

    Raises:
        ValueError: if ``num_cases < 3`` (one case per split at least).
    """
    if num_cases < 3:
        raise ValueError(f"num_cases={num_cases}: the default dataset needs at least 3 cases (one per split).")
    held_out = max(1, round(3 * num_cases / 16))
    return num_cases - 2 * held_out, held_out, held_out


def _bspline_matrix(size: int, spacing: float) -> np.ndarray:
    """Cubic B-spline basis on ``size`` voxels with control points every ``spacing`` voxels: ``(size, n)``.

    The control lattice is centred on the grid and reaches one point beyond each end, so every voxel has its
    four supporting control points.
    """
    inner = int(np.ceil((size - 1) / spacing)) + 1
    start = -spacing - ((inner - 1) * spacing - (size - 1)) / 2
    control = start + spacing * np.arange(inner + 2)
    distance = np.abs(np.arange(size)[:, None] - control[None, :]) / spacing
    near = distance < 1
    far = (distance >= 1) & (distance < 2)
    basis = np.zeros_like(distance)
    basis[near] = 2.0 / 3.0 - distance[near] ** 2 + distance[near] ** 3 / 2.0
    basis[far] = (2.0 - distance[far]) ** 3 / 6.0
    return basis


def smooth_random_field(
    rng: np.random.Generator, shape: tuple[int, ...], spacing: float, std: float, channels: int = 1
) -> np.ndarray:
    """A smooth random field ``(channels, *shape)``: cubic B-spline with normal coefficients.

    Args:
        rng: random generator.
        shape: voxel grid of the field.
        spacing: distance between control points, in voxels.
        std: standard deviation of the B-spline coefficients (the field itself spreads about a third of it).
        channels: number of independent fields (3 for a displacement field).
    """
    bases = [_bspline_matrix(size, spacing) for size in shape]
    coefficients = rng.normal(0.0, std, size=(channels, *[b.shape[1] for b in bases]))
    field = coefficients
    for axis, basis in enumerate(bases):
        field = np.moveaxis(np.tensordot(field, basis, axes=([axis + 1], [1])), -1, axis + 1)
    return field


def _rotation(angles: np.ndarray) -> np.ndarray:
    """Rotation matrix about x, then y, then z (radians)."""
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def random_sampling_grid(rng: np.random.Generator, shape: tuple[int, int, int], voxel_mm: float) -> np.ndarray:
    """Template voxel coordinates ``(3, X, Y, Z)`` sampled by each output voxel: ``A (v - c) + c + t + u(v)``.

    See the module docstring for ``A``, ``t`` and ``u``; ``voxel_mm`` converts the mm settings to voxels.
    """
    angles = np.deg2rad(rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG, size=3))
    matrix = _rotation(angles) * rng.uniform(*SCALE_RANGE)
    shift = rng.uniform(-MAX_SHIFT_MM, MAX_SHIFT_MM, size=3) / voxel_mm
    elastic = smooth_random_field(rng, shape, ELASTIC_SPACING_MM / voxel_mm, ELASTIC_STD_MM / voxel_mm, channels=3)
    centre = (np.asarray(shape, dtype=np.float64) - 1) / 2
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij"))
    offsets = grid.reshape(3, -1) - centre[:, None]
    return (matrix @ offsets).reshape(grid.shape) + (centre + shift)[:, None, None, None] + elastic


def warp_trilinear(volume: np.ndarray, coordinates: np.ndarray) -> np.ndarray:
    """Sample ``volume`` ``(X, Y, Z, K)`` at voxel ``coordinates`` ``(3, *out)`` by trilinear interpolation.

    Outside the volume the value is 0: one voxel of zeros surrounds the volume and coordinates are clamped onto
    it. Computed in float32 (the weights of a sample sum to 1 within float32 rounding).
    """
    shape = np.asarray(volume.shape[:3])
    padded = np.zeros((*(shape + 2), volume.shape[3]), dtype=np.float32)
    padded[1:-1, 1:-1, 1:-1] = volume
    flat = padded.reshape(-1, volume.shape[3])
    points = np.clip(coordinates.reshape(3, -1), -1.0, (shape - 1e-4)[:, None]) + 1.0
    lower = np.floor(points)
    upper_weight = (points - lower).astype(np.float32)
    weights = ((1.0 - upper_weight), upper_weight)
    strides = ((shape[1] + 2) * (shape[2] + 2), shape[2] + 2, 1)
    base = lower.astype(np.int64).T @ np.asarray(strides, dtype=np.int64)
    out = np.zeros((points.shape[1], volume.shape[3]), dtype=np.float32)
    for dx, dy, dz in np.ndindex(2, 2, 2):
        corner_weight = weights[dx][0] * weights[dy][1] * weights[dz][2]
        out += corner_weight[:, None] * np.take(flat, base + (dx * strides[0] + dy * strides[1] + dz), axis=0)
    return out.reshape(*coordinates.shape[1:], volume.shape[3])


def simulate_case(
    rng: np.random.Generator, t1: np.ndarray, soft: np.ndarray, voxel_mm: float = 2.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One simulated case from the template (module docstring, steps 2-4).

    Args:
        rng: the case's random generator.
        t1: template T1 ``(X, Y, Z)`` in [0, 1], zero outside the brain.
        soft: template soft labels ``(X, Y, Z, 3)`` (other, GM, WM).
        voxel_mm: voxel size of the template, to convert the mm settings.

    Returns:
        ``(image float32 (X, Y, Z), label uint8 (X, Y, Z), soft_label float32 (X, Y, Z, 3))``.
    """
    coordinates = random_sampling_grid(rng, t1.shape, voxel_mm)
    stacked = np.stack([t1, (t1 > 0).astype(np.float64), soft[..., 1], soft[..., 2]], axis=-1)
    warped = warp_trilinear(stacked, coordinates)
    image, brain = warped[..., 0].astype(np.float64), warped[..., 1] >= 0.5
    tissue = np.clip(warped[..., 2:], 0.0, 1.0)
    soft_label = np.concatenate([np.clip(1.0 - tissue.sum(-1, keepdims=True), 0.0, 1.0), tissue], axis=-1)
    label = np.argmax(soft_label, axis=-1).astype(np.uint8)

    gamma = float(np.exp(rng.uniform(np.log(GAMMA_RANGE[0]), np.log(GAMMA_RANGE[1]))))
    gain = 1000.0 * rng.uniform(*GAIN_RANGE)
    bias = np.exp(smooth_random_field(rng, t1.shape, BIAS_SPACING_MM / voxel_mm, BIAS_STD)[0])
    signal = gain * bias * np.clip(image, 0.0, 1.0) ** gamma
    sigma = rng.uniform(*NOISE_RANGE) * gain
    real = signal + rng.normal(0.0, sigma, size=signal.shape)
    imaginary = rng.normal(0.0, sigma, size=signal.shape)
    image = np.where(brain, np.sqrt(real**2 + imaginary**2), 0.0)
    return image.astype(np.float32), label, soft_label.astype(np.float32)


def build_default_dataset(
    output_dir: PathLike | None = None,
    num_cases: int = DEFAULT_NUM_CASES,
    seed: int = DEFAULT_SEED,
    force: bool = False,
) -> str:
    """Build the default dataset (module docstring) into ``output_dir`` and return the path of its datalist.

    The build happens in a temporary sibling folder that is renamed to ``output_dir`` at the end, so an
    interrupted build never leaves a partial dataset. Same ``seed`` and ``num_cases``: byte-identical files.

    Args:
        output_dir: dataset folder; ``None`` means :func:`default_dataset_dir`.
        num_cases: cohort size (at least 3); default 16 = 10 training / 3 validation / 3 test.
        seed: seed of the cohort.
        force: replace an existing non-empty ``output_dir``.

    Raises:
        FileExistsError: if ``output_dir`` is not empty and ``force`` is false.
        ValueError: if ``num_cases < 3``.
    """
    n_train, n_val, _ = split_sizes(num_cases)
    output_dir = Path(output_dir).expanduser() if output_dir is not None else default_dataset_dir()
    t1, soft, affine = load_mni_template()
    voxel_mm = float(np.linalg.norm(affine[:3, 0]))
    entries: list[dict[str, str]] = []
    counts = np.zeros(3, dtype=np.int64)
    with build_atomically(output_dir, force=force) as staging:
        for index in range(num_cases):
            image, label, soft_label = simulate_case(np.random.default_rng([seed, index]), t1, soft, voxel_mm)
            name = f"case_{index:03d}.nii.gz"
            entry = {"image": f"imagesTr/{name}", "label": f"labelsTr/{name}", "soft_label": f"softlabelsTr/{name}"}
            save_nifti(image, affine, staging / entry["image"])
            save_nifti(label, affine, staging / entry["label"])
            save_nifti(soft_label, affine, staging / entry["soft_label"])
            counts += np.bincount(label.ravel(), minlength=3)
            entries.append(entry)
        shutil.copyfile(LICENSE_ASSET, staging / "LICENSE.txt")
        datalist: dict[str, Any] = {
            "name": "mni152_tissue",
            "version": DATASET_VERSION,
            "description": "Grey/white matter on a cohort simulated from the MNI ICBM152 2009a template "
            "(random smooth deformations, bias field, gamma, Rician noise); built by monai_nacl.data",
            "reference": "Fonov et al., NeuroImage 47 (2009) S102 and 54(1) (2011) 313-327",
            "licence": "MNI/McGill notice, see LICENSE.txt",
            "tensorImageSize": "3D",
            "modality": {"0": "T1"},
            "labels": LABEL_NAMES,
            "seed": seed,
            "numCases": num_cases,
            "class_fractions": {LABEL_NAMES[str(k)]: round(float(c / counts.sum()), 4) for k, c in enumerate(counts)},
            "training": entries[:n_train],
            "validation": entries[n_train : n_train + n_val],
            "test": entries[n_train + n_val :],
        }
        write_json(datalist, staging / DATALIST_NAME)
    return str(output_dir / DATALIST_NAME)


def ensure_default_dataset(dataset_dir: PathLike | None = None) -> str:
    """Path of the default dataset's ``datalist.json``, building the dataset first if it is absent.

    A default dataset built by an older version of the simulation (``version`` in its datalist differs from
    ``DATASET_VERSION``) is rebuilt in place with its cohort size and seed; any other datalist is used as is.

    Args:
        dataset_dir: dataset folder; ``None`` means :func:`default_dataset_dir` (env ``MONAI_NACL_DATA``).

    Raises:
        ValueError: if ``dataset_dir`` exists, is not empty and holds no ``datalist.json`` (not a dataset built
            here): point ``MONAI_NACL_DATA``/``dataset_dir`` elsewhere or rebuild with
            ``python -m monai_nacl.data build-default --output DIR --force``.
    """
    folder = Path(dataset_dir).expanduser() if dataset_dir is not None else default_dataset_dir()
    datalist = folder / DATALIST_NAME
    if datalist.is_file():
        built = json.loads(datalist.read_text(encoding="utf-8"))
        if built.get("name") != "mni152_tissue" or built.get("version") == DATASET_VERSION:
            return str(datalist)
        # an older build of this cache: same cohort size and seed, current simulation
        return build_default_dataset(folder, built.get("numCases", DEFAULT_NUM_CASES), built.get("seed", 0), force=True)
    try:
        return build_default_dataset(folder)
    except FileExistsError as error:
        if datalist.is_file():
            return str(datalist)
        raise ValueError(
            f"{folder} is not empty but holds no {DATALIST_NAME}, so it is not a default dataset; choose another "
            f"folder (env MONAI_NACL_DATA or dataset_dir) or rebuild it with "
            f"'python -m monai_nacl.data build-default --output {folder} --force'."
        ) from error
