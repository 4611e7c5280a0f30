"""One validation for every source: flat files, REST and the live socket accept and reject the same bars.

`validate` splits parsed rows (a day file's, a REST day's) into sane bars and rejects with a reason; the
live engine checks its socket rows with `reject_reason`, the same rules in the same order with the same
reasons, row by row (a micro-batch of a few bars must not pay for building Polars frames). A test holds the
two to the same verdicts. Only what needs a whole file stays the file's: a duplicate within it (the live
engine has its own duplicate and revision rules) and its trading date (a live bar has no file: its window
must instead lie within one New York day).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import polars as pl

from colfill.bars import HEADER
from colfill.calendar import NEW_YORK


def _rules(date: dt.date | None) -> list[tuple[pl.Expr, pl.Expr]]:
    """(broken, reason) pairs in the order a reason is reported; `__dup` is precomputed."""
    o, h, l_, c, v = (pl.col(n) for n in ("open", "high", "low", "close", "volume"))
    rules: list[tuple[pl.Expr, pl.Expr]] = [
        (pl.col("ticker") == "", pl.lit("empty ticker")),
        (pl.any_horizontal(x.is_null() | x.is_nan() for x in (o, h, l_, c, v)), pl.lit("missing or NaN value")),
        (pl.col("window_start").is_null(), pl.lit("missing window_start")),
        (pl.min_horizontal(o, h, l_, c) <= 0,
         pl.format("non-positive price (open {} high {} low {} close {})", o, h, l_, c)),
        (v < 0, pl.format("negative volume {}", v)),
        (h < l_, pl.format("high {} < low {}", h, l_)),
        ((o < l_) | (o > h), pl.format("open {} outside low {} .. high {}", o, l_, h)),
        ((c < l_) | (c > h), pl.format("close {} outside low {} .. high {}", c, l_, h)),
        (pl.col("__dup"), pl.lit("duplicate (ticker, window_start): a later row of the file replaces it")),
    ]
    if date is not None:
        why = pl.format("bar at {} UTC is outside the file's trading date {}", pl.col("ts"), pl.lit(str(date)))
        # The New York day as a UTC interval: two comparisons a row instead of a date per row (5 of a day's
        # 51 ms of parsing); the same verdict, DST included, as the bar's New York trading date.
        utc = dt.timezone.utc
        lo = dt.datetime.combine(date, dt.time(), NEW_YORK).astimezone(utc)
        hi = dt.datetime.combine(date + dt.timedelta(days=1), dt.time(), NEW_YORK).astimezone(utc)
        rules.append(((pl.col("ts") < lo) | (pl.col("ts") >= hi), why))
    return rules


def _duplicates(frame: pl.DataFrame) -> pl.Expr:
    """Rows whose (ticker, window_start) appears again later in the file.

    Real files are strictly ordered by (ticker, window_start), which proves there are none at the cost of
    two comparisons per row; only an unordered file pays for hashing.
    """
    t, w = pl.col("ticker"), pl.col("window_start")
    ordered = ((t > t.shift()) | ((t == t.shift()) & (w > w.shift()))).slice(1).all()
    if frame.height < 2 or frame.select(ordered).item():
        return pl.lit(False)
    key = pl.struct("ticker", "window_start")
    return key.is_duplicated() & ~key.is_last_distinct()


def validate(frame: pl.DataFrame, key: str, date: dt.date | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split parsed rows (HEADER columns, `line`, optionally `vw`) into sane bars and rejects; reasons are formatted
    for the rejected rows only. The REST source validates its bars here too."""
    ts = pl.from_epoch("window_start", time_unit="ns").dt.replace_time_zone("UTC").dt.cast_time_unit("us")
    frame = frame.with_columns(ts.alias("ts"), _duplicates(frame).alias("__dup"))
    rules = _rules(date)
    broken = pl.any_horizontal(cond.fill_null(True) for cond, _ in rules)
    frame = frame.with_columns(broken.alias("__bad"))
    bars = frame.filter(~pl.col("__bad")).select(
        "ticker", "ts", "open", "high", "low", "close", "volume",
        pl.col("vw") if "vw" in frame.columns else pl.lit(None, dtype=pl.Float64).alias("vw"),
        "transactions",
    )
    bad = frame.filter(pl.col("__bad"))
    reason: pl.Expr = pl.lit(None, dtype=pl.Utf8)
    for cond, why in reversed(rules):
        reason = pl.when(cond.fill_null(True)).then(why).otherwise(reason)
    rejects = bad.select(
        pl.lit(key).alias("source_key"), "line", reason.alias("reason"), *[pl.col(n).cast(pl.Utf8) for n in HEADER]
    )
    return bars, rejects




def _day_of(ms: int) -> tuple[int, int]:
    """The New York day holding epoch-ms `ms`, as a [lo, hi) interval of epoch ms (DST days are 23 or 25 h)."""
    day = dt.datetime.fromtimestamp(ms / 1000, NEW_YORK).date()
    lo, hi = (dt.datetime.combine(d, dt.time(), NEW_YORK) for d in (day, day + dt.timedelta(days=1)))
    return int(lo.timestamp() * 1000), int(hi.timestamp() * 1000)


class RowCheck:
    """`validate`'s rules for socket rows (ticker, start ms, o, h, l, c, v, vw, transactions[, end ms]); keeps
    the last New York day it saw, so a row costs a few comparisons."""

    def __init__(self) -> None:
        self._day = (0, 0)

    def reject_reason(self, row: tuple[Any, ...]) -> str | None:
        """Why `row` is not a sane bar, or None (then it is one)."""
        ticker, t, o, h, l_, c, v = row[:7]
        if not isinstance(ticker, str) or ticker == "":
            return "empty ticker"
        values = (o, h, l_, c, v)
        if any(x is None or math.isnan(x) for x in values):
            return "missing or NaN value"
        if t is None:
            return "missing window_start"
        if min(o, h, l_, c) <= 0:
            return f"non-positive price (open {_num(o)} high {_num(h)} low {_num(l_)} close {_num(c)})"
        if v < 0:
            return f"negative volume {_num(v)}"
        if h < l_:
            return f"high {_num(h)} < low {_num(l_)}"
        if o < l_ or o > h:
            return f"open {_num(o)} outside low {_num(l_)} .. high {_num(h)}"
        if c < l_ or c > h:
            return f"close {_num(c)} outside low {_num(l_)} .. high {_num(h)}"
        end = row[9] if len(row) > 9 and row[9] is not None else t + 60_000
        lo, hi = self._day
        if not lo <= t < hi:
            lo, hi = self._day = _day_of(t)
        if end <= t or end > hi:
            start = dt.datetime.fromtimestamp(t / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
            return f"bar at {start} UTC ends outside its New York day (end {end} ms)"
        return None


def _num(x: float) -> str:
    """A float as Polars' `pl.format` writes it (so both evaluators give the same reason)."""
    return str(float(x))
