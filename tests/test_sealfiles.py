"""`covey.sealfiles.atomic_output`: a file appears whole, or not at all, and
nothing is replaced unless asked (review of `covey get`, 2026-12-03)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from covey.errors import InvalidArgument
from covey.sealfiles import atomic_output


def test_the_file_appears_only_when_the_block_ends_cleanly(tmp_path: Path) -> None:
    target = tmp_path / "out.covey"

    def interrupted() -> None:
        with atomic_output(target, False) as out:
            out.write(b"half")
            raise RuntimeError

    with pytest.raises(RuntimeError):
        interrupted()
    assert list(tmp_path.iterdir()) == []  # (no temporary left either)
    with atomic_output(target, False) as out:
        out.write(b"whole")
    assert target.read_bytes() == b"whole"
    assert target.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["out.covey"]


def test_a_file_that_appears_meanwhile_is_not_replaced(tmp_path: Path) -> None:
    target = tmp_path / "photo.covey"

    def download() -> None:
        with atomic_output(target, False) as out:
            out.write(b"from the relay")
            target.write_bytes(b"written meanwhile")  # (a second get, another program)

    with pytest.raises(InvalidArgument, match="exists"):
        download()
    assert target.read_bytes() == b"written meanwhile"
    assert [p.name for p in tmp_path.iterdir()] == ["photo.covey"]


def test_a_dangling_symlink_counts_as_something_there(tmp_path: Path) -> None:
    target = tmp_path / "photo.covey"
    os.symlink(tmp_path / "nowhere", target)
    with pytest.raises(InvalidArgument, match="exists"), atomic_output(target, False):
        pass
    assert target.is_symlink()
    # Asked to, it replaces the link itself (never writes through it).
    with atomic_output(target, True) as out:
        out.write(b"new")
    assert not target.is_symlink()
    assert not (tmp_path / "nowhere").exists()
    assert target.read_bytes() == b"new"
