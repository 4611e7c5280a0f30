"""Whole-file writes: the target is the old file or the new one, never a part, and no temporary file stays behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from colfill import atomic


def test_write_replaces_the_file_and_leaves_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "run.json"
    atomic.write_text(path, "old")
    atomic.write_bytes(path, b"new")
    assert path.read_bytes() == b"new"
    assert [p.name for p in path.parent.iterdir()] == ["run.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_its_temporary(tmp_path: Path) -> None:
    path = tmp_path / "day.parquet"
    atomic.write_text(path, "old")
    with pytest.raises(RuntimeError), atomic.replacing(path) as tmp:
        tmp.write_text("half")
        assert tmp.parent == path.parent and tmp.name.startswith(".")
        raise RuntimeError("writer died")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["day.parquet"]
