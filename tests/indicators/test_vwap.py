"""Session VWAP: Σ typical price × volume / Σ volume over the symbol's bars of one New York date, typical price
(high+low+close)/3, reset at each New York date, null while the session's volume is 0. No TA-Lib equivalent:
the reference is a row-by-row Python computation with zoneinfo dates."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from colfill.calendar import session_dates
from colfill.indicators.batch import enrich
from colfill.indicators.spec import VWAP, IndicatorSet

UTC = dt.timezone.utc
NEW_YORK = ZoneInfo("America/New_York")
VW = IndicatorSet.parse("vwap")


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_hand_computed_typical_price(make, check):
    # Typical prices (3+1+2)/3 = 2 and (6+3+3)/3 = 4; volumes 10 and 30: (20 + 120) / 40 = 3.5.
    frame = make.bars("X", [2.0, 3.0], high=[3.0, 6.0], low=[1.0, 3.0], volume=[10.0, 30.0])
    out, state = enrich(frame, VW)
    check.series(out["vwap"], np.array([2.0, 3.5]))
    assert state["vwap__date"].to_list() == [dt.date(2024, 3, 8)]
    check.series(state["vwap__pv"], np.array([140.0]))
    check.series(state["vwap__v"], np.array([40.0]))


# (UTC time, price = high = low = close, volume, expected VWAP): sessions are New York dates.
SESSIONS = [
    ("2024-03-05 20:00", 10, 1, 10.0),  # 15:00 EST Mar 5
    ("2024-03-06 01:00", 20, 1, 15.0),  # 20:00 EST Mar 5: after midnight UTC, same session
    ("2024-03-06 04:59", 30, 2, 22.5),  # 23:59 EST Mar 5
    ("2024-03-06 05:00", 40, 0, None),  # 00:00 EST Mar 6: new session, no volume yet
    ("2024-03-06 14:30", 50, 3, 50.0),
    ("2024-03-10 04:59", 8, 1, 8.0),  # 23:59 EST Mar 9
    ("2024-03-10 05:00", 12, 1, 12.0),  # 00:00 EST Mar 10
    ("2024-03-10 07:00", 18, 1, 15.0),  # 03:00 EDT Mar 10: clocks went forward, same session
    ("2024-03-11 03:59", 30, 2, 22.5),  # 23:59 EDT Mar 10
    ("2024-03-11 04:00", 100, 5, 100.0),  # 00:00 EDT Mar 11
    ("2024-11-03 03:59", 6, 1, 6.0),  # 23:59 EDT Nov 2
    ("2024-11-03 04:00", 9, 1, 9.0),  # 00:00 EDT Nov 3
    ("2024-11-03 06:00", 3, 1, 6.0),  # 01:00 EST Nov 3 (clocks went back), same session
    ("2024-11-04 04:59", 12, 2, 9.0),  # 23:59 EST Nov 3
    ("2024-11-04 05:00", 1, 1, 1.0),  # 00:00 EST Nov 4
]


def test_sessions_follow_new_york_dates(make, check):
    ts = [utc(t) for t, *_ in SESSIONS]
    price = [float(p) for _, p, _, _ in SESSIONS]
    frame = make.bars("X", price, ts=ts, volume=[float(v) for _, _, v, _ in SESSIONS])
    out, state = enrich(frame, VW)
    check.series(out["vwap"], np.array([np.nan if e is None else e for *_, e in SESSIONS]))
    assert state["vwap__date"].to_list() == [dt.date(2024, 11, 4)]


def test_zero_volume_is_null_until_the_session_trades(make, check):
    ts = [utc("2024-06-14 13:30"), utc("2024-06-14 13:31"), utc("2024-06-14 13:32"), utc("2024-06-14 13:33"),
          utc("2024-06-15 13:30")]
    frame = make.bars("X", [1.0, 2.0, 3.0, 4.0, 5.0], ts=ts, volume=[0.0, 0.0, 2.0, 0.0, 0.0])
    out, _ = enrich(frame, VW)
    assert out["vwap"].to_list() == [None, None, 3.0, 3.0, None]


def test_daily_bars_give_the_typical_price(make, check):
    # One bar per New York date (daily bars stamped at New York midnight): VWAP is the day's typical price.
    ts = [utc("2024-03-07 05:00"), utc("2024-03-08 05:00"), utc("2024-03-11 04:00"), utc("2024-03-12 04:00")]
    close = np.array([10.0, 11.0, 12.5, 12.0])
    high, low = close + 1.0, close - 2.5
    out, _ = enrich(make.bars("X", close, ts=ts, high=high, low=low, volume=[1e6, 2e6, 5e5, 7.0]), VW)
    check.series(out["vwap"], (high + low + close) / 3.0)


def test_other_columns_pass_through(make):
    # The API's own per-bar `vw` is a separate column and stays as it was.
    frame = make.bars("X", [1.0, 2.0]).with_columns(pl.Series("vw", [9.5, None]), pl.lit(3).alias("transactions"))
    out, _ = enrich(frame, VW)
    assert out.columns == [*frame.columns, "vwap"]
    assert out["vw"].to_list() == [9.5, None]
    assert out["transactions"].to_list() == [3, 3]


def _transition_instants(year: int) -> list[dt.datetime]:
    """UTC instants at which New York's UTC offset changes in `year`, found hour by hour with zoneinfo."""
    ny = NEW_YORK
    t, end, out = dt.datetime(year, 1, 1, tzinfo=UTC), dt.datetime(year + 1, 1, 1, tzinfo=UTC), []
    prev = t.astimezone(ny).utcoffset()
    while t < end:
        t += dt.timedelta(hours=1)
        off = t.astimezone(ny).utcoffset()
        if off != prev:
            out.append(t)
        prev = off
    return out


