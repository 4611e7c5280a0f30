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

**Validation, duplicates and revisions** (stream mode): `colfill.live.tracker`; the batching is
`colfill.live.batcher`, the write-behind `colfill.live.writer`.

**Gaps** (`gap_fill`, `colfill.live.gapfill`): at start each ticker is caught up from REST (its last stored bar
to now) before the first frame; after every reconnect the minutes missed are fetched while the new frames are
held, then run through the tracker ahead of them, published with `"filled": true`.

**Derived timeframes** (`timeframes=("1m", "5m", "1h:rth")`, `colfill.live.rollup`): the minute bars are rolled up
into each timeframe's buckets; a bucket's bar, with that timeframe's own indicators, is stored (`bars_5m`) and
published (`colfill:bars:5m:{ticker}`) when the bucket closes: a minute of a later bucket came, or its end plus
`close_grace` seconds passed on the feed's clock (checked every poll); again, as a revision, when a late or revised
minute changes it; and as it stands when the session ends. A session resumes the buckets the store's minutes
leave open (`LiveRollup.resume`), so a restart loses none of a bucket's minutes.

The processors start from the state of the last backfill in the store (the saved `indicator_state` for the
indicator set, else the state computed from the stored bars; `colfill.live.stored_state`), so live
indicators continue the backfill's exactly.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa

from colfill.bars import BAR_SCHEMA, rows_to_table, table_of
from colfill.errors import InvalidArgument, SchemaMismatch, SourceUnreachable
from colfill.live.batcher import Batching, Chunks
from colfill.live.gapfill import MINUTE, Fill, GapFiller, session_start_ms
from colfill.live.rollup import LiveRollup, live_timeframes
from colfill.live.stats import IngestStats
from colfill.live.tracker import Admitted, Tracker
from colfill.live.writer import WriteBehind

if TYPE_CHECKING:
    from colfill.bus.base import MessageBus
    from colfill.indicators.spec import IndicatorSet
    from colfill.interrupt import Stop
    from colfill.live.incremental import IncrementalIndicatorProcessor
    from colfill.sources.base import MarketDataSource
    from colfill.stores.base import Store

log = logging.getLogger("colfill.live")

class Processor(Protocol):
    def process_batch(self, bars: pa.Table) -> pa.Table: ...


