"""`upsert_live` on the embedded stores: DuckDB upserts into the bars tables; the lake keeps live rows in its
catalogue and its views show them only for New York days the lake does not hold, so a later backfill of that
day wins with no duplicates. Same rows twice: no duplicates; a revised row replaces the old one."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from colfill.calendar import NEW_YORK
from colfill.cli.sql import connect
from colfill.errors import SchemaMismatch
from colfill.stores import open_store
from colfill.stores.base import Store

from .conftest import backfill, read_source

UTC = dt.timezone.utc
INDICATORS = ("sma_20", "ema_20", "rsi_14")


def live_rows(keys: list[tuple[str, dt.datetime]], close: float = -1.0, extra: bool = True) -> pa.Table:
    n = len(keys)
    cols: dict[str, object] = {
        "ticker": [k[0] for k in keys],
        "ts": pa.array([k[1] for k in keys], pa.timestamp("us", tz="UTC")),
        "open": [1.0] * n, "high": [2.0] * n, "low": [0.5] * n, "close": [close] * n, "volume": [100.0] * n,
        "vw": [1.5] * n, "transactions": pa.array([7] * n, pa.int64()),
    }
    if extra:
        cols.update({c: [float(i) for i in range(n)] for c in INDICATORS})
    return pa.table(cols)


def minute(day: dt.date, hh: int, mm: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hh, mm), NEW_YORK).astimezone(UTC)


def on_disk(data: Path, table: str) -> int:
    """Rows in the lake's live files of `table` (colfill.stores.live_files)."""
    from colfill.stores.live_files import live_days, live_glob

    lake = data / "lake"
    if not live_days(lake, table):
        return 0
    return duckdb.connect().execute(f"SELECT count(*) FROM read_parquet('{live_glob(lake, table)}')").fetchone()[0]


def query(path: Path, sql: str, params: list[object] | None = None) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def test_duckdb_upsert_live_is_idempotent_and_replaces_revisions(tmp_path: Path) -> None:
    store = open_store(f"duckdb:///{tmp_path / 'x.duckdb'}")
    assert isinstance(store, Store)
    day = dt.date(2024, 3, 6)
    keys = [(t, minute(day, 9, 30 + m)) for t in ("AAPL", "MSFT") for m in range(3)]
    assert store.upsert_live("bars_1m", live_rows(keys)) == 6
    assert store.upsert_live("bars_1m", live_rows(keys)) == 6  # the same rows again
    revised = live_rows(keys[:1], close=42.0, extra=False)  # without the indicator columns: they become null
    assert store.upsert_live("bars_1m", pa.concat_tables([live_rows(keys[:1], close=41.0, extra=False), revised])) == 1
    daily = live_rows([("AAPL", dt.datetime.combine(day, dt.time(), NEW_YORK).astimezone(UTC))])
    assert store.upsert_live("bars_1d", daily) == 1 and store.upsert_live("bars_1d", daily) == 1  # keyed table
    store.close()
    path = tmp_path / "x.duckdb"
    assert query(path, "SELECT count(*), count(DISTINCT (ticker, ts)) FROM bars_1m") == [(6, 6)]
    assert query(path, "SELECT close, sma_20, transactions FROM bars_1m WHERE ticker = 'AAPL' ORDER BY ts LIMIT 1") \
        == [(42.0, None, 7)]
    assert query(path, "SELECT count(*) FROM bars_1d") == [(1,)]
    again = open_store(f"duckdb:///{path}")
    with pytest.raises(SchemaMismatch):
        again.upsert_live("bars_7m", live_rows(keys))
    with pytest.raises(SchemaMismatch):
        again.upsert_live("bars_1m", live_rows(keys).drop_columns(["ts"]))
    again.close()


def source_keys(source: Path, day: dt.date) -> list[tuple[str, dt.datetime]]:
    """(ticker, ts) of every minute bar of `day` in the source files."""
    frame = read_source(source, "bars_1m", until=day)
    keys = []
    for ticker, ns in zip(frame["ticker"].to_list(), frame["window_start"].to_list()):
        ts = dt.datetime.fromtimestamp(ns / 1e9, UTC)
        if ts.astimezone(NEW_YORK).date() == day:
            keys.append((ticker, ts))
    return keys


