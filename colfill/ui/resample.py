"""Bars resampled to the chart's zoom level: OHLC aggregation, never dropping bars.

A year of minute bars is ~100,000 candles, more than a browser can draw and far more than a screen shows,
so the server picks a bucket width that gives at most `max_points` candles over the visible range and
aggregates each bucket exactly: first open, highest high, lowest low, last close, summed volume and
transactions, volume-weighted vw. Indicator columns take their last value in the bucket (the indicator as of
the bucket's close, which is what a chart at that resolution shows). Buckets under a day are aligned to UTC
epoch multiples of the width; a day or a week is a New York session date (the week from Monday), so a daily
bucket of minute bars is the trading day.

The result is columnar (one list per column), the shape the page's chart library takes directly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import polars as pl

MINUTE_MS = 60_000
DAY_MS = 86_400_000
# Bucket widths in minutes; after the largest intraday width come the New York day and week.
WIDTHS = (1, 2, 5, 10, 15, 30, 60, 120, 240)
DAY, WEEK = "1d", "1w"
PRICE_SUMS = ("volume", "transactions")


def label(width: int | str) -> str:
    if isinstance(width, str):
        return width
    return f"{width}m" if width < 60 else f"{width // 60}h"


def native(base: str) -> int | str:
    """The width of one `base` bar ("1m", "5m", "1h", "1d"): minutes, or DAY."""
    n, unit = int(base[:-1]), base[-1]
    minutes = n * {"m": 1, "h": 60, "d": 1440}[unit]
    return DAY if minutes >= 1440 else minutes


def choose_width(span_ms: int, base: str, max_points: int) -> int | str:
    """The smallest bucket (minutes, or "1d"/"1w") that shows `span_ms` of `base` bars ("1m", "5m", "1h", "1d") in
    at most `max_points` buckets; never finer than a `base` bar, and a whole number of them."""
    own = native(base)
    if own == DAY:
        days = span_ms / DAY_MS
        return DAY if days * 5 / 7 <= max_points else WEEK
    assert isinstance(own, int)
    minutes = span_ms / MINUTE_MS
    for w in (own, *(w for w in WIDTHS if w > own and w % own == 0)):
        if minutes / w <= max_points:
            return w
    # Trading days hold at most 16 h of minutes: count days, not minutes, beyond the intraday widths
    return DAY if span_ms / DAY_MS * 5 / 7 <= max_points else WEEK


def resample(frame: pl.DataFrame, width: int | str, base: str = "1m") -> pl.DataFrame:
    """Aggregate bars (`t` epoch ms, OHLCV, indicators) into buckets of `width`; `t` becomes the bucket start."""
    if frame.is_empty() or width == native(base):
        return frame
    if isinstance(width, int):
        w = width * MINUTE_MS
        key = (pl.col("t") - pl.col("t") % w).alias("t")
    else:
        local = pl.from_epoch(pl.col("t"), time_unit="ms").dt.replace_time_zone("UTC").dt.convert_time_zone(
            "America/New_York")
        start = local.dt.truncate("1d" if width == DAY else "1w")
        key = start.dt.epoch("ms").alias("t")
    present = set(frame.columns)
    aggs: list[pl.Expr] = []
    for c in frame.columns:
        if c == "t":
            continue
        if c == "open":
            aggs.append(pl.col(c).first())
        elif c == "high":
            aggs.append(pl.col(c).max())
        elif c == "low":
            aggs.append(pl.col(c).min())
        elif c in PRICE_SUMS:
            aggs.append(pl.col(c).sum())
        elif c == "vw" and "volume" in present:
            weighted = (pl.col("vw") * pl.col("volume")).sum() / pl.col("volume").filter(pl.col("vw").is_not_null()
                                                                                          ).sum()
            aggs.append(pl.when(pl.col("vw").is_not_null().any()).then(weighted).otherwise(None).alias("vw"))
        else:
            aggs.append(pl.col(c).last())  # close and indicators: as of the bucket's close
    return frame.with_columns(key).group_by("t", maintain_order=True).agg(aggs).sort("t")


def columnar(frame: pl.DataFrame, digits: int = 6) -> dict[str, list[Any]]:
    """{column: values}: floats rounded to `digits` significant decimals, NaN and inf as null (valid JSON)."""
    out: dict[str, list[Any]] = {}
    for name in frame.columns:
        s = frame[name]
        if s.dtype.is_float():
            s = s.fill_nan(None).round(digits)
            values = [None if v is None or math.isinf(v) else v for v in s.to_list()]
        else:
            values = s.to_list()
        out[name] = values
    return out


def payload(frame: pl.DataFrame, width: int | str, base: str, columns: Sequence[str],
            bars_in: int | None = None) -> dict[str, Any]:
    """The chart's JSON: bucket width, how many bars went in, and the resampled columns (`frame` may come
    aggregated already, with `bars_in` the bars it holds: bucketing is idempotent)."""
    bars_in = frame.height if bars_in is None else bars_in
    out = resample(frame.select("t", *columns), width, base)
    return {"width": label(width), "bars_in": bars_in, "points": out.height, "columns": columnar(out)}
