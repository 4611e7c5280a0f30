"""`DataIngestionEngine`: one engine for batch and stream, bars -> indicators -> store -> bus.

`ingest(source, mode="batch")` moves whole Arrow batches (a REST day, a flat-files day): each goes through
the processors (columnar: the batch engine's own path inside `process_batch`), into the store with
`upsert_live` (idempotent on `(ticker, ts)`) and onto the bus. `ingest(source, mode="stream")` reads a
streaming source's chunks (one per WebSocket frame) and groups them into micro-batches.

**Latency-adaptive batching.** A micro-batch is flushed as soon as the source has nothing more queued
(`adaptive=True`, the default), or when it reaches `batch_size` bars, or `flush_interval` seconds (1 s)
after its first bar, whichever comes first. Under light load every frame is its own batch, so a bar is
published a few milliseconds after its frame arrived; under load, the bars that queued up while the
previous batch was being written make the next batch, so the per-batch costs (one store transaction, one
Redis round trip, the engine's per-call overhead) are shared by more bars and throughput rises until
the engine keeps up. A fixed 1 s flush (`adaptive=False`) would add up to a second to every bar.

**Store, then bus.** Each micro-batch is upserted into the store, then published, so a reader that
gets a message finds its bar stored. The store's transaction (~3 ms on DuckDB) is then most of a bar's
latency; `write_behind=True` (`colfill live --publish-first`) publishes first and hands the batch to a
writer thread that upserts what has queued up, in order, in one transaction (everything is written before
`ingest` returns; a crash may lose the store's last few batches, not the bus's).

**Duplicates and revisions** (stream mode), per ticker: a bar equal to one already received for the same
minute (a resend after a reconnect) is dropped; a different bar for the symbol's latest minute is a
revision: the incremental engine undoes and reapplies that minute, the store row is replaced, and the
message carries `revision: true` when the earlier version was already published. A bar for an older
minute that differs from what was received (a late correction) cannot be applied without recomputing
every later indicator, so it is counted in `stats.late` and logged, not applied.

The processors start from the state of the last backfill in the store (the saved `indicator_state` for the
indicator set, else the state computed from the stored bars; `colfill.live.stored_state`), so live
indicators continue the backfill's exactly.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa

from colfill.bars import BAR_SCHEMA, rows_to_table, table_of
from colfill.errors import InvalidArgument, SourceUnreachable

if TYPE_CHECKING:
    from colfill.bus.base import MessageBus
    from colfill.indicators.spec import IndicatorSet
    from colfill.interrupt import Stop
    from colfill.sources.base import MarketDataSource
    from colfill.stores.base import Store

log = logging.getLogger("colfill.live")

RECENT = 16  # minutes remembered per ticker (a hash of their values) to recognise a resend of an older one
LATENCY_SAMPLES = 200_000


class Processor(Protocol):
    def process_batch(self, bars: pa.Table) -> pa.Table: ...


@dataclass
class IngestStats:
    """What the engine did; latencies are from a frame's arrival to its bars' publication, in ms."""

    bars_in: int = 0
    duplicates: int = 0
    revisions: int = 0
    late: int = 0
    rejected: int = 0  # refused by a processor (older than the state it started from)
    stored: int = 0
    published: int = 0
    batches: int = 0
    started: float = field(default_factory=time.time)
    last_publish: float = 0.0
    lag_ms: float = 0.0  # publication time minus the end of the latest bar published
    behind_ms: float = 0.0  # publication time minus the arrival of its frame (the engine's backlog)
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))
    _window: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=64))

    def bars_per_s(self, span: float = 5.0) -> float:
        """Bars published a second over the last `span` seconds."""
        now = time.time()
        recent = [(t, n) for t, n in self._window if now - t <= span]
        if not recent:
            return 0.0
        return sum(n for _, n in recent) / max(span if now - self.started > span else now - self.started, 1e-3)

    def percentile(self, q: float) -> float | None:
        if not self.latencies_ms:
            return None
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, int(q / 100 * len(data)))]


class _Seen:
    """Per ticker: the latest minute, the last published minute, and a hash of each of the last RECENT bars'
    values (a hash, not the values: a whole market of tickers is followed for days)."""

    __slots__ = ("last_t", "published_t", "recent")

    def __init__(self) -> None:
        self.last_t = -(2**62)
        self.published_t = -(2**62)
        self.recent: dict[int, int] = {}


class DataIngestionEngine:
    """Bars from a `MarketDataSource` through `processors`, into `storage` and onto `message_bus`.

    `processors`: objects with `process_batch(table) -> table` (default: one `IncrementalIndicatorProcessor`
    started from the store's backfill, see `processors_for`); `storage`: a Store or a store URL (None: not
    stored); `message_bus`: a MessageBus or a bus URL (None: not published); `batch_size`: the most bars in a
    micro-batch. See the module docstring for the batching and the duplicate and revision rules.
    """

    def __init__(self, processors: Sequence[Processor] | None = None, storage: Store | str | None = None,
                 message_bus: MessageBus | str | None = None, batch_size: int = 10_000, flush_interval: float = 1.0,
                 adaptive: bool = True, indicators: IndicatorSet | str | None = None, status_every: float = 1.0,
                 status_name: str = "live", track_last: bool = False, write_behind: bool = False) -> None:
        if batch_size < 1:
            raise InvalidArgument(f"batch_size {batch_size} must be at least 1")
        self._own_store = isinstance(storage, str)
        if isinstance(storage, str):
            from colfill.stores import open_store

            storage = open_store(storage, load_workers=1)
        self.storage = storage
        self._own_bus = isinstance(message_bus, str)
        if isinstance(message_bus, str):
            from colfill.bus import open_bus

            message_bus = open_bus(message_bus)
        self.bus = message_bus
        self.processors = list(processors) if processors is not None else None
        self.indicators = indicators
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.adaptive = adaptive
        self.status_every = status_every
        self.status_name = status_name
        self.track_last = track_last
        self.write_behind = write_behind
        self._writer: _Writer | None = None
        self.stats = IngestStats()
        self.last: dict[str, dict[str, Any]] = {}  # ticker -> its last published row (with track_last)
        self.notices: list[str] = []
        self._seen: dict[str, _Seen] = {}
        self._source: Any = None
        self._state_saved = False
        self._timeframe = "1m"
        self.on_flush: Callable[[DataIngestionEngine], None] | None = None
        self.on_notice: Callable[[str], None] | None = None

    # -- set-up --

    def prepare(self, timeframe: str) -> list[Processor]:
        """The processors, made now unless given (reading the store's backfill state takes a while on a big
        store: better before the socket opens than with its frames queueing)."""
        import polars  # noqa: F401  (its import costs ~0.2 s: not on the first bar's latency)
        import pyarrow.compute as pc
        import pyarrow.parquet  # noqa: F401  (the lake store's live files)

        # Arrow loads the time-zone database on its first zoned cast (~0.16 s): now, not on the first bar
        pc.local_timestamp(rows_to_table([("", 0, 1.0, 1.0, 1.0, 1.0, 0.0, None, 0, 60_000)])["ts"]
                           .cast(pa.timestamp("us", "America/New_York")))
        if self.processors is None:
            self.processors = processors_for(self.storage, timeframe, self.indicators, self.notices)
            self._state_saved = any("saved indicator state" in n for n in self.notices)
        self._timeframe = timeframe
        return self.processors

    def save_state(self) -> int:
        """After a session that started from a saved `indicator_state`: write the state it ended with back,
        so the next session continues from it (a state computed from stored bars needs no saving: the live
        rows are stored bars). Tickers written."""
        from colfill.live.incremental import IncrementalIndicatorProcessor

        procs = self.processors or []
        if not (self._state_saved and self.storage is not None and procs
                and isinstance(procs[0], IncrementalIndicatorProcessor) and self.stats.published):
            return 0
        import polars as pl

        from colfill.live.stored_state import TOKEN

        proc = procs[0]
        state = proc.export_state().with_columns(pl.lit(proc.indicators.token()).alias(TOKEN))
        return self.storage.write_state(self._timeframe, state.to_arrow())

    # -- the two modes --

    def ingest(self, source: MarketDataSource, mode: str = "stream", stop: Stop | None = None) -> IngestStats:
        """Run `source` to its end (batch) or until `stop` is set or the source fails (stream); everything
        received is processed, stored and published before this returns or raises."""
        if mode not in ("batch", "stream"):
            raise InvalidArgument(f"mode {mode!r}: choose batch or stream")
        timeframe = getattr(source, "timeframe", "1m")
        self.prepare(timeframe)
        self._source = source
        if mode == "batch":
            for table in source.batches(stop):
                self._write(timeframe, self._process(table), None, None)
            self._finish_writes()
            self._status(final=True)
            return self.stats
        if not hasattr(source, "poll"):
            return self._stream_tables(source, timeframe, stop)
        return self._stream(source, timeframe, stop)

    def _stream(self, source: Any, timeframe: str, stop: Stop | None) -> IngestStats:
        source.open()
        next_status = time.monotonic()
        error: BaseException | None = None
        try:
            while stop is None or not stop.is_set():
                now = time.monotonic()
                if now >= next_status:
                    self._status()
                    next_status = now + self.status_every
                chunks = source.poll(max(0.0, min(next_status - now, 0.25)), self.batch_size)
                if not chunks:
                    if source.finished():
                        break
                    continue
                first, rows = time.monotonic(), sum(len(c[1]) for c in chunks)
                while rows < self.batch_size and (wait := self.flush_interval - (time.monotonic() - first)) > 0:
                    more = source.poll(0 if self.adaptive else min(wait, 0.05), self.batch_size - rows)
                    if not more:
                        if self.adaptive or source.finished():
                            break
                        continue
                    chunks.extend(more)
                    rows += sum(len(c[1]) for c in more)
                self.flush(timeframe, chunks)
        except BaseException as exc:
            error = exc
        finally:
            source.close()
            try:  # what was received is flushed, unless the store or bus is what failed
                if error is None or isinstance(error, SourceUnreachable) or not isinstance(error, Exception):
                    self._drain(source, timeframe)
                self._finish_writes()
            except Exception as exc:
                error = error or exc
            self._status(final=True)
        if error is not None:
            raise error
        return self.stats

    def _finish_writes(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()

    def _drain(self, source: Any, timeframe: str) -> None:
        """What the source received before it stopped: flushed, whatever else went wrong."""
        while True:
            try:
                chunks = source.poll(0, self.batch_size)
            except Exception:  # the source's own refusal, re-raised by `_stream` already or next
                return
            if not chunks:
                return
            self.flush(timeframe, chunks)

    def _stream_tables(self, source: MarketDataSource, timeframe: str, stop: Stop | None) -> IngestStats:
        """Stream mode over a batch source: its tables, cut into micro-batches of `batch_size`."""
        received = time.time()
        for table in source.batches(stop):
            for offset in range(0, table.num_rows, self.batch_size):
                part = table.slice(offset, self.batch_size)
                t_ms = part["ts"].cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64()).to_pylist()
                rows = list(zip(part["ticker"].to_pylist(), t_ms,
                                *(part[c].to_pylist() for c in BAR_SCHEMA.names[2:]), [t + 60_000 for t in t_ms]))
                self.flush(timeframe, [(received, rows)])
                if stop is not None and stop.is_set():
                    break
        self._finish_writes()
        self._status(final=True)
        return self.stats

    # -- one micro-batch --

    def flush(self, timeframe: str, chunks: list[tuple[float, list[tuple[Any, ...]]]]) -> int:
        """Deduplicate, process, store and publish one micro-batch of chunks; bars published."""
        keep: dict[tuple[str, int], int] = {}
        rows: list[tuple[Any, ...]] = []
        meta: list[tuple[float, bool, int]] = []  # arrival, revision, end ms
        stats = self.stats
        seen = self._seen
        for received, chunk in chunks:
            stats.bars_in += len(chunk)
            for row in chunk:
                ticker, t = row[0], row[1]
                s = seen.get(ticker)
                if s is None:
                    s = seen[ticker] = _Seen()
                values = hash(row[2:9])
                if t <= s.last_t:
                    prior = s.recent.get(t)
                    if prior == values:
                        stats.duplicates += 1
                        continue
                    if t < s.last_t:
                        stats.late += 1
                        if stats.late <= 3 or stats.late % 1000 == 0:
                            log.warning("late correction of %s at t=%d (latest t=%d) not applied (%d so far)",
                                        ticker, t, s.last_t, stats.late)
                        continue
                    stats.revisions += 1
                else:
                    s.last_t = t
                    if len(s.recent) >= RECENT:
                        del s.recent[next(iter(s.recent))]
                s.recent[t] = values
                flag = s.published_t == t
                key = (ticker, t)
                at = keep.get(key)
                if at is not None:  # a revision within the batch: the later version takes the earlier's place
                    rows[at] = row
                    meta[at] = (meta[at][0], meta[at][1], row[9] if len(row) > 9 else t + 60_000)
                else:
                    keep[key] = len(rows)
                    rows.append(row)
                    meta.append((received, flag, row[9] if len(row) > 9 else t + 60_000))
        if not rows:
            return 0
        out = self._process_rows(rows, timeframe)
        tickers = out["ticker"].to_pylist()
        t_ms = out["ts"].cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64()).to_pylist()
        picked = [meta[keep[k]] for k in zip(tickers, t_ms)]
        published = self._write(timeframe, out, [m[1] for m in picked], [m[0] for m in picked])
        for ticker, t in zip(tickers, t_ms):
            seen[ticker].published_t = t
        if picked:
            now = time.time()
            stats.lag_ms = now * 1000 - max(m[2] for m in picked)
            stats.behind_ms = (now - min(m[0] for m in picked)) * 1000
        return published

    def _process_rows(self, rows: list[tuple[Any, ...]], timeframe: str) -> pa.Table:
        """`_process` of socket rows. A micro-batch below the incremental engine's `per_bar_below` goes through
        its per-bar `process` straight from the rows: the same step `process_batch` would run, without the
        ~1 ms of building and taking apart Polars frames around it (most of a small batch's cost)."""
        from colfill.live.incremental import IncrementalIndicatorProcessor

        procs = self.processors or []
        if not (len(procs) == 1 and isinstance(procs[0], IncrementalIndicatorProcessor)
                and len(rows) < procs[0].per_bar_below):
            return self._process(rows_to_table(rows))
        proc = procs[0]
        before = proc.stats.rejected
        kept, values = [], []
        process = proc.process
        for r in rows:
            out = process({"symbol": r[0], "timeframe": timeframe, "t": r[1], "o": r[2], "h": r[3], "l": r[4],
                           "c": r[5], "v": r[6]})
            if out is not None:
                kept.append(r)
                values.append(out)
        self.stats.rejected += proc.stats.rejected - before
        table = rows_to_table(kept)
        for c in proc.indicators.columns:
            table = table.append_column(c, pa.array([v[c] for v in values], pa.float64()))
        return table

    def _process(self, table: pa.Table) -> pa.Table:
        before = sum(getattr(getattr(p, "stats", None), "rejected", 0) for p in self.processors or ())
        for processor in self.processors or ():
            table = processor.process_batch(table)
            if not isinstance(table, pa.Table):
                table = table.to_arrow()
        after = sum(getattr(getattr(p, "stats", None), "rejected", 0) for p in self.processors or ())
        self.stats.rejected += after - before
        if "timeframe" in table.column_names:
            table = table.drop_columns(["timeframe"])
        return table

    def _write(self, timeframe: str, out: pa.Table, revision: list[bool] | None, received: list[float] | None) -> int:
        stats = self.stats
        if not out.num_rows:
            return 0
        table = table_of(timeframe)
        behind = self.write_behind and self.storage is not None and table is not None
        if self.storage is not None and table is not None and not behind:
            stats.stored += self.storage.upsert_live(table, out)  # type: ignore[attr-defined]
        published = out.num_rows
        if self.bus is not None:
            published = self.bus.publish(timeframe, out, revision if revision is not None else False)
        if behind:
            if self._writer is None:
                self._writer = _Writer(self.storage, table, stats)  # type: ignore[arg-type]
            self._writer.put(out)
        now = time.time()
        stats.published += published
        stats.batches += 1
        stats.last_publish = now
        stats._window.append((now, published))
        if received is not None:
            stats.latencies_ms.extend((now - r) * 1000 for r in received)
        if self.track_last:
            last_at: dict[str, int] = {}
            for i, ticker in enumerate(out["ticker"].to_pylist()):
                last_at[ticker] = i
            picked = out.take(list(last_at.values())).to_pylist()
            for row in picked:
                self.last[row["ticker"]] = row
        if self.on_flush is not None:
            self.on_flush(self)
        return published

    # -- status --

    def status(self) -> dict[str, Any]:
        """The contract's `live` status (colfill/bus: kind, tickers, bars, bars_per_s, lag_ms, reconnects)."""
        source = self._source
        health = getattr(source, "health", None)
        tickers = list(getattr(getattr(source, "settings", None), "tickers", ()) or sorted(self.last))
        return {"kind": "live", "tickers": tickers, "bars": self.stats.published,
                "bars_per_s": round(self.stats.bars_per_s(), 1), "lag_ms": round(self.stats.lag_ms, 1),
                "reconnects": getattr(health, "reconnects", 0), "updated_ms": time.time() * 1000}

    def _status(self, final: bool = False) -> None:
        source = self._source
        if source is not None and hasattr(source, "notices"):
            for message in source.notices():
                self.notices.append(message)
                if self.on_notice is not None:
                    self.on_notice(message)
        if self.bus is not None:
            try:
                self.bus.publish_status(self.status_name, self.status())
            except Exception as exc:  # a status is best effort: bars are what must not be lost
                log.warning("could not publish the %s status: %s", self.status_name, exc)

    def close(self) -> None:
        """Close the store and bus this engine opened from URLs."""
        if self._own_store and self.storage is not None:
            self.storage.close()
        if self._own_bus and self.bus is not None:
            self.bus.close()


class _Writer:
    """Write-behind: micro-batches already published are upserted by a thread of their own, the tables queued
    meanwhile in one transaction, in order (so a revision still lands after the bar it replaces). `close()`
    writes what is queued and re-raises a failed write."""

    def __init__(self, store: Store, table: str, stats: IngestStats) -> None:
        import queue
        import threading

        self.store, self.table, self.stats = store, table, stats
        self.queue: queue.SimpleQueue[pa.Table | None] = queue.SimpleQueue()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="colfill-live-writer", daemon=True)
        self.thread.start()

    def put(self, rows: pa.Table) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(rows)

    def _run(self) -> None:
        import queue

        done = False
        while not done:
            parts = [self.queue.get()]
            while True:
                try:
                    parts.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            done = parts[-1] is None
            tables = [p for p in parts if p is not None]
            if not tables or self.error is not None:
                continue
            try:
                rows = pa.concat_tables(tables, promote_options="permissive")
                self.stats.stored += self.store.upsert_live(self.table, rows)  # type: ignore[attr-defined]
            except BaseException as exc:  # kept, and raised in the engine's thread
                self.error = exc

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


