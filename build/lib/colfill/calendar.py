"""New York trading dates: which session a UTC instant belongs to, and a date's bounds in UTC.

US equities trade on New York time (04:00-20:00 with extended hours), so everything that groups bars by
day (validation of a day file, VWAP sessions, a store replacing a day, the live engine's session reset)
uses these few functions and agrees on DST. Polars and NumPy are imported only by the vectorised one.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    import polars as pl

NEW_YORK = ZoneInfo("America/New_York")
UTC = dt.timezone.utc


def day_bounds(date: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[00:00, next 00:00) New York of `date`, in UTC: holds the day's minute bars (04:00-20:00 New York)
    and its day bar (stamped 00:00 New York), so a store replaces a day by this range."""
    start = dt.datetime.combine(date, dt.time(), NEW_YORK)
    end = dt.datetime.combine(date + dt.timedelta(days=1), dt.time(), NEW_YORK)
    return start.astimezone(UTC), end.astimezone(UTC)


@lru_cache(maxsize=4096)
def day_bounds_ms(date: dt.date) -> tuple[int, int]:
    """`day_bounds` in epoch milliseconds (the live engine's clock)."""
    start, end = day_bounds(date)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def session_of_ms(t_ms: int) -> tuple[int, int, int]:
    """(start ms, end ms, date ordinal) of the New York trading date of `t_ms`."""
    day = dt.datetime.fromtimestamp(t_ms / 1000, NEW_YORK).date()
    start, end = day_bounds_ms(day)
    return start, end, day.toordinal()


@lru_cache(maxsize=64)
def _transitions(year: int) -> tuple[tuple[int, int], ...]:
    """(UTC epoch µs, UTC offset µs) at the start of `year` and at each New York offset change in it."""
    tz = NEW_YORK
    utc = UTC

    def offset(t: dt.datetime) -> int:
        off = t.astimezone(tz).utcoffset()
        assert off is not None
        return int(off.total_seconds() * 1_000_000)

    def us(t: dt.datetime) -> int:
        return int(t.timestamp() * 1_000_000)

    start = dt.datetime(year, 1, 1, tzinfo=utc)
    out = [(us(start), offset(start))]
    hours = [start + dt.timedelta(hours=h) for h in range(0, 366 * 24, 24 * 7)]
    for a, b in zip(hours, hours[1:]):
        if offset(a) != offset(b):
            lo, hi = a, b  # offsets change on the hour: bisect hours
            while hi - lo > dt.timedelta(hours=1):
                mid = lo + dt.timedelta(hours=((hi - lo) // dt.timedelta(hours=1)) // 2)
                lo, hi = (mid, hi) if offset(mid) == offset(lo) else (lo, mid)
            out.append((us(hi), offset(hi)))
    return tuple(out)


def session_dates(ts: pl.Series) -> pl.Series:
    """New York trading date of each UTC timestamp (the VWAP session), DST-aware, without per-row tz work."""
    import numpy as np
    import polars as pl

    micros = ts.dt.cast_time_unit("us").dt.replace_time_zone(None).to_physical()
    valid = micros.drop_nulls()
    if valid.is_empty():
        return pl.Series(ts.name, [None] * len(ts), dtype=pl.Date)
    lo, hi = int(valid.min()), int(valid.max())  # type: ignore[arg-type]
    years = range(dt.datetime.fromtimestamp(lo / 1e6, dt.timezone.utc).year - 1,
                  dt.datetime.fromtimestamp(hi / 1e6, dt.timezone.utc).year + 2)
    table = np.array([t for y in years for t in _transitions(y)], dtype=np.int64)
    values = micros.fill_null(0).to_numpy()
    offsets = table[np.searchsorted(table[:, 0], values, side="right") - 1, 1]
    days = np.floor_divide(values + offsets, 86_400_000_000).astype(np.int32)
    return pl.Series(ts.name, days).cast(pl.Date).scatter(micros.is_null().arg_true(), None)


def session_date(ts: pl.Expr) -> pl.Expr:
    """Expression form of `session_dates`."""
    import polars as pl

    return ts.map_batches(session_dates, return_dtype=pl.Date)


def exchange_sessions(start: dt.date, end: dt.date, exchange: str = "XNYS") -> list[dt.date]:
    """Trading days of `exchange` in [start, end] from `exchange-calendars` (extra `ui`): the exchange's real
    holidays and one-off closures, so a day without bars can be told from a day without a session."""
    from colfill._lazy import require

    xcals = require("exchange_calendars", "ui")
    first = max(start, dt.date(1990, 1, 1))
    if end < first:
        return []
    cal = xcals.get_calendar(exchange, start=(first - dt.timedelta(days=7)).isoformat(),
                             end=(end + dt.timedelta(days=7)).isoformat())
    return [d.date() for d in cal.sessions_in_range(first.isoformat(), end.isoformat())]
