"""Disk blocks are reserved for an announced download without changing the partial's size.

A disk too small for the announced length is covered by tests/reliability (a real small
tmpfs): provoking ENOSPC here would fill the shared disk for a moment -- ext4 allocates what
it can before it fails.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from omnihub._partial import _preallocate

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="fallocate(FALLOC_FL_KEEP_SIZE) is Linux-only"
)

MiB = 1 << 20


def _allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def test_blocks_are_reserved_and_the_size_still_counts_bytes_received(tmp_path: Path) -> None:
    path = tmp_path / "model.fb.incomplete"
    with path.open("wb", buffering=0) as fh:
        fh.write(b"x" * 1000)
        _preallocate(fh.fileno(), 1000, 4 * MiB)
        if _allocated(path) < 4 * MiB:
            pytest.skip(f"the filesystem of {tmp_path} does not preallocate")
        assert os.stat(path).st_size == 1000  # resume relies on this
        fh.write(b"y" * 500)
    assert path.read_bytes() == b"x" * 1000 + b"y" * 500


def test_nothing_to_reserve_is_a_no_op(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    with path.open("wb", buffering=0) as fh:
        _preallocate(fh.fileno(), 0, 0)
        _preallocate(fh.fileno(), 10, -5)
    assert os.stat(path).st_size == 0
