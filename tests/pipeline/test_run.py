"""End-to-end backfills into the embedded stores (the lake, and native DuckDB tables): completeness, idempotency,
resumption, replaced files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import polars as pl
import pytest

from colfill.indicators.batch import enrich
from colfill.indicators.spec import IndicatorSet

from . import conftest
from .conftest import END, START, assert_frames_close, backfill, files, read_source, rewrite, stored


@pytest.fixture(autouse=True, params=["lake", "duckdb"])
def store_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(conftest, "STORE", request.param)
    return str(request.param)


def reference(src: Path, table: str, indicators: IndicatorSet | None = None) -> pl.DataFrame:
    """The whole history in one frame, enriched in one call: what any split of runs must reproduce."""
    raw = read_source(src, table)
    bars = raw.select(
        "ticker",
        pl.from_epoch("window_start", time_unit="ns").dt.replace_time_zone("UTC").dt.cast_time_unit("us").alias("ts"),
        "open", "high", "low", "close", "volume", pl.lit(None, dtype=pl.Float64).alias("vw"), "transactions",
    )
    out, _ = enrich(bars, indicators or IndicatorSet.default())
    return out.sort("ticker", "ts")


def test_backfill_loads_every_row_once_with_indicators(source: Path, tmp_path: Path) -> None:
    result = backfill(source, tmp_path)
    assert result.ok
    for table in ("bars_1d", "bars_1m"):
        got = stored(tmp_path, table)
        want = reference(source, table)
        assert got.height == read_source(source, table).height
        assert got.select("ticker", "ts").is_duplicated().sum() == 0
        assert_frames_close(got.select(want.columns).with_columns(pl.col("ts").dt.convert_time_zone("UTC")), want)
    assert {"NA", "NULL", "N/A", "NAN"} <= set(stored(tmp_path, "bars_1d")["ticker"].to_list())


def test_rerun_is_idempotent_and_skips_finished_files(source: Path, tmp_path: Path) -> None:
    backfill(source, tmp_path)
    before = stored(tmp_path, "bars_1m")
    again = backfill(source, tmp_path)
    minute = next(t for t in again.tables if t.table == "bars_1m")
    assert minute.staged == 0 and minute.skipped == minute.files > 0 and minute.loaded_rows == 0
    assert stored(tmp_path, "bars_1m").equals(before)


def test_two_runs_equal_one_run(source: Path, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    backfill(source, one)
    middle = dt.date(2024, 3, 20)
    backfill(source, two, START, middle)
    backfill(source, two, middle + dt.timedelta(days=1), END)
    for table in ("bars_1d", "bars_1m"):
        assert_frames_close(stored(two, table), stored(one, table))


def test_custom_indicator_set(source: Path, tmp_path: Path) -> None:
    ind = IndicatorSet.parse("sma:5,ema:3,rsi:2,macd:3:6:2,bb:4:1.5,vwap")
    backfill(source, tmp_path, indicators=ind, tables=("bars_1d",))
    got = stored(tmp_path, "bars_1d")
    assert {"sma_5", "ema_3", "rsi_2", "macd_3_6_2", "bb_upper_4_1p5", "vwap"} <= set(got.columns)
    want = reference(source, "bars_1d", ind)
    assert_frames_close(got.select(want.columns).with_columns(pl.col("ts").dt.convert_time_zone("UTC")), want)


def test_replaced_file_reloads_that_day_and_the_days_after(source: Path, tmp_path: Path) -> None:
    backfill(source, tmp_path)
    day_files = files(source, "bars_1m")
    target = day_files[len(day_files) // 2]
    # The provider republishes the day with one ticker's bars removed and other prices corrected.
    first_ticker = "AAPL"
    rewrite(target, lambda f: f.filter(pl.col("ticker") != first_ticker).with_columns(
        pl.col(c) * 1.01 for c in ("open", "close", "high", "low")))
    result = backfill(source, tmp_path)
    minute = next(t for t in result.tables if t.table == "bars_1m")
    later = [p for p in day_files if p.name >= target.name]
    # Restaging resumes from the last kept state snapshot (month ends and the latest), not from the start.
    assert len(later) <= minute.staged < len(day_files)
    fresh = tmp_path / "fresh"
    backfill(source, fresh)
    assert_frames_close(stored(tmp_path, "bars_1m"), stored(fresh, "bars_1m"))
    day = dt.date.fromisoformat(target.name[:10])
    rows = stored(tmp_path, "bars_1m").filter(
        (pl.col("ts").dt.convert_time_zone("America/New_York").dt.date() == day) & (pl.col("ticker") == first_ticker))
    assert rows.height == 0


def test_tickers_and_limit(source: Path, tmp_path: Path) -> None:
    backfill(source, tmp_path / "t", tickers=("AAPL", "NA"), tables=("bars_1d",))
    assert set(stored(tmp_path / "t", "bars_1d")["ticker"].unique()) == {"AAPL", "NA"}
    result = backfill(source, tmp_path / "l", limit=3, tables=("bars_1d",))
    got = stored(tmp_path / "l", "bars_1d")["ticker"].unique().sort().to_list()
    assert result.selection is not None and got == sorted(result.selection.tickers)  # ranking: tests/test_universe.py


def test_lake_is_hive_partitioned_and_queryable(source: Path, tmp_path: Path) -> None:
    backfill(source, tmp_path, tables=("bars_1d",))
    lake = tmp_path / "lake"
    parts = sorted(lake.glob("table=bars_1d/date=*/part-*.parquet"))
    assert len(parts) == len(files(source, "bars_1d"))
    n = duckdb.execute(
        f"SELECT count(*) FROM read_parquet('{lake}/table=bars_1d/*/*.parquet', hive_partitioning=true) "
        "WHERE \"table\" = 'bars_1d'").fetchall()[0]
    assert n is not None and n[0] == read_source(source, "bars_1d").height
    manifest = duckdb.sql(f"SELECT * FROM read_json_auto('{lake}/_manifest/table=bars_1d/*/*.json')").pl()
    assert set(manifest["status"]) == {"done"}
    assert manifest["rows_in"].sum() == n[0]
    assert (manifest["etag"].str.len_chars() > 0).all() and (manifest["size"] > 0).all()
    assert list(lake.glob("table=bars_1d/date=*/*.parquet"))[0].read_bytes()[:4] == b"PAR1"
    assert END >= START


def test_second_run_on_the_same_data_dir_is_refused(source: Path, tmp_path: Path) -> None:
    import fcntl

    import pytest

    from colfill.errors import StoreError

    tmp_path.mkdir(exist_ok=True)
    with open(tmp_path / ".colfill.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(StoreError, match="another colfill run is using"):
            backfill(source, tmp_path, tables=("bars_1d",))
    assert backfill(source, tmp_path, tables=("bars_1d",)).ok
