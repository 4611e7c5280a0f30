"""Split-adjusted views, checked against their definition computed independently (colfill.adjust)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import duckdb
import polars as pl
import pytest

from colfill.reference import DATASETS, to_table
from colfill.sample import SPLIT_RATIO, generate, trading_days
from colfill.stores import open_store

from . import conftest
from .conftest import backfill

START, END = dt.date(2024, 3, 1), dt.date(2024, 4, 30)
SPLIT_DAY = trading_days(START, END)[len(trading_days(START, END)) // 2]  # where the sample's AAPL drops


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("adjusted")
    generate(root, START, END, tickers=5, seed=3, minute_fill=0.1)
    return root


def add_splits(url: str) -> None:
    splits = [SimpleNamespace(ticker="AAPL", execution_date=SPLIT_DAY.isoformat(), split_from=1, split_to=SPLIT_RATIO,
                              id="a"),
              SimpleNamespace(ticker="AAPL", execution_date="2024-04-29", split_from=2, split_to=3, id="b"),
              SimpleNamespace(ticker="MSFT", execution_date="2030-01-02", split_from=1, split_to=2, id="c")]
    store = open_store(url)
    try:
        store.write_reference("splits", to_table(DATASETS["splits"], splits))
        for table in ("bars_1d", "bars_1m"):
            store.finish(table)
    finally:
        store.close()


def expected(raw: pl.DataFrame) -> pl.DataFrame:
    """The definition, by hand: divide by the ratios of the splits after the bar's New York date."""
    date = pl.col("ts").dt.convert_time_zone("America/New_York").dt.date()
    aapl = pl.col("ticker") == "AAPL"
    factor = (pl.when(aapl & (date < SPLIT_DAY)).then(SPLIT_RATIO * 1.5)
              .when(aapl & (date < dt.date(2024, 4, 29))).then(1.5)
              .when(pl.col("ticker") == "MSFT").then(2.0).otherwise(1.0))
    return raw.with_columns(*(pl.col(c) / factor for c in ("open", "high", "low", "close", "vw")),
                            pl.col("volume") * factor)


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
