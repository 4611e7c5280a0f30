"""`--timeframes`: derived bars in the lake and native DuckDB equal the rollup of the stored minutes, with indicators
TA-Lib-exact over that timeframe's closes, and a backfill split into two runs equals a one-shot."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import talib
from polars.testing import assert_frame_equal

from colfill.bars import BAR_COLUMNS
from colfill.errors import InvalidArgument
from colfill.indicators.spec import IndicatorSet
from colfill.pipeline import BackfillJob
from colfill.timeframes import rollup

from . import conftest
from .conftest import START, backfill, stored

END = dt.date(2024, 3, 12)  # six sessions
SPLIT = dt.date(2024, 3, 6)
TIMEFRAMES = ("1m", "5m", "1h", "1h:rth", "1d")
INDICATORS = IndicatorSet.parse("sma:5,ema:10,rsi:14")


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
