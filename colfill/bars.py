"""The bar model every layer shares: tables and their timeframes, the flat-file CSV, the Arrow bar schema.

Sources, stores, the live engine and the dashboard all speak of these; they live here, below all of them,
so no layer has to import another to learn what a bar is (see `tests/test_layout.py` for the layer order).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl
import pyarrow as pa

from colfill.errors import InvalidArgument

TABLES = {"bars_1m": "1m", "bars_1d": "1d"}  # the source's bars tables and their timeframes (the default pair)
STATE_TABLE = "indicator_state"  # per (ticker, timeframe): the indicators' carried state
BAR_TABLES = tuple(TABLES)
# Timeframes rolled up from the minute bars (`colfill.timeframes`), each a table of its own, `:rth` ones of the
# regular session only: `5m` is `bars_5m`, `5m:rth` is `bars_5m_rth`. Named here so every layer knows the tables.
DERIVED_SIZES = {"2m": 2, "3m": 3, "5m": 5, "10m": 10, "15m": 15, "30m": 30, "1h": 60}
RTH = ":rth"
DERIVED = (*DERIVED_SIZES, *(f"{tf}{RTH}" for tf in ("1m", *DERIVED_SIZES, "1d")))


def derived_table(timeframe: str) -> str:
    """`bars_5m` of `5m`, `bars_1h_rth` of `1h:rth`; raises for a timeframe that is not derived."""
    if timeframe not in DERIVED:
        raise InvalidArgument(f"timeframe {timeframe!r}: choose one of {', '.join(DERIVED)}")
    return "bars_" + timeframe.replace(RTH, "_rth")


DERIVED_TABLES = {derived_table(tf): tf for tf in DERIVED}
ALL_BAR_TABLES = (*BAR_TABLES, *DERIVED_TABLES)  # every bars table a store may hold: the source's, then derived
# The tables of bars shorter than a day (kept a New York day at a time: partitions, live files of 5 minutes).
INTRADAY_TABLES = frozenset({"bars_1m", *(t for t, tf in DERIVED_TABLES.items() if not tf.startswith("1d"))})
DATASETS = {"bars_1m": "minute_aggs_v1", "bars_1d": "day_aggs_v1"}  # the flat files' dataset of each table


def table_of(timeframe: str) -> str | None:
    """The bars table of `timeframe` (a derived one included), None for one published but not stored (`1s`)."""
    return next((t for t, tf in {**TABLES, **DERIVED_TABLES}.items() if tf == timeframe), None)


def timeframe_of(table: str) -> str:
    if table in DERIVED_TABLES:
        return DERIVED_TABLES[table]
    if table not in TABLES:
        raise InvalidArgument(f"table {table!r}: choose {' or '.join(TABLES)} (or a derived one, bars_5m ...)")
    return TABLES[table]


HEADER = ("ticker", "volume", "open", "close", "high", "low", "window_start", "transactions")
CSV_SCHEMA = {
    "ticker": pl.Utf8,
    "volume": pl.Float64,
    "open": pl.Float64,
    "close": pl.Float64,
    "high": pl.Float64,
    "low": pl.Float64,
    "window_start": pl.Int64,
    "transactions": pl.Int64,
}
BAR_COLUMNS = ("ticker", "ts", "open", "high", "low", "close", "volume", "vw", "transactions")
REJECT_SCHEMA = {"source_key": pl.Utf8, "line": pl.Int64, "reason": pl.Utf8, **{c: pl.Utf8 for c in HEADER}}

BAR_SCHEMA = pa.schema([("ticker", pa.string()), ("ts", pa.timestamp("us", tz="UTC")), ("open", pa.float64()),
                        ("high", pa.float64()), ("low", pa.float64()), ("close", pa.float64()),
                        ("volume", pa.float64()), ("vw", pa.float64()), ("transactions", pa.int64())])


@dataclass(frozen=True)
class SourceObject:
    """One day file. `key` is relative to the source root; `etag` is the S3 ETag or `mtime:<ns>` locally."""

    key: str
    date: dt.date
    etag: str
    size: int


@dataclass(frozen=True)
class ParsedFile:
    """A parsed day file: good bars (BAR_COLUMNS) and rejected rows (REJECT_SCHEMA)."""

    bars: pl.DataFrame
    rejects: pl.DataFrame
    rows_in: int


def rows_to_table(rows: Sequence[tuple[Any, ...]]) -> pa.Table:
    """Socket rows (ticker, start ms, o, h, l, c, v, vw, transactions[, end ms]) as a table of BAR_SCHEMA."""
    if not rows:
        return BAR_SCHEMA.empty_table()
    cols = list(zip(*rows))
    ts = pa.array(cols[1], pa.int64()).cast(pa.timestamp("ms", tz="UTC")).cast(pa.timestamp("us", tz="UTC"))
    arrays = [pa.array(cols[0], pa.string()), ts, *(pa.array(cols[i], pa.float64()) for i in range(2, 8)),
              pa.array(cols[8], pa.int64())]
    return pa.Table.from_arrays(arrays, schema=BAR_SCHEMA)


# Reference data (phases 1 and 2 of a backfill, fetched by `colfill.sources.reference`): tables, columns, keys.


@dataclass(frozen=True)
class ReferenceTable:
    """One reference table: its REST listing, columns (name, Arrow type name) and key."""

    table: str
    method: str
    columns: tuple[tuple[str, str], ...]
    key: tuple[str, ...]


REFERENCE_TABLES: dict[str, ReferenceTable] = {d.table: d for d in (
    ReferenceTable("tickers", "list_tickers", (
        ("ticker", "string"), ("name", "string"), ("market", "string"), ("locale", "string"),
        ("primary_exchange", "string"), ("type", "string"), ("active", "bool"), ("currency_name", "string"),
        ("cik", "string"), ("composite_figi", "string"), ("share_class_figi", "string"),
        ("list_date", "date"), ("delisted_utc", "timestamp"), ("last_updated_utc", "timestamp")), ("ticker",)),
    ReferenceTable("splits", "list_splits", (
        ("ticker", "string"), ("execution_date", "date"), ("split_from", "float64"), ("split_to", "float64"),
        ("id", "string")), ("ticker", "execution_date")),
    ReferenceTable("dividends", "list_dividends", (
        ("ticker", "string"), ("ex_dividend_date", "date"), ("dividend_type", "string"), ("cash_amount", "float64"),
        ("currency", "string"), ("declaration_date", "date"), ("record_date", "date"), ("pay_date", "date"),
        ("frequency", "int64"), ("id", "string")), ("ticker", "ex_dividend_date", "dividend_type")),
)}
PHASES = {"reference": ("tickers",), "corporate": ("splits", "dividends")}


def arrow_schema(ds: ReferenceTable) -> pa.Schema:
    types = {"string": pa.string(), "bool": pa.bool_(), "date": pa.date32(), "float64": pa.float64(),
             "int64": pa.int64(), "timestamp": pa.timestamp("us", tz="UTC")}
    return pa.schema([(name, types[kind]) for name, kind in ds.columns])


def _value(kind: str, value: Any) -> Any:
    if value is None or value == "":
        return None
    if kind == "date":
        return dt.date.fromisoformat(str(value)[:10])
    if kind == "timestamp":
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return value


def to_table(ds: ReferenceTable, rows: list[Any]) -> pa.Table:
    """The client's model objects as an Arrow table of the dataset's columns, one row per key (the last wins)."""
    by_key: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rows:
        record = {name: _value(kind, getattr(r, name, None)) for name, kind in ds.columns}
        if ds.table == "dividends" and record["dividend_type"] is None:
            record["dividend_type"] = "CD"
        key = tuple(record[k] for k in ds.key)
        if all(v is not None for v in key):
            by_key[key] = record
    return pa.Table.from_pylist(list(by_key.values()), schema=arrow_schema(ds))


def common_stocks(store: Any) -> set[str] | None:
    """Tickers of type CS in the store's `tickers` table, or None when it holds none (rank everything then)."""
    rows = store.read_reference("tickers")
    if rows is None or rows.num_rows == 0:
        return None
    return {t for t, kind in zip(rows.column("ticker").to_pylist(), rows.column("type").to_pylist()) if kind == "CS"}