class DataIngestionEngine:
    """Bars from a `MarketDataSource` through `processors`, into `storage` and onto `message_bus`.

    `processors`: objects with `process_batch(table) -> table` (default: one `IncrementalIndicatorProcessor`
    started from the store's backfill, see `processors_for`); `storage`: a Store or a store URL (None: not
    stored); `message_bus`: a MessageBus or a bus URL (None: not published); `batch_size`: the most bars in a
    micro-batch; `timeframes`: `1m` and derived ones to roll it up into (`close_grace`: seconds after a bucket's
    end before the clock closes it). See the module docstring for the batching, the duplicate and revision rules.
    """

    def __init__(self, processors: Sequence[Processor] | None = None, storage: Store | str | None = None,
                 message_bus: MessageBus | str | None = None, batch_size: int = 10_000, flush_interval: float = 1.0,
                 adaptive: bool = True, indicators: IndicatorSet | str | None = None, status_every: float = 1.0,
                 status_name: str = "live", track_last: bool = False, write_behind: bool = False,
                 gap_fill: GapFiller | None = None, timeframes: str | Sequence[str] | None = None,
                 close_grace: float = 2.0) -> None:
        self.timeframes = live_timeframes(timeframes, "timeframes")
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
        self._writer: WriteBehind | None = None
        self.gap_fill = gap_fill
        self.fills: list[Fill] = []
        self._filled_to: int | None = None  # the end of the last catch-up or fill (epoch ms)
        self.stats = IngestStats()
        self.tracker = Tracker(self.stats)
        self.last: dict[str, dict[str, Any]] = {}  # ticker -> its last published row (with track_last)
        self.notices: list[str] = []
        self._source: Any = None
        self._state_saved = False
        self._timeframe = "1m"
        self.close_grace = close_grace
        self.rollup: LiveRollup | None = None
        self._derived_saved: list[str] = []  # derived timeframes started from a saved state
        self._unstored: set[str] = set()  # derived tables the store refused
        self.on_flush: Callable[[DataIngestionEngine], None] | None = None
        self.on_notice: Callable[[str], None] | None = None

    # -- set-up --

    def prepare(self, timeframe: str, tickers: Sequence[str] | None = None) -> list[Processor]:
        """The processors, made now unless given (reading the store's backfill state takes a while on a big
        store: better before the socket opens than with its frames queueing); `tickers` followed (None or `*`:
        all), whose derived timeframes' open buckets resume from the store (`LiveRollup.resume`)."""
        import polars  # noqa: F401  (its import costs ~0.2 s: not on the first bar's latency)
        import pyarrow.compute as pc
        import pyarrow.parquet  # noqa: F401  (the lake store's live files)

        # Arrow loads the time-zone database on its first zoned cast (~0.16 s): now, not on the first bar
        pc.local_timestamp(rows_to_table([("", 0, 1.0, 1.0, 1.0, 1.0, 0.0, None, 0, 60_000)])["ts"]
                           .cast(pa.timestamp("us", "America/New_York")))
        if self.processors is None:
            start = start_from_store(self.storage, timeframe, self.indicators)
            self.processors = [start.processor]
            self.notices += [start.notice] if start.notice else []
            self._state_saved = start.origin is Origin.SAVED
        self._timeframe = timeframe
        if self.rollup is None and timeframe == "1m" and len(self.timeframes) > 1:
            self._prepare_rollup(None if not tickers or "*" in tickers else tickers)
        return self.processors

    def _prepare_rollup(self, tickers: Sequence[str] | None) -> None:
        """The rollup, its open buckets resumed from the store's minutes, and a processor per derived timeframe
        continuing the store's backfill of its table up to the resumed buckets."""
        from colfill.live.incremental import IncrementalIndicatorProcessor

        procs = self.processors or []
        minute = procs[0] if len(procs) == 1 and isinstance(procs[0], IncrementalIndicatorProcessor) else None
        self.rollup = LiveRollup(self.timeframes, {}, self.close_grace,
                                 minute.correctable_after if minute is not None else None)
        opened = self.rollup.resume(self.storage, minute.last_times() if minute is not None else {}, tickers)
        for tf in self.timeframes[1:]:
            start = start_from_store(self.storage, tf.name, self.indicators, opened.get(tf.name))
            self.rollup.adopt(tf.name, start.processor)
            self.notices += [start.notice] if start.notice else []
            if start.origin is Origin.SAVED:
                self._derived_saved.append(tf.name)

    def save_state(self) -> int:
        """After a session that started from a saved `indicator_state`: write the state it ended with back,
        so the next session continues from it (a state computed from stored bars needs no saving: the live
        rows are stored bars); so is each derived timeframe's that started from one. Tickers written."""
        from colfill.live.incremental import IncrementalIndicatorProcessor

        procs = self.processors or []
        if self.storage is None or not self.stats.published:
            return 0
        chosen = [(self._timeframe, procs[0], procs[0].export_state())] if self._state_saved and procs and isinstance(
            procs[0], IncrementalIndicatorProcessor) else []
        if self.rollup is not None:  # derived timeframes started from a saved state of their own
            chosen += [(tf, self.rollup.processors[tf], self.rollup.state_to_save(tf)) for tf in self._derived_saved]
        if not chosen:
            return 0
        import polars as pl

        from colfill.live.stored_state import TOKEN

        written = [self.storage.write_state(timeframe, state.with_columns(
            pl.lit(proc.indicators.token()).alias(TOKEN)).to_arrow()) for timeframe, proc, state in chosen]
        return max(written)

    # -- the two modes --

    def ingest(self, source: MarketDataSource, mode: str = "stream", stop: Stop | None = None) -> IngestStats:
        """Run `source` to its end (batch) or until `stop` is set or the source fails (stream); everything
        received is processed, stored and published before this returns or raises."""
        if mode not in ("batch", "stream"):
            raise InvalidArgument(f"mode {mode!r}: choose batch or stream")
        timeframe = getattr(source, "timeframe", "1m")
        self.prepare(timeframe, getattr(getattr(source, "settings", None), "tickers", None))
        self._source = source
        if mode == "batch":
            for table in source.batches(stop):
                out = self._process(table)
                self._write(timeframe, out, None, None)
                self._roll(out)
            self._roll_all()
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
            self._catch_up(source, timeframe)
            while stop is None or not stop.is_set():
                self._refill(source, timeframe)
                self._tick()
                now = time.monotonic()
                if now >= next_status:
                    self._status()
                    next_status = now + self.status_every
                chunks = source.poll(max(0.0, min(next_status - now, 0.25)), self.batch_size)
                if not chunks:
                    if source.finished():
                        break
                    continue
                self.flush(timeframe, self._batching().fill(source, chunks))
        except BaseException as exc:
            error = exc
        finally:
            source.close()
            try:  # what was received is flushed, unless the store or bus is what failed
                if error is None or isinstance(error, SourceUnreachable) or not isinstance(error, Exception):
                    self._drain(source, timeframe)
                    self._roll_all()
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
                self._refill(source, timeframe)
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
            for chunks in self._batching().slices(table, received):
                self.flush(timeframe, chunks)
                if stop is not None and stop.is_set():
                    break
        self._roll_all()
        self._finish_writes()
        self._status(final=True)
        return self.stats

    # -- one micro-batch --

    def _batching(self) -> Batching:
        return Batching(self.batch_size, self.flush_interval, self.adaptive)

    # -- gaps --

    def _followed(self, source: Any) -> list[str]:
        tickers = list(getattr(getattr(source, "settings", None), "tickers", ()) or ())
        return self.tracker.tickers() if "*" in tickers else tickers

    def _catch_up(self, source: Any, timeframe: str) -> None:
        """Before the first frame: each followed ticker from its last stored bar (else 04:00 New York today) to
        now, from REST (with `*`, no ticker is known yet: none)."""
        if self.gap_fill is None or timeframe != "1m" or not hasattr(source, "take_gap"):
            return
        from colfill.live.incremental import IncrementalIndicatorProcessor

        procs = self.processors or []
        stored = procs[0].last_times() if procs and isinstance(procs[0], IncrementalIndicatorProcessor) else {}
        now = int(time.time() * 1000)
        first = session_start_ms(now)
        spans = {t: (stored[t] + MINUTE if t in stored else first, now) for t in self._followed(source)}
        if spans:
            self._fill(timeframe, "catch-up", spans)
        self._filled_to = now

    def _refill(self, source: Any, timeframe: str) -> None:
        """After a reconnect: the minutes from LOOKBACK before the last bar received (or the last fill) up to the
        first minute the new connection brought, ahead of its frames (held by the source meanwhile)."""
        gap = source.take_gap() if hasattr(source, "take_gap") else None
        if gap is None or self.gap_fill is None or timeframe != "1m":
            return
        last = self.tracker.latest()
        since = last if last is not None else self._filled_to if self._filled_to is not None else gap.first_t
        start = min(since, gap.first_t) - self.gap_fill.lookback * MINUTE
        spans = dict.fromkeys(self._followed(source), (start, gap.first_t))
        if spans:
            self._fill(timeframe, "reconnect", spans)
        self._filled_to = gap.first_t

    def _fill(self, timeframe: str, why: str, spans: dict[str, tuple[int, int]]) -> Fill:
        assert self.gap_fill is not None
        started = time.perf_counter()
        fetched = self.gap_fill.fetch(spans)
        revisions = self.stats.revisions + self.stats.recomputed
        published = self.flush(timeframe, [(time.time(), fetched.rows)], filled=True) if fetched.rows else 0
        revised = self.stats.revisions + self.stats.recomputed - revisions
        fill = Fill(why, len(spans), min(s for s, _ in spans.values()), max(e for _, e in spans.values()),
                    published - revised, revised, time.perf_counter() - started, fetched.failed, fetched.error)
        self.fills.append(fill)
        self.stats.fills += 1
        self.stats.filled += fill.inserted
        self.stats.filled_revised += fill.revised
        self.stats.unfilled += len(fill.failed)
        (log.warning if fill.failed else log.info)("%s", fill.describe())
        self._notice(fill.describe())
        self._status()
        return fill

    def _notice(self, message: str) -> None:
        self.notices.append(message)
        if self.on_notice is not None:
            self.on_notice(message)

    def flush(self, timeframe: str, chunks: Chunks, filled: bool = False) -> int:
        """Validate, deduplicate, process, store and publish one micro-batch of chunks; bars published
        (`filled`: bars of a gap fill, so marked on the bus)."""
        admitted = self.tracker.admit(chunks)
        if not admitted.rows:
            return 0
        out = self._process_rows(admitted, timeframe)
        tickers = out["ticker"].to_pylist()
        t_ms = out["ts"].cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64()).to_pylist()
        at = [admitted.index.get(k) for k in zip(tickers, t_ms)]
        picked = [admitted.meta[i] for i in at if i is not None]
        # a row a correction recomputed, not in this batch, was published before: a revision
        revision = [True if i is None else admitted.meta[i][1] for i in at]
        self.stats.recomputed += len(at) - len(picked)
        published = self._write(timeframe, out, revision, [m[0] for m in picked], filled)
        self.tracker.published(tickers, t_ms)
        if self.rollup is not None:
            if not filled:  # the feed's clock follows the socket's bars (a fill's are older than their arrival)
                for m in picked:
                    self.rollup.observe(m[2], m[0])
            self._roll(out, tickers, t_ms)
        if picked:
            now = time.time()
            self.stats.lag_ms = now * 1000 - max(m[2] for m in picked)
            self.stats.behind_ms = (now - min(m[0] for m in picked)) * 1000
        return published

    def _process_rows(self, admitted: Admitted, timeframe: str) -> pa.Table:
        """`_process` of socket rows. A micro-batch below the incremental engine's `per_bar_below`, or one with a
        late correction, goes through its per-bar step straight from the rows: the same step `process_batch`
        would run, without the ~1 ms of building and taking apart Polars frames around it (most of a small
        batch's cost); a correction restores the state before its minute and recomputes the ticker's later rows,
        which are returned too (each row once, its last version, where that came)."""
        from colfill.live.incremental import IncrementalIndicatorProcessor

        rows, older, procs = admitted.rows, admitted.older, self.processors or []
        proc = procs[0] if len(procs) == 1 and isinstance(procs[0], IncrementalIndicatorProcessor) else None
        if proc is None or (len(rows) >= proc.per_bar_below and not older):
            if older:  # no processor that can recompute the later rows
                for i in older:
                    self.tracker.late(rows[i][0], rows[i][1])
                rows = [r for i, r in enumerate(rows) if i not in older]
            return self._process(rows_to_table(rows))
        before, refused = proc.stats.rejected, 0
        done: dict[tuple[str, int], tuple[tuple[Any, ...], dict[str, Any]]] = {}
        apply, amend, meta = proc.apply, proc.amend, admitted.meta
        for i, r in enumerate(rows):
            if i in older:
                redone = amend(r[0], timeframe, r[1], r[5], r[3], r[4], r[6], r)
                if redone is None:  # counted as late, not as older than the backfill
                    refused += 1
                    self.tracker.late(r[0], r[1])
                    continue
                self.stats.revisions += meta[i][1]
                for t, row, values in redone:
                    done.pop((r[0], t), None)
                    done[(r[0], t)] = (row, values)
                continue
            out = apply(r[0], timeframe, r[1], r[5], r[3], r[4], r[6], r)
            if out is not None:
                done.pop((r[0], r[1]), None)
                done[(r[0], r[1])] = (r, out)
        self.stats.rejected += proc.stats.rejected - before - refused
        table = rows_to_table([row for row, _ in done.values()])
        for c in proc.indicators.columns:
            table = table.append_column(c, pa.array([v[c] for _, v in done.values()], pa.float64()))
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

    def _write(self, timeframe: str, out: pa.Table, revision: list[bool] | None, received: list[float] | None,
               filled: bool = False) -> int:
        stats = self.stats
        if not out.num_rows:
            return 0
        table = table_of(timeframe)
        behind = self.write_behind and self.storage is not None and table is not None
        if self.storage is not None and table is not None and not behind:
            stats.stored += self.storage.upsert_live(table, out)  # type: ignore[attr-defined]
        published = out.num_rows
        if self.bus is not None:
            message = out.append_column("filled", pa.array([True] * out.num_rows, pa.bool_())) if filled else out
            published = self.bus.publish(timeframe, message, revision if revision is not None else False)
        if behind:
            if self._writer is None:
                self._writer = WriteBehind(self.storage, table, stats)  # type: ignore[arg-type]
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

    # -- derived timeframes --

    def _roll(self, out: pa.Table, tickers: list[str] | None = None, t_ms: list[int] | None = None) -> None:
        """Minute bars just published into the rollup; the bars of the buckets that closed (or changed), out."""
        if self.rollup is None or not out.num_rows:
            return
        if tickers is None or t_ms is None:
            tickers = out["ticker"].to_pylist()
            t_ms = out["ts"].cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64()).to_pylist()
        self.rollup.add(zip(tickers, t_ms, *(out[c].to_pylist() for c in BAR_SCHEMA.names[2:])))
        self._derive()

    def _tick(self) -> None:
        if self.rollup is not None:
            self.rollup.tick(time.time())
            self._derive()

    def _roll_all(self) -> None:
        if self.rollup is not None:
            self.rollup.close_all()
            self._derive()

    def _derive(self) -> None:
        """Store, then publish, the derived bars due (see the module docstring)."""
        assert self.rollup is not None
        if not self.rollup.pending():
            return
        for tf, table, revision in self.rollup.take():
            if self.storage is not None and tf.table not in self._unstored:
                try:
                    self.stats.stored_derived += self.storage.upsert_live(tf.table, table)  # type: ignore[attr-defined]
                except SchemaMismatch as exc:  # a store that holds no derived tables: published only
                    self._unstored.add(tf.table)
                    self._notice(f"{tf.name} bars are published, not stored: {exc}")
            if self.bus is not None:
                self.bus.publish(tf.name, table, revision)
            self.stats.derived += table.num_rows
        self.stats.derived_late = self.rollup.late

    # -- status --

    def status(self) -> dict[str, Any]:
        """The contract's `live` status (colfill/bus: kind, tickers, bars, bars_per_s, lag_ms, reconnects)."""
        source = self._source
        health = getattr(source, "health", None)
        tickers = list(getattr(getattr(source, "settings", None), "tickers", ()) or sorted(self.last))
        return {"kind": "live", "tickers": tickers, "bars": self.stats.published,
                "bars_per_s": round(self.stats.bars_per_s(), 1), "lag_ms": round(self.stats.lag_ms, 1),
                "reconnects": getattr(health, "reconnects", 0), "fills": self.stats.fills,
                "filled": self.stats.filled, "filled_revised": self.stats.filled_revised,
                "unfilled": self.stats.unfilled, "last_fill": self.fills[-1].as_status() if self.fills else None,
                "updated_ms": time.time() * 1000}

    def _status(self, final: bool = False) -> None:
        source = self._source
        if source is not None and hasattr(source, "notices"):
            for message in source.notices():
                self._notice(message)
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


