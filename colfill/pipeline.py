"""The orchestrator: flat files → validated bars → indicators → Parquet lake → store, resumably.

For each bars table the work is a chain of trading days. Every day's fingerprint chains its source
object's identity to the previous day's (`colfill.stage.lake.chain`), so comparing the lake's manifest
with the listing tells exactly which days are new, replaced, or downstream of a replaced day (their
indicators depend on it) — nothing is guessed. Staging resumes from the indicator state saved after
the last good day. Loading compares the store's own manifest with the lake's, so a store that missed
a day (crash, outage) gets it on the next run, and a day is never loaded twice.

Three kinds of work overlap: an executor (`colfill.execute`: this machine's cores, or a Ray cluster)
parses days ahead and computes indicators, a writer thread writes Parquet/state/manifest, and loader
threads feed the store. Queues are bounded, so memory follows the size of a few days' files, not the
number of days.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import polars as pl

from colfill import universe
from colfill.bars import DATASETS, PHASES, ParsedFile, SourceObject, common_stocks, timeframe_of
from colfill.errors import ColfillError, InvalidArgument, NoData, StoreUnreachable, TransientError
from colfill.execute import Executor, open_executor
from colfill.indicators.spec import IndicatorSet
from colfill.indicators.state import normalise
from colfill.interrupt import Stop
from colfill.sources import reference
from colfill.sources.base import Source, open_source
from colfill.sources.rest import RestApi
from colfill.sources.rollup import RolledUp
from colfill.stage.lake import Lake, ManifestEntry, chain
from colfill.stores import LoadBatch, Store
from colfill.timeframes import DEFAULT, Timeframe, timeframe
from colfill.universe import Selection

TABLES = ("bars_1d", "bars_1m")


@dataclass(frozen=True)
class BackfillJob:
    """A backfill request. Its `lineage(table)` (table, tickers, indicators) names the chain of state;
    the date range is not part of it, so extending a range continues the same chain."""

    source: str
    start: dt.date
    end: dt.date
    data_dir: Path
    tables: tuple[str, ...] = TABLES
    tickers: tuple[str, ...] | None = None
    limit: int | None = None
    indicators: IndicatorSet = field(default_factory=IndicatorSet.default)
    prefix: str = "us_stocks_sip"
    store_url: str | None = None
    rest: object | None = None  # RestSettings for `source="rest"` (else read from the environment)
    rerank: bool = False  # --limit: rank again at `end` instead of keeping the recorded choice
    phases: tuple[str, ...] = ("reference", "corporate")  # REST phases 1 and 2, run when an API key is there
    adjust: str | None = None  # the adjusted views' basis: "splits" or "dividends"; None keeps the store's
    timeframes: tuple[str, ...] = DEFAULT  # derived ones (`5m`, `1h:rth`) are rolled up from bars_1m's days

    def __post_init__(self) -> None:
        if self.start > self.end:
            raise InvalidArgument(f"--start {self.start} is after --end {self.end}")
        unknown = [t for t in self.tables if t not in TABLES]
        if unknown:
            raise InvalidArgument(f"unknown table(s) {unknown}; colfill loads {', '.join(TABLES)}")
        if self.limit is not None and self.limit < 1:
            raise InvalidArgument(f"--limit {self.limit} must be at least 1")
        if self.adjust not in (None, "splits", "dividends"):
            raise InvalidArgument(f"--adjust {self.adjust!r}: use splits or dividends")
        if self.derived() and "bars_1m" not in self.tables:
            raise InvalidArgument(f"--timeframes {','.join(self.timeframes)}: derived timeframes are rolled up from "
                                  "the run's minute bars; load bars_1m too")

    def derived(self) -> tuple[Timeframe, ...]:
        """The timeframes rolled up from the minute bars, in the order given."""
        return tuple(tf for tf in map(timeframe, self.timeframes) if tf.derived)

    def lineage(self, table: str, tickers: tuple[str, ...] | None) -> str:
        ident = f"{table}|{','.join(tickers) if tickers else '*'}|{self.indicators.token()}"
        return hashlib.sha256(ident.encode()).hexdigest()[:12]


@dataclass
class TableResult:
    table: str
    files: int = 0
    staged: int = 0
    skipped: int = 0
    failed: int = 0
    rows_in: int = 0
    rows_out: int = 0
    rejected: int = 0
    loaded_days: int = 0
    loaded_rows: int = 0
    seconds: float = 0.0
    todo: int = 0  # days this run set out to stage
    done: int = 0  # of those, days staged (or failed) and, when staged, loaded
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the store did at the end (compression, aggregates)


@dataclass
class RunResult:
    tables: list[TableResult]
    store: str
    lake: Path
    stopped: Stop | None = None  # set when a stop was requested (SIGINT/SIGTERM): the run ended early
    selection: Selection | None = None  # --limit's tickers
    reference: dict[str, int] = field(default_factory=dict)  # rows of tickers, splits, dividends written
    reference_errors: list[str] = field(default_factory=list)  # phases 1-2 that REST did not answer (flat-file bars)

    @property
    def ok(self) -> bool:
        return (not self.interrupted and not self.reference_errors
                and all(not t.errors and not t.rejected for t in self.tables))

    @property
    def interrupted(self) -> bool:
        return self.stopped is not None  # set only when a stop was requested

    def progress(self) -> tuple[int, int]:
        """(days done, days planned) over the tables this run reached."""
        return sum(t.done for t in self.tables), sum(t.todo for t in self.tables)


class Reporter(Protocol):
    """Progress sink; stages call it, only the CLI passes a visible one."""

    def start(self, table: str, days: int) -> None: ...
    def advance(self, table: str, rows: int, detail: str = "") -> None: ...
    def note(self, message: str) -> None: ...


class NullReporter:
    def start(self, table: str, days: int) -> None:
        pass

    def advance(self, table: str, rows: int, detail: str = "") -> None:
        pass

    def note(self, message: str) -> None:
        pass


@dataclass(frozen=True)
class _Day:
    """One day of the chain: where its file is and what fingerprint it must have."""

    date: dt.date
    obj: SourceObject
    fingerprint: str


def _plan(
    lake: Lake, table: str, lineage: str, listed: list[SourceObject]
) -> tuple[list[_Day], int, pl.DataFrame | None]:
    """The chain of days, the index to start staging at, and the indicator state before it.

    Days already staged with the expected fingerprint are skipped unless a day before them is restaged
    (their indicators depend on it). A day that failed is retried, and the days after it with it.
    """
    manifest = lake.manifest(table, lineage)
    objects = {e.date: SourceObject(e.source_key, e.date, e.etag, e.size) for e in manifest.values()}
    objects.update({o.date: o for o in listed})
    days: list[_Day] = []
    prev = ""
    for d in sorted(objects):
        o = objects[d]
        prev = chain(prev, o.key, o.etag, o.size, lineage)
        days.append(_Day(d, o, prev))
    first_dirty = next(
        (i for i, day in enumerate(days)
         if (e := manifest.get(day.date)) is None or e.fingerprint != day.fingerprint or e.status != "done"),
        len(days),
    )
    start = first_dirty
    state = None
    if first_dirty > 0:
        snapshots = {d for d in lake.state_dates(table, lineage)}
        by_date = {d.date: i for i, d in enumerate(days)}
        candidates = sorted((d for d in snapshots if d in by_date and by_date[d] < first_dirty), reverse=True)
        start = 0
        for d in candidates:
            frame, fp = lake.read_state(table, lineage, d)
            if fp == days[by_date[d]].fingerprint:
                state, start = frame, by_date[d] + 1
                break
    return days, start, state


def run(
    job: BackfillJob,
    store: Store,
    source: Source | None = None,
    reporter: Reporter | None = None,
    stop: Stop | None = None,
    executor: Executor | None = None,
) -> RunResult:
    """Stage and load every table of the job; errors of single files are collected, not raised.

    `executor` stages the days (default: this machine's cores, see `colfill.execute`); the lake and the store are
    written here either way, so runs of different executors resume each other.

    `stop` (set by a signal handler, see `colfill.interrupt`) ends the run early and cleanly: the days in
    flight finish and commit, no new day starts, and the result says how far it got. Raises `NoData` when
    no table has a file in the job's range.
    """
    reporter = reporter or NullReporter()
    stop = stop or Stop()
    opened = source is None
    source = source or open_source(job.source, job.prefix, job.rest)
    lake = Lake(job.data_dir / "lake")
    results: list[TableResult] = []
    selection = None
    written: dict[str, int] = {}
    with _exclusive(job.data_dir):
        api = _rest_api(job, source)
        source_is_rest = isinstance(getattr(source, "api", None), RestApi)
        failed: list[str] = []
        for phase in job.phases:
            if api is not None and not stop.is_set() and not failed:
                try:
                    counts = reference.load(api, store, PHASES[phase], job.data_dir / "reference")
                except TransientError as exc:
                    if source_is_rest:
                        raise
                    failed.append(f"{phase}: {exc}")  # the flat files' bars need no REST: load them, exit 1
                    reporter.note(f"{phase} skipped: {exc}")
                    continue
                written.update({t: n for t, n in counts.items() if isinstance(n, int)})
                reporter.note(f"{phase}: " + ", ".join(f"{n:,} {t}" if isinstance(n, int) else f"{t} {n}"
                                                       for t, n in counts.items()))
        if opened and api is not None and not source_is_rest and not failed:
            from colfill.sources.gapfill import GapFilled
            from colfill.sources.rest_bars import RestBars

            source = GapFilled(source, RestBars(api))  # phase 3: day files the flat files lack, from REST
        listings = {table: source.list(table, job.start, job.end) for table in job.tables}
        if not any(listings.values()):
            raise NoData(_no_files(source, job))
        tickers = job.tickers
        if tickers is None and job.limit is not None:
            selection, ranked = universe.choose(source, job.data_dir, job.end, job.limit, job.rerank,
                                                common_stocks(store))
            reporter.note(selection.describe() + ("" if ranked else " (recorded; --rerank ranks again)"))
            tickers = tuple(sorted(selection.tickers))
        executor = executor or open_executor()
        for table in job.tables:
            if stop.is_set():
                break
            results.append(_run_table(job, table, listings[table], tickers, source, lake, store, reporter, stop,
                                      executor))
        for tf in job.derived():
            if stop.is_set():
                break
            rolled = RolledUp(lake, job.lineage("bars_1m", tickers), tf)
            results.append(_run_table(job, tf.table, rolled.list(tf.table, job.start, job.end), tickers, rolled,
                                      lake, store, reporter, stop, executor))
        if job.adjust is not None:
            store.adjusted_views(dividends=job.adjust == "dividends")
    return RunResult(results, store.describe(), lake.root, stopped=stop if stop.is_set() else None,
                     selection=selection, reference=written, reference_errors=failed)


def _rest_api(job: BackfillJob, source: Source) -> RestApi | None:
    """The REST API for phases 1 and 2 and for days the flat files lack: the source's own, else one when an API
    key is set, else None (skipped)."""
    api = getattr(source, "api", None)
    if isinstance(api, RestApi):
        return api
    from colfill.config import api_key
    from colfill.sources.rest import RestSettings

    if isinstance(job.rest, RestSettings) and job.rest.api_key:
        return RestApi(job.rest)
    if api_key():
        return RestApi(RestSettings.from_env())
    return None


def _no_files(source: Source, job: BackfillJob) -> str:
    if job.source == "rest":
        return (f"no trading day before today between {job.start} and {job.end} for {source.describe()}. "
                "Hint: pass --start/--end (or --years) of past trading days.")
    spans = {t: source.span(t) for t in job.tables}  # a listing each: computed once
    held = [f"{DATASETS[t]} holds {s[0]}..{s[1]}" if s else f"{DATASETS[t]} has no files" for t, s in spans.items()]
    return (f"no flat files in {source.describe()} between {job.start} and {job.end}: {'; '.join(held)}. "
            "Hint: pass --start/--end (or --years with --end) within those dates.")


@contextlib.contextmanager
def _exclusive(data_dir: Path) -> Iterator[None]:
    """One run per data dir at a time: two writers of one lake would interleave manifests and state."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / ".colfill.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreUnreachable(
                f"another colfill run is using {data_dir}. Hint: wait for it to finish, or use another --data-dir."
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run_table(
    job: BackfillJob,
    table: str,
    listed: list[SourceObject],
    tickers: tuple[str, ...] | None,
    source: Source,
    lake: Lake,
    store: Store,
    reporter: Reporter,
    stop: Stop,
    executor: Executor,
) -> TableResult:
    t0 = time.perf_counter()
    res = TableResult(table, files=len(listed))
    lineage = job.lineage(table, tickers)
    timeframe = timeframe_of(table)
    days, start, state = _plan(lake, table, lineage, listed)
    todo = days[start:]
    res.todo = len(todo)
    res.skipped = len(listed) - sum(1 for d in todo if job.start <= d.date <= job.end)
    reporter.start(table, len(todo))
    if state is not None:
        state = state.filter(pl.col("timeframe") == timeframe)

    loaded = store.loaded(table, lineage)
    workers = max(1, int(getattr(store, "load_workers", 1)))
    in_flight: list[tuple[_Day, Future[int]]] = []

    after_commit = store.lake_is_store

    def submit_load(day: _Day, bars: pl.DataFrame, commit: Future[None] | None = None) -> None:
        batch = LoadBatch(table, day.date, bars.to_arrow(), day.obj.key, day.obj.etag, day.obj.size,
                          day.fingerprint, lineage, tickers)

        def load() -> int:
            if commit is not None and after_commit:
                commit.result()  # the lake is the store: its day is loaded once its commit is written
            return store.load(batch)

        in_flight.append((day, loaders.submit(load)))
        while len(in_flight) > workers + 1:
            _collect(*in_flight.pop(0))

    def _collect(day: _Day, fut: Future[int]) -> None:
        try:
            res.loaded_rows += fut.result()
            res.loaded_days += 1
        except ColfillError as exc:
            res.errors.append(str(exc))

    staging = executor.stage(source, todo, tickers, state, job.indicators, timeframe)  # in date order
    with ThreadPoolExecutor(1, thread_name_prefix="colfill-write") as writers, \
            ThreadPoolExecutor(workers, thread_name_prefix="colfill-load") as loaders:
        writes: list[Future[None]] = []
        for day in todo:
            if stop.is_set():
                break
            staged = next(staging)  # raises Unreachable for a refused key or plan: every day would fail so
            parsed, error = staged.parsed, staged.error
            if parsed is None:
                res.failed += 1
                res.errors.append(error or "")
                entry = _entry(table, day, lineage, None, "failed", error, tickers=tickers)
                writes.append(writers.submit(_commit_failed, lake, table, lineage, day, state, entry, timeframe,
                                             job.indicators))
                reporter.advance(table, 0)
                continue
            bars, state = staged.bars, staged.state
            assert bars is not None and state is not None  # a staged day has both
            entry = _entry(table, day, lineage, parsed, "done", None, rows_out=bars.height, tickers=tickers)
            res.staged += 1
            res.rows_in += parsed.rows_in
            res.rows_out += bars.height
            res.rejected += parsed.rejects.height
            for line in _reject_lines(parsed, table):
                res.errors.append(line)
            commit = writers.submit(_commit_day, lake, table, lineage, day, bars, parsed.rejects, state, entry)
            writes.append(commit)
            while len(writes) > 2:
                writes.pop(0).result()
            submit_load(day, bars, commit)
            reporter.advance(table, bars.height, " ".join(filter(None, (store.activity(table), executor.activity()))))
        staging.close()
        for w in writes:
            w.result()
        # Days staged earlier that the store does not hold with the same fingerprint (a crash, an outage).
        manifest = lake.manifest(table, lineage)
        staged_now = {d.date for d in todo}
        for day in days:
            e = manifest.get(day.date)
            if (stop.is_set() or e is None or e.status != "done" or day.date in staged_now
                    or loaded.get(day.date) == day.fingerprint or e.fingerprint != day.fingerprint):
                continue
            submit_load(day, pl.read_parquet(lake.partition(table, day.date, lineage)))
        for item in in_flight:
            _collect(*item)
    res.notes += store.finish(table) + source.notes(table)
    res.done = res.staged + res.failed  # every staged day's load was collected above, even after a stop
    lake.prune_states(table, lineage, keep=set())
    res.seconds = time.perf_counter() - t0
    return res


def _entry(
    table: str, day: _Day, lineage: str, parsed: ParsedFile | None, status: str, error: str | None, rows_out: int = 0,
    tickers: tuple[str, ...] | None = None,
) -> ManifestEntry:
    return ManifestEntry(
        table=table, date=day.date, lineage=lineage, source_key=day.obj.key, etag=day.obj.etag, size=day.obj.size,
        fingerprint=day.fingerprint, rows_in=parsed.rows_in if parsed else 0, rows_out=rows_out,
        rejected=parsed.rejects.height if parsed else 0, status=status, error=error,
        staged_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds"), tickers=tickers,
    )


def _commit_day(
    lake: Lake, table: str, lineage: str, day: _Day, bars: pl.DataFrame, rejects: pl.DataFrame,
    state: pl.DataFrame, entry: ManifestEntry,
) -> None:
    lake.write_partition(table, day.date, lineage, bars)
    lake.write_rejects(table, day.date, lineage, rejects)
    lake.write_state(table, lineage, day.date, state, day.fingerprint)
    lake.write_manifest(entry)


def _commit_failed(
    lake: Lake, table: str, lineage: str, day: _Day, state: pl.DataFrame | None, entry: ManifestEntry,
    timeframe: str, indicators: IndicatorSet,
) -> None:
    """A failed day passes the state through unchanged, so later days stay computable."""
    from colfill.indicators.state import empty

    lake.write_state(table, lineage, day.date, state if state is not None else normalise(empty(indicators),
                     indicators, timeframe), day.fingerprint)
    lake.write_manifest(entry)


def _reject_lines(parsed: ParsedFile, table: str, show: int = 3) -> list[str]:
    if not parsed.rejects.height:
        return []
    first = parsed.rejects.head(show)
    lines = [f"{r['source_key']} line {r['line']}: {r['reason']}" for r in first.iter_rows(named=True)]
    more = parsed.rejects.height - first.height
    tail = f" (+{more} more)" if more else ""
    return [f"{lines[0]}{tail}. Hint: rejected rows are in lake/_rejects/table={table}/; the rest loaded."] + lines[1:]

