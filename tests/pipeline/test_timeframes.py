"""`--timeframes`: derived bars in the lake and native DuckDB equal the rollup of the stored minutes, with indicators
TA-Lib-exact over that timeframe's closes and a session VWAP of its own bars, and a backfill split into two runs
equals a one-shot; their adjusted views follow the definition, and live bars of a derived table are upserted.
(PostgreSQL and TimescaleDB: tests/postgres/test_timeframes_pg.py.)"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
import talib
from polars.testing import assert_frame_equal

from colfill.bars import BAR_COLUMNS
from colfill.calendar import NEW_YORK
from colfill.errors import InvalidArgument
from colfill.indicators.spec import IndicatorSet
from colfill.pipeline import BackfillJob
from colfill.timeframes import rollup

from . import conftest
from .conftest import START, backfill, stored

END = dt.date(2024, 3, 12)  # six sessions
SPLIT = dt.date(2024, 3, 6)
TIMEFRAMES = ("1m", "5m", "5m:rth", "1h", "1h:rth", "1d")
INDICATORS = IndicatorSet.parse("sma:5,ema:10,rsi:14,vwap")


@pytest.fixture(params=["lake", "duckdb"])
def store_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(conftest, "STORE", request.param)
    return str(request.param)


def run(source: Path, data_dir: Path, start: dt.date = START, end: dt.date = END) -> None:
    result = backfill(source, data_dir, start=start, end=end, timeframes=TIMEFRAMES, indicators=INDICATORS)
    assert result.ok, [t.errors for t in result.tables]


def check_talib(bars: pl.DataFrame) -> None:
    for (ticker,), frame in bars.group_by("ticker"):
        close = frame.sort("ts")["close"].to_numpy()
        for column, want in (("sma_5", talib.SMA(close, 5)), ("ema_10", talib.EMA(close, 10)),
                             ("rsi_14", talib.RSI(close, 14))):
            got = frame.sort("ts")[column].to_numpy(allow_copy=True).astype(float)
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=f"{ticker} {column}")


def test_derived_tables_are_the_rollup_of_the_stored_minutes(source: Path, tmp_path: Path, store_kind: str) -> None:
    run(source, tmp_path)
    minutes = stored(tmp_path, "bars_1m")
    for name, table in (("5m", "bars_5m"), ("1h", "bars_1h"), ("1h:rth", "bars_1h_rth")):
        got = stored(tmp_path, table)
        assert got.height > 0
        assert_frame_equal(got.select(BAR_COLUMNS), rollup(minutes, name), check_exact=True)
        check_talib(got)
    assert stored(tmp_path, "bars_1h_rth").height < stored(tmp_path, "bars_1h").height


def test_split_runs_equal_a_one_shot(source: Path, tmp_path: Path, store_kind: str) -> None:
    run(source, tmp_path / "one")
    run(source, tmp_path / "two", end=SPLIT)
    run(source, tmp_path / "two", start=SPLIT + dt.timedelta(days=1))
    for table in ("bars_5m", "bars_1h_rth"):
        assert_frame_equal(stored(tmp_path / "two", table), stored(tmp_path / "one", table), check_exact=True)


def test_the_default_stores_no_derived_table(source: Path, tmp_path: Path) -> None:
    backfill(source, tmp_path, end=SPLIT)
    assert not list((tmp_path / "lake").glob("table=bars_5m*"))
    assert {p.name for p in (tmp_path / "lake").glob("table=*")} == {"table=bars_1m", "table=bars_1d"}


def test_derived_timeframes_need_the_minutes(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="--timeframes"):
        BackfillJob(source="x", start=START, end=END, data_dir=tmp_path, tables=("bars_1d",),
                    timeframes=("1d", "5m"))
    with pytest.raises(InvalidArgument, match="7m"):
        BackfillJob(source="x", start=START, end=END, data_dir=tmp_path, timeframes=("1m", "7m"))


def session_vwap(bars: pl.DataFrame) -> list[float | None]:
    """The session VWAP by hand (docs/indicators.md): per ticker, the running sums of typical price x volume and of
    volume over the bars of one New York date, in (ticker, ts) order."""
    out: list[float | None] = []
    key, pv, v = None, 0.0, 0.0
    for row in bars.sort("ticker", "ts").iter_rows(named=True):
        day = (row["ticker"], row["ts"].astimezone(NEW_YORK).date())
        if day != key:
            key, pv, v = day, 0.0, 0.0
        pv += (row["high"] + row["low"] + row["close"]) / 3 * row["volume"]
        v += row["volume"]
        out.append(pv / v if v > 0 else None)
    return out


@pytest.mark.parametrize("table", ["bars_5m", "bars_1h", "bars_5m_rth"])
def test_session_vwap_of_each_timeframe_is_over_its_own_bars(source: Path, tmp_path: Path, table: str) -> None:
    run(source, tmp_path, end=SPLIT)
    bars = stored(tmp_path, table)
    assert bars.height > 0
    want = pl.Series(session_vwap(bars), dtype=pl.Float64)
    np.testing.assert_allclose(bars["vwap"].to_numpy(), want.to_numpy(), rtol=1e-12, equal_nan=True)
    minutes = stored(tmp_path, "bars_1m")  # not the minutes' VWAP sampled: a bucket's bars weigh differently
    assert not bars.join(minutes, on=["ticker", "ts"], suffix="_1m")["vwap_1m"].equals(
        bars.join(minutes, on=["ticker", "ts"], suffix="_1m")["vwap"])


def test_adjusted_views_of_derived_tables_follow_the_definition(tmp_path_factory: pytest.TempPathFactory,
                                                               tmp_path: Path, store_kind: str) -> None:
    from .adjusted import END as ADJ_END
    from .adjusted import START as ADJ_START
    from .adjusted import add_splits, expected, sample

    backfill(sample(tmp_path_factory), tmp_path, start=ADJ_START, end=ADJ_END, timeframes=("1m", "1h", "1d:rth"),
             indicators=IndicatorSet.parse("sma:5"))
    add_splits(conftest.store_url(tmp_path))
    for table in ("bars_1h", "bars_1d_rth"):
        raw, adj = stored(tmp_path, table), stored(tmp_path, f"{table}_adjusted")
        assert adj.columns == raw.columns and adj.height == raw.height > 0
        want = expected(raw)
        for c in ("open", "high", "low", "close", "volume", "sma_5"):
            assert (adj[c] - want[c]).abs().max() <= 1e-12 * want[c].abs().max(), (table, c)  # type: ignore[operator]
        assert (adj["close"] != raw["close"]).any()


def test_upsert_live_of_a_derived_table(source: Path, tmp_path: Path, store_kind: str) -> None:
    """Live bars of `bars_5m` (the live rollup's): shown by the store's `bars_5m`, a revision replacing its row;
    in the lake for a day it does not hold, beside the backfilled days."""
    from colfill.stores import open_store

    run(source, tmp_path, end=SPLIT)
    day = dt.date(2024, 3, 7)
    ts = [dt.datetime.combine(day, dt.time(9, 30 + 5 * i), NEW_YORK).astimezone(dt.timezone.utc) for i in range(3)]

    def rows(close: float, n: int = 3) -> pa.Table:
        return pa.table({"ticker": ["LIVE"] * n, "ts": pa.array(ts[:n], pa.timestamp("us", tz="UTC")),
                         "open": [1.0] * n, "high": [2.0] * n, "low": [0.5] * n, "close": [close] * n,
                         "volume": [10.0] * n, "vw": [1.0] * n, "transactions": pa.array([3] * n, pa.int64())})

    before = stored(tmp_path, "bars_5m").height
    store = open_store(conftest.store_url(tmp_path))
    try:
        assert store.upsert_live("bars_5m", rows(1.0)) == 3
        assert store.upsert_live("bars_5m", rows(7.0, n=1)) == 1  # a revision of 09:30
        store.finish("bars_5m")
    finally:
        store.close()
    got = stored(tmp_path, "bars_5m")
    assert got.height == before + 3
    assert got.filter(pl.col("ticker") == "LIVE")["close"].to_list() == [7.0, 1.0, 1.0]