def processors_for(store: Store | None, timeframe: str, indicators: IndicatorSet | str | None,
                   notices: list[str] | None = None) -> list[Processor]:
    """One IncrementalIndicatorProcessor continuing the store's backfill of `timeframe`: its saved state for
    this indicator set, else the state computed from its bars; a fresh one when the store has none."""
    from colfill.errors import ColfillError
    from colfill.live.incremental import IncrementalIndicatorProcessor
    from colfill.live.stored_state import caught_up, compute_state, saved_state

    proc = IncrementalIndicatorProcessor(indicators, timeframe=timeframe)
    table = table_of(timeframe)
    if store is None or table is None:
        return [proc]
    try:
        state = saved_state(store, table, proc.indicators)
        origin = "the saved indicator state"
        if state is not None:
            state = caught_up(store, table, proc.indicators, state)  # bars a killed session stored after it
        else:
            state = compute_state(store, table, proc.indicators)
            origin = "the stored bars"
    except ColfillError as exc:
        if notices is not None:
            notices.append(f"no backfill of {table} in the store ({exc}); indicators warm up from the first live bars")
        return [proc]
    proc.import_state(state)
    if notices is not None:
        notices.append(f"indicators continue {state.height:,} tickers' backfill of {table} (from {origin})")
    return [proc]
