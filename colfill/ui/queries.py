"""What the dashboard asks of a store (`Reader`), with the queries every SQL store answers the same way, and the
lake's rejected rows (every store kind stages through the lake, so rejects are always read from there).

Every value from a request (ticker, time range, search text) is a bound parameter; the only names spliced into
SQL are table and column names, and those come from fixed lists checked against what the store holds. The
readers: `colfill.ui.duck` (the lake, a native DuckDB file) and `colfill.ui.pg` (PostgreSQL/TimescaleDB).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from colfill.bars import BAR_TABLES
from colfill.dialect import DUCKDB, Dialect
from colfill.errors import InvalidArgument
from colfill.timeframes import Timeframe, of_label, stored

BASE_COLUMNS = ("ticker", "ts", "open", "high", "low", "close", "volume", "vw", "transactions")
VERSION_TTL = 1.0  # seconds between two checks of whether the data changed


class Reader:
    """What the dashboard asks of a store. Subclasses set `dialect` and `_query`; `buckets_in_store`: the reader
    has `bars_bucketed` (the store aggregates bars to the chart's buckets)."""

    dialect: Dialect = DUCKDB
    kind = ""
    buckets_in_store = False

    def __init__(self) -> None:
        self._cache: dict[tuple[Any, ...], tuple[Any, Any]] = {}
        self._cache_lock = threading.Lock()
        self._columns: dict[str, list[str]] = {}

    # -- what subclasses provide ------------------------------------------------------------------------------
    def _query(self, sql: str, params: Sequence[object] = ()) -> pl.DataFrame:
        raise NotImplementedError

    def relations(self) -> set[str]:
        raise NotImplementedError

    def version(self) -> object:
        """Changes when the data does (cache key)."""
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def table_stats(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    # -- shared -----------------------------------------------------------------------------------------------
    def cached(self, key: tuple[Any, ...], compute: Any) -> Any:
        version = self.version()
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] == version:
                return hit[1]
        value = compute()
        with self._cache_lock:
            self._cache[key] = (version, value)
        return value

    def columns(self, relation: str) -> list[str]:
        """Column names of a bars relation (cached per data version)."""
        def compute() -> list[str]:
            frame = self._query(f"SELECT * FROM {self.dialect.quote(relation)} LIMIT 0")
            return list(frame.columns)
        return list(self.cached(("columns", relation), compute))

    def bar_tables(self) -> list[str]:
        have = self.relations()
        return [t for t in BAR_TABLES if t in have]

    def timeframes(self) -> list[Timeframe]:
        """The bars tables this store holds, as the chart's timeframes (`colfill.timeframes`)."""
        return stored(self.relations())

    def table_for(self, timeframe: str, adjusted: bool = False) -> tuple[str, bool]:
        """(relation, adjusted-in-fact) for `timeframe`; unknown timeframes and missing tables are bad input."""
        have = self.relations()
        tf = of_label(timeframe)
        if tf is None or (tf.table not in have and tf.table not in BAR_TABLES):  # 1m, 1d: every store has them
            held = ", ".join(t.label for t in self.timeframes()) or "none yet"
            raise InvalidArgument(f"unknown timeframe {timeframe!r}: this store holds {held}")
        if tf.table not in have:
            raise LookupError(f"{tf.table} is not in this store yet (nothing loaded)")
        if adjusted and f"{tf.table}_adjusted" in have:
            return f"{tf.table}_adjusted", True
        return tf.table, False

    def indicator_columns(self, relation: str) -> list[str]:
        return [c for c in self.columns(relation) if c not in BASE_COLUMNS]

    def ticker_span(self, table: str, ticker: str) -> tuple[int, int, int] | None:
        """(first ts ms, last ts ms, bars) of `ticker` in `table`, None when it has none."""
        d = self.dialect

        def compute() -> tuple[int, int, int] | None:
            frame = self._query(
                f"SELECT {d.epoch_ms('min(ts)')} AS lo, {d.epoch_ms('max(ts)')} AS hi, count(*) AS n "
                f"FROM {d.quote(table)} WHERE ticker = ?", [ticker])
            lo, hi, n = frame.row(0)
            return None if not n else (int(lo), int(hi), int(n))
        return self.cached(("span", table, ticker), compute)  # type: ignore[no-any-return]

    def bars(self, relation: str, ticker: str, lo_ms: int, hi_ms: int, columns: Sequence[str]) -> pl.DataFrame:
        """Bars of `ticker` with lo_ms <= ts < hi_ms, as `t` (epoch ms) and `columns`, in time order."""
        allowed = set(self.columns(relation))
        bad = [c for c in columns if c not in allowed]
        if bad:
            raise InvalidArgument(f"unknown column(s) {', '.join(bad)}; {relation} has {', '.join(sorted(allowed))}")
        cols = ", ".join(self.dialect.quote(c) for c in columns)
        lo = dt.datetime.fromtimestamp(lo_ms / 1000, dt.timezone.utc)
        hi = dt.datetime.fromtimestamp(hi_ms / 1000, dt.timezone.utc)
        return self._query(
            f"SELECT {self.dialect.epoch_ms()} AS t, {cols} FROM {self.dialect.quote(relation)} "
            "WHERE ticker = ? AND ts >= ? AND ts < ? ORDER BY ts", [ticker, lo, hi])

    def top_tickers(self, limit: int, search: str | None = None) -> list[str]:
        """Tickers by dollar volume (close x volume) over the day bars (else the minute bars), most traded first;
        `search` keeps those whose name contains it (case-insensitive)."""
        table = "bars_1d" if "bars_1d" in self.relations() else "bars_1m" if "bars_1m" in self.relations() else None
        if table is None:
            return []
        def compute() -> list[str]:
            frame = self._query(f"SELECT ticker, sum(close * volume) AS dv FROM {self.dialect.quote(table)} "
                                "GROUP BY ticker "
                                "ORDER BY dv DESC NULLS LAST, ticker")
            return frame["ticker"].to_list()
        ranked: list[str] = self.cached(("ranked", table), compute)
        if search:
            needle = search.upper()
            ranked = [t for t in ranked if needle in t.upper()]
        return ranked[:limit]

    def day_totals(self, table: str) -> pl.DataFrame:
        """Per New York trading day of `table`: bars and tickers (columns day, bars, tickers)."""
        def compute() -> pl.DataFrame:
            day = self.dialect.ny_day()
            return self._query(f"SELECT {day} AS day, count(*) AS bars, count(DISTINCT ticker) AS tickers "
                               f"FROM {self.dialect.quote(table)} GROUP BY 1 ORDER BY 1")
        return self.cached(("totals", table), compute)  # type: ignore[no-any-return]

    def day_counts(self, table: str, tickers: Sequence[str]) -> pl.DataFrame:
        """Bars per (ticker, New York day) of `tickers` (columns ticker, day, bars)."""
        if not tickers:
            return pl.DataFrame(schema={"ticker": pl.Utf8, "day": pl.Date, "bars": pl.Int64})
        marks = ", ".join("?" for _ in tickers)
        return self.cached(("counts", table, tuple(tickers)), lambda: self._query(
            f"SELECT ticker, {self.dialect.ny_day()} AS day, count(*) AS bars FROM {self.dialect.quote(table)} "
            f"WHERE ticker IN ({marks}) GROUP BY 1, 2", list(tickers)))


def iso(value: object) -> str | None:
    return value.isoformat() if isinstance(value, dt.date) else None


def ny_day(ts: dt.datetime | None) -> str | None:
    from colfill.calendar import NEW_YORK

    return ts.astimezone(NEW_YORK).date().isoformat() if ts else None


def rejects_summary(data_dir: Path) -> list[dict[str, Any]]:
    """Rejected rows in the lake by table and reason (with a count and the days), from `_rejects/`."""
    con = _rejects_con(data_dir)
    if con is None:
        return []
    rows = con.execute("SELECT \"table\", reason, count(*) AS n, count(DISTINCT source_key) AS files "
                       "FROM rejects GROUP BY ALL ORDER BY n DESC").fetchall()
    con.close()
    return [{"table": t, "reason": r, "rows": n, "files": f} for t, r, n, f in rows]


def rejects_detail(data_dir: Path, reason: str, limit: int = 200) -> list[dict[str, Any]]:
    """File and line of the rejected rows with `reason` (bound, never spliced), at most `limit`."""
    con = _rejects_con(data_dir)
    if con is None:
        return []
    rows = con.execute("SELECT \"table\", source_key, line, ticker FROM rejects WHERE reason = ? "
                       "ORDER BY source_key, line LIMIT ?", [reason, limit]).fetchall()
    con.close()
    return [{"table": t, "file": k, "line": ln, "ticker": tk} for t, k, ln, tk in rows]


def reject_days(data_dir: Path, table: str) -> pl.DataFrame:
    """Rejected rows per (ticker, New York day) of `table` (columns ticker, day, rejected)."""
    con = _rejects_con(data_dir)
    empty = pl.DataFrame(schema={"ticker": pl.Utf8, "day": pl.Date, "rejected": pl.Int64})
    if con is None:
        return empty
    frame = con.sql("SELECT ticker, CAST(date AS DATE) AS day, count(*) AS rejected FROM rejects "
                    "WHERE \"table\" = ? GROUP BY ALL", params=[table]).pl()
    con.close()
    return frame if frame.height else empty


def _rejects_con(data_dir: Path) -> Any:
    import duckdb

    from colfill.stage.lake import Lake
    from colfill.stores.lake import side_views_sql

    views = side_views_sql(Lake(data_dir / "lake"))
    if "rejects" not in views:
        return None
    con = duckdb.connect()
    con.execute(f"CREATE VIEW rejects AS {views['rejects']}")
    return con
