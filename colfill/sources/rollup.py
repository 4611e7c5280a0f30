"""A derived timeframe's days as a Source: each staged minute day of the lake, rolled up (`colfill.timeframes`).

So a derived table goes through the pipeline's own chain of days: its day's identity is the minute day's
fingerprint, so a minute day staged again restages its derived day and the days after it, indicators continue
their state per (ticker, timeframe), and the lake, manifest and stores take `bars_{tf}` as they take `bars_1m`.
"""

from __future__ import annotations

import builtins
import datetime as dt

import polars as pl

from colfill.bars import BAR_COLUMNS, REJECT_SCHEMA, ParsedFile, SourceObject
from colfill.stage.lake import Lake
from colfill.timeframes import Timeframe, rollup

MINUTES = "bars_1m"


class RolledUp:
    """The `timeframe` bars of the minute days the lake holds for `lineage` (the minute table's chain)."""

    def __init__(self, lake: Lake, lineage: str, timeframe: Timeframe) -> None:
        self.lake, self.lineage, self.timeframe = lake, lineage, timeframe

    def describe(self) -> str:
        return f"{MINUTES} of {self.lake.root} rolled up to {self.timeframe.name}"

    def list(self, table: str, start: dt.date, end: dt.date) -> builtins.list[SourceObject]:
        return [SourceObject(f"table={MINUTES}/date={d.isoformat()}/part-{self.lineage}.parquet", d, e.fingerprint,
                             e.rows_out)
                for d, e in self.lake.manifest(MINUTES, self.lineage).items()
                if start <= d <= end and e.status == "done"]

    def read(self, obj: SourceObject, tickers: tuple[str, ...] | None = None) -> ParsedFile:
        minutes = pl.read_parquet(self.lake.root / obj.key, columns=list(BAR_COLUMNS))
        if tickers is not None:
            minutes = minutes.filter(pl.col("ticker").is_in(tickers))
        return ParsedFile(rollup(minutes, self.timeframe), pl.DataFrame(schema=REJECT_SCHEMA), minutes.height)

    def span(self, table: str) -> tuple[dt.date, dt.date] | None:
        days = builtins.list(self.lake.manifest(MINUTES, self.lineage))
        return (days[0], days[-1]) if days else None

    def notes(self, table: str) -> builtins.list[str]:
        return []
