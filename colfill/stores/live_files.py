"""The lake store's live bars: small Parquet files beside the day files, so `colfill live` never holds the catalogue.

DuckDB lets one process hold a database file, and nobody else may even read it meanwhile. Live bars kept
in a catalogue table would therefore lock out the morning's `colfill run` (which backfills yesterday's
flat file into the same lake) and every reader, for as long as the live session runs. So they are files:

    lake/_live/table=bars_1m/date=2024-03-08/bucket=0930.parquet   bars of 09:30-09:34 New York, one row a key
    lake/_live/table=bars_1d/date=2024-03-08/day.parquet           the day's bars (bars_1d, bars_1d_rth)

A derived table's live bars (`bars_5m`, from the live rollup) are kept the same way as `bars_1m`'s.

A minute bar belongs to one bucket (`BUCKET_MINUTES` of New York time; a day bar to its day's file), so a
bucket file holds the newest version of each of its bars: an upsert rewrites the buckets its rows fall in
(merging by (ticker, ts), the later row winning) and replaces each atomically (`os.replace`), so a reader
sees a bucket before or after a write, never half. The live session keeps its recent buckets in memory,
so the current bucket is merged without reading it back; an older one (a late correction, or a restart)
is read from its file first.

The bars views union these files for the days the lake does not hold (colfill.stores.live_rows); once a
day's flat file is backfilled, that day's live files are deleted at the next refresh.
"""

from __future__ import annotations

import datetime as dt
import shutil
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pyarrow as pa

from colfill import atomic
from colfill.bars import ALL_BAR_TABLES, INTRADAY_TABLES
from colfill.calendar import NEW_YORK
from colfill.stores.live_rows import check_rows, held_condition, held_days, last_per_key, with_live_sql

BUCKET_MINUTES = 5
KEEP = 8  # buckets kept in memory per table (the current one, and the few before it revisions reach)


def live_root(lake_root: Path, table: str) -> Path:
    return lake_root / "_live" / f"table={table}"


def live_glob(lake_root: Path, table: str) -> str:
    return (live_root(lake_root, table).resolve() / "date=*" / "*.parquet").as_posix()


def live_days(lake_root: Path, table: str) -> list[dt.date]:
    """Days with live files, oldest first."""
    root = live_root(lake_root, table)
    if not root.exists():
        return []
    return sorted(dt.date.fromisoformat(p.name.split("=", 1)[1]) for p in root.glob("date=*")
                  if any(p.glob("*.parquet")))


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def add_live_rows(views: dict[str, str | None], lake: Any) -> None:
    """Make the bars views of `views` show the lake's live files for the days the lake does not hold.
    Read-only: pruning the live files of held days is the lake store's refresh."""
    for table in ALL_BAR_TABLES:
        if not live_days(lake.root, table):
            continue
        held = held_condition(*held_days(lake.entries(table)))
        scan = f"read_parquet({_literal(live_glob(lake.root, table))}, hive_partitioning = false, union_by_name = true)"
        views[table] = with_live_sql(views.get(table), scan, held)


def prune(lake_root: Path, table: str, days: set[dt.date]) -> None:
    """Delete the live files of `days` (the lake holds them now)."""
    for day in days:
        shutil.rmtree(live_root(lake_root, table) / f"date={day.isoformat()}", ignore_errors=True)


class LiveFiles:
    """Upserts of live bars into bucket files (see the module docstring); one writer process per lake."""

    def __init__(self, lake_root: Path) -> None:
        self.root = lake_root
        self._cache: dict[str, OrderedDict[Path, pa.Table]] = {}
        self._lock = threading.Lock()
        self.new_day = False  # set when a write starts a day folder (the catalogue's views should name it)
        import pyarrow.parquet  # noqa: F401 - loaded now, not in the middle of the first live bar's write

    def upsert(self, table: str, rows: pa.Table) -> int:
        """Write `rows` (the bars table's columns) into their buckets; an existing (ticker, ts) is replaced.

        Arrow compute throughout: a micro-batch is a few rows, where a dataframe library's fixed cost per
        operation would be most of the live path's latency."""
        import pyarrow.compute as pc

        check_rows(table, rows)
        rows = last_per_key(rows)
        if rows.num_rows == 0:
            return 0
        rows = _keys_typed(rows)
        local = pc.local_timestamp(rows["ts"].cast(pa.timestamp("us", NEW_YORK.key)))
        days = pc.cast(local, pa.date32())
        if table in INTRADAY_TABLES:
            starts = pc.multiply(pc.divide(pc.add(pc.multiply(pc.hour(local), 60), pc.minute(local)),
                                           BUCKET_MINUTES), BUCKET_MINUTES)
        else:
            starts = pa.array([0] * rows.num_rows, pa.int64())
        keys = pa.table({"d": days, "m": starts})
        groups = keys.group_by(["d", "m"], use_threads=False).aggregate([])
        with self._lock:
            for day, start in zip(groups["d"].to_pylist(), groups["m"].to_pylist()):
                part = rows if groups.num_rows == 1 else rows.filter(
                    pc.and_(pc.equal(keys["d"], pa.scalar(day, pa.date32())), pc.equal(keys["m"], start)))
                self._write(table, self._path(table, day, int(start)), part)
        return rows.num_rows

    def _path(self, table: str, day: dt.date, start: int) -> Path:
        name = f"bucket={start // 60:02d}{start % 60:02d}.parquet" if table in INTRADAY_TABLES else "day.parquet"
        return live_root(self.root, table) / f"date={day.isoformat()}" / name

    def _write(self, table: str, path: Path, new: pa.Table) -> None:
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        cache = self._cache.setdefault(table, OrderedDict())
        old = cache.pop(path, None)
        if old is None and path.exists():
            old = _keys_typed(pq.read_table(path))
        merged = new
        if old is not None:
            kept = old.filter(pc.invert(pc.is_in(_key(old), value_set=_key(new))))  # no Acero: it loads in 0.3 s
            merged = pa.concat_tables([kept, new], promote_options="permissive")
        merged = merged.sort_by([("ticker", "ascending"), ("ts", "ascending")])
        if not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            self.new_day = True
        with atomic.replacing(path) as tmp:
            pq.write_table(merged, tmp, compression="lz4", use_dictionary=["ticker"])
        cache[path] = merged
        while len(cache) > KEEP:
            cache.popitem(last=False)


def _keys_typed(rows: pa.Table) -> pa.Table:
    """ticker as string, ts as microseconds UTC: one key type, whichever engine made the rows."""
    rows = rows.set_column(rows.column_names.index("ticker"), "ticker", rows["ticker"].cast(pa.string()))
    return rows.set_column(rows.column_names.index("ts"), "ts", rows["ts"].cast(pa.timestamp("us", "UTC")))


def _key(rows: pa.Table) -> pa.Array:
    """(ticker, ts) as one string per row, for set membership."""
    import pyarrow.compute as pc

    micros = pc.cast(pc.cast(rows["ts"], pa.int64()), pa.string())
    return pc.binary_join_element_wise(rows["ticker"], micros, "|")
