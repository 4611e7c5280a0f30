"""New York trading dates and the NYSE calendar, the one every caller uses.

US equities trade on New York time (04:00-20:00 with extended hours), so everything that groups bars by
day (validation of a day file, VWAP sessions, a store replacing a day, the live engine's session reset)
uses these few functions and agrees on DST. Polars and NumPy are imported only by the vectorised one.

Which days are sessions, and when a session opens and closes, is defined here once: the REST source lists
its days with it, the gap fill finds missing days with it, the sample generator writes a file for each of
its days, and the dashboard tells a holiday from a missing day with it. It is the NYSE's calendar as in
force since 1998 (the first Martin Luther King Jr. Day the exchange closed for), checked day by day against
`exchange-calendars`' XNYS from 1998 to 2030 in the tests; earlier years get the same rules, not the old ones.

- Weekends are closed.
- Regular holidays, by rule (`nyse_holidays`): New Year's Day, Martin Luther King Jr. Day (third Monday
  of January), Washington's Birthday (third Monday of February), Good Friday (two days before Gregorian
  Easter), Memorial Day (last Monday of May), Juneteenth (from 2022: it became a federal holiday two days
  before 19 June 2021, too late for the exchange that year), Independence Day, Labor Day (first Monday of
  September), Thanksgiving (fourth Thursday of November), Christmas. A fixed-date holiday on a Saturday is
  observed the Friday before and on a Sunday the Monday after, except New Year's Day on a Saturday, which
  is not observed at all: NYSE rule 7.2 keeps the Friday before open when it ends a yearly accounting
  period (2021-12-31, 2027-12-31 are sessions).
- One-off closures (`ONE_OFF_CLOSURES`): the attacks of 2001-09-11 (closed through the week), national
  days of mourning for former presidents (Reagan, Ford, Bush, Carter), Hurricane Sandy. These cannot be
  derived; a future one must be added here.
- Regular session 09:30-16:00. Early close at 13:00 (`EARLY_CLOSE`) on the eves the NYSE shortens:
  the day after Thanksgiving; Christmas Eve on a Monday to Thursday (on a Friday it is the observed
  Christmas holiday); 3 July on a Monday, Tuesday or Thursday, and from 2013 also on a Wednesday (the
  NYSE began shortening it then); before 2013, 5 July on a Friday instead (a Wednesday 3 July was a full
  day). Plus the one-off early closes in `ONE_OFF_EARLY_CLOSES`.

>>> trading_days(dt.date(2024, 3, 28), dt.date(2024, 4, 2))  # Good Friday and a weekend
[datetime.date(2024, 3, 28), datetime.date(2024, 4, 1), datetime.date(2024, 4, 2)]
>>> session_close(dt.date(2024, 11, 29)).time()  # the day after Thanksgiving
datetime.time(13, 0)
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from colfill.errors import InvalidArgument

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


# --- the NYSE calendar ---------------------------------------------------------------------------------------

REGULAR_OPEN = dt.time(9, 30)
REGULAR_CLOSE = dt.time(16)
EARLY_CLOSE = dt.time(13)

ONE_OFF_CLOSURES = {
    dt.date(2001, 9, 11): "attacks on the World Trade Center",
    dt.date(2001, 9, 12): "attacks on the World Trade Center",
    dt.date(2001, 9, 13): "attacks on the World Trade Center",
    dt.date(2001, 9, 14): "attacks on the World Trade Center",
    dt.date(2004, 6, 11): "national day of mourning for Ronald Reagan",
    dt.date(2007, 1, 2): "national day of mourning for Gerald Ford",
    dt.date(2012, 10, 29): "Hurricane Sandy",
    dt.date(2012, 10, 30): "Hurricane Sandy",
    dt.date(2018, 12, 5): "national day of mourning for George H. W. Bush",
    dt.date(2025, 1, 9): "national day of mourning for Jimmy Carter",
}
ONE_OFF_EARLY_CLOSES = {
    dt.date(1999, 12, 31): "the eve of 2000 (Y2K)",
    dt.date(2003, 12, 26): "the Friday after Christmas",
}


def plain_date(value: dt.date) -> dt.date:
    """A plain date: a `datetime` is a `date` subclass, but is never equal to one, nor ordered against one."""
    return dt.date(value.year, value.month, value.day)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> dt.date:
    """The n-th (1-based) `weekday` (Monday = 0) of a month; n = -1 is the last one."""
    if n > 0:
        first = dt.date(year, month, 1)
        return first + dt.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)
    return last - dt.timedelta(days=(last.weekday() - weekday) % 7)


def _easter_sunday(year: int) -> dt.date:
    """Gregorian Easter (the Meeus/Jones/Butcher computus); Good Friday is two days earlier."""
    a, b, c = year % 19, year // 100, year % 100
    d = (19 * a + b - b // 4 - (b - (b + 8) // 25 + 1) // 3 + 15) % 30
    e = (32 + 2 * (b % 4) + 2 * (c // 4) - d - c % 4) % 7
    f = (a + 11 * d + 22 * e) // 451
    month, day = divmod(d + e - 7 * f + 114, 31)
    return dt.date(year, month, day + 1)


def _observed(day: dt.date) -> dt.date:
    """NYSE rule for fixed-date holidays: Saturday moves to Friday, Sunday to Monday."""
    shift = {5: -1, 6: 1}.get(day.weekday(), 0)
    return day + dt.timedelta(days=shift)


def nyse_holidays(year: int) -> list[dt.date]:
    """Full-day NYSE holidays of `year` by the regular rules (the module docstring); one-off closures are
    `ONE_OFF_CLOSURES`. A Saturday New Year's Day is not observed: the Friday before is a session."""
    days = [
        _nth_weekday(year, 1, 0, 3),  # Martin Luther King Jr. Day
        _nth_weekday(year, 2, 0, 3),  # Washington's Birthday
        _easter_sunday(year) - dt.timedelta(days=2),  # Good Friday
        _nth_weekday(year, 5, 0, -1),  # Memorial Day
        _observed(dt.date(year, 7, 4)),
        _nth_weekday(year, 9, 0, 1),  # Labor Day
        _nth_weekday(year, 11, 3, 4),  # Thanksgiving
        _observed(dt.date(year, 12, 25)),
    ]
    new_year = dt.date(year, 1, 1)
    if new_year.weekday() != 5:
        days.append(_observed(new_year))
    if year >= 2022:
        days.append(_observed(dt.date(year, 6, 19)))  # Juneteenth
    return sorted(days)


