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
3. Hard labels: ``argmax`` over the warped soft labels ``q`` (0 other, 1 GM, 2 WM; ties go to the lower label), not
   a nearest-neighbour warp of template labels, so labels and soft labels of a case always agree.
4. Intensities, inside the warped brain mask only (the images stay skull-stripped, zero outside the brain):
   ``s = gain * bias(v) * t1(v) ** gamma`` with ``t1`` in [0, 1], ``gamma`` log-uniform in ``gamma_range``,
   ``gain = 1000 * U(gain_range)``, ``bias = exp(b)`` where ``b`` is a cubic B-spline field (control points
   every ``BIAS_SPACING_MM``, coefficients normal with standard deviation ``bias_std``); then Rician noise,
   ``sqrt((s + n1)^2 + n2^2)`` with ``n1, n2 ~ N(0, (sigma * gain)^2)`` and ``sigma`` uniform in ``noise_range``
   (as a fraction of the brightest template intensity). The ranges are those of an :class:`Acquisition`.

Two variants share steps 1, 2 and 4 (``variant=``):

- ``"raters"`` (the default): labels as manual annotation makes them, and a test split from another scanner.

  5. Annotation. Rater ``r`` of case ``i`` (generator ``default_rng([s, i, RATER_STREAM, r])``, ``r = 1, 2, ...``)
     draws ``y_r(v) = argmax_k (q_k(v + w_r(v)) + b_{r,k})`` from the case's tissue maps ``q``: ``w_r`` is a smooth
     displacement of the decision boundary (cubic B-spline, control points every ``displacement_spacing_mm``,
     coefficients normal with standard deviation ``displacement_std_mm``, sampled trilinearly), and
     ``b_r = (0, b_GM, b_WM)`` with ``b ~ N(0, threshold_std^2)`` is the rater's threshold shift, which draws one
     tissue generously and the other sparingly all over the case (:class:`RaterModel`). This is the rater model of
     Warfield, Zou and Wells (STAPLE, IEEE TMI 23(7), 2004; Phil. Trans. R. Soc. A 366, 2008): raters differ by a
     systematic bias of the boundary position plus a spatially varying error. Its size is set to what delineation
     studies report: a per-rater boundary deviation of about 1-3 mm (head-and-neck organs: 3D standard deviation
     of about 0.9-2.6 mm among five radiation oncologists, Brouwer et al., Radiat. Oncol. 7:32, 2012), so that two
     raters' boundaries lie about one voxel (2 mm) apart on average; the overlap between two radiologists varies
     by about 9 % (kidney) to 21 % (lung tumours) of the volume (Joskowicz et al., Eur. Radiol. 29(3), 2019).
     Grey matter is a ribbon about two voxels thick at 2 mm, so the same boundary error costs it more Dice than
     it costs a bulky organ.
  6. Labels: training and validation cases carry rater 1 only (``label``). Test cases carry ``test_raters``
     independent raters (``label_raters``, rater 1 first and also ``label``), for the inter-rater Dice (the
     ceiling of any test Dice) and the soft reference ``mean_r onehot(y_r)`` (:mod:`monai_nacl.data.raters`).
  7. Acquisition: training and validation cases use ``TRAINING_ACQUISITION``; test cases ``TEST_ACQUISITION``,
     a held-out scanner with about twice the noise (3-5 % instead of 1-2.5 %), a stronger bias field (coefficient
     standard deviation 0.25 instead of 0.15) and a wider contrast range (gamma 0.8-1.25 instead of 0.9-1.11).

  Case ``i``'s image draws the same numbers in both variants, so training and validation images equal those of the
  deterministic variant; the test images differ only by their acquisition ranges.
- ``"deterministic"``: the label is the hard label of step 3 (no rater), every case uses
  ``TRAINING_ACQUISITION``, and the files are byte-identical to those of version 2 of this dataset: the
  ambiguity-free task, kept so results on it stay reproducible.

Splits: cases are split in order (training, validation, test). ``split=(n_train, n_val, n_test)`` sets the counts;
``num_cases`` alone scales the variant's default split (``DEFAULT_SPLITS``: raters 10 / 4 / 8, deterministic
10 / 3 / 3) by :func:`split_sizes`. Each case is written with the template affine (RAS, 2 mm) as
``imagesTr/case_XXX.nii.gz`` (float32), ``labelsTr/case_XXX.nii.gz`` (uint8, rater 1 in the raters variant),
``softlabelsTr/case_XXX.nii.gz`` (float32, ``(X, Y, Z, 3)``: the tissue maps ``q`` the raters draw from) and, for
raters ``r >= 2`` of a test case, ``labelsRatersTs/case_XXX_rater{r}.nii.gz``; ``datalist.json`` lists them
MSD-style with paths relative to the dataset folder (read it with ``monai.data.load_decathlon_datalist(path, True,
"training", base_dir=dataset_dir)``) and records labels, class fractions, seed, licence and, for the raters variant,
the split, the rater model, the acquisitions and the mean inter-rater Dice per class.

