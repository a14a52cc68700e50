"""Shared test settings: deterministic, single-threaded torch so parallel workers do not oversubscribe."""

from __future__ import annotations

import os

os.environ.setdefault("MONAI_NACL_DATA", os.path.join(os.path.dirname(__file__), "..", ".cache", "test_data"))

import torch

torch.set_num_threads(1)
