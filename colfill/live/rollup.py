"""The live rollup: minute bars rolled up into derived timeframes' buckets as they come (`colfill live --timeframes`).

Per (timeframe, ticker) the minutes of the open bucket are held. A bucket **closes** when a minute of a later
bucket of its ticker arrives, or when the feed's clock passes its end plus `grace` (checked on every poll, for
tickers that went quiet). The feed's clock is the wall clock less the feed's own delay: the arrival of the socket's
bars minus their end, at its least (`observe`), so a delayed feed or a replay of past days closes buckets when
their last minute would have come, not the moment their first one does. A closed bucket's bar is
`colfill.timeframes.rollup` of its minutes (so live equals batch by construction), with indicators from an
`IncrementalIndicatorProcessor` of its own timeframe.

A late or revised minute of a closed bucket changes its minutes: the bucket is rolled up again and published as
a revision, its indicators and those of the later buckets recomputed through the processor's correction history
(`amend`, as a late minute is on 1m). Closed buckets are held while a minute of theirs can still be corrected on
1m (`horizon`: the minute engine's oldest correctable minute), so memory stays at about the open buckets' minutes.

`:rth` timeframes take only minutes of the regular session (`colfill.timeframes.regular_session`); any later
minute closes their bucket. `1d:rth` buckets are New York days, ending at the session's close.

**Resuming** (`resume`): a session that starts within a bucket whose earlier minutes the store holds (an earlier
session stopped, or a backfill ended, inside it) opens that bucket with those minutes, so its bar is the rollup
of all of them. The bucket that may still be open is, per ticker, the one holding its latest stored minute: any
earlier one was closed by that later minute, and a later one has no stored minute. It is not the bucket of the
wall clock: a delayed feed or a replay runs behind it, and the feed's clock is known only from its first bar
(until then the clock closes no resumed bucket). It is left closed when its end is not after the latest minute
the store holds of any ticker (the feed's clock passed it: the earlier session closed it). Under `:rth` a
latest minute outside the session closed the bucket before it; `1d:rth` resumes the day's session minutes.
The timeframe's processor starts from the state before the resumed bucket (the stored bars before it, or the
saved state caught up to it), so its bar is a new bar there, not a revision a state cannot take (it holds no undo
record); a resumed bucket that closes with no minute changed, and whose bar the store holds, is applied to the
processor and not published or stored again. A saved `indicator_state` is kept rather than recomputed from the
stored bars (it is saved where they lack the history): at the stop `state_to_save` is the state before the
buckets closed as they stood, which the next session resumes. A state saved holding such a bucket's bar (by a
version that did not resume) leaves that bucket unresumed (`adopt`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any

import pyarrow as pa

from colfill.bars import BAR_COLUMNS, rows_to_table
from colfill.calendar import NEW_YORK, day_bounds_ms, is_session, session_close, session_open
from colfill.errors import InvalidArgument
from colfill.timeframes import DAY, Timeframe, parse

HOUR = 3_600_000
Row = tuple[Any, ...]  # a socket row: ticker, start ms, open, high, low, close, volume, vw, transactions


def live_timeframes(names: str | Sequence[str | Timeframe] | None, argument: str = "--timeframes"
                    ) -> tuple[Timeframe, ...]:
    """The timeframes a live session publishes: `1m` and derived ones (`1d:rth` included). Polygon's own day bar
    (`1d`) is refused: the stream carries minute bars only."""
    if names is None:
        return parse("1m", argument)
    text = names if isinstance(names, str) else ",".join(n if isinstance(n, str) else n.name for n in names)
    out = parse(text, argument)
    if "1m" not in (t.name for t in out):
        raise InvalidArgument(f"{argument} {text}: a live session publishes its minute bars; add 1m")
    if "1d" in (t.name for t in out):
        raise InvalidArgument(f"{argument} {text}: 1d is Polygon's day bar, which the stream does not carry; "
                              "1d:rth rolls the regular session's minutes up into a day bar")
    return out


@lru_cache(maxsize=512)
def _day(hour: int) -> tuple[int, int | None, int | None]:
    """(start of the New York day, regular open, regular close), epoch ms, of the day holding the hour `hour`
    (epoch hours: New York's days change on whole UTC hours); open and close None on a day without a session."""
    date = dt.datetime.fromtimestamp(hour * 3600, NEW_YORK).date()
    start = day_bounds_ms(date)[0]
    if not is_session(date):
        return start, None, None
    return start, int(session_open(date).timestamp() * 1000), int(session_close(date).timestamp() * 1000)


def bucket_of(tf: Timeframe, t: int) -> tuple[int, int] | None:
    """(start, end) epoch ms of the `tf` bucket of the minute starting at `t`; None for an `:rth` one outside the
    regular session. The same buckets as `colfill.timeframes.rollup` (which is what the bar is made with)."""
    if tf.rth:
        start, open_, close = _day(t // HOUR)
        if open_ is None or close is None or not open_ <= t < close:
            return None
        if tf.minutes == DAY:
            return start, close
    size = tf.minutes * 60_000
    return t - t % size, t - t % size + size


class _Bucket:
    __slots__ = ("end", "minutes", "published", "resumed", "start")

    def __init__(self, start: int, end: int) -> None:
        self.start, self.end = start, end
        self.minutes: dict[int, Row] = {}
        self.published = False
        self.resumed = False  # opened from the store's minutes, none changed since


class _Series:
    """One ticker's buckets in one timeframe: the open one, and the closed ones a correction may still reach."""

    __slots__ = ("closed", "open")

    def __init__(self) -> None:
        self.open: _Bucket | None = None
        self.closed: dict[int, _Bucket] = {}


class LiveRollup:
    """Derived timeframes' bars from minute rows (see the module docstring). `add` minutes, `tick` the clock,
    `close_all` at the end; `take` the bars due, with indicators and revision flags, per timeframe."""

    def __init__(self, timeframes: Iterable[Timeframe], processors: dict[str, Any], grace: float = 2.0,
                 horizon: Callable[[str], int | None] | None = None) -> None:
        self.timeframes = [tf for tf in timeframes if tf.derived]
        self.processors = processors  # timeframe name -> IncrementalIndicatorProcessor
        self.grace_ms = grace * 1000
        self.horizon = horizon or (lambda ticker: None)
        self.late = 0  # minutes of a bucket no longer held, or refused by a processor: not applied
        self._series: dict[str, dict[str, _Series]] = {tf.name: {} for tf in self.timeframes}
        self._ends: dict[str, dict[int, set[str]]] = {tf.name: {} for tf in self.timeframes}  # open buckets by end
        self._due: dict[str, dict[tuple[str, int], _Bucket]] = {tf.name: {} for tf in self.timeframes}
        self._delay: float | None = None  # the feed's least delay seen (arrival minus end), ms
        self._stopped: dict[str, tuple[Any, set[str]]] = {}  # name -> (state before the stop's buckets, tickers)

    # -- minutes in --

    def observe(self, end_ms: int, arrived_s: float) -> None:
        """A socket bar's end and arrival: the feed's clock follows its least delay (never ahead of the wall)."""
        delay = max(arrived_s * 1000 - end_ms, 0.0)
        if self._delay is None or delay < self._delay:
            self._delay = delay

    def add(self, rows: Iterable[Row]) -> None:
        """Minute rows (each the last version of its minute): into their buckets; a later bucket's minute closes
        the open one, a changed minute of a closed bucket makes it due again."""
        rows = list(rows)
        for tf in self.timeframes:
            name, series, due = tf.name, self._series[tf.name], self._due[tf.name]
            for row in rows:
                ticker, t = row[0], row[1]
                s = series.get(ticker)
                if s is None:
                    s = series[ticker] = _Series()
                if s.open is not None and t >= s.open.end:
                    self._close(name, ticker, s)
                span = bucket_of(tf, t)
                if span is None:
                    continue
                b = s.open
                if b is not None and b.start == span[0]:
                    b.resumed = b.resumed and b.minutes.get(t) == row
                    b.minutes[t] = row
                    continue
                if b is None and (not s.closed or span[0] > max(s.closed)):
                    b = s.open = _Bucket(*span)
                    b.minutes[t] = row
                    self._ends[name].setdefault(b.end, set()).add(ticker)
                    continue
                b = s.closed.get(span[0])  # a minute of a closed bucket (or of one before the open one)
                if b is None:
                    if not s.closed or span[0] < min(s.closed):
                        self.late += 1  # its bucket is no longer held
                        continue
                    b = s.closed[span[0]] = _Bucket(*span)
                if b.minutes.get(t) != row:
                    b.minutes[t] = row
                    b.resumed = False
                    due[(ticker, b.start)] = b

    def _close(self, name: str, ticker: str, s: _Series) -> None:
        b = s.open
        assert b is not None
        s.open = None
        waiting = self._ends[name].get(b.end)
        if waiting is not None:
            waiting.discard(ticker)
            if not waiting:
                del self._ends[name][b.end]
        horizon = self.horizon(ticker)  # the latest closed bucket stays: a revision of its last minute may come
        for start in [k for k, old in s.closed.items() if horizon is None or old.end <= horizon]:
            del s.closed[start]
        s.closed[b.start] = b
        self._due[name][(ticker, b.start)] = b

    def tick(self, now_s: float) -> None:
        """Close the open buckets whose end plus the grace the feed's clock has passed (a resumed one only once
        the feed's clock is known)."""
        clock = now_s * 1000 - (self._delay or 0.0)
        for tf in self.timeframes:
            ends, series = self._ends[tf.name], self._series[tf.name]
            for end in [e for e in ends if e + self.grace_ms <= clock]:
                for ticker in list(ends.get(end, ())):
                    s = series[ticker]
                    if self._delay is not None or not (s.open is not None and s.open.resumed):
                        self._close(tf.name, ticker, s)

    def close_all(self) -> None:
        """Close every open bucket as it stands (the session is ending: nothing received is lost), keeping the
        processors' state before them for `state_to_save`."""
        for tf in self.timeframes:
            open_ = {ticker for ticker, s in self._series[tf.name].items() if s.open is not None}
            if open_:
                proc = self.processors[tf.name]
                held = proc.last_times(tf.name)
                self._stopped[tf.name] = (proc.export_state([(t, tf.name) for t in sorted(open_) if t in held]),
                                          open_)
            for ticker in open_:
                self._close(tf.name, ticker, self._series[tf.name][ticker])

    def pending(self) -> bool:
        return any(self._due.values())

    # -- bars out --

    def take(self) -> list[tuple[Timeframe, pa.Table, list[bool]]]:
        """The due buckets' bars (BAR_COLUMNS and the indicators) with their revision flags, per timeframe; a
        correction's later bars of the ticker come too, recomputed (revisions)."""
        import polars as pl

        from colfill.timeframes import rollup

        out = []
        for tf in self.timeframes:
            due = self._due[tf.name]
            if not due:
                continue
            buckets = sorted(due.items())
            self._due[tf.name] = {}
            minutes = [row for _, b in buckets for row in b.minutes.values()]
            frame = rollup(pl.from_arrow(rows_to_table(minutes)), tf)  # type: ignore[arg-type]
            t_ms = frame["ts"].dt.epoch("ms").to_list()
            bars = {(r[0], t): (r[0], t, *r[2:]) for r, t in zip(frame.iter_rows(), t_ms)}
            stored = {k for k, b in buckets if b.resumed and b.published}  # the store holds this bar
            table, revision = self._indicators(tf, [(bars[k], b.published) for k, b in buckets if k in bars], stored)
            for _, b in buckets:
                b.published = True
            if table.num_rows:
                out.append((tf, table, revision))
        return out

    def _indicators(self, tf: Timeframe, bars: list[tuple[Row, bool]], stored: set[tuple[str, int]]
                    ) -> tuple[pa.Table, list[bool]]:
        proc = self.processors[tf.name]
        done: dict[tuple[str, int], tuple[Row, dict[str, Any], bool]] = {}
        for r, published in bars:
            redone = proc.amend(r[0], tf.name, r[1], r[5], r[3], r[4], r[6], r)
            if redone is None:  # older than the bars whose state it holds, or the backfill's last: not applied
                self.late += 1
                continue
            for t, row, values in redone:
                done.pop((r[0], t), None)
                done[(r[0], t)] = (row, values, published if t == r[1] else True)
        for key in stored:
            done.pop(key, None)
        table = rows_to_table([row for row, _, _ in done.values()])
        for c in proc.indicators.columns:
            table = table.append_column(c, pa.array([v[c] for _, v, _ in done.values()], pa.float64()))
        return table, [flag for _, _, flag in done.values()]

    # -- resuming (see the module docstring) --

    def resume(self, store: Any, last_minutes: dict[str, int], tickers: Iterable[str] | None = None
               ) -> dict[str, dict[str, int]]:
        """Open, per derived timeframe, each ticker's bucket that may still be open with the store's minutes of it
        (`last_minutes`: each ticker's latest stored minute start, epoch ms; `tickers`: those followed, None for
        all). The buckets opened: timeframe name -> ticker -> bucket start, for the processors' `before`."""
        from colfill.errors import ColfillError

        chosen = last_minutes if tickers is None else {t: last_minutes[t] for t in tickers if t in last_minutes}
        if store is None or not chosen:
            return {}
        latest = max(last_minutes.values())
        spans: dict[tuple[str, str], tuple[int, int]] = {}
        for tf in self.timeframes:
            for ticker, t in chosen.items():
                span = bucket_of(tf, t)
                if span is not None and span[1] > latest:
                    spans[(tf.name, ticker)] = span
        if not spans:
            return {}
        minutes: dict[tuple[str, str], dict[int, Row]] = {k: {} for k in spans}
        try:
            since, followed = min(s for s, _ in spans.values()), {t for _, t in spans}
            for row in _rows(store, "bars_1m", list(BAR_COLUMNS), since, followed):
                for tf in self.timeframes:
                    span = spans.get((tf.name, row[0]))
                    if span is not None and bucket_of(tf, row[1]) == span:
                        minutes[(tf.name, row[0])][row[1]] = row
        except ColfillError:  # a saved state with no bars_1m table: nothing to resume
            return {}
        opened: dict[str, dict[str, int]] = {}
        for tf in self.timeframes:
            mine = {ticker: span for (name, ticker), span in spans.items() if name == tf.name}
            try:  # the bars the store holds of these buckets: published before
                held = {(r[0], r[1]) for r in _rows(store, tf.table, ["ticker", "ts"], min(
                    s for s, _ in mine.values()), set(mine))} if mine else set()
            except ColfillError:  # no such table yet
                held = set()
            for ticker, (start, end) in mine.items():
                b = _Bucket(start, end)
                b.minutes, b.resumed, b.published = minutes[(tf.name, ticker)], True, (ticker, start) in held
                if b.minutes:
                    self._series[tf.name].setdefault(ticker, _Series()).open = b
                    self._ends[tf.name].setdefault(end, set()).add(ticker)
                    opened.setdefault(tf.name, {})[ticker] = start
        return opened

    def adopt(self, name: str, processor: Any) -> int:
        """`processor` for timeframe `name`; a resumed bucket whose bar its state already holds (a state saved with
        the bucket's bar as it stood, by a version before resuming) is dropped, as its bar could only be a revision
        the state cannot take (that bucket's later minutes make a bar of their own). Buckets dropped."""
        self.processors[name] = processor
        held = processor.last_times(name)
        dropped = 0
        for ticker, s in self._series[name].items():
            b = s.open
            if b is not None and b.resumed and held.get(ticker, b.start - 1) >= b.start:
                s.open = None
                waiting = self._ends[name][b.end]
                waiting.discard(ticker)
                if not waiting:
                    del self._ends[name][b.end]
                dropped += 1
        return dropped

    def state_to_save(self, name: str) -> Any:
        """The state of `name`'s processor to save at the stop: each ticker whose bucket was closed as it stood
        taken before that bucket, so the next session resumes the bucket with its stored minutes and applies its
        bar as a new one (a saved state holding it could not be revised)."""
        import polars as pl

        state = self.processors[name].export_state()
        before, tickers = self._stopped.get(name, (None, set()))
        if not tickers:
            return state
        return pl.concat([state.filter(~pl.col("ticker").is_in(sorted(tickers))), before]).sort("ticker")


def _rows(store: Any, table: str, columns: list[str], since: int, tickers: set[str]) -> Iterable[Row]:
    """Rows of `table` from `since` (epoch ms) on, of `tickers`, as tuples with the start in epoch ms."""
    import pyarrow.compute as pc

    after = dt.datetime.fromtimestamp(since / 1000 - 1e-3, dt.timezone.utc)  # read_bars: strictly after
    wanted = pa.array(sorted(tickers), pa.string())
    for part in store.read_bars(table, columns, since=after):
        part = part.filter(pc.is_in(part["ticker"], value_set=wanted))
        cols = [part[c].to_pylist() for c in columns]
        cols[1] = part["ts"].cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64()).to_pylist()
        yield from zip(*cols)
