"""TimescaleDB work that follows loads: compressing chunks during a backfill, refreshing the daily aggregate.

A backfill of years writes chunks far older than the policy's `compress_after`; left to the policy (every
12 h) they would all sit uncompressed first, ~200 bytes a minute bar, hundreds of GB for the whole
market. So the load worker compresses a chunk as soon as loading has moved past it: every chunk that a
committed day touched and that ends before the earliest day still being loaded (or, with nothing in
flight, before the end of the day just loaded), once it is older than `compress_after`. A chunk a later
day still reaches (in winter the last post-market hour of a day falls in the next UTC day's chunk) waits
for that day or for `finish`, which compresses what is left at the end of a table's run and refreshes
`bars_1d_cagg` over the loaded range. A reloaded day's rows land uncompressed in a compressed chunk (a
partially compressed chunk): compressing it again merges them. A failure here never fails a load: the day
is committed, the policy compresses later, and the summary says so.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from colfill.calendar import day_bounds
from colfill.stores import timescale as tsdb
from colfill.stores.base import LoadBatch, human_bytes
from colfill.stores.postgres.catalog import Catalog
from colfill.stores.postgres.session import _Session


@dataclass
class Compression:
    """Chunks compressed by this store, with their bytes before and after (for progress and the summary)."""

    chunks: int = 0
    before: int = 0
    after: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        return self.before / self.after if self.after else None

    def describe(self) -> str:
        if not self.chunks:
            return ""
        ratio = f", {self.ratio:.1f}x" if self.ratio else ""
        plural = "" if self.chunks == 1 else "s"
        return f"compressed {self.chunks} chunk{plural} {human_bytes(self.before)} -> {human_bytes(self.after)}{ratio}"


MAX_ERRORS = 3  # compression errors kept for the summary (the same cause tends to repeat for every day)


class Compressor:
    """Compression of the chunks loads leave behind, and refresh of the daily aggregate, on the catalogue's
    hypertables. `enabled` False (--no-compress) leaves chunks to the policy. Every day load runs inside
    `loading(batch)`, which tells it which days are in flight and which committed."""

    def __init__(self, catalog: Catalog, enabled: bool = True) -> None:
        self._catalog = catalog
        self.enabled = enabled
        self._comp_lock = threading.Lock()
        self._in_flight: dict[str, list[dt.datetime]] = {}  # table -> starts of the days being loaded
        self._pending: dict[str, dict[str, float]] = {}  # table -> chunk -> end of its range (epoch s)
        self._loaded_span: dict[str, tuple[dt.datetime, dt.datetime]] = {}
        self._compress_after: dict[str, float] = {}
        self.compression: dict[str, Compression] = {}

    def _compressing(self, table: str) -> bool:
        return self.enabled and self._catalog.kind(table) == "hypertable"

    @contextlib.contextmanager
    def loading(self, batch: LoadBatch) -> Iterator[None]:
        """Around one day's load: the day is in flight (its chunks wait) until the block ends; when the block
        ends without an exception the day is committed, and the chunks loading has left behind are compressed."""
        with self._comp_lock:
            self._in_flight.setdefault(batch.table, []).append(day_bounds(batch.date)[0])
        try:
            yield
        except BaseException:
            self._end_load(batch, committed=False)
            raise
        self._end_load(batch, committed=True)

    def _end_load(self, batch: LoadBatch, committed: bool) -> None:
        """After a day's transaction: note its chunks, then compress those that loading has left behind."""
        lo, hi = day_bounds(batch.date)
        table = batch.table
        with self._comp_lock:
            self._in_flight[table].remove(lo)
            if committed:
                span = self._loaded_span.get(table, (lo, hi))
                self._loaded_span[table] = (min(span[0], lo), max(span[1], hi))
        if not committed or not self._compressing(table):
            return
        with self._catalog.pool.session() as s:
            try:
                rows = s.execute(tsdb.overlapping_chunks_sql(self._catalog.schema, table),
                                 [hi.isoformat(), lo.isoformat()])
                s.rollback()
            except Exception as exc:
                s.reset()
                self._compression_error(table, f"listing the chunks of {batch.date}", exc)
                return
            with self._comp_lock:
                pending = self._pending.setdefault(table, {})
                # direct compress (colfill.stores.timescale) leaves its chunks compressed at commit
                direct = self._catalog.direct_compress(table)
                pending.update({name: end for name, end, compressed in rows if not (direct and compressed)})
                flight = self._in_flight[table]
                frontier = (min(flight) if flight else hi).timestamp()
                due = [c for c, end in pending.items() if end <= frontier and end <= self._old_enough(s, table)]
                for c in due:
                    del pending[c]
            self._compress(s, table, due)

    def _old_enough(self, s: _Session, table: str) -> float:
        """Epoch seconds before which a chunk is older than the table's `compress_after` (its policy's, else colfill's
        default)."""
        if table not in self._compress_after:
            try:
                rows = s.execute(tsdb.compress_after_sql(self._catalog.schema, table))
                s.rollback()
            except Exception:
                s.reset()
                rows = []
            default = tsdb.SPECS[table].compress_after
            days = float(default.split()[0]) * 86400 if default.endswith("days") else 7 * 86400
            self._compress_after[table] = float(rows[0][0]) if rows and rows[0][0] is not None else days
        return time.time() - self._compress_after[table]

    def _compress(self, s: _Session, table: str, chunks: list[str]) -> None:
        if not chunks:
            return
        version, ext = self._catalog.ts
        t0 = time.perf_counter()
        done = []
        for chunk in chunks:
            try:
                s.execute(tsdb.compress_chunk_sql(ext), [chunk])
                s.commit()
                done.append(chunk)
            except Exception as exc:
                s.reset()
                self._compression_error(table, f"compressing {chunk}", exc)
        if not done:
            return
        try:
            before, after = s.execute(tsdb.chunk_sizes_sql(self._catalog.schema, table, version, ext),
                                      ["{" + ",".join(f'"{c}"' for c in done) + "}"])[0]
            s.rollback()
        except Exception:
            s.reset()
            before = after = 0
        with self._comp_lock:
            totals = self.compression.setdefault(table, Compression())
            totals.chunks += len(done)
            totals.before += int(before or 0)
            totals.after += int(after or 0)
            totals.seconds += time.perf_counter() - t0

    def _compression_error(self, table: str, what: str, exc: BaseException) -> None:
        message = self._catalog.target.scrub(" ".join(str(exc).split()))
        with self._comp_lock:
            errors = self.compression.setdefault(table, Compression()).errors
            if len(errors) < MAX_ERRORS:
                errors.append(f"{table}: {what} failed: {message[:200]}. Hint: the days are loaded; the compression "
                              "policy compresses them later.")

    def activity(self, table: str) -> str:
        """What the store did beyond loading rows, for the progress display (compression so far)."""
        totals = self.compression.get(table)
        return totals.describe() if totals else ""

    def finish(self, table: str) -> list[str]:
        """After the last load of `table` in a run: compress the chunks still pending, refresh the daily aggregate
        over the loaded range; lines for the run's summary."""
        lines: list[str] = []
        if self._compressing(table) and self._pending.get(table):
            with self._catalog.pool.session() as s:
                with self._comp_lock:
                    limit = self._old_enough(s, table)
                    pending = self._pending[table]
                    due = [c for c, end in pending.items() if end <= limit]
                    for c in due:
                        del pending[c]
                self._compress(s, table, due)
        totals = self.compression.get(table)
        if totals:
            lines += totals.errors
            if totals.chunks:
                lines.append(f"{table}: {totals.describe()} in {totals.seconds:.1f} s")
        span = self._loaded_span.get(table)
        if table == "bars_1m" and span and self._catalog.hypertables and self._has_cagg():
            t0 = time.perf_counter()
            _, ext = self._catalog.ts
            with self._catalog.pool.session() as s:
                s.set_autocommit(True)
                try:
                    s.execute(tsdb.refresh_cagg_sql(self._catalog.schema, ext), [t.isoformat() for t in span])
                    lines.append(f"{tsdb.DAILY_CAGG}: refreshed {span[0]:%Y-%m-%d}..{span[1]:%Y-%m-%d} "
                                 f"in {time.perf_counter() - t0:.1f} s")
                except Exception as exc:
                    message = self._catalog.target.scrub(" ".join(str(exc).split()))
                    lines.append(f"{tsdb.DAILY_CAGG}: refresh failed: {message[:200]}. Hint: its policy refreshes "
                                 "it within the hour.")
                finally:
                    try:
                        s.set_autocommit(False)
                    except Exception:
                        s.reset()
        return lines

    def _has_cagg(self) -> bool:
        cat = self._catalog
        return bool(cat.read("SELECT 1 FROM timescaledb_information.continuous_aggregates WHERE view_schema = "
                             "%s::text AND view_name = %s::text", [cat.schema, tsdb.DAILY_CAGG]))