Measured with the defaults (seed 0, one CPU core): the elastic part moves voxels by 2.9 mm RMS (about 7 mm at
most), local volume change 0.6-1.6x. Deterministic (16 cases): classes other / GM / WM 78.5 / 13.8 / 7.7 % of
voxels; about 11 s of CPU to build, 64 MB on disk. Raters (22 cases, 3 raters per test case): about 25 s of CPU,
87 MB; classes 78.7 / 13.7 / 7.6 % (rater-1 labels); between two raters of a test case 26 % of the tissue voxels are
relabelled, boundaries lie 0.80 (GM) / 0.84 (WM) voxels apart (mean symmetric surface distance) and the inter-rater
Dice is 0.79 (GM) / 0.77 (WM); relative white-matter noise 1.3-2.9 % in training and validation images, 3.8-5.9 %
in test images (``docs/default_dataset.md``).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from monai.config import PathLike

from monai_nacl.data.files import build_atomically, save_nifti, write_json
from monai_nacl.data.raters import RATERS_KEY, pairwise_dice

__all__ = [
    "DEFAULT_NUM_CASES",
    "DEFAULT_SPLITS",
    "DEFAULT_VARIANT",
    "TEST_ACQUISITION",
    "TRAINING_ACQUISITION",
    "VARIANTS",
    "Acquisition",
    "RaterModel",
    "build_default_dataset",
    "default_dataset_dir",
    "draw_rater_label",
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
VARIANTS = ("raters", "deterministic")
DEFAULT_VARIANT = "raters"
# bump a variant's version when its simulation changes: ensure_default_dataset rebuilds a cache of another version
DATASET_VERSIONS = {"deterministic": 2, "raters": 3}
DEFAULT_SPLITS = {"raters": (10, 4, 8), "deterministic": (10, 3, 3)}
DEFAULT_NUM_CASES = sum(DEFAULT_SPLITS[DEFAULT_VARIANT])
DEFAULT_SEED = 0
DEFAULT_TEST_RATERS = 3
# third word of a rater's seed: [seed, case] alone is the case's own stream (numpy pads short seeds with zeros)
RATER_STREAM = 1

MAX_ROTATION_DEG = 5.0
SCALE_RANGE = (0.94, 1.06)
MAX_SHIFT_MM = 4.0
ELASTIC_SPACING_MM = 30.0
ELASTIC_STD_MM = 5.0
BIAS_SPACING_MM = 40.0


@dataclass(frozen=True)
class Acquisition:
    """Ranges of the intensity model (module docstring, step 4) from which each case draws its own values.

    Attributes:
        gamma_range: ``gamma`` is log-uniform in this range (contrast).
        gain_range: ``gain / 1000`` is uniform in this range.
        bias_std: standard deviation of the B-spline coefficients of the log bias field.
        noise_range: Rician ``sigma`` is uniform in this range, as a fraction of ``gain``.
    """

    gamma_range: tuple[float, float]
    gain_range: tuple[float, float]
    bias_std: float
    noise_range: tuple[float, float]


TRAINING_ACQUISITION = Acquisition(
    gamma_range=(0.9, 1.11), gain_range=(0.8, 1.2), bias_std=0.15, noise_range=(0.01, 0.025)
)
TEST_ACQUISITION = Acquisition(gamma_range=(0.8, 1.25), gain_range=(0.8, 1.2), bias_std=0.25, noise_range=(0.03, 0.05))


@dataclass(frozen=True)
class RaterModel:
    """How a simulated rater draws a label from a case's tissue maps (module docstring, step 5).

    Attributes:
        displacement_std_mm: standard deviation of the B-spline coefficients of the rater's boundary displacement
            ``w_r``, in mm (the field itself spreads about a third of it per axis).
        displacement_spacing_mm: distance between the control points of ``w_r``, in mm (how local the errors are).
        threshold_std: standard deviation of the rater's threshold shifts ``b_GM`` and ``b_WM`` (probability units).
    """

    displacement_std_mm: float = 5.0
    displacement_spacing_mm: float = 16.0
    threshold_std: float = 0.05


DEFAULT_RATER_MODEL = RaterModel()


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


def split_sizes(num_cases: int, variant: str = DEFAULT_VARIANT) -> tuple[int, int, int]:
    """``(train, validation, test)`` counts of ``num_cases``, in the proportions of the variant's default split.

    With ``(t, v, e) = DEFAULT_SPLITS[variant]``: ``n_val = max(1, round(v * num_cases / (t + v + e)))``, ``n_test``
    likewise, training the rest (deterministic, 16 cases: 10 / 3 / 3; raters, 22 cases: 10 / 4 / 8).

    Raises:
        ValueError: if ``num_cases < 3`` (one case per split at least) or ``variant`` is unknown.
    """
    _check_variant(variant)
    if num_cases < 3:
        raise ValueError(f"num_cases={num_cases}: the default dataset needs at least 3 cases (one per split).")
    default = DEFAULT_SPLITS[variant]
    n_val, n_test = (max(1, round(held * num_cases / sum(default))) for held in default[1:])
    return num_cases - n_val - n_test, n_val, n_test


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"variant={variant!r} is not one of {VARIANTS}; 'raters' is the default dataset.")


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
    rng: np.random.Generator,
    t1: np.ndarray,
    soft: np.ndarray,
    voxel_mm: float = 2.0,
    acquisition: Acquisition = TRAINING_ACQUISITION,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One simulated case from the template (module docstring, steps 2-4).

    Args:
        rng: the case's random generator.
        t1: template T1 ``(X, Y, Z)`` in [0, 1], zero outside the brain.
        soft: template soft labels ``(X, Y, Z, 3)`` (other, GM, WM).
        voxel_mm: voxel size of the template, to convert the mm settings.
        acquisition: ranges of the intensity model; the same ``rng`` draws the same quantiles in any of them.

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

    gamma_range, noise_range = acquisition.gamma_range, acquisition.noise_range
    gamma = float(np.exp(rng.uniform(np.log(gamma_range[0]), np.log(gamma_range[1]))))
    gain = 1000.0 * rng.uniform(*acquisition.gain_range)
    bias = np.exp(smooth_random_field(rng, t1.shape, BIAS_SPACING_MM / voxel_mm, acquisition.bias_std)[0])
    signal = gain * bias * np.clip(image, 0.0, 1.0) ** gamma
    sigma = rng.uniform(*noise_range) * gain
    real = signal + rng.normal(0.0, sigma, size=signal.shape)
    imaginary = rng.normal(0.0, sigma, size=signal.shape)
    image = np.where(brain, np.sqrt(real**2 + imaginary**2), 0.0)
    return image.astype(np.float32), label, soft_label.astype(np.float32)


