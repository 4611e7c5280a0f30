"""Realistic sample flat files in the exact Polygon/Massive layout, for the demo, tests and benchmarks.

`{out}/{prefix}/{dataset}/YYYY/MM/YYYY-MM-DD.csv.gz`, one gzip CSV per NYSE trading day with the real
header and column order (close before high), `window_start` in UTC epoch nanoseconds, sparse minute bars
from 04:00 to 20:00 New York time, day bars stamped 00:00 New York and consistent with the minutes,
fractional volumes, tickers that look like nulls (`NA`, `NULL`, `NAN`, `N/A`), and one unadjusted
4-for-1 split-like drop (flat files are not split-adjusted). The same arguments write the same bytes.
Vectorised per day, so a few million rows take seconds.
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import fsspec
import numpy as np
import polars as pl

NEW_YORK = ZoneInfo("America/New_York")
HEADER = "ticker,volume,open,close,high,low,window_start,transactions"
SPECIAL = ("AAPL", "MSFT", "BRK.A", "NA", "NULL", "NAN", "N/A")
MINUTES = 16 * 60  # 04:00 .. 19:59 New York


@dataclass(frozen=True)
class SampleSummary:
    files: int
    rows: int
    paths: tuple[str, ...]


def _easter(year: int) -> dt.date:
    """Gregorian Easter Sunday (anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month = (h + l_ - 7 * m + 114) // 31
    day = (h + l_ - 7 * m + 114) % 31 + 1
    return dt.date(year, month, day)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> dt.date:
    first = dt.date(year, month, 1)
    return first + dt.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


def _last_weekday(year: int, month: int, weekday: int) -> dt.date:
    nxt = dt.date(year + month // 12, month % 12 + 1, 1)
    last = nxt - dt.timedelta(days=1)
    return last - dt.timedelta(days=(last.weekday() - weekday) % 7)


def _observed(day: dt.date) -> dt.date:
    """NYSE rule: a Saturday holiday is observed Friday, a Sunday one Monday."""
    if day.weekday() == 5:
        return day - dt.timedelta(days=1)
    if day.weekday() == 6:
        return day + dt.timedelta(days=1)
    return day


def market_holidays(year: int) -> set[dt.date]:
    """NYSE full-day holidays of `year` (regular rules; one-off closures are not modelled)."""
    days = {
        _nth_weekday(year, 1, 0, 3),  # Martin Luther King Jr. Day
        _nth_weekday(year, 2, 0, 3),  # Washington's Birthday
        _easter(year) - dt.timedelta(days=2),  # Good Friday
        _last_weekday(year, 5, 0),  # Memorial Day
        _observed(dt.date(year, 7, 4)),
        _nth_weekday(year, 9, 0, 1),  # Labor Day
        _nth_weekday(year, 11, 3, 4),  # Thanksgiving
        _observed(dt.date(year, 12, 25)),
    }
    new_year = dt.date(year, 1, 1)
    if new_year.weekday() != 5:  # a Saturday New Year's Day is not observed on Friday Dec 31
        days.add(_observed(new_year))
    if year >= 2022:
        days.add(_observed(dt.date(year, 6, 19)))  # Juneteenth
    return days


def trading_days(start: dt.date, end: dt.date) -> list[dt.date]:
    """NYSE trading days in [start, end]: weekdays that are not market holidays."""
    holidays: set[dt.date] = set()
    for year in range(start.year, end.year + 1):
        holidays |= market_holidays(year)
    out, day = [], start
    while day <= end:
        if day.weekday() < 5 and day not in holidays:
            out.append(day)
        day += dt.timedelta(days=1)
    return out


def ticker_names(count: int, rng: np.random.Generator) -> list[str]:
    """The special names first, then distinct synthetic 1-4 letter names."""
    names = list(SPECIAL[:count])
    seen = set(names)
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    while len(names) < count:
        n = int(rng.integers(1, 5))
        name = "".join(rng.choice(letters, n))
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def _fmt_price(x: pl.Expr, decimals: pl.Expr) -> pl.Expr:
    """Short prices (`200.29`) for some tickers, newer 6-decimal style (`115.030000`) for others."""
    return pl.when(decimals == 6).then(x.cast(pl.Decimal(18, 6)).cast(pl.Utf8)).otherwise(x.cast(pl.Utf8))


def generate(
    out: str | os.PathLike[str],
    start: dt.date,
    end: dt.date,
    *,
    tickers: int | Sequence[str] = 20,
    seed: int = 0,
    datasets: Sequence[str] = ("minute_aggs_v1", "day_aggs_v1"),
    prefix: str = "us_stocks_sip",
    minute_fill: float = 0.5,
    storage_options: dict[str, object] | None = None,
) -> SampleSummary:
    """Write sample flat files for the trading days in [start, end]; see the module docstring."""
    rng = np.random.default_rng(seed)
    names = ticker_names(tickers, rng) if isinstance(tickers, int) else list(tickers)
    order = np.argsort(np.array(names, dtype=object).astype(str), kind="stable")
    names = [names[i] for i in order]
    n = len(names)
    days = trading_days(start, end)
    fs, base = fsspec.core.url_to_fs(str(out), **(storage_options or {}))
    base = base.rstrip("/")
    price = np.exp(rng.uniform(np.log(2.0), np.log(600.0), n))
    liquidity = np.clip(rng.beta(2, 2, n) * 2 * minute_fill, 0.02, 1.0)
    decimals = np.where(rng.random(n) < 0.5, 6, 2)
    fractional = rng.random(n) < 0.6
    split_day = days[len(days) // 2] if days else None
    split_idx = names.index("AAPL") if "AAPL" in names else None
    paths: list[str] = []
    rows = 0
    for day in days:
        if split_day == day and split_idx is not None:
            price[split_idx] /= 4.0
        open_utc = dt.datetime.combine(day, dt.time(4, 0), NEW_YORK).astimezone(dt.timezone.utc)
        t0 = int(open_utc.timestamp()) * 1_000_000_000
        steps = rng.normal(0.0, 0.0012, (n, MINUTES))
        path = price[:, None] * np.exp(np.cumsum(steps, axis=1))
        prev = np.concatenate([price[:, None], path[:, :-1]], axis=1)
        price = path[:, -1].copy()
        mask = rng.random((n, MINUTES)) < liquidity[:, None]
        ti, mi = np.nonzero(mask)
        k = len(ti)
        scale = np.where(path[ti, mi] < 1.0, 10_000.0, 100.0)
        o = np.maximum(np.round(prev[ti, mi] * scale) / scale, 1 / scale)
        c = np.maximum(np.round(path[ti, mi] * scale) / scale, 1 / scale)
        wick = np.abs(rng.normal(0, 0.0006, (2, k)))
        h = np.maximum(np.round(np.maximum(o, c) * (1 + wick[0]) * scale) / scale, np.maximum(o, c))
        lo = np.minimum(np.maximum(np.round(np.minimum(o, c) * (1 - wick[1]) * scale) / scale, 1 / scale),
                        np.minimum(o, c))
        vol = rng.lognormal(6.0, 1.3, k)
        vol = np.where(fractional[ti], np.round(vol, 6), np.round(vol))
        trades = np.maximum(1, (vol / rng.uniform(20, 200, k)).astype(np.int64))
        minute = pl.DataFrame({
            "t": ti.astype(np.int32), "volume": vol, "open": o, "close": c, "high": h, "low": lo,
            "window_start": t0 + mi.astype(np.int64) * 60_000_000_000, "transactions": trades,
        })
        tables = {}
        if "minute_aggs_v1" in datasets:
            tables["minute_aggs_v1"] = minute
        if "day_aggs_v1" in datasets:
            midnight = dt.datetime.combine(day, dt.time(0, 0), NEW_YORK).astimezone(dt.timezone.utc)
            tables["day_aggs_v1"] = minute.group_by("t", maintain_order=True).agg(
                pl.col("volume").sum().round(6), pl.col("open").first(), pl.col("close").last(),
                pl.col("high").max(), pl.col("low").min(),
                pl.lit(int(midnight.timestamp()) * 1_000_000_000).alias("window_start"),
                pl.col("transactions").sum(),
            )
        for dataset, frame in tables.items():
            dec = pl.Series(decimals)[frame["t"]]
            vol_col = pl.col("volume")
            text = frame.with_columns(dec.alias("__dec")).select(
                pl.Series([names[i] for i in range(n)])[frame["t"]].alias("ticker"),
                pl.when(vol_col == vol_col.round(0)).then(vol_col.cast(pl.Int64).cast(pl.Utf8))
                .otherwise(vol_col.cast(pl.Utf8)).alias("volume"),
                *[_fmt_price(pl.col(p), pl.col("__dec")).alias(p) for p in ("open", "close", "high", "low")],
                "window_start", "transactions",
            )
            body = text.write_csv(include_header=True)
            key = f"{base}/{prefix}/{dataset}/{day:%Y}/{day:%m}/{day.isoformat()}.csv.gz"
            fs.makedirs(key.rsplit("/", 1)[0], exist_ok=True)
            with fs.open(key, "wb") as fh:
                fh.write(gzip.compress(body.encode(), compresslevel=6, mtime=0))
            paths.append(key)
            rows += text.height
    return SampleSummary(files=len(paths), rows=rows, paths=tuple(paths))
