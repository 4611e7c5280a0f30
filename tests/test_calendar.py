"""The NYSE calendar (`colfill.calendar`): day by day equal to exchange-calendars' XNYS, the independent
reference, in sessions, opens and closes (early closes included); and the rules' known cases by hand."""

from __future__ import annotations

import datetime as dt
import doctest
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import colfill.calendar
from colfill.calendar import (
    NEW_YORK,
    ONE_OFF_CLOSURES,
    is_session,
    nyse_holidays,
    session_close,
    session_open,
    sessions,
    trading_days,
)
from colfill.errors import InvalidArgument

D = dt.date.fromisoformat
FIRST, LAST = D("1998-01-01"), D("2030-12-31")  # the brief asks 2000-2030; the rules hold from 1998


@pytest.fixture(scope="module")
def xnys() -> Any:
    import exchange_calendars

    return exchange_calendars.get_calendar("XNYS", start=FIRST.isoformat(), end=LAST.isoformat())


def test_sessions_equal_xnys_day_by_day(xnys: Any) -> None:
    want = [t.date() for t in xnys.sessions]
    assert want[0] <= D("1998-01-02") and want[-1] >= D("2030-12-31")
    assert sessions(FIRST, LAST) == want
    every_day = [FIRST + dt.timedelta(days=i) for i in range((LAST - FIRST).days + 1)]
    assert [d for d in every_day if is_session(d)] == want


def test_opens_and_closes_equal_xnys(xnys: Any) -> None:
    opens = xnys.opens.dt.tz_convert("America/New_York")
    closes = xnys.closes.dt.tz_convert("America/New_York")
    got_open = {d: session_open(d) for d in sessions(FIRST, LAST)}
    got_close = {d: session_close(d) for d in sessions(FIRST, LAST)}
    assert got_open == {t.date(): o.to_pydatetime() for t, o in opens.items()}
    assert got_close == {t.date(): c.to_pydatetime() for t, c in closes.items()}
    early = {d for d, c in got_close.items() if c.time() != dt.time(16)}
    want_early = {t.date() for t in xnys.early_closes}
    assert early == want_early and len(early) == 73  # 2.2 a year: the eves, plus 1999-12-31 and 2003-12-26
    assert {got_close[d].time() for d in early} == {dt.time(13)}
    assert not xnys.late_opens.size  # every session opens at 09:30


@pytest.mark.parametrize(("day", "why"), [
    ("2001-09-11", "World Trade Center"), ("2001-09-14", "World Trade Center"), ("2004-06-11", "Reagan"),
    ("2007-01-02", "Ford"), ("2012-10-29", "Sandy"), ("2012-10-30", "Sandy"), ("2018-12-05", "Bush"),
    ("2025-01-09", "Carter"),
])
def test_one_off_closures_are_closed_and_say_why(day: str, why: str) -> None:
    assert not is_session(D(day)) and D(day).weekday() < 5
    assert why in ONE_OFF_CLOSURES[D(day)]
    for bound in (session_open, session_close):
        with pytest.raises(InvalidArgument, match=f"{day} is not an NYSE session .*{why}.*Hint"):
            bound(D(day))
    with pytest.raises(InvalidArgument, match="a weekend"):
        session_close(D("2024-03-30"))
    with pytest.raises(InvalidArgument, match="an NYSE holiday"):
        session_open(D("2024-03-29"))


@pytest.mark.parametrize(("day", "close"), [
    ("2013-07-03", "13:00"),  # a Wednesday 3 July, shortened from 2013
    ("2002-07-03", "16:00"),  # ... but not before:
    ("2002-07-05", "13:00"),  # the Friday 5 July was shortened instead
    ("2013-07-05", "16:00"), ("2019-07-05", "16:00"),  # not from 2013
    ("2025-07-03", "13:00"), ("2023-07-03", "13:00"),  # Thursday, Monday
    ("2026-07-02", "16:00"),  # 3 July 2026 is the observed holiday: the day before it is a full day
    ("2024-11-29", "13:00"), ("2024-12-24", "13:00"), ("2020-12-24", "13:00"),  # Thursday Christmas Eve
    ("2003-12-26", "13:00"), ("2008-12-26", "16:00"), ("2025-12-26", "16:00"),  # one-off: 2003 only
    ("1999-12-31", "13:00"), ("2024-03-28", "16:00"),
])
def test_early_closes_by_hand(day: str, close: str) -> None:
    assert session_close(D(day)) == dt.datetime.combine(D(day), dt.time.fromisoformat(close), NEW_YORK)
    assert session_open(D(day)) == dt.datetime.combine(D(day), dt.time(9, 30), NEW_YORK)


