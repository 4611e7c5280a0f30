"""Split-adjusted views, checked against their definition computed independently (colfill.adjust)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest

from colfill.stores import open_store

from . import conftest
from .adjusted import END, SPLIT_DAY, START, add_dividends, add_splits, dividend_factor, expected, sample
from .conftest import backfill


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample(tmp_path_factory)


@pytest.mark.parametrize("kind", ["lake", "duckdb"])
def test_adjusted_views_follow_the_definition(src: Path, tmp_path: Path, kind: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "STORE", kind)
    backfill(src, tmp_path, START, END)
    add_splits(conftest.store_url(tmp_path))
    con = duckdb.connect(str(tmp_path / "colfill.duckdb"), read_only=True)
    try:
        for table in ("bars_1d", "bars_1m"):
            raw = con.sql(f"SELECT * FROM {table} ORDER BY ticker, ts").pl()
            adj = con.sql(f"SELECT * FROM {table}_adjusted ORDER BY ticker, ts").pl()
            assert adj.columns == raw.columns and adj.height == raw.height
            want = expected(raw)
            for c in ("open", "high", "low", "close", "volume", "rsi_14"):
                assert (adj[c] - want[c]).abs().max() <= 1e-12 * want[c].abs().max(), (table, c)  # type: ignore[operator]
        daily = con.sql("SELECT ts, close FROM bars_1d_adjusted WHERE ticker = 'AAPL' ORDER BY ts").pl()
        day = "timezone('America/New_York', ts)::DATE"
        before, after = (con.execute(f"SELECT close FROM bars_1d WHERE ticker = 'AAPL' AND {day} {op} ? "
                                     f"ORDER BY ts {order} LIMIT 1", [SPLIT_DAY]).fetchone()[0]  # type: ignore[index]
                         for op, order in (("<", "DESC"), ("=", "ASC")))
        assert after / before < 0.4  # the stored series has the sample's unadjusted drop
    finally:
        con.close()
    jumps = daily.with_columns((pl.col("close") / pl.col("close").shift(1)).alias("r"),
                               pl.col("ts").dt.convert_time_zone("America/New_York").dt.date().alias("d"))
    at_split = jumps.filter(pl.col("d") == SPLIT_DAY)["r"].item()
    assert 1 / 1.5 < at_split < 1.5  # the sample's 4-for-1 drop is gone once adjusted


def test_colfill_sql_has_the_adjusted_views(src: Path, tmp_path: Path) -> None:
    backfill(src, tmp_path, START, END, tables=("bars_1d",))
    add_splits(conftest.store_url(tmp_path))
    proc = subprocess.run([str(Path(sys.executable).with_name("colfill")), "sql",
                           "SELECT count(*) AS n FROM bars_1d_adjusted WHERE close < 0", "--data-dir", str(tmp_path),
                           "--format", "csv"], capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["n", "0"], proc.stderr


@pytest.mark.parametrize("kind", ["lake", "duckdb"])
def test_dividend_adjusted_views_follow_the_definition(src: Path, tmp_path: Path, kind: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "STORE", kind)
    backfill(src, tmp_path, START, END)
    url = conftest.store_url(tmp_path)
    add_splits(url)
    add_dividends(url, dividends=True)
    store = open_store(url)
    try:
        store.finish("bars_1d")  # a later run without --adjust keeps the choice
    finally:
        store.close()
    con = duckdb.connect(str(tmp_path / "colfill.duckdb"), read_only=True)
    try:
        date = pl.col("ts").dt.convert_time_zone("America/New_York").dt.date().alias("d")
        daily = con.sql("SELECT * FROM bars_1d ORDER BY ticker, ts").pl().with_columns(date)
        for table in ("bars_1d", "bars_1m"):
            raw = con.sql(f"SELECT * FROM {table} ORDER BY ticker, ts").pl()
            adj = con.sql(f"SELECT * FROM {table}_adjusted ORDER BY ticker, ts").pl()
            split_only = expected(raw)
            factors = pl.Series([dividend_factor(daily, t, d) for t, d in
                                 raw.with_columns(date).select("ticker", "d").iter_rows()])
            assert factors.min() < 0.999 and factors.max() == 1.0  # type: ignore[operator]
            for c in ("open", "high", "low", "close"):
                want = split_only[c] * factors
                assert (adj[c] - want).abs().max() <= 1e-12 * want.abs().max(), (table, c)  # type: ignore[operator]
            assert adj["vw"].is_null().to_list() == raw["vw"].is_null().to_list()
            assert (adj["volume"] - split_only["volume"]).abs().max() == 0  # dividends leave volume alone
    finally:
        con.close()
    add_dividends(url, dividends=False)  # --adjust splits drops them again
    con = duckdb.connect(str(tmp_path / "colfill.duckdb"), read_only=True)
    try:
        raw = con.sql("SELECT * FROM bars_1d ORDER BY ticker, ts").pl()
        adj = con.sql("SELECT * FROM bars_1d_adjusted ORDER BY ticker, ts").pl()
        assert (adj["close"] - expected(raw)["close"]).abs().max() <= 1e-12 * adj["close"].abs().max()  # type: ignore[operator]
    finally:
        con.close()
