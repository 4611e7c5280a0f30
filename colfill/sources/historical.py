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
    `colfill run --source rest` (default: from the environment)."""

    name = "rest"

    def __init__(self, tickers: str | tuple[str, ...], start: dt.date, end: dt.date, table: str = "bars_1m",
                 settings: RestSettings | None = None) -> None:
        from colfill.sources.rest import RestApi, RestSettings
        from colfill.sources.rest_bars import RestBars

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
