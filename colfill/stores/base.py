"""The Store contract: what the pipeline hands a database, and what it asks of it.

A store receives staged day partitions (`LoadBatch`) and must apply each one atomically together with its
manifest row: after a crash, a partition is either wholly loaded and recorded, or neither. Loading the
same partition again replaces its rows (never duplicates them). `loaded()` tells the pipeline what the
store already holds, by fingerprint, so "what is still missing" is computed, not guessed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import pyarrow as pa

from colfill.bars import BAR_TABLES, STATE_TABLE
from colfill.calendar import NEW_YORK, day_bounds

# Indicator state rows for the live engine's hand-off: the columns of `colfill.indicators.state` plus
# `indicators` (the IndicatorSet token the row was computed for) and `saved_at`; key (ticker, timeframe).
__all__ = ["BAR_TABLES", "NEW_YORK", "STATE_TABLE", "LoadBatch", "Store", "day_bounds", "human_bytes"]


def human_bytes(n: int | None) -> str:
    """`1536` -> `1.5 kB` (binary multiples), "" for None: sizes in status, progress and summaries."""
    if n is None:
        return ""
    size, unit = float(n), "B"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            break
        size /= 1024
    return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"


@dataclass(frozen=True)
class LoadBatch:
    """One staged partition: the rows of `table` for one trading `date`, from one source object.

    `tickers` is None when the partition holds every ticker of the day (a reload then replaces the whole
    day); otherwise only those tickers' rows of that day are replaced. `fingerprint` identifies the
    content version (source ETag chained with the previous day's, see `colfill.stage.lake`).
    """

    table: str
    date: dt.date
    data: pa.Table
    source_key: str
    etag: str
    size: int
    fingerprint: str
    lineage: str
    tickers: tuple[str, ...] | None = None


@runtime_checkable
class Store(Protocol):
    """A destination for enriched bars. Capabilities are attributes, not probes."""

    name: str
    supports_upsert: bool
    supports_hypertables: bool
    lake_is_store: bool  # True: the lake's day files are the stored rows, and a day loads after its lake commit

    def describe(self) -> str:
        """The store for people: kind and place, never a password."""
        ...

    def ensure_table(self, table: str, schema: pa.Schema) -> None:
        """Create `table` with these columns and primary key (ticker, ts), or check an existing one."""
        ...

    def load(self, batch: LoadBatch) -> int:
        """Atomically replace the partition's rows and record it in the manifest; return rows written."""
        ...

    def loaded(self, table: str, lineage: str) -> dict[dt.date, str]:
        """Fingerprints of the partitions of `table` (for `lineage`) already loaded, by date."""
        ...

    def upsert_live(self, table: str, rows: pa.Table) -> int:
        """Upsert live bars (the bars table's columns) by (ticker, ts) in one transaction: an existing key is
        replaced (a revision), never duplicated; the table is created as the backfill would. Rows written."""
        ...

    def read_bars(self, table: str, columns: list[str], since: dt.datetime | None = None) -> Iterator[pa.Table]:
        """`columns` of `table` in (ticker, ts) order, in slices (the live engine's hand-off reads history);
        with `since`, only bars after it."""
        ...

    def read_state(self, timeframe: str) -> pa.Table | None:
        """Every `indicator_state` row of `timeframe`, all columns, by ticker; None when there is no such table."""
        ...

    def write_state(self, timeframe: str, rows: pa.Table, replace: bool = False) -> int:
        """Upsert `rows` (all of `timeframe`) into `indicator_state` by (ticker, timeframe) in one transaction,
        creating the table or adding the columns it lacks; `replace` first deletes the timeframe's other rows."""
        ...

    def write_reference(self, table: str, rows: pa.Table) -> int:
        """Upsert rows of `tickers`, `splits` or `dividends` (schemas in `colfill.bars`) by their key."""
        ...

    def read_reference(self, table: str) -> pa.Table | None:
        """Every row of a reference table; None when there is none."""
        ...

    def adjusted_views(self, dividends: bool | None = None) -> None:
        """(Re)build the split-adjusted views (colfill.adjust), with dividends or not; None keeps the choice."""
        ...

    def activity(self, table: str) -> str:
        """Work beyond loading rows so far (e.g. chunks compressed), for the progress display; "" for none."""
        ...

    def finish(self, table: str) -> list[str]:
        """Called once after the last load of `table` in a run (e.g. compress what is left, refresh aggregates);
        lines for the run's summary."""
        ...

    def close(self) -> None: ...