def draw_rater_label(
    rng: np.random.Generator, soft_label: np.ndarray, voxel_mm: float = 2.0, model: RaterModel = DEFAULT_RATER_MODEL
) -> np.ndarray:
    """One rater's label of a case: ``argmax_k (q_k(v + w(v)) + b_k)`` (module docstring, step 5).

    Args:
        rng: the rater's random generator.
        soft_label: the case's tissue maps ``q`` ``(X, Y, Z, 3)`` (other, GM, WM), as :func:`simulate_case` returns.
        voxel_mm: voxel size, to convert the mm settings of ``model``.
        model: the rater's displacement and threshold-shift sizes.

    Returns:
        uint8 ``(X, Y, Z)`` label (0 other, 1 GM, 2 WM; ties go to the lower label).
    """
    shape = soft_label.shape[:3]
    displacement = smooth_random_field(
        rng, shape, model.displacement_spacing_mm / voxel_mm, model.displacement_std_mm / voxel_mm, channels=3
    )
    shift = rng.normal(0.0, model.threshold_std, size=2)
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij"))
    tissue = np.clip(warp_trilinear(soft_label[..., 1:], grid + displacement), 0.0, 1.0)
    other = np.clip(1.0 - tissue.sum(-1, keepdims=True), 0.0, 1.0)
    return np.argmax(np.concatenate([other, tissue + shift.astype(np.float32)], axis=-1), axis=-1).astype(np.uint8)


def _rater_rng(seed: int, index: int, rater: int) -> np.random.Generator:
    return np.random.default_rng([seed, index, RATER_STREAM, rater])


def _resolve_split(num_cases: int | None, split: Sequence[int] | None, variant: str) -> tuple[int, int, int]:
    if split is None:
        return DEFAULT_SPLITS[variant] if num_cases is None else split_sizes(num_cases, variant)
    counts = tuple(int(n) for n in split)
    if len(counts) != 3 or min(counts) < 1:
        raise ValueError(f"split={tuple(split)}: give three counts (train, validation, test), each at least 1.")
    if num_cases is not None and num_cases != sum(counts):
        raise ValueError(f"num_cases={num_cases} but split={counts} sums to {sum(counts)}; give one or the other.")
    return counts  # type: ignore[return-value]


