"""The dashboard's readers of the DuckDB stores: the lake (its day files) and a native DuckDB file.

Neither holds a store file open between requests, because DuckDB's lock is per process: a reader that kept
`colfill.duckdb` (or a native store file) attached would make the next `colfill run` or `colfill live` fail
to open it for writing. So the lake is read through its day files (replaced atomically, always readable)
with the catalogue's views rebuilt in an in-memory DuckDB (`colfill.stores.lake`), and the catalogue's small
tables (splits, dividends) are copied out of it when it can be attached for a moment (live bars are files
of the lake, colfill.stores.live_files); a native
file is opened read-only for each query and closed again (while a writer holds it, the query answers that
the store is busy).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from colfill.bars import ALL_BAR_TABLES, BAR_TABLES
from colfill.dialect import DUCKDB
from colfill.errors import StoreError
from colfill.ui.daycounts import DayCounts
from colfill.ui.queries import VERSION_TTL, Reader, iso

COPIED = ("splits", "dividends")  # catalogue tables the lake's views use


class LakeReader(Reader):
    """The lake of `data_dir`: views over the current day files, per-file counts for overview and coverage."""

    kind = "lake"

    def __init__(self, data_dir: Path) -> None:
        super().__init__()
        import duckdb

        from colfill.stage.lake import Lake

        self.data_dir = data_dir
        self.lake = Lake(data_dir / "lake")
        self._con = duckdb.connect()
        self._lock = threading.Lock()
        self._version: object = None
        self._checked = 0.0
        self._relations: set[str] = set()
        self._files: dict[str, list[Any]] = {}
        self._live_union: set[str] = set()
        self._copied: set[str] = set()
        self._counts = DayCounts()
        self.version()

    def describe(self) -> str:
        return f"Parquet lake {self.lake.root}"

    def _signature(self) -> object:
        from colfill.stores.lake import CATALOGUE

        manifest = self.lake.root / "_manifest"
        files = sorted(manifest.glob("table=*/lineage=*/date=*.json")) if manifest.exists() else []
        newest = max((p.stat().st_mtime_ns for p in files), default=0)
        rejects = self.lake.root / "_rejects"
        n_rejects = sum(1 for _ in rejects.glob("table=*/date=*/*.parquet")) if rejects.exists() else 0
        catalogue = self.data_dir / CATALOGUE
        cat = catalogue.stat().st_mtime_ns if catalogue.exists() else 0
        live = self.lake.root / "_live"
        buckets = sorted(live.glob("table=*/date=*/*.parquet")) if live.exists() else []
        # the current bucket is rewritten every second: at most a rebuild per 10 s for it
        live_sig = (len(buckets), max((p.stat().st_mtime_ns for p in buckets), default=0) // 10**10)
        return (len(files), newest, n_rejects, cat, live_sig)

    def version(self) -> object:
        now = time.monotonic()
        if now - self._checked < VERSION_TTL and self._version is not None:
            return self._version
        self._checked = now
        sig = self._signature()
        if sig != self._version:
            with self._lock:
                self._rebuild()
            self._version = sig
        return self._version

    def _copy_catalogue(self) -> None:
        """Copy the catalogue's small tables into memory, attached read-only for that moment only; while a writer
        holds the file the earlier copies stay."""
        import duckdb

        from colfill.stores.lake import CATALOGUE

        path = self.data_dir / CATALOGUE
        if not path.exists():
            return
        con = self._con
        try:
            con.execute("ATTACH ? AS catalogue (READ_ONLY)", [str(path)])
        except duckdb.Error:
            return
        try:
            have = {n for (n,) in con.execute("SELECT table_name FROM duckdb_tables() "
                                              "WHERE database_name = 'catalogue'").fetchall()}
            for name in COPIED:
                if name in have:
                    con.execute(f"CREATE OR REPLACE TABLE memory.main.{DUCKDB.quote(name)} AS "
                                f"SELECT * FROM catalogue.main.{DUCKDB.quote(name)}")
                    self._copied.add(name)
        finally:
            con.execute("DETACH catalogue")

    def _rebuild(self) -> None:
        """(Re)create the views over the lake in the in-memory connection."""
        from colfill.adjust import adjusted_views
        from colfill.stores.lake import bars_view_sql, current_files, side_views_sql

        con = self._con
        for (name,) in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal "
                                   "AND database_name = 'memory'").fetchall():
            con.execute(f"DROP VIEW IF EXISTS {DUCKDB.quote(name)}")
        self._copy_catalogue()
        views: dict[str, str | None] = dict(side_views_sql(self.lake))
        self._files = {t: current_files(self.lake, t) for t in self._lake_tables()}
        views.update({t: bars_view_sql(files) for t, files in self._files.items()})
        self._live_union = self._with_live_rows(views)
        for name, sql in views.items():
            if sql is not None:
                con.execute(f"CREATE OR REPLACE VIEW {DUCKDB.quote(name)} AS {sql}")
        have = self._names()
        for name, sql in adjusted_views(DUCKDB, have, "dividend_factors" in have).items():
            if sql is not None and name not in have:
                con.execute(f"CREATE VIEW {DUCKDB.quote(name)} AS {sql}")
        self._relations = self._names()
        with self._cache_lock:
            self._cache.clear()

    def _lake_tables(self) -> list[str]:
        """The bars tables of the lake: the known ones and any other timeframe's (`table=bars_5m/`, ...)."""
        from colfill.timeframes import of_table

        found = [p.name.removeprefix("table=") for p in self.lake.root.glob("table=bars_*")]
        return [*BAR_TABLES, *sorted(t for t in found if t not in BAR_TABLES and of_table(t) is not None)]

    def _names(self) -> set[str]:
        return {n for (n,) in self._con.execute(
            "SELECT view_name FROM duckdb_views() WHERE NOT internal AND database_name = 'memory' "
            "UNION SELECT table_name FROM duckdb_tables() WHERE database_name = 'memory'").fetchall()}

    def _with_live_rows(self, views: dict[str, str | None]) -> set[str]:
        """Live rows (`colfill live` into the lake: its live files) of days the lake does not hold, as the
        catalogue's own views show them; returns the tables that have them."""
        from colfill.stores.live_files import add_live_rows, live_days

        add_live_rows(views, self.lake)
        return {t for t in ALL_BAR_TABLES if live_days(self.lake.root, t)}

    def relations(self) -> set[str]:
        self.version()
        return set(self._relations)

    def _query(self, sql: str, params: Sequence[object] = ()) -> pl.DataFrame:
        with self._lock:
            cur = self._con.cursor()
        try:
            return cur.sql(sql, params=list(params)).pl()
        finally:
            cur.close()

    def _counted(self, table: str) -> bool:
        """Whether `table`'s counts come from the day files' counts (not when live rows are unioned in)."""
        return table not in self._live_union

    def _day_counts_all(self, table: str) -> pl.DataFrame:
        self.version()
        return self.cached(("daycounts", table),  # type: ignore[no-any-return]
                           lambda: self._counts.frame(self._files.get(table, [])))

    def day_totals(self, table: str) -> pl.DataFrame:
        if not self._counted(table):
            return super().day_totals(table)
        return self.cached(("totals", table), lambda: self._day_counts_all(table).group_by("day").agg(  # type: ignore[no-any-return]
            pl.col("bars").sum(), pl.col("ticker").n_unique().alias("tickers")).sort("day"))

    def day_counts(self, table: str, tickers: Sequence[str]) -> pl.DataFrame:
        if not self._counted(table):
            return super().day_counts(table, tickers)
        frame = self._day_counts_all(table)
        return frame.filter(pl.col("ticker").is_in(list(tickers))).select("ticker", "day", "bars")

    def table_stats(self) -> list[dict[str, Any]]:
        def compute() -> list[dict[str, Any]]:
            out = []
            for table in self._lake_tables():
                size = sum(p.stat().st_size for p in self.lake.root.glob(f"table={table}/date=*/*.parquet"))
                if table not in self.relations():
                    out.append({"table": table, "rows": 0, "tickers": 0, "first_day": None, "last_day": None,
                                "days": 0, "size_bytes": size})
                elif self._counted(table):
                    c = self._day_counts_all(table)
                    out.append({"table": table, "rows": int(c["bars"].sum()), "tickers": c["ticker"].n_unique(),
                                "first_day": iso(c["day"].min()), "last_day": iso(c["day"].max()),
                                "days": c["day"].n_unique(), "size_bytes": size})
                else:
                    out.append({**sql_stats(self, table), "size_bytes": size})
            return out
        return self.cached(("stats",), compute)  # type: ignore[no-any-return]

    def close(self) -> None:
        with self._lock:
            self._con.close()


