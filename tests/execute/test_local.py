"""The local executor's stage graph: any number of shards and workers stages the same days as one enrich of each."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from colfill.errors import InvalidArgument
from colfill.execute import graph, open_executor
from tests.pipeline.conftest import assert_frames_close, stored

from .conftest import assert_same_lake, backfill


def test_shards_split_by_a_stable_hash_and_keep_order() -> None:
    frame = pl.DataFrame({"ticker": ["A", "A", "B", "C", "C", "NA"], "x": [1, 2, 3, 4, 5, 6]})
    parts = graph.split(frame, 3)
    assert sum(p.height for p in parts) == frame.height
    for k, part in enumerate(parts):
        assert all(graph.shard_of(t, 3) == k for t in part["ticker"])
        assert part["x"].is_sorted()
    assert graph.shard_of("AAPL", 8) == 4  # CRC-32: the same in every process, on every machine


def test_any_shards_and_workers_leave_the_same_lake(flatfiles: Path, tmp_path: Path) -> None:
    base = backfill(flatfiles, tmp_path / "one", workers=1, shards=1)
    many = backfill(flatfiles, tmp_path / "many", workers=3, shards=4)
    assert base.ok and many.ok
    assert [t.rows_out for t in base.tables] == [t.rows_out for t in many.tables]
    assert min(t.rows_out for t in base.tables) > 0
    assert_same_lake(tmp_path / "one", tmp_path / "many")
    for table in ("bars_1d", "bars_1m"):
        assert_frames_close(stored(tmp_path / "one", table), stored(tmp_path / "many", table), rel=1e-12)


def test_bad_executor_arguments_are_usage_errors() -> None:
    with pytest.raises(InvalidArgument, match="--executor 'spark'"):
        open_executor("spark")
    with pytest.raises(InvalidArgument, match="--ray-address needs --executor ray"):
        open_executor("local", address="auto")
    with pytest.raises(InvalidArgument, match="--workers 0"):
        open_executor("local", workers=0)