def test_bounds_are_new_york_wall_clock_across_dst() -> None:
    winter, summer = session_close(D("2024-03-08")), session_close(D("2024-03-11"))
    assert winter.astimezone(dt.timezone.utc).hour == 21 and summer.astimezone(dt.timezone.utc).hour == 20


def test_docstring_examples_hold() -> None:
    assert doctest.testmod(colfill.calendar).failed == 0


@pytest.mark.parametrize(("start", "end", "expected"), [
    ("2024-03-25", "2024-04-05", "03-25 03-26 03-27 03-28 04-01 04-02 04-03 04-04 04-05"),  # Good Friday 03-29
    ("2021-12-20", "2022-01-04", "12-20 12-21 12-22 12-23 12-27 12-28 12-29 12-30 12-31 01-03 01-04"),
    ("2022-06-13", "2022-06-24", "06-13 06-14 06-15 06-16 06-17 06-21 06-22 06-23 06-24"),  # Juneteenth on Monday
    ("2022-12-19", "2023-01-03", "12-19 12-20 12-21 12-22 12-23 12-27 12-28 12-29 12-30 01-03"),
    ("2024-07-01", "2024-07-05", "07-01 07-02 07-03 07-05"),
    ("2024-12-23", "2024-12-27", "12-23 12-24 12-26 12-27"),
    ("2021-06-14", "2021-06-18", "06-14 06-15 06-16 06-17 06-18"),  # no Juneteenth before 2022
    ("2027-06-14", "2027-06-21", "06-14 06-15 06-16 06-17 06-21"),  # Saturday Juneteenth observed Friday
    ("2026-07-01", "2026-07-07", "07-01 07-02 07-06 07-07"),  # Saturday July 4th observed Friday
    ("2024-01-13", "2024-01-16", "01-16"),  # weekend then MLK Day
    ("2024-03-30", "2024-03-31", ""),
])
def test_trading_days_known(start: str, end: str, expected: str) -> None:
    first, last = D(start), D(end)  # month-days before the start's month-day belong to the next year
    want = [D(f"{first.year if md >= start[5:] else last.year}-{md}") for md in expected.split()]
    assert trading_days(first, last) == want


def test_holidays_and_year_lengths() -> None:
    on = {2024: "01-01 01-15 02-19 03-29 05-27 06-19 07-04 09-02 11-28 12-25",
          2025: "01-01 01-20 02-17 04-18 05-26 06-19 07-04 09-01 11-27 12-25"}  # 2025-01-09 was a one-off closure
    for year, days in on.items():
        assert nyse_holidays(year) == [D(f"{year}-{md}") for md in days.split()]
    assert D("2021-12-31") not in nyse_holidays(2021) + nyse_holidays(2022)
    assert D("2021-12-24") in nyse_holidays(2021)
    assert {y: len(trading_days(D(f"{y}-01-01"), D(f"{y}-12-31"))) for y in (2021, 2022, 2023, 2024)} == {
        2021: 252, 2022: 251, 2023: 250, 2024: 252}
    assert trading_days(D("2024-03-05"), D("2024-03-04")) == []
    assert trading_days(dt.datetime(2024, 3, 28, 15), dt.datetime(2024, 4, 1)) == [D("2024-03-28"), D("2024-04-01")]


@settings(max_examples=60, deadline=None)
@given(st.dates(D("1998-01-01"), D("2099-12-31")), st.integers(0, 900), st.integers(0, 900))
def test_trading_days_split_and_rules(first: dt.date, span: int, cut: int) -> None:
    last = first + dt.timedelta(days=span)
    middle = first + dt.timedelta(days=min(cut, span))
    days = trading_days(first, last)
    assert days == trading_days(first, middle) + trading_days(middle + dt.timedelta(days=1), last)
    holidays = {h for y in range(first.year, last.year + 1) for h in nyse_holidays(y)} | set(ONE_OFF_CLOSURES)
    assert all(d.weekday() < 5 and d not in holidays and first <= d <= last for d in days)
    assert days == sorted(set(days))
    assert all(h.weekday() < 5 for h in holidays)
    assert all(is_session(d) for d in days)


