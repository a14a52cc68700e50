"""monai_nacl.utils: atomic writes, yes/no options, plain tensors."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import torch
from monai.data import MetaTensor

from monai_nacl.utils import as_flag, atomic_write, atomic_write_text, plain_tensor


def test_atomic_write_replaces_whole_file_or_nothing(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "summary.json"
    atomic_write_text(target, '{"old": 1}')

    def broken(tmp: str) -> None:
        Path(tmp).write_text('{"new": ')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, broken)
    assert json.loads(target.read_text()) == {"old": 1}
    assert [p.name for p in target.parent.iterdir()] == ["summary.json"]
    atomic_write(target, lambda tmp: Path(tmp).write_text('{"new": 2}'))
    assert json.loads(target.read_text()) == {"new": 2}


def test_as_flag_reads_command_line_words() -> None:
    """`--check_data false` reaches the config as the string 'false', which Python would take as true."""
    for value in (True, 1, "true", "True", "YES", " on "):
        assert as_flag(value, "check_data") is True
    for value in (False, 0, "false", "False", "no", "OFF", "0"):
        assert as_flag(value, "check_data") is False
    for value in ("maybe", "", 2, None):
        with pytest.raises(ValueError, match="--resume .* is not a yes/no value; pass --resume true or --resume false"):
            as_flag(value, "resume")


def test_plain_tensor_drops_metadata_and_keeps_the_graph() -> None:
    x = torch.ones(2, 3, requires_grad=True)
    meta = MetaTensor(x * 2, affine=torch.eye(4))
    plain = plain_tensor(meta)
    assert type(plain) is torch.Tensor and plain.grad_fn is not None
    assert plain.data_ptr() == meta.data_ptr()  # a view of the same storage, not a copy
    plain.sum().backward()
    torch.testing.assert_close(x.grad, torch.full((2, 3), 2.0))
    assert plain_tensor(x) is x
    assert type(plain_tensor([1, 2])) is torch.Tensor


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_write_honours_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    """Results are as readable as a plain ``open`` makes them (the temporary file alone would be ``0o600``)."""
    old = os.umask(umask)
    try:
        written = atomic_write_text(tmp_path / "metrics.csv", "case,dice\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(written.stat().st_mode) == mode