def build_default_dataset(
    output_dir: PathLike | None = None,
    num_cases: int | None = None,
    seed: int = DEFAULT_SEED,
    force: bool = False,
    variant: str = DEFAULT_VARIANT,
    split: Sequence[int] | None = None,
    test_raters: int = DEFAULT_TEST_RATERS,
    rater_model: RaterModel = DEFAULT_RATER_MODEL,
) -> str:
    """Build the default dataset (module docstring) into ``output_dir`` and return the path of its datalist.

    The build happens in a temporary sibling folder that is renamed to ``output_dir`` at the end, so an
    interrupted build never leaves a partial dataset. Same arguments: byte-identical files.

    Args:
        output_dir: dataset folder; ``None`` means :func:`default_dataset_dir`.
        num_cases: cohort size (at least 3), split by :func:`split_sizes`; ``None``: the variant's default split.
        seed: seed of the cohort.
        force: replace an existing non-empty ``output_dir``.
        variant: ``"raters"`` (simulated annotation, multi-rater test split from another scanner) or
            ``"deterministic"`` (label = argmax of the tissue maps, one acquisition; version 2 files).
        split: ``(train, validation, test)`` counts, instead of ``num_cases``.
        test_raters: raters per test case (at least 2; raters variant only).
        rater_model: sizes of the raters' errors (raters variant only).

    Raises:
        FileExistsError: if ``output_dir`` is not empty and ``force`` is false.
        ValueError: if ``num_cases < 3``, ``split`` is not three positive counts (or disagrees with ``num_cases``),
            ``variant`` is unknown, or ``test_raters < 2``.
    """
    _check_variant(variant)
    n_train, n_val, n_test = _resolve_split(num_cases, split, variant)
    raters = variant == "raters"
    if raters and test_raters < 2:
        raise ValueError(f"test_raters={test_raters}: the inter-rater Dice needs at least 2 raters per test case.")
    num_cases = n_train + n_val + n_test
    output_dir = Path(output_dir).expanduser() if output_dir is not None else default_dataset_dir()
    t1, soft, affine = load_mni_template()
    voxel_mm = float(np.linalg.norm(affine[:3, 0]))
    entries: list[dict[str, Any]] = []
    counts = np.zeros(3, dtype=np.int64)
    test_dice = []
    with build_atomically(output_dir, force=force) as staging:
        for index in range(num_cases):
            is_test = index >= n_train + n_val
            acquisition = TEST_ACQUISITION if raters and is_test else TRAINING_ACQUISITION
            image, label, soft_label = simulate_case(
                np.random.default_rng([seed, index]), t1, soft, voxel_mm, acquisition
            )
            stem = f"case_{index:03d}"
            name = f"{stem}.nii.gz"
            entry: dict[str, Any] = {
                "image": f"imagesTr/{name}",
                "label": f"labelsTr/{name}",
                "soft_label": f"softlabelsTr/{name}",
            }
            save_nifti(image, affine, staging / entry["image"])
            save_nifti(soft_label, affine, staging / entry["soft_label"])
            if raters:
                drawn = [
                    draw_rater_label(_rater_rng(seed, index, r), soft_label, voxel_mm, rater_model)
                    for r in range(1, 1 + (test_raters if is_test else 1))
                ]
                label = drawn[0]
                if is_test:
                    extra = [f"labelsRatersTs/{stem}_rater{r}.nii.gz" for r in range(2, 1 + test_raters)]
                    for file, drawn_label in zip(extra, drawn[1:]):
                        save_nifti(drawn_label, affine, staging / file)
                    entry[RATERS_KEY] = [entry["label"], *extra]
                    test_dice.append(pairwise_dice(drawn, 3))
            save_nifti(label, affine, staging / entry["label"])
            counts += np.bincount(label.ravel(), minlength=3)
            entries.append(entry)
        shutil.copyfile(LICENSE_ASSET, staging / "LICENSE.txt")
        write_json(
            _datalist(entries, (n_train, n_val, n_test), counts, seed, variant, test_dice, test_raters, rater_model),
            staging / DATALIST_NAME,
        )
    return str(output_dir / DATALIST_NAME)


