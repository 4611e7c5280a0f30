"""The embedded default: the Parquet lake is the store, and `<data-dir>/colfill.duckdb` a small catalogue over it.

Each bar is stored once, in the lake's day files (`lake/table=bars_1m/date=.../part-<lineage>.parquet`,
LZ4, sorted by (ticker, ts), row groups of `ROW_GROUP_ROWS` with min/max statistics, so a one-ticker query
reads a small part of a day). A day counts as loaded when the pipeline's lake commit (its manifest entry,
written last) is done; `load` copies nothing. The catalogue holds:

- views `bars_1m` and `bars_1d` over the current day files, each (ticker, ts) exactly once: per day the
  newest commit wins, ticker by ticker (a whole-day lineage hides every older file of that day, a
  `--tickers` lineage hides only its tickers in older ones), as a native store's delete-then-insert does;
- views `rejects` and `manifest` over the lake's rejects and commit records;
- native tables for what is small or mutable: `indicator_state` (the live engine's hand-off), the reference
  tables, and `colfill_catalogue`, which marks the file as a catalogue.

Live bars (`upsert_live`) are Parquet files too (colfill.stores.live_files), which the bars views union for
the days the lake does not hold; so a live session never writes the catalogue.

The store holds `colfill.duckdb` only while it uses it (a refresh, a reference or state write) and lets go
after each call, because DuckDB's lock is per process and a holder locks out readers too: between a
backfill's refreshes, `colfill sql`, the dashboard or any DuckDB client can open it; a writer that finds
it held waits up to `LOCK_WAIT` seconds (a refresh during a run just tries again at the next day).

The views name files by absolute path (DuckDB resolves relative ones against the reader's working
directory), so any DuckDB client anywhere can open the file read-only. They are rebuilt from the lake
itself whenever the store opens, at most every `REFRESH_SECONDS` while loading, and when a table's run
ends: a data dir that was moved, or a run that was killed after a commit, is repaired by the next open.
Day files are replaced atomically (`os.replace`), so a view never reads a half-written day.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from colfill.bars import ALL_BAR_TABLES, BAR_TABLES, DERIVED_TABLES
from colfill.dialect import DUCKDB
from colfill.errors import StoreError
from colfill.stage.lake import Lake, ManifestEntry
from colfill.stores.base import LoadBatch
from colfill.stores.duckdb import DuckDBStore
from colfill.target import resolve

if TYPE_CHECKING:
    import duckdb

    from colfill.stores.live_files import LiveFiles

CATALOGUE = "colfill.duckdb"
MARKER = "colfill_catalogue"
REFRESH_SECONDS = 5.0
LOCK_WAIT = 10.0  # seconds a write waits for the catalogue while another process holds it


@dataclass(frozen=True)
class DayFile:
    """One committed day file of a table and whose rows of it are visible (`hidden` tickers are not)."""

    date: dt.date
    path: Path
    lineage: str
    columns: tuple[str, ...]
    hidden: frozenset[str] = frozenset()


def current_files(lake: Lake, table: str) -> list[DayFile]:
    """The visible day files of `table`: per date, newest commit first, each hiding what newer ones cover."""
    import pyarrow.parquet as pq

    by_day: dict[dt.date, list[ManifestEntry]] = {}
    for entry in lake.entries(table):
        if entry.status == "done":
            by_day.setdefault(entry.date, []).append(entry)
    columns: dict[str, tuple[str, ...]] = {}
    out = []
    for date in sorted(by_day):
        covered: set[str] = set()
        for entry in sorted(by_day[date], key=lambda e: (e.staged_at, e.lineage), reverse=True):
            path = lake.partition(table, date, entry.lineage)
            if entry.rows_out and path.exists():  # an empty day still hides what it replaced
                if entry.lineage not in columns:
                    columns[entry.lineage] = tuple(pq.read_schema(path).names)
                out.append(DayFile(date, path, entry.lineage, columns[entry.lineage], frozenset(covered)))
            if entry.tickers is None:
                break  # a whole day: older files of the day are hidden entirely
            covered |= set(entry.tickers)
    return out


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _paths(files: Iterable[DayFile]) -> str:
    return "[" + ", ".join(_literal(f.path.resolve().as_posix()) for f in files) + "]"


def bars_view_sql(files: list[DayFile]) -> str | None:
    """SELECT over the visible files: one scan of the unfiltered ones, one per set of hidden tickers."""
    if not files:
        return None
    by_name = len({f.columns for f in files}) > 1  # lineages with other indicator sets: columns by name
    opts = ", union_by_name = true" if by_name else ""
    groups: dict[frozenset[str], list[DayFile]] = {}
    for f in files:
        groups.setdefault(f.hidden, []).append(f)
    parts = []
    for hidden, group in sorted(groups.items(), key=lambda kv: len(kv[0])):
        scan = f"SELECT * FROM read_parquet({_paths(group)}, hive_partitioning = false{opts})"
        if hidden:
            scan += " WHERE ticker NOT IN (" + ", ".join(_literal(t) for t in sorted(hidden)) + ")"
        parts.append(scan)
    return "\nUNION ALL BY NAME\n".join(parts)


def side_views_sql(lake: Lake) -> dict[str, str]:
    """`rejects` and `manifest` over the lake's files (globs: new files show without a refresh)."""
    root = lake.root.resolve().as_posix()
    views = {}
    if any(lake.root.glob("_rejects/table=*/date=*/*.parquet")):
        views["rejects"] = (f"SELECT * FROM read_parquet({_literal(root + '/_rejects/table=*/date=*/*.parquet')}, "
                            "hive_partitioning = true, union_by_name = true)")
    if any(lake.root.glob("_manifest/table=*/lineage=*/*.json")):
        views["manifest"] = (f"SELECT * FROM read_json_auto({_literal(root + '/_manifest/table=*/lineage=*/*.json')}, "
                             "union_by_name = true)")
    return views