class DuckFileReader(Reader):
    """A native DuckDB store file, opened read-only for each query and closed again."""

    kind = "duckdb"

    def __init__(self, path: Path) -> None:
        super().__init__()
        if not path.exists():
            raise StoreError(f"no DuckDB file at {path}. Hint: run `colfill run --db duckdb:///{path}` first")
        self.file = path
        self._checked = 0.0
        self._version: object = None
        self._query("SELECT 1")  # fail now when it cannot be read

    def describe(self) -> str:
        return f"DuckDB {self.file}"

    def version(self) -> object:
        now = time.monotonic()
        if now - self._checked >= VERSION_TTL or self._version is None:
            self._checked = now
            wal = self.file.with_name(self.file.name + ".wal")
            self._version = tuple((p.stat().st_mtime_ns, p.stat().st_size) if p.exists() else None
                                  for p in (self.file, wal))
        return self._version

    def _query(self, sql: str, params: Sequence[object] = ()) -> pl.DataFrame:
        import duckdb

        try:
            con = duckdb.connect(str(self.file), read_only=True)
        except duckdb.Error as exc:
            raise StoreError(f"cannot read the DuckDB file {self.file}: {str(exc).splitlines()[0]}. Hint: another "
                             "process is writing it (DuckDB allows one writer and no reader then); try again when "
                             "it is done.") from None
        try:
            return con.sql(sql, params=list(params)).pl()
        finally:
            con.close()

    def relations(self) -> set[str]:
        frame = self.cached(("relations",), lambda: self._query(
            "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema()"))
        return set(frame["name"].to_list()) if frame.height else set()

    def table_stats(self) -> list[dict[str, Any]]:
        def compute() -> list[dict[str, Any]]:
            out = []
            have = self.relations()
            tables = [*BAR_TABLES, *(t for t in ALL_BAR_TABLES if t in have and t not in BAR_TABLES)]
            for i, table in enumerate(tables):
                size = self.file.stat().st_size if i == 0 else None  # one file holds every table
                if table not in self.relations():
                    out.append({"table": table, "rows": 0, "tickers": 0, "first_day": None, "last_day": None,
                                "days": 0, "size_bytes": size})
                else:
                    out.append({**sql_stats(self, table), "size_bytes": size})
            return out
        return self.cached(("stats",), compute)  # type: ignore[no-any-return]


def sql_stats(reader: Reader, table: str) -> dict[str, Any]:
    """Rows, tickers, first and last New York day, and days of `table`, by one scan."""
    day = reader.dialect.ny_day()
    row = reader._query(f"SELECT count(*) AS n, count(DISTINCT ticker) AS tickers, min({day}) AS first, "
                        f"max({day}) AS last, count(DISTINCT {day}) AS days "
                        f"FROM {reader.dialect.quote(table)}").row(0)
    return {"table": table, "rows": row[0], "tickers": row[1], "first_day": iso(row[2]), "last_day": iso(row[3]),
            "days": row[4]}