@lru_cache(maxsize=256)
def _closed(year: int) -> frozenset[dt.date]:
    """Weekdays of `year` without a session: regular holidays and one-off closures."""
    return frozenset(nyse_holidays(year)) | {d for d in ONE_OFF_CLOSURES if d.year == year}


@lru_cache(maxsize=256)
def _early_closes(year: int) -> frozenset[dt.date]:
    """Sessions of `year` that close at `EARLY_CLOSE` (the rules in the module docstring)."""
    july3, july5, eve = dt.date(year, 7, 3), dt.date(year, 7, 5), dt.date(year, 12, 24)
    days = {_nth_weekday(year, 11, 3, 4) + dt.timedelta(days=1)}  # the day after Thanksgiving
    if eve.weekday() < 4:
        days.add(eve)
    if july3.weekday() in ((0, 1, 3) if year < 2013 else (0, 1, 2, 3)):
        days.add(july3)
    if year < 2013 and july5.weekday() == 4:
        days.add(july5)
    return frozenset(days | {d for d in ONE_OFF_EARLY_CLOSES if d.year == year})


def is_session(date: dt.date) -> bool:
    """Whether the NYSE trades on `date` (a New York calendar date)."""
    day = plain_date(date)
    return day.weekday() < 5 and day not in _closed(day.year)


def sessions(start: dt.date, end: dt.date) -> list[dt.date]:
    """The NYSE trading days in [start, end], in order (empty when start > end)."""
    first, last = plain_date(start), plain_date(end)
    days = (first + dt.timedelta(days=i) for i in range((last - first).days + 1))
    return [d for d in days if d.weekday() < 5 and d not in _closed(d.year)]


trading_days = sessions  # the name the sources and the sample generator grew up with


def _session(date: dt.date) -> dt.date:
    day = plain_date(date)
    if not is_session(day):
        why = ONE_OFF_CLOSURES.get(day) or ("a weekend" if day.weekday() >= 5 else "an NYSE holiday")
        raise InvalidArgument(f"{day} is not an NYSE session ({why}). Hint: pick a day from `sessions(start, end)`.")
    return day


def session_open(date: dt.date) -> dt.datetime:
    """Start of the regular session of `date` (09:30 New York, as an aware datetime); not for a closed day."""
    return dt.datetime.combine(_session(date), REGULAR_OPEN, NEW_YORK)


def session_close(date: dt.date) -> dt.datetime:
    """End of the regular session of `date` in New York: 16:00, or 13:00 on an early close; not for a closed day."""
    day = _session(date)
    return dt.datetime.combine(day, EARLY_CLOSE if day in _early_closes(day.year) else REGULAR_CLOSE, NEW_YORK)
