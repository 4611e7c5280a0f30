"""The Source contract: day partitions of a bars table, each with an identity, read into the bar schema.

The pipeline asks only this, so flat files (`FlatFiles`) and the REST API (`RestBars`) fill days through
the same validation, indicator chain, lake and stores.
"""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pyarrow as pa

    from colfill.bars import ParsedFile, SourceObject


class Source(Protocol):
    def describe(self) -> str:
        """The source for people (never a secret)."""
        ...

    def list(self, table: str, start: dt.date, end: dt.date) -> list[SourceObject]:
        """Day partitions of `table` in [start, end], in date order; the identity (key, etag, size) of each."""
        ...

    def read(self, obj: SourceObject, tickers: tuple[str, ...] | None = None) -> ParsedFile:
        """The day's bars (validated) and rejects; raises ColfillError for a day that cannot be read."""
        ...

    def span(self, table: str) -> tuple[dt.date, dt.date] | None:
        """First and last date the source holds, when it can tell (for the no-data message)."""
        ...

    def notes(self, table: str) -> builtins.list[str]:
        """What the run's summary should say about the source after `table` (e.g. tickers it had no bars of)."""
        ...


def open_source(root: str, prefix: str = "us_stocks_sip", rest: object | None = None) -> Source:
    """`rest` for the REST API (with `rest`, a RestSettings; else from the environment), else a flat-files root."""
    if root == "rest":
        from colfill.sources.rest import RestApi, RestSettings
        from colfill.sources.rest_bars import RestBars

        settings = rest if isinstance(rest, RestSettings) else RestSettings.from_env()
        return RestBars(RestApi(settings))
    from colfill.sources.flatfiles import FlatFiles

    return FlatFiles(root, prefix=prefix)


class MarketDataSource(Protocol):
    """What `DataIngestionEngine.ingest` reads: bars of one timeframe as Arrow tables of the bar schema
    (`colfill.live.engine.BAR_SCHEMA`). A streaming source (`LiveDataSource`) also has `open()`,
    `poll(timeout, max_rows)` (chunks of socket rows, each stamped with its arrival), `finished()`,
    `notices()` and `close()`, which stream mode uses to batch by latency."""

    timeframe: str

    def describe(self) -> str:
        """The source for people (never a secret)."""
        ...

    def batches(self, stop: Any = None) -> Iterator[pa.Table]:
        """Bars in arrival order, a table at a time, until the source ends or `stop` is set."""
        ...
