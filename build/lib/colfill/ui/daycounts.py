"""Bars per (New York day, ticker) of the lake's current day files, counted once per file.

The overview and the coverage heatmap need, per table, rows, tickers, first and last day, and bars per
ticker and day. Over the lake these are counts of each day file's `ticker` column, and a committed day file
never changes (a reload writes a new file and renames it over the old one), so each file is counted once,
keyed by path, size and mtime, and only new files are read while `colfill run` commits day after day, instead
of a full scan of every minute bar each time the overview refreshes.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from colfill.stores.lake import DayFile

SCHEMA = {"day": pl.Date, "ticker": pl.Utf8, "bars": pl.Int64}


class DayCounts:
    """Per-file counts, kept while the file is current."""

    def __init__(self) -> None:
        self._by_file: dict[tuple[Path, int, int], pl.DataFrame] = {}
        self._lock = threading.Lock()

    def frame(self, files: list[DayFile]) -> pl.DataFrame:
        """(day, ticker, bars) over `files`, each file's hidden tickers left out."""
        keys: dict[Path, tuple[Path, int, int]] = {}
        for f in files:
            try:
                st = f.path.stat()
            except FileNotFoundError:
                continue  # replaced since the listing: the next refresh lists its successor
            keys[f.path] = (f.path, st.st_mtime_ns, st.st_size)
        with self._lock:
            missing = [k for k in keys.values() if k not in self._by_file]
        if missing:
            self._count(missing)
        parts = []
        current = set(keys.values())
        for f in files:
            key = keys.get(f.path)
            with self._lock:
                counted = self._by_file.get(key) if key is not None else None
            if counted is None:
                continue
            if f.hidden:
                counted = counted.filter(~pl.col("ticker").is_in(sorted(f.hidden)))
            parts.append(counted.select(pl.lit(f.date, dtype=pl.Date).alias("day"), "ticker", "bars"))
        with self._lock:
            for key in [k for k in self._by_file if k not in current]:
                del self._by_file[key]
        if not parts:
            return pl.DataFrame(schema=SCHEMA)
        return pl.concat(parts).group_by("day", "ticker").agg(pl.col("bars").sum())

    def _count(self, keys: list[tuple[Path, int, int]]) -> None:
        """Count the files of `keys` in one parallel DuckDB scan of their `ticker` columns."""
        import duckdb

        con = duckdb.connect()
        try:
            counts = con.sql("SELECT filename, ticker, count(*)::BIGINT AS bars FROM read_parquet(?, filename = true) "
                             "GROUP BY ALL", params=[[str(k[0]) for k in keys]]).pl()
        finally:
            con.close()
        parts = counts.partition_by("filename", as_dict=True)
        by_name = {name: frame.drop("filename") for (name,), frame in parts.items()}
        empty = pl.DataFrame(schema={"ticker": pl.Utf8, "bars": pl.Int64})
        with self._lock:
            for key in keys:
                self._by_file[key] = by_name.get(str(key[0]), empty)