def _datalist(
    entries: list[dict[str, Any]],
    split: tuple[int, int, int],
    counts: np.ndarray,
    seed: int,
    variant: str,
    test_dice: list[np.ndarray],
    test_raters: int,
    rater_model: RaterModel,
) -> dict[str, Any]:
    """The datalist of a build; the deterministic variant's keys and order are those of version 2 (same bytes)."""
    n_train, n_val, _ = split
    raters = variant == "raters"
    description = (
        "Grey/white matter on a cohort simulated from the MNI ICBM152 2009a template "
        "(random smooth deformations, bias field, gamma, Rician noise); built by monai_nacl.data"
    )
    if raters:
        description += (
            "; labels drawn by simulated raters (smooth boundary displacement and threshold shift), several raters "
            "per test case, test cases from a noisier acquisition with a stronger bias field"
        )
    datalist: dict[str, Any] = {
        "name": "mni152_tissue",
        "version": DATASET_VERSIONS[variant],
        "description": description,
        "reference": "Fonov et al., NeuroImage 47 (2009) S102 and 54(1) (2011) 313-327",
        "licence": "MNI/McGill notice, see LICENSE.txt",
        "tensorImageSize": "3D",
        "modality": {"0": "T1"},
        "labels": LABEL_NAMES,
        "seed": seed,
        "numCases": len(entries),
    }
    if raters:
        datalist["variant"] = variant
        datalist["split"] = list(split)
        datalist["raters"] = {"test_raters": test_raters, "training_raters": 1, "model": asdict(rater_model)}
        datalist["acquisition"] = {
            "training": asdict(TRAINING_ACQUISITION),
            "validation": asdict(TRAINING_ACQUISITION),
            "test": asdict(TEST_ACQUISITION),
        }
        mean_dice = np.mean(test_dice, axis=0)
        datalist["inter_rater_dice"] = {LABEL_NAMES[str(k)]: round(float(d), 4) for k, d in zip((1, 2), mean_dice)}
    fractions = {LABEL_NAMES[str(k)]: round(float(c / counts.sum()), 4) for k, c in enumerate(counts)}
    datalist["class_fractions"] = fractions
    datalist["training"] = entries[:n_train]
    datalist["validation"] = entries[n_train : n_train + n_val]
    datalist["test"] = entries[n_train + n_val :]
    return datalist


def ensure_default_dataset(dataset_dir: PathLike | None = None, variant: str = DEFAULT_VARIANT) -> str:
    """Path of the default dataset's ``datalist.json``, building the dataset first if it is absent.

    A default dataset of another variant, or built by another version of the variant's simulation (``variant``
    and ``version`` in its datalist; a datalist without ``variant`` is a deterministic one), is rebuilt in place
    as ``variant`` with its seed, and with its split when the variant is the same (else the variant's default
    split); any other datalist is used as is.

    Args:
        dataset_dir: dataset folder; ``None`` means :func:`default_dataset_dir` (env ``MONAI_NACL_DATA``).
        variant: the variant wanted, ``"raters"`` (default) or ``"deterministic"``.

    Raises:
        ValueError: if ``variant`` is unknown, or ``dataset_dir`` exists, is not empty and holds no
            ``datalist.json`` (not a dataset built here): point ``MONAI_NACL_DATA``/``dataset_dir`` elsewhere or
            rebuild with ``python -m monai_nacl.data build-default --output DIR --force``.
    """
    _check_variant(variant)
    folder = Path(dataset_dir).expanduser() if dataset_dir is not None else default_dataset_dir()
    datalist = folder / DATALIST_NAME
    if datalist.is_file():
        built = json.loads(datalist.read_text(encoding="utf-8"))
        built_variant = built.get("variant", "deterministic")
        if built.get("name") != "mni152_tissue" or (
            built_variant == variant and built.get("version") == DATASET_VERSIONS[variant]
        ):
            return str(datalist)
        seed = built.get("seed", DEFAULT_SEED)
        if built_variant != variant:
            return build_default_dataset(folder, seed=seed, force=True, variant=variant)
        if built.get("split") is not None:
            return build_default_dataset(folder, seed=seed, force=True, variant=variant, split=built["split"])
        num_cases = built.get("numCases", sum(DEFAULT_SPLITS[variant]))
        return build_default_dataset(folder, num_cases, seed, force=True, variant=variant)
    try:
        return build_default_dataset(folder, variant=variant)
    except FileExistsError as error:
        if datalist.is_file():
            return str(datalist)
        raise ValueError(
            f"{folder} is not empty but holds no {DATALIST_NAME}, so it is not a default dataset; choose another "
            f"folder (env MONAI_NACL_DATA or dataset_dir) or rebuild it with "
            f"'python -m monai_nacl.data build-default --output {folder} --force'."
        ) from error
