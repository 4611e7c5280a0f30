"""Phases 1 and 2 of a backfill: reference data (`tickers`) and corporate actions (`splits`, `dividends`) from REST.

Every page of `/v3/reference/tickers`, `/v3/reference/splits` and `/v3/reference/dividends` is fetched
(1,000 rows a page, through the limited `RestApi`) and upserted into the store's table of the same name by
its key, so a rerun replaces rows instead of adding them. Splits drive the split-adjusted views; `tickers`
(its `type`, `CS` for common stock) lets `--limit` rank common stocks only.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from colfill import atomic
from colfill.bars import REFERENCE_TABLES, to_table

if TYPE_CHECKING:
    import pyarrow as pa

    from colfill.sources.rest import RestApi
FRESH = dt.timedelta(hours=20)  # a table loaded into a store more recently than this is not fetched again


def fetch(api: RestApi, table: str) -> pa.Table:
    """Every row of a reference table from REST (all pages)."""
    ds = REFERENCE_TABLES[table]
    listing = getattr(api.client, ds.method)
    extra = {"market": "stocks"} if table == "tickers" else {}
    return to_table(ds, api._call(f"/v3/reference/{table}",
                                         lambda: list(listing(limit=1000, **extra))))  # pages read inside: retried


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


