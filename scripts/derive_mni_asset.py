"""Derive the small MNI152 asset that ``monai_nacl.data`` builds its default dataset from.

Run once, by a maintainer, where ``nilearn`` is installed (it is not a runtime dependency of the package)::

    python scripts/derive_mni_asset.py [--output monai_nacl/data/assets/mni152_2mm.npz]

Source: the MNI ICBM152 2009a nonlinear symmetric template shipped inside the nilearn wheel
(``nilearn/datasets/data/mni_icbm152_{t1,gm,wm}_tal_nlin_sym_09a_converted.nii.gz``: 197x233x189, 1 mm, RAS,
uint8; the T1 is brain-masked, GM/WM are tissue probabilities x255). Fonov et al., NeuroImage 2009 and 2011.

Derivation: every volume is averaged over non-overlapping 2x2x2 blocks (the trailing odd slice dropped), which
gives 98x116x94 voxels of 2 mm, and rounded back to uint8. A 2x2x2 block average is centred half a
1-mm voxel after the block's first voxel, so the new affine is ``diag(2, 2, 2)`` with the origin moved by
+0.5 mm on each axis. The volumes are written with ``numpy.savez_compressed`` as ``t1``, ``gm``, ``wm``
(uint8) and ``affine`` (float64, 4x4); about 0.7 MB. They are not cropped: the zeros outside the brain cost almost
nothing compressed (cropping to the brain saves 1 %), and the full field of view leaves room for the deformations.
The MNI/McGill notice travels beside the asset in ``MNI_LICENSE.txt``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nibabel as nib
import numpy as np

ASSET = Path(__file__).resolve().parents[1] / "monai_nacl" / "data" / "assets" / "mni152_2mm.npz"


def block_average(volume: np.ndarray, factor: int = 2) -> np.ndarray:
    """Mean over non-overlapping ``factor``^3 blocks, rounded to uint8 (trailing partial blocks dropped)."""
    shape = [s // factor for s in volume.shape]
    cut = volume[: shape[0] * factor, : shape[1] * factor, : shape[2] * factor].astype(np.float64)
    blocks = cut.reshape(shape[0], factor, shape[1], factor, shape[2], factor)
    return np.rint(blocks.mean(axis=(1, 3, 5))).clip(0, 255).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ASSET, help=f"npz to write (default {ASSET})")
    args = parser.parse_args()

    from nilearn.datasets import struct

    paths = {"t1": struct.MNI152_FILE_PATH, "gm": struct.GM_MNI152_FILE_PATH, "wm": struct.WM_MNI152_FILE_PATH}
    images = {name: nib.load(str(path)) for name, path in paths.items()}
    affine = images["t1"].affine
    for name, image in images.items():
        if not np.allclose(image.affine, affine) or image.shape != images["t1"].shape:
            raise ValueError(f"{paths[name]} does not share the T1 grid: {image.shape}, {image.affine.tolist()}")
    volumes = {name: block_average(np.asarray(image.dataobj)) for name, image in images.items()}
    new_affine = affine.copy()
    new_affine[:3, :3] = affine[:3, :3] * 2
    new_affine[:3, 3] = affine[:3, 3] + affine[:3, :3] @ np.full(3, 0.5)

    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.output, affine=new_affine, **volumes)
    print(
        f"wrote {args.output} ({args.output.stat().st_size / 1e6:.2f} MB): shape {volumes['t1'].shape}, "
        f"affine origin {new_affine[:3, 3].tolist()}, spacing {np.diag(new_affine)[:3].tolist()}"
    )


if __name__ == "__main__":
    main()
