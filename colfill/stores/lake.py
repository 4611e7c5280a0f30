"""The embedded default: the Parquet lake is the store, and `<data-dir>/colfill.duckdb` a small catalogue over it.

Each bar is stored once, in the lake's day files (`lake/table=bars_1m/date=.../part-<lineage>.parquet`,
LZ4, sorted by (ticker, ts), row groups of `ROW_GROUP_ROWS` with min/max statistics, so a one-ticker query
reads a small part of a day). A day counts as loaded when the pipeline's lake commit (its manifest entry,
written last) is done; `load` copies nothing. The catalogue holds:

- views `bars_1m` and `bars_1d` over the current day files, each (ticker, ts) exactly once: per day the
  newest commit wins, ticker by ticker (a whole-day lineage hides every older file of that day, a
  `--tickers` lineage hides only its tickers in older ones), as a native store's delete-then-insert does;
- views `rejects` and `manifest` over the lake's rejects and commit records;
- native tables for what is small or mutable: `indicator_state` (the live engine's hand-off), and
  `colfill_catalogue`, which marks the file as a catalogue.

The views name files by absolute path (DuckDB resolves relative ones against the reader's working
directory), so any DuckDB client anywhere can open the file read-only. They are rebuilt from the lake
itself whenever the store opens, at most every `REFRESH_SECONDS` while loading, and when a table's run
ends: a data dir that was moved, or a run that was killed after a commit, is repaired by the next open.
Day files are replaced atomically (`os.replace`), so a view never reads a half-written day.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from colfill.errors import InvalidArgument
from colfill.stage.lake import Lake, ManifestEntry
from colfill.stores.base import BAR_TABLES, LoadBatch
from colfill.stores.duckdb import DuckDBStore, quote

CATALOGUE = "colfill.duckdb"
MARKER = "colfill_catalogue"
REFRESH_SECONDS = 5.0


def lake_dir(url: str) -> Path:
    """The data dir of a lake URL, read as DuckDB (and SQLAlchemy) URLs are: `lake:///colfill-data` is relative
    to the working directory, `lake:////srv/colfill-data` absolute."""
    path = urlsplit(url).path
    path = path[1:] if path.startswith("/") else path
    if not path:
        raise InvalidArgument(f"--db {url!r}: a lake URL names the data dir, e.g. lake:///colfill-data")
    return Path(path)


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
    """Every view of the catalogue, by name (None: no such view, nothing to show yet)."""
    views: dict[str, str | None] = {t: bars_view_sql(current_files(lake, t)) for t in BAR_TABLES}
    views.update(side_views_sql(lake))
    return views


class LakeStore(DuckDBStore):
    """The lake as the store (`lake:///data-dir`, the default); see the module docstring."""

    name = "lake"
    supports_upsert = True
    lake_is_store = True  # the pipeline loads a day only after its lake commit, and load() then copies nothing

    def __init__(self, url: str, **_: object) -> None:
        self.data_dir = lake_dir(url)
        self.lake = Lake(self.data_dir / "lake")
        self._refreshed = 0.0
        super().__init__(str(self.data_dir / CATALOGUE))

    def _setup(self) -> None:
        self.con.execute(f"CREATE TABLE IF NOT EXISTS {MARKER} (key VARCHAR PRIMARY KEY, value VARCHAR)")
        self.con.execute(f"INSERT OR REPLACE INTO {MARKER} VALUES ('layout', 'lake-views-1')")
        self.refresh()

    def describe(self) -> str:
        return f"Parquet lake {self.lake.root} (catalogue {self.path})"

    def ensure_table(self, table: str, schema: object) -> None:
        """Nothing to create: a table is its day files."""

    def load(self, batch: LoadBatch) -> int:
        """The day's lake commit is the load; the views follow within REFRESH_SECONDS (and at `finish`)."""
        if time.monotonic() - self._refreshed >= REFRESH_SECONDS:
            self.refresh()
        return batch.data.num_rows

    def loaded(self, table: str, lineage: str) -> dict[dt.date, str]:
        return {d: e.fingerprint for d, e in self.lake.manifest(table, lineage).items() if e.status == "done"}

    def finish(self, table: str) -> list[str]:
        self.refresh()
        return []

    def refresh(self) -> None:
        """Rebuild the views from the lake, in one transaction (readers see the old set or the new one)."""
        views = lake_views_sql(self.lake)
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
                        self.con.execute(f"DROP VIEW IF EXISTS {quote(name)}")
                    else:
                        self.con.execute(f"CREATE OR REPLACE VIEW {quote(name)} AS {sql}")
                self.con.execute("COMMIT")
            except Exception:
                self.con.execute("ROLLBACK")
                raise
        self.adjusted_views()
        self._refreshed = time.monotonic()


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
