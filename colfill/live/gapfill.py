"""Gap refill from REST: the minutes a WebSocket outage (or the time before the stream started) left out.

The feed does not resend what it sent while a client was away, so after every reconnect the engine asks REST
(`colfill.sources.rest.RestApi`: the same client, limiter and retries as `colfill run --source rest`) for the
minute aggregates of every followed ticker from `LOOKBACK` minutes before the last bar received (revisions of
those minutes may have been sent meanwhile) up to the first minute the new connection brought. The engine
runs the fetched bars through the tracker before the frames held meanwhile: missing bars are inserted, a
changed last minute is a revision, equal bars are duplicates. At start the same fetch catches each ticker up
from its last stored bar (or 04:00 New York today) to now.

A host that refuses the key or cannot be reached costs one failed ticker, not the stream: the rest of the gap
is not tried, and the engine reports once which minutes of which tickers stay unfilled.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from colfill.calendar import NEW_YORK
from colfill.errors import ColfillError

if TYPE_CHECKING:
    import polars as pl

LOOKBACK = 3  # minutes before the last bar received that are fetched again (revisions sent while away)
MINUTE = 60_000


class BarsApi(Protocol):
    """What a fill needs of the REST client (`RestApi.bars`)."""

    def bars(self, ticker: str, timespan: str, start: int | str, end: int | str) -> pl.DataFrame: ...


@dataclass(frozen=True)
class Fetched:
    """A gap's bars as socket rows in time order, and what could not be fetched."""

    rows: list[tuple[Any, ...]]
    failed: tuple[str, ...]
    error: str
    seconds: float


@dataclass(frozen=True)
class Fill:
    """One fill, for the log, the `live` status and the summary."""

    why: str  # "reconnect" or "catch-up"
    tickers: int
    start_ms: int
    end_ms: int
    inserted: int
    revised: int
    seconds: float
    failed: tuple[str, ...] = ()
    error: str = ""

    def describe(self) -> str:
        span = f"{_hm(self.start_ms)}-{_hm(self.end_ms)} New York"
        text = (f"gap fill ({self.why}): {self.tickers} tickers, minutes {span}: {self.inserted:,} bars inserted, "
                f"{self.revised:,} revised in {self.seconds:.2f} s")
        if self.failed:
            names = ", ".join(self.failed[:10]) + (" ..." if len(self.failed) > 10 else "")
            text += (f"; could NOT fill minutes {span} of {len(self.failed)} tickers ({names}): {self.error}. "
                     "Hint: backfill them with `colfill run --source rest`.")
        return text

    def as_status(self) -> dict[str, Any]:
        return {"why": self.why, "tickers": self.tickers, "start_ms": self.start_ms, "end_ms": self.end_ms,
                "inserted": self.inserted, "revised": self.revised, "seconds": round(self.seconds, 3),
                "failed": len(self.failed)}


def _hm(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, NEW_YORK).strftime("%m-%d %H:%M")


def session_start_ms(now_ms: int) -> int:
    """04:00 New York of `now_ms`'s New York date (the start of the extended session)."""
    day = dt.datetime.fromtimestamp(now_ms / 1000, NEW_YORK).date()
    return int(dt.datetime(day.year, day.month, day.day, 4, tzinfo=NEW_YORK).timestamp() * 1000)


class GapFiller:
    """Fetches gaps' minute bars through `api`, `workers` tickers at a time (the limiter holds the rate)."""

    def __init__(self, api: BarsApi, workers: int = 8, lookback: int = LOOKBACK) -> None:
        self.api = api
        self.workers = max(1, workers)
        self.lookback = lookback

    def fetch(self, spans: Mapping[str, tuple[int, int]]) -> Fetched:
        """The bars of each ticker's [start, end] (epoch ms, bar starts), in (time, ticker) order."""
        started = time.perf_counter()
        failed: list[str] = []
        error = ""
        rows: list[tuple[Any, ...]] = []

        def one(ticker: str) -> list[tuple[Any, ...]] | None:
            if error:  # the host already failed this gap: do not spend its retries on every ticker
                return None
            start, end = spans[ticker]
            return _rows(self.api.bars(ticker, "minute", start, end))

        with ThreadPoolExecutor(min(self.workers, max(1, len(spans))), thread_name_prefix="colfill-gapfill") as pool:
            futures = {t: pool.submit(one, t) for t in spans if spans[t][0] <= spans[t][1]}
            for ticker, future in futures.items():
                try:
                    got = future.result()
                except (ColfillError, OSError) as exc:
                    error = error or str(exc)
                    got = None
                if got is None:
                    failed.append(ticker)
                else:
                    rows.extend(got)
        rows.sort(key=lambda r: (r[1], r[0]))
        return Fetched(rows, tuple(failed), error, time.perf_counter() - started)


def _rows(frame: pl.DataFrame) -> list[tuple[Any, ...]]:
    """A REST frame (the flat files' schema) as the socket's rows: ticker, start ms, o, h, l, c, v, vw, n, end."""
    import polars as pl

    if not frame.height:
        return []
    t = frame["ts"].dt.epoch("ms")
    frame = frame.with_columns(t.alias("__t"), (t + MINUTE).alias("__end"))
    cols = ["ticker", "__t", "open", "high", "low", "close", "volume", "vw", "transactions", "__end"]
    return list(frame.select(pl.col(c) for c in cols).iter_rows())
