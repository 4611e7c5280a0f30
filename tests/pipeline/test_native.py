"""The native DuckDB store (`duckdb:///file.duckdb`): what only it has, a declared key, a copy apart from the lake."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pytest

from . import conftest
from .conftest import backfill, files, primary_keys, rewrite, stored


@pytest.fixture(autouse=True)
def native(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "STORE", "duckdb")


def test_index_all_declares_the_minute_key_and_loads_the_same_rows(source: Path, tmp_path: Path) -> None:
    """By default only bars_1d declares (ticker, ts); `?index=all` declares it on bars_1m too. A backfill, and
    its reload of a replaced file (delete and insert of the same keys in one transaction), give the same rows
    either way."""
    plain, keyed = tmp_path / "plain", tmp_path / "keyed"
    backfill(source, plain)
    backfill(source, keyed, query="?index=all")
    assert primary_keys(plain) == {"bars_1d": ["ticker", "ts"]}
    assert primary_keys(keyed) == {"bars_1d": ["ticker", "ts"], "bars_1m": ["ticker", "ts"]}
    rewrite(files(source, "bars_1m")[-1], lambda f: f.with_columns(pl.col("volume") + 1))
    backfill(source, plain)
    reload = backfill(source, keyed, query="?index=all")
    assert reload.ok and next(t for t in reload.tables if t.table == "bars_1m").loaded_days >= 1
    for table in ("bars_1d", "bars_1m"):
        assert stored(keyed, table).equals(stored(plain, table))


def test_store_missing_a_day_gets_it_from_the_lake(source: Path, tmp_path: Path) -> None:
    backfill(source, tmp_path)
    full = stored(tmp_path, "bars_1d")
    con = duckdb.connect(str(tmp_path / "colfill.duckdb"))
    day = full["ts"].dt.convert_time_zone("America/New_York").dt.date().unique().sort()[5]
    con.execute("DELETE FROM bars_1d WHERE timezone('America/New_York', ts)::DATE = ?", [day])
    con.execute("DELETE FROM colfill_files WHERE table_name = 'bars_1d' AND date = ?", [day])
    con.close()
    result = backfill(source, tmp_path)
    daily = next(t for t in result.tables if t.table == "bars_1d")
    assert daily.staged == 0 and daily.loaded_days == 1
    assert stored(tmp_path, "bars_1d").equals(full)