def lake_views_sql(lake: Lake) -> dict[str, str | None]:
    """Every view of the catalogue, by name (None: no such view, nothing to show yet), live rows included."""
    from colfill.stores.live_files import add_live_rows

    held = {p.name.split("=", 1)[1] for p in lake.root.glob("table=bars_*")} & set(DERIVED_TABLES)
    views: dict[str, str | None] = {t: bars_view_sql(current_files(lake, t)) for t in (*BAR_TABLES, *sorted(held))}
    add_live_rows(views, lake)
    views.update(side_views_sql(lake))
    return views


class LakeStore(DuckDBStore):
    """The lake as the store (`lake:///data-dir`, the default); see the module docstring."""

    name = "lake"
    supports_upsert = True
    lake_is_store = True  # the pipeline loads a day only after its lake commit, and load() then copies nothing

    def __init__(self, url: str, **_: object) -> None:
        data_dir = resolve(url, Path()).path
        assert data_dir is not None
        self.data_dir = data_dir
        self.lake = Lake(self.data_dir / "lake")
        self._refreshed = 0.0
        self._depth = 0
        self._use = threading.RLock()
        self._background: threading.Thread | None = None  # the catalogue refresh of the live path, if running
        self._stale = False  # a live day appeared since the background refresh began
        self._starting = threading.Lock()
        self._live: LiveFiles | None = None
        with self._held():
            super().__init__(str(self.data_dir / CATALOGUE))

    def _setup(self) -> None:
        self.con.execute(f"CREATE TABLE IF NOT EXISTS {MARKER} (key VARCHAR PRIMARY KEY, value VARCHAR)")
        self.con.execute(f"INSERT OR REPLACE INTO {MARKER} VALUES ('layout', 'lake-views-1')")
        self.refresh()

    # -- holding the catalogue only while it is used --------------------------------------------------------

    def _connect(self, wait: float | None = None) -> duckdb.DuckDBPyConnection:
        """Open the catalogue, waiting up to `wait` (LOCK_WAIT) seconds while another process holds it."""
        import duckdb

        deadline = time.monotonic() + (LOCK_WAIT if wait is None else wait)
        pause = 0.02
        while True:
            try:
                return duckdb.connect(str(self.path))
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                    raise StoreError(f"cannot open the catalogue {self.path}: {exc}. Hint: another process holds "
                                     "it (a DuckDB client keeping it open locks out colfill); close it and run "
                                     "again.") from exc
                time.sleep(pause)
                pause = min(pause * 2, 0.5)

    @contextlib.contextmanager
    def _held(self) -> Iterator[None]:
        """Keep the catalogue open for the calls inside (one thread at a time); let it go after the outermost."""
        with self._use:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    super().close()

    def describe(self) -> str:
        return f"Parquet lake {self.lake.root} (catalogue {self.path})"

    def ensure_table(self, table: str, schema: object) -> None:
        """Nothing to create: a table is its day files."""

    def load(self, batch: LoadBatch) -> int:
        """The day's lake commit is the load; the views follow within REFRESH_SECONDS (and at `finish`), or at
        a later day's load while another process holds the catalogue."""
        if time.monotonic() - self._refreshed >= REFRESH_SECONDS:
            try:
                with self._held():
                    self._open(wait=0.2)
                    self.refresh()
            except StoreError:
                self._refreshed = time.monotonic()  # held elsewhere: try again later, the lake is committed
        return batch.data.num_rows

    def loaded(self, table: str, lineage: str) -> dict[dt.date, str]:
        return {d: e.fingerprint for d, e in self.lake.manifest(table, lineage).items() if e.status == "done"}

    def finish(self, table: str) -> list[str]:
        try:
            self.refresh()
        except StoreError as exc:
            return [f"{table}: the catalogue's views were not refreshed ({exc}); the next open refreshes them"]
        return []

    def refresh(self) -> None:
        """Rebuild the views from the lake, in one transaction (readers see the old set or the new one), and
        prune the live files of days the lake now holds."""
        self._prune_live()
        views = lake_views_sql(self.lake)
        with self._held():
            self._replace_views(views)
            self.adjusted_views()
        self._refreshed = time.monotonic()

    def _replace_views(self, views: dict[str, str | None]) -> None:
        with self._lock:
            kinds = dict(self.con.execute(
                "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = current_schema()"
            ).fetchall())
            self.con.execute("BEGIN TRANSACTION")
            try:
                for name, sql in views.items():
                    if kinds.get(name) == "BASE TABLE":
                        continue  # never shadow a table someone made; colfill sql still reads the lake
                    if sql is None:
                        self.con.execute(f"DROP VIEW IF EXISTS {DUCKDB.quote(name)}")
                    else:
                        self.con.execute(f"CREATE OR REPLACE VIEW {DUCKDB.quote(name)} AS {sql}")
                self.con.execute("COMMIT")
            except Exception:
                self.con.execute("ROLLBACK")
                raise

    def write_reference(self, table: str, rows: pa.Table) -> int:
        with self._held():
            return super().write_reference(table, rows)

    def read_reference(self, table: str) -> pa.Table | None:
        with self._held():
            return super().read_reference(table)

    def adjusted_views(self, dividends: bool | None = None) -> None:
        with self._held():
            super().adjusted_views(dividends)

    def read_state(self, timeframe: str) -> pa.Table | None:
        with self._held():
            return super().read_state(timeframe)

    def write_state(self, timeframe: str, rows: pa.Table, replace: bool = False) -> int:
        with self._held():
            return super().write_state(timeframe, rows, replace)

    def read_bars(self, table: str, columns: list[str], batch_rows: int = 500_000,
                  since: dt.datetime | None = None) -> Iterator[pa.Table]:
        with self._held():
            yield from super().read_bars(table, columns, batch_rows, since)

    def upsert_live(self, table: str, rows: pa.Table) -> int:
        """Upsert live bars into the lake's live files (colfill.stores.live_files), without the catalogue. The
        first bar of a new day refreshes the catalogue's views, if no other process holds it for a moment
        (else that process's next refresh does; colfill sql and the dashboard read the lake directly)."""
        if self._live is None:
            from colfill.stores.live_files import LiveFiles

            self._live = LiveFiles(self.lake.root)
        written = self._live.upsert(table, rows)
        if self._live.new_day:  # in the background: the live path must not wait for the catalogue
            self._live.new_day = False
            with self._starting:
                self._stale = True
                if self._background is None:
                    self._background = threading.Thread(target=self._refresh_while_stale,
                                                        name="colfill-catalogue", daemon=True)
                    self._background.start()
        return written

    def close(self) -> None:
        with self._starting:
            background = self._background
        if background is not None:
            background.join()
        with self._use:
            super().close()

    def _refresh_while_stale(self) -> None:
        """Refresh until no live day appeared meanwhile: a day started during a refresh that had already
        listed the live folders would otherwise stay out of the views."""
        try:
            while True:
                with self._starting:
                    if not self._stale:
                        self._background = None
                        return
                    self._stale = False
                with self._held():
                    self._open(wait=0.2)
                    self.refresh()
        except StoreError:
            pass  # held by another process, whose next refresh names the live files
        finally:
            with self._starting:
                if self._background is threading.current_thread():
                    self._stale, self._background = False, None

    def _prune_live(self) -> None:
        """Delete the live files of days the lake now holds whole (their backfilled rows replace them)."""
        from colfill.stores.live_files import live_days, prune
        from colfill.stores.live_rows import held_days

        for table in ALL_BAR_TABLES:
            days = set(live_days(self.lake.root, table))
            if days:
                prune(self.lake.root, table, days & held_days(self.lake.entries(table))[0])


def native_tables(path: Path) -> list[str]:
    """Bars tables stored natively in the DuckDB file at `path` (an earlier colfill's embedded store)."""
    import duckdb

    if not path.exists():
        return []
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
                           "AND table_type = 'BASE TABLE'").fetchall()
    finally:
        con.close()
    names = {r[0] for r in rows}
    return [] if MARKER in names else sorted(names & set(BAR_TABLES))


def is_catalogue(path: Path) -> bool:
    import duckdb

    if not path.exists():
        return False
    con = duckdb.connect(str(path), read_only=True)
    try:
        return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                                [MARKER]).fetchone()[0])  # type: ignore[index]
    finally:
        con.close()
