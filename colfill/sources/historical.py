"""`HistoricalDataSource`: REST bars as a `MarketDataSource`, one Arrow table per trading day.

A thin adapter over `colfill.sources.rest_bars.RestBars` (the backfill's REST source), so
`DataIngestionEngine.ingest(HistoricalDataSource(...), mode="batch")` gets the same unadjusted,
validated bars `colfill run --source rest` stores, through the same rate limit and retries.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from colfill.bars import BAR_SCHEMA, timeframe_of
from colfill.errors import InvalidArgument

if TYPE_CHECKING:
    import pyarrow as pa

    from colfill.sources.rest import RestSettings

class HistoricalDataSource:
    """Bars of `tickers` from `start` to `end` (dates) of `table` from the REST API; `settings` as for
    `colfill run --source rest` (default: from the environment).

    The original tool's keywords work too: `HistoricalDataSource(aggregates_client=RESTClient(key), symbol="AAPL",
    start_date=datetime(2024, 1, 1), end_date=datetime(2024, 12, 31), timeframe="1m")`; the official client
    lends its key and base URL (`API_KEY`, `BASE`), colfill's own REST reader does the fetching."""

    name = "rest"

    def __init__(self, tickers: str | tuple[str, ...] | None = None, start: dt.date | None = None,
                 end: dt.date | None = None, table: str = "bars_1m", settings: RestSettings | None = None, *,
                 aggregates_client: Any = None, symbol: str | None = None, start_date: dt.date | None = None,
                 end_date: dt.date | None = None, timeframe: str | None = None) -> None:
        from colfill.bars import table_of
        from colfill.sources.rest import RestApi, RestSettings
        from colfill.sources.rest_bars import RestBars

        tickers = tickers if tickers is not None else symbol
        start, end = _day(start if start is not None else start_date), _day(end if end is not None else end_date)
        if tickers is None or start is None or end is None:
            raise InvalidArgument("HistoricalDataSource needs tickers (or symbol), start and end (or start_date "
                                  "and end_date)")
        if timeframe is not None:
            table = table_of(timeframe) or ""
            timeframe_of(table)  # an unknown timeframe says which ones there are
        if settings is None and aggregates_client is not None:
            settings = RestSettings.from_env(url=getattr(aggregates_client, "BASE", None),
                                             api_key=getattr(aggregates_client, "API_KEY", None))
        names = tuple(t.strip() for t in tickers.split(",")) if isinstance(tickers, str) else tuple(tickers)
        self.tickers = tuple(sorted({t for t in names if t}))
        if not self.tickers:
            raise InvalidArgument("HistoricalDataSource needs at least one ticker")
        self.start, self.end, self.table = start, end, table
        self.timeframe = timeframe_of(table)
        self.api = RestApi(settings or RestSettings.from_env())
        self.rest = RestBars(self.api)
        self.rejected = 0

    def describe(self) -> str:
        return f"{self.rest.describe()} {self.table} {self.start}..{self.end}"

    def batches(self, stop: Any = None) -> Iterator[pa.Table]:
        """One table per trading day in [start, end] (days without bars are skipped), in date order."""
        for obj in self.rest.list(self.table, self.start, self.end):
            if stop is not None and stop.is_set():
                return
            parsed = self.rest.read(obj, self.tickers)
            self.rejected += parsed.rejects.height
            if parsed.bars.height:
                yield parsed.bars.select(BAR_SCHEMA.names).to_arrow().cast(BAR_SCHEMA)

    def close(self) -> None:
        self.api.close()


def _day(value: dt.date | None) -> dt.date | None:
    return value.date() if isinstance(value, dt.datetime) else value