class Origin(enum.Enum):
    """Where the live indicators' starting state came from (a saved state is saved back at the end)."""

    SAVED = "the saved indicator state"
    STORED_BARS = "the stored bars"
    NONE = "no backfill"


@dataclass(frozen=True)
class Start:
    processor: IncrementalIndicatorProcessor
    origin: Origin
    notice: str  # for people ("" when there is no store to start from)


def start_from_store(store: Store | None, timeframe: str, indicators: IndicatorSet | str | None,
                     before: dict[str, int] | None = None) -> Start:
    """An IncrementalIndicatorProcessor continuing the store's backfill of `timeframe`: its saved state for this
    indicator set, else the state computed from its bars; a fresh one when the store has none. `before` (ticker
    -> epoch ms): those tickers' stored bars from then on are left out (the buckets the rollup resumed)."""
    from colfill.errors import ColfillError
    from colfill.live.incremental import IncrementalIndicatorProcessor
    from colfill.live.stored_state import caught_up, compute_state, saved_state

    proc = IncrementalIndicatorProcessor(indicators, timeframe=timeframe)
    table = table_of(timeframe)
    if store is None or table is None:
        return Start(proc, Origin.NONE, "")
    try:
        state = saved_state(store, table, proc.indicators)
        origin = Origin.SAVED
        if state is not None:
            state = caught_up(store, table, proc.indicators, state, before)  # bars a killed session stored after it
        else:
            state = compute_state(store, table, proc.indicators, before)
            origin = Origin.STORED_BARS
    except ColfillError as exc:
        return Start(proc, Origin.NONE,
                     f"no backfill of {table} in the store ({exc}); indicators warm up from the first live bars")
    proc.import_state(state)
    note = f"indicators continue {state.height:,} tickers' backfill of {table} (from {origin.value})"
    return Start(proc, origin, note)


def processors_for(store: Store | None, timeframe: str, indicators: IndicatorSet | str | None,
                   notices: list[str] | None = None) -> list[Processor]:
    """`start_from_store`'s processor, its notice appended to `notices`."""
    start = start_from_store(store, timeframe, indicators)
    if notices is not None and start.notice:
        notices.append(start.notice)
    return [start.processor]
