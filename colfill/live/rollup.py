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
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any

import pyarrow as pa

from colfill.bars import rows_to_table
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
    __slots__ = ("end", "minutes", "published", "start")

    def __init__(self, start: int, end: int) -> None:
        self.start, self.end = start, end
        self.minutes: dict[int, Row] = {}
        self.published = False


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
        """Close the open buckets whose end plus the grace the feed's clock has passed."""
        clock = now_s * 1000 - (self._delay or 0.0)
        for tf in self.timeframes:
            ends = self._ends[tf.name]
            for end in [e for e in ends if e + self.grace_ms <= clock]:
                for ticker in list(ends.get(end, ())):
                    self._close(tf.name, ticker, self._series[tf.name][ticker])

    def close_all(self) -> None:
        """Close every open bucket as it stands (the session is ending: nothing received is lost)."""
        for tf in self.timeframes:
            for ticker, s in self._series[tf.name].items():
                if s.open is not None:
                    self._close(tf.name, ticker, s)

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
            table, revision = self._indicators(tf, [(bars[k], b.published) for k, b in buckets if k in bars])
            for _, b in buckets:
                b.published = True
            if table.num_rows:
                out.append((tf, table, revision))
        return out

    def _indicators(self, tf: Timeframe, bars: list[tuple[Row, bool]]) -> tuple[pa.Table, list[bool]]:
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
        table = rows_to_table([row for row, _, _ in done.values()])
        for c in proc.indicators.columns:
            table = table.append_column(c, pa.array([v[c] for _, v, _ in done.values()], pa.float64()))
        return table, [flag for _, _, flag in done.values()]