def test_lake_views_show_live_rows_until_the_day_is_backfilled(source: Path, tmp_path: Path) -> None:
    held, live_day, later = dt.date(2024, 3, 5), dt.date(2024, 3, 6), dt.date(2024, 3, 7)
    assert backfill(source, tmp_path, end=held).ok
    catalogue = tmp_path / "colfill.duckdb"
    lake_1m = query(catalogue, "SELECT count(*) FROM bars_1m")[0][0]
    lake_1d = query(catalogue, "SELECT count(*) FROM bars_1d")[0][0]
    day_keys = source_keys(source, live_day)
    assert len(day_keys) > 20

    store = open_store(f"lake:///{tmp_path.resolve()}")
    assert store.upsert_live("bars_1m", live_rows(day_keys[:20])) == 20
    assert store.upsert_live("bars_1m", live_rows(day_keys[:20])) == 20  # twice: no duplicates
    assert store.upsert_live("bars_1m", live_rows(day_keys[:1], close=-2.0)) == 1  # a revision
    assert store.upsert_live("bars_1m", live_rows([("LIVEONLY", minute(live_day, 10, 0)),
                                                   ("AAPL", minute(later, 9, 31)),
                                                   ("AAPL", minute(held, 9, 31))])) == 3  # held: hidden
    midnight = dt.datetime.combine(live_day, dt.time(), NEW_YORK).astimezone(UTC)
    assert store.upsert_live("bars_1d", live_rows([(day_keys[0][0], midnight)])) == 1
    store.close()

    assert query(catalogue, "SELECT count(*) FROM bars_1m")[0][0] == lake_1m + 22
    assert query(catalogue, "SELECT count(*), count(DISTINCT (ticker, ts)) FROM bars_1m WHERE close < 0") \
        == [(22, 22)]
    assert query(catalogue, "SELECT close FROM bars_1m WHERE ticker = ? AND ts = ?", list(day_keys[0])) == [(-2.0,)]
    assert query(catalogue, f"SELECT count(*) FROM bars_1m WHERE ts = '{minute(held, 9, 31).isoformat()}' "
                 "AND close < 0") == [(0,)]  # the lake holds that day: its live row is not shown
    assert query(catalogue, "SELECT count(*) FROM bars_1d")[0][0] == lake_1d + 1
    sql = connect(tmp_path)  # `colfill sql` sees the same
    assert sql.execute("SELECT count(*) FROM bars_1m WHERE close < 0").fetchone() == (22,)
    sql.close()

    assert backfill(source, tmp_path, start=live_day, end=live_day).ok  # the day's flat file arrives
    total = len(day_keys) + lake_1m
    assert query(catalogue, "SELECT count(*), count(DISTINCT (ticker, ts)) FROM bars_1m") == [(total + 1,) * 2]
    assert query(catalogue, "SELECT ticker, CAST(timezone('America/New_York', ts) AS DATE) FROM bars_1m "
                 "WHERE close < 0") == [("AAPL", later)]  # only the live row of the day not backfilled
    assert query(catalogue, "SELECT count(*) FROM bars_1m WHERE ticker = 'LIVEONLY'") == [(0,)]
    assert query(catalogue, "SELECT count(*) FROM bars_1d WHERE close < 0") == [(0,)]
    assert on_disk(tmp_path, "bars_1m") == 1  # the backfilled days' live files pruned, the later day's kept
    assert on_disk(tmp_path, "bars_1d") == 0


def test_duckdb_live_rows_of_other_numeric_types_fit_an_existing_table(tmp_path: Path) -> None:
    path = tmp_path / "x.duckdb"
    keys = [("AAPL", minute(dt.date(2024, 3, 6), 9, 30))]
    first = open_store(f"duckdb:///{path}")
    first.upsert_live("bars_1m", live_rows(keys))
    first.close()
    rows = live_rows(keys, close=5.0)
    rows = rows.set_column(rows.column_names.index("volume"), "volume", pa.array([7], pa.int32()))
    store = open_store(f"duckdb:///{path}")  # a new process's store
    assert store.upsert_live("bars_1m", rows.append_column("ema_50", pa.array([1.5]))) == 1
    store.close()
    assert query(path, "SELECT close, volume, ema_50 FROM bars_1m") == [(5.0, 7.0, 1.5)]


def test_a_lake_without_day_files_shows_its_live_rows(tmp_path: Path) -> None:
    store = open_store(f"lake:///{tmp_path.resolve()}")
    keys = [("AAPL", minute(dt.date(2024, 3, 6), 9, 30)), ("MSFT", minute(dt.date(2024, 3, 6), 9, 30))]
    assert store.upsert_live("bars_1m", live_rows(keys)) == 2
    store.close()
    assert query(tmp_path / "colfill.duckdb", "SELECT ticker, close FROM bars_1m ORDER BY ticker") == \
        [("AAPL", -1.0), ("MSFT", -1.0)]
    reopened = open_store(f"lake:///{tmp_path.resolve()}")  # refreshed on open: still there
    reopened.close()
    assert query(tmp_path / "colfill.duckdb", "SELECT count(*) FROM bars_1m") == [(2,)]


