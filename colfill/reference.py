"""Phases 1 and 2 of a backfill: reference data (`tickers`) and corporate actions (`splits`, `dividends`) from REST.

Every page of `/v3/reference/tickers`, `/v3/reference/splits` and `/v3/reference/dividends` is fetched
(1,000 rows a page, through the limited `RestApi`) and upserted into the store's table of the same name by
its key, so a rerun replaces rows instead of adding them. Splits drive the split-adjusted views; `tickers`
(its `type`, `CS` for common stock) lets `--limit` rank common stocks only.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from colfill import atomic

if TYPE_CHECKING:
    import pyarrow as pa

    from colfill.sources.rest import RestApi


@dataclass(frozen=True)
class Dataset:
    """One reference table: its REST listing, columns (name, Arrow type name) and key."""

    table: str
    method: str
    columns: tuple[tuple[str, str], ...]
    key: tuple[str, ...]


DATASETS: dict[str, Dataset] = {d.table: d for d in (
    Dataset("tickers", "list_tickers", (
        ("ticker", "string"), ("name", "string"), ("market", "string"), ("locale", "string"),
        ("primary_exchange", "string"), ("type", "string"), ("active", "bool"), ("currency_name", "string"),
        ("cik", "string"), ("composite_figi", "string"), ("share_class_figi", "string"),
        ("list_date", "date"), ("delisted_utc", "timestamp"), ("last_updated_utc", "timestamp")), ("ticker",)),
    Dataset("splits", "list_splits", (
        ("ticker", "string"), ("execution_date", "date"), ("split_from", "float64"), ("split_to", "float64"),
        ("id", "string")), ("ticker", "execution_date")),
    Dataset("dividends", "list_dividends", (
        ("ticker", "string"), ("ex_dividend_date", "date"), ("dividend_type", "string"), ("cash_amount", "float64"),
        ("currency", "string"), ("declaration_date", "date"), ("record_date", "date"), ("pay_date", "date"),
        ("frequency", "int64"), ("id", "string")), ("ticker", "ex_dividend_date", "dividend_type")),
)}
PHASES = {"reference": ("tickers",), "corporate": ("splits", "dividends")}
FRESH = dt.timedelta(hours=20)  # a table loaded into a store more recently than this is not fetched again


def arrow_schema(ds: Dataset) -> pa.Schema:
    import pyarrow as pa

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


def to_table(ds: Dataset, rows: list[Any]) -> pa.Table:
    """The client's model objects as an Arrow table of the dataset's columns, one row per key (the last wins)."""
    import pyarrow as pa

    by_key: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rows:
        record = {name: _value(kind, getattr(r, name, None)) for name, kind in ds.columns}
        if ds.table == "dividends" and record["dividend_type"] is None:
            record["dividend_type"] = "CD"
        key = tuple(record[k] for k in ds.key)
        if all(v is not None for v in key):
            by_key[key] = record
    return pa.Table.from_pylist(list(by_key.values()), schema=arrow_schema(ds))


def fetch(api: RestApi, table: str) -> pa.Table:
    """Every row of a reference table from REST (all pages)."""
    ds = DATASETS[table]
    listing = getattr(api.client, ds.method)
    extra = {"market": "stocks"} if table == "tickers" else {}
    return to_table(ds, api._call(f"/v3/reference/{table}", lambda: listing(limit=1000, **extra)))


def load(api: RestApi, store: Any, tables: tuple[str, ...], records: Path | None = None,
         max_age: dt.timedelta = FRESH) -> dict[str, int | str]:
    """Fetch and upsert each table; rows written per table, or a note for a table kept as loaded.

    With `records` (a folder), each table's load is recorded there per store, and a table this store got less
    than `max_age` ago is not fetched again: reference data changes daily at most, so a rerun (or a run
    resumed after an interrupt) goes straight to what it lacks.
    """
    out: dict[str, int | str] = {}
    for t in tables:
        record = records / f"{t}.json" if records is not None else None
        seen = _fresh(record, store.describe(), max_age)
        if seen is not None:
            out[t] = seen
            continue
        out[t] = store.write_reference(t, fetch(api, t))
        if record is not None:
            atomic.write_text(record, json.dumps({"store": store.describe(), "rows": out[t],
                                                  "fetched_at": dt.datetime.now(dt.timezone.utc).isoformat()}))
    return out


def _fresh(record: Path | None, store: str, max_age: dt.timedelta) -> str | None:
    """"kept (N rows, fetched Xh ago)" when `record` says this store loaded the table within `max_age`."""
    if record is None or not record.exists():
        return None
    try:
        got = json.loads(record.read_text())
        age = dt.datetime.now(dt.timezone.utc) - dt.datetime.fromisoformat(got["fetched_at"])
    except (ValueError, KeyError, TypeError):
        return None
    if got.get("store") != store or not dt.timedelta(0) <= age < max_age:
        return None
    return f"{got['rows']:,} kept (fetched {age.total_seconds() / 3600:.1f} h ago; refreshed daily)"


def common_stocks(store: Any) -> set[str] | None:
    """Tickers of type CS in the store's `tickers` table, or None when it holds none (rank everything then)."""
    rows = store.read_reference("tickers")
    if rows is None or rows.num_rows == 0:
        return None
    return {t for t, kind in zip(rows.column("ticker").to_pylist(), rows.column("type").to_pylist()) if kind == "CS"}
