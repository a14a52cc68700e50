"""Keep a request's extra items out of the way of MONAI's spatial transforms.

MONAI 1.6.1's ``Spacingd`` treats every item named ``<key>_...`` as a meta dictionary of ``key`` and updates it
with the image's metadata; a string there fails (``'str' object has no attribute 'update'``). MONAI Label's
``BundleInferTask`` puts exactly such an item into every request, ``image_path`` (the image's file, which its
writer reads back for the output's extension). :class:`SetAsided` moves these items under one key that no spatial
transform reads, :class:`RestoreAsided` puts them back afterwards.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform

__all__ = ["ASIDE_KEY", "RestoreAsided", "SetAsided"]

ASIDE_KEY = "_set_aside"
"""Where :class:`SetAsided` keeps the items it moves (a name that starts with no image key)."""


class SetAsided(MapTransform):
    """Move the items ``<key>_<anything>`` of each ``key`` that are not dictionaries under :data:`ASIDE_KEY`.

    Meta dictionaries (``image_meta_dict``, a dictionary) stay, as the spatial transforms update them.

    Args:
        keys: the images the spatial transforms will process (``image``).
        aside_key: where the moved items are kept until :class:`RestoreAsided`.
    """

    def __init__(self, keys: KeysCollection, aside_key: str = ASIDE_KEY) -> None:
        super().__init__(keys, allow_missing_keys=True)
        self.aside_key = aside_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        prefixes = tuple(f"{key}_" for key in self.keys)
        moved = {
            k: v for k, v in d.items() if isinstance(k, str) and k.startswith(prefixes) and not isinstance(v, Mapping)
        }
        if moved:
            d[self.aside_key] = {**d.get(self.aside_key, {}), **moved}
            for k in moved:
                del d[k]
        return d


class RestoreAsided(Transform):
    """Put back the items :class:`SetAsided` moved (an item of that name written since is not replaced).

    Args:
        aside_key: the key :class:`SetAsided` used.
    """

    def __init__(self, aside_key: str = ASIDE_KEY) -> None:
        self.aside_key = aside_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for k, v in d.pop(self.aside_key, {}).items():
            d.setdefault(k, v)
        return d