def test_a_live_day_started_during_a_background_refresh_reaches_the_views(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The refresh a new live day starts runs in the background; a day of another table begun while that
    refresh is past listing the live folders must still be in the views at close (CI once lost it)."""
    import threading

    import colfill.stores.lake as lake_module

    listed, release = threading.Event(), threading.Event()
    original = lake_module.lake_views_sql

    def pausing(lake: object) -> dict[str, str | None]:
        views = original(lake)
        if not listed.is_set():
            listed.set()
            assert release.wait(10)
        return views

    store = open_store(f"lake:///{tmp_path.resolve()}")
    monkeypatch.setattr(lake_module, "lake_views_sql", pausing)
    day = dt.date(2024, 3, 6)
    assert store.upsert_live("bars_1m", live_rows([("AAPL", minute(day, 9, 30))])) == 1
    assert listed.wait(10)  # the background refresh has listed the folders: bars_1d has none yet
    midnight = dt.datetime.combine(day, dt.time(), NEW_YORK).astimezone(UTC)
    assert store.upsert_live("bars_1d", live_rows([("AAPL", midnight)])) == 1
    release.set()
    store.close()
    catalogue = tmp_path / "colfill.duckdb"
    assert query(catalogue, "SELECT count(*) FROM bars_1m") == [(1,)]
    assert query(catalogue, "SELECT count(*) FROM bars_1d") == [(1,)]


def test_a_tickers_backfill_hides_only_its_tickers_live_rows(source: Path, tmp_path: Path) -> None:
    day = dt.date(2024, 3, 6)
    keys = [k for k in source_keys(source, day) if k[0] in ("AAPL", "MSFT")]
    assert {k[0] for k in keys} == {"AAPL", "MSFT"}
    store = open_store(f"lake:///{tmp_path.resolve()}")
    store.upsert_live("bars_1m", live_rows(keys))
    store.close()
    assert backfill(source, tmp_path, start=day, end=day, tables=("bars_1m",), tickers=("AAPL",)).ok
    catalogue = tmp_path / "colfill.duckdb"
    aapl = sum(k[0] == "AAPL" for k in keys)
    msft = len(keys) - aapl
    assert query(catalogue, "SELECT ticker, count(*), count(*) FILTER (WHERE close < 0) FROM bars_1m "
                 "GROUP BY ticker ORDER BY ticker") == [("AAPL", aapl, 0), ("MSFT", msft, msft)]
    assert on_disk(tmp_path, "bars_1m") == len(keys)  # a part of a day: its live file stays, AAPL's rows hidden


def test_a_live_session_a_backfill_and_readers_share_a_lake(sample_root: Path, tmp_path: Path) -> None:
    """DuckDB lets one process hold a file and nobody read it meanwhile: the lake store holds its catalogue only
    while it uses it, and live bars never touch it, so the morning's `colfill run` (the installed command), a
    `colfill sql` and a plain DuckDB client all work while a live session keeps its store open."""
    import os
    import subprocess
    import sys

    held, backfilled, live_day = dt.date(2024, 3, 4), dt.date(2024, 3, 5), dt.date(2024, 3, 6)
    assert backfill(sample_root, tmp_path, start=held, end=held).ok
    live = open_store(f"lake:///{tmp_path.resolve()}")  # the live session's store, open all along
    try:
        keys = [("AAPL", minute(live_day, 9, 30 + i)) for i in range(5)]
        assert live.upsert_live("bars_1m", live_rows(keys)) == 5
        bin_ = Path(sys.executable).with_name("colfill")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("COLFILL_", "POLYGON_", "MASSIVE_"))}
        run = subprocess.run([str(bin_), "run", "--source", str(sample_root), "--data-dir", str(tmp_path),
                              "--start", str(backfilled), "--end", str(backfilled)], capture_output=True, text=True,
                             timeout=120, env=env, stdin=subprocess.DEVNULL)
        assert run.returncode == 0, run.stderr
        assert live.upsert_live("bars_1m", live_rows(keys[:1], close=-3.0)) == 1  # still writing: a revision
        sql = subprocess.run([str(bin_), "sql", "--data-dir", str(tmp_path), "--format", "csv",
                              "SELECT count(*) FILTER (WHERE close < 0) AS live, count(DISTINCT "
                              "timezone('America/New_York', ts)::DATE) AS days FROM bars_1m"],
                             capture_output=True, text=True, timeout=60, env=env)
        assert sql.returncode == 0, sql.stderr
        assert sql.stdout.split() == ["live,days", "5,3"]
        assert query(tmp_path / "colfill.duckdb", "SELECT min(close) FROM bars_1m WHERE ticker = 'AAPL' AND "
                     "timezone('America/New_York', ts)::DATE = ?", [live_day]) == [(-3.0,)]
    finally:
        live.close()
