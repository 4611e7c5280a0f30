"""Timeframes: which bars a run stores (`--timeframes`), and how a derived one is rolled up from minute bars.

`1m` and `1d` are the source's own bars (Polygon's minute and day aggregates). Every other timeframe is derived
from the minute bars of the same run, so flat files, REST and the live engine give the same derived bars: the
rules are in docs/timeframes.md. `rollup` is pure and per bucket, so the live engine can roll a bucket's minutes
up with it too (it needs only the minutes of that bucket).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import polars as pl

from colfill.bars import BAR_COLUMNS, DERIVED, DERIVED_SIZES, RTH, TABLES, derived_table
from colfill.calendar import NEW_YORK, UTC, is_session, session_close, session_dates, session_open
from colfill.errors import InvalidArgument

DEFAULT = ("1m", "1d")
BASE = {tf: table for table, tf in TABLES.items()}  # the source's timeframes and their tables
DAY = 24 * 60


@dataclass(frozen=True)
class Timeframe:
    """One timeframe: `name` as written (`5m:rth`), bucket `minutes` (DAY for a day), `rth` for the regular
    session only, `derived` when rolled up from minute bars rather than read from the source."""

    name: str
    minutes: int
    rth: bool
    derived: bool

    @property
    def table(self) -> str:
        return BASE[self.name] if not self.derived else derived_table(self.name)

    @property
    def label(self) -> str:
        """The name the dashboard shows (`5m:rth`)."""
        return self.name

    @property
    def base(self) -> str:
        """The size without the session (`5m` of `5m:rth`): the width of one unaggregated candle."""
        return self.name.removesuffix(RTH)


def timeframe(name: str, argument: str = "--timeframes") -> Timeframe:
    """The timeframe `name` (`5m`, `1h:rth`, `1d`); the error names `argument`."""
    name = name.strip()
    if name in BASE:
        return Timeframe(name, 1 if name == "1m" else DAY, rth=False, derived=False)
    if name not in DERIVED:
        raise InvalidArgument(f"{argument}: unknown timeframe {name!r}; choose from "
                              f"{', '.join((*BASE, *DERIVED))}")
    size = name.removesuffix(RTH)
    minutes = {"1m": 1, "1d": DAY, **DERIVED_SIZES}[size]
    return Timeframe(name, minutes, rth=name.endswith(RTH), derived=True)


def parse(text: str | None, argument: str = "--timeframes") -> tuple[Timeframe, ...]:
    """`1m,5m,1h:rth,1d` as timeframes, each once, in the order given. A derived timeframe needs `1m`: it is
    built from the run's minute bars."""
    names = [n.strip() for n in (text if text is not None else ",".join(DEFAULT)).split(",") if n.strip()]
    if not names:
        raise InvalidArgument(f"{argument} is empty: give at least one timeframe, e.g. {','.join(DEFAULT)}")
    out = tuple({n: timeframe(n, argument) for n in names}.values())
    if any(t.derived for t in out) and "1m" not in names:
        raise InvalidArgument(f"{argument} {text}: derived timeframes are rolled up from the run's minute bars; "
                              "add 1m")
    return out


def of_label(name: str) -> Timeframe | None:
    """The timeframe `name`, None when it is not one."""
    try:
        return timeframe(name)
    except InvalidArgument:
        return None


def of_table(name: str) -> Timeframe | None:
    """The timeframe whose table is `name` (`bars_1h_rth` -> `1h:rth`), None when it is no bars table."""
    return _BY_TABLE.get(name)


def stored(relations: Iterable[str]) -> list[Timeframe]:
    """The bars tables among `relations` as timeframes, in a menu's order: all sessions first, each group from the
    finest size."""
    return sorted((tf for tf in map(of_table, relations) if tf is not None), key=lambda tf: (tf.rth, tf.minutes))


def regular_session(minutes: pl.DataFrame) -> pl.DataFrame:
    """The minutes that start in their New York day's regular session: [09:30, close), the close 16:00 or an
    early close of the calendar; none of a day without a session."""
    if minutes.is_empty():
        return minutes
    dates = session_dates(minutes["ts"])
    bounds = [(d, session_open(d).astimezone(UTC), session_close(d).astimezone(UTC))
              for d in dates.unique().drop_nulls().to_list() if is_session(d)]
    if not bounds:
        return minutes.clear()
    ts_type = minutes.schema["ts"]
    table = pl.DataFrame({"__date": [b[0] for b in bounds], "__open": [b[1] for b in bounds],
                          "__close": [b[2] for b in bounds]}).with_columns(
        pl.col("__open", "__close").cast(ts_type))
    return (minutes.with_columns(dates.alias("__date"))
            .join(table, on="__date", how="inner", maintain_order="left")
            .filter((pl.col("ts") >= pl.col("__open")) & (pl.col("ts") < pl.col("__close")))
            .drop("__date", "__open", "__close"))


def _bucket(tf: Timeframe, ts: pl.Series) -> pl.Series:
    """Each minute's bucket start. New York's offsets are whole hours, so a bucket of a size dividing the hour
    (or of an hour) starts at the same instant truncated in UTC; a day starts at 00:00 New York."""
    if tf.minutes < DAY:
        return ts.dt.truncate(f"{tf.minutes}m")
    return (session_dates(ts).cast(pl.Datetime(ts.dtype.time_unit))  # type: ignore[attr-defined]
            .dt.replace_time_zone(NEW_YORK.key).dt.convert_time_zone(UTC.tzname(None) or "UTC"))


def rollup(minutes: pl.DataFrame, tf: Timeframe | str) -> pl.DataFrame:
    """The `tf` bars of `minutes` (BAR_COLUMNS at least; other columns, such as indicators, are ignored), in
    (ticker, ts) order with BAR_COLUMNS: a bar per ticker and bucket that holds at least one minute."""
    tf = timeframe(tf) if isinstance(tf, str) else tf
    bars = minutes.select(BAR_COLUMNS)
    if tf.rth:
        bars = regular_session(bars)
    bars = bars.sort("ticker", "ts")
    if bars.is_empty():
        return bars
    # Plain sums, firsts and lasts only: Polars runs those on its fast group-by path (a filtered sum per group
    # costs half as much again); the vw and transactions rules are applied to the sums after.
    weighted = pl.col("vw").is_not_null()
    out = (bars.with_columns(_bucket(tf, bars["ts"]).alias("__bucket"),
                             (pl.col("vw") * pl.col("volume")).alias("__pv"),
                             pl.when(weighted).then(pl.col("volume")).alias("__w"))
           .group_by("ticker", "__bucket", maintain_order=True)
           .agg(pl.col("open").first(), pl.col("high").max(), pl.col("low").min(), pl.col("close").last(),
                pl.col("volume").sum(), pl.col("__pv").sum(), pl.col("__w").sum(),
                pl.col("transactions").sum().alias("__t"), pl.col("transactions").count().alias("__tn"))
           .with_columns(pl.when(pl.col("__w") > 0).then(pl.col("__pv") / pl.col("__w")).alias("vw"),
                         pl.when(pl.col("__tn") > 0).then(pl.col("__t")).alias("transactions")))
    return out.rename({"__bucket": "ts"}).select(BAR_COLUMNS).cast(dict(bars.schema))  # type: ignore[arg-type]


_BY_TABLE = {tf.table: tf for tf in map(timeframe, (*BASE, *DERIVED))}
