"""Bars from the REST API as day partitions, so the pipeline treats them exactly like flat-file days.

Same contract as `FlatFiles`: `list(table, start, end)` names one partition per trading day (the NYSE
calendar of `colfill.calendar`; REST has no listing), with an identity that says what was asked for, and
`read(obj, tickers)` returns the day's bars validated by the flat files' own rules (`flatfiles.validate`),
so indicators, lake, stores and exactly-once hold whichever source filled a day.

- `bars_1d` for every ticker: grouped daily, one request a day; its `t` (16:00 New York) is restamped
  00:00 New York like every other day bar.
- `bars_1d` for given tickers and `bars_1m` (which needs tickers: the whole market minute by minute is
  what flat files are for): per ticker, a window of `WINDOW_DAYS` trading days in one paginated listing
  (the fewest requests the 50,000-bar limit allows), fetched by `workers` threads when the first of those
  days is read and served from memory to the following days.
- Always `adjusted=false`, so REST bars agree with flat files (split-adjusted views are separate).
- Today is never listed: its bars are not final.
"""

from __future__ import annotations

import builtins
import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from colfill.bars import DATASETS, HEADER, ParsedFile, SourceObject
from colfill.calendar import NEW_YORK, day_bounds, session_dates, trading_days
from colfill.errors import InvalidArgument
from colfill.sources.rest import RestApi, empty_bars
from colfill.validate import validate

if TYPE_CHECKING:
    import polars as pl

WINDOW_DAYS = {"bars_1m": 52, "bars_1d": 250}  # 52 x 960 extended-hours minutes <= 50,000: one page a window


class RestBars:
    """The REST API as a source of day partitions (see the module docstring)."""

    def __init__(self, api: RestApi, today: dt.date | None = None) -> None:
        self.api = api
        self.today = today or dt.datetime.now(NEW_YORK).date()
        self._cache: dict[tuple[str, tuple[str, ...]], dict[dt.date, pl.DataFrame]] = {}
        self._asked: dict[str, set[str]] = {}  # tickers requested per table, and those that had bars
        self._seen: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"REST {self.api.settings.url}"

    def list(self, table: str, start: dt.date, end: dt.date) -> list[SourceObject]:
        last = min(end, self.today - dt.timedelta(days=1))
        return [SourceObject(f"rest/{DATASETS[table]}/{d.isoformat()}", d, "rest:unadjusted", 0)
                for d in trading_days(start, last)]

    def span(self, table: str) -> tuple[dt.date, dt.date] | None:
        return None  # REST names no dates of its own

    def notes(self, table: str) -> builtins.list[str]:
        """Tickers asked for that REST had no bar of (unknown, or not trading in the range): reported, not fatal."""
        missing = sorted(self._asked.get(table, set()) - self._seen.get(table, set()))
        if not missing:
            return []
        shown = ", ".join(missing[:20]) + (f" (+{len(missing) - 20} more)" if len(missing) > 20 else "")
        return [f"{table}: REST had no bars of {shown}: unknown tickers, or none traded in the range"]

    def read(self, obj: SourceObject, tickers: tuple[str, ...] | None = None) -> ParsedFile:
        table = "bars_1m" if "/minute_aggs_v1/" in obj.key else "bars_1d"
        if table == "bars_1d" and tickers is None:
            bars = self._grouped(obj.date)
        elif tickers is None:
            raise InvalidArgument("minute bars from REST need --tickers or --limit (one request per ticker and "
                                  "window; the whole market is what flat files are for)")
        else:
            bars = self._windowed(table, obj.date, tickers)
        return _parsed(bars, obj)

    def _grouped(self, date: dt.date) -> pl.DataFrame:
        import polars as pl

        frame = self.api.grouped(date.isoformat())
        midnight = day_bounds(date)[0]
        return frame.with_columns(pl.lit(midnight).dt.cast_time_unit("us").dt.convert_time_zone("UTC").alias("ts"))

    def _windowed(self, table: str, date: dt.date, tickers: tuple[str, ...]) -> pl.DataFrame:
        """The day's bars of `tickers`, from the window cache; a miss fetches the window starting at `date`."""
        import polars as pl

        key = (table, tickers)
        with self._lock:
            days = self._cache.get(key)
            if days is None or date not in days:
                window = trading_days(date, date + dt.timedelta(days=WINDOW_DAYS[table] * 7 // 5 + 7))
                window = window[:WINDOW_DAYS[table]]
                lo, hi = day_bounds(window[0])[0], day_bounds(window[-1])[1]
                timespan = "minute" if table == "bars_1m" else "day"
                start, end = int(lo.timestamp() * 1000), int(hi.timestamp() * 1000) - 1
                with ThreadPoolExecutor(self.api.settings.workers, thread_name_prefix="colfill-rest") as pool:
                    frames = list(pool.map(lambda t: self.api.bars(t, timespan, start, end), tickers))
                frame = pl.concat(frames) if frames else empty_bars()
                self._asked.setdefault(table, set()).update(tickers)
                self._seen.setdefault(table, set()).update(frame["ticker"].unique().to_list())
                frame = frame.with_columns(session_dates(frame["ts"]).alias("__date"))
                parts = frame.partition_by("__date", as_dict=True, include_key=False)
                days = {d: parts.get((d,), empty_bars()) for d in window}
                self._cache[key] = days
            out = days.pop(date)
        return out


def _parsed(bars: pl.DataFrame, obj: SourceObject) -> ParsedFile:
    """Validated like a flat file (the same rules and reject reasons); `line` is the bar's place in the answer."""
    import polars as pl

    frame = bars.sort("ticker", "ts").with_row_index("line", offset=1).with_columns(
        pl.col("line").cast(pl.Int64),
        (pl.col("ts").dt.epoch("us") * 1000).alias("window_start"),
    ).select("line", *HEADER, "vw")
    good, rejects = validate(frame, obj.key, obj.date)
    return ParsedFile(bars=good, rejects=rejects, rows_in=frame.height)