def test_session_dates_at_every_dst_change(ref):
    # Both 2007 rule sets, leap years, and the microsecond on each side of every change and of New York midnight.
    instants = []
    for year in (1999, 2006, 2007, 2020, 2024, 2025, 2038):
        for change in _transition_instants(year):
            local_midnight = change.astimezone(NEW_YORK).replace(hour=0, minute=0)
            for t in (change, local_midnight.astimezone(UTC), local_midnight.astimezone(UTC) + dt.timedelta(days=1)):
                instants += [t - dt.timedelta(microseconds=1), t, t + dt.timedelta(microseconds=1)]
    series = pl.Series("ts", instants, dtype=pl.Datetime("us", "UTC"))
    assert session_dates(series).to_list() == [ref.ny_date(t) for t in instants]


@settings(max_examples=100, deadline=None)
@given(times=st.lists(st.datetimes(dt.datetime(1971, 1, 1), dt.datetime(2099, 12, 31)), min_size=1, max_size=30))
def test_session_dates_match_zoneinfo(times, ref):
    instants = [t.replace(tzinfo=UTC) for t in times]
    series = pl.Series("ts", instants, dtype=pl.Datetime("us", "UTC"))
    assert session_dates(series).to_list() == [ref.ny_date(t) for t in instants]


def test_session_dates_keep_nulls():
    series = pl.Series("ts", [None, utc("2024-03-10 05:00"), None], dtype=pl.Datetime("us", "UTC"))
    assert session_dates(series).to_list() == [None, dt.date(2024, 3, 10), None]


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_matches_python_reference(data, gen, ref, check):
    frame = data.draw(gen.bars("X", 0, 150), label="bars")
    out, state = enrich(frame, VW)
    check.series(out["vwap"], ref.vwap(frame), atol=0.0)
    if frame.height:
        assert state["vwap__date"].to_list() == [ref.ny_date(frame["ts"][-1])]


@settings(max_examples=25, deadline=None)
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_multi_ticker_equals_single_ticker(data, seed, gen, ref, check):
    frames = data.draw(gen.histories(), label="frames")
    out = check.multi_ticker(IndicatorSet((VWAP(),)), frames, seed)
    for ticker, frame in frames.items():
        check.series(out.filter(pl.col("ticker") == ticker)["vwap"], ref.vwap(frame), atol=0.0, what=ticker)
