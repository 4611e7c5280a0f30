"""The indicator-state hand-off (`colfill state`, the live engine, see colfill.live.handoff): bars read back
in key order, and the `indicator_state` table written and read."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa

from colfill import dialect as sql
from colfill.dialect import POSTGRES
from colfill.errors import ColfillError, InvalidArgument, SchemaMismatch, StoreError
from colfill.stores.base import STATE_TABLE
from colfill.stores.postgres.catalog import Catalog
from colfill.stores.postgres.session import _AdbcSession

_ARROW = {"text": pa.string(), "bigint": pa.int64(), "double precision": pa.float64(),  # state column -> Arrow
          "timestamp with time zone": pa.timestamp("us", tz="UTC"), "date": pa.date32(),
          "double precision[]": pa.list_(pa.float64())}


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value).replace("inf", "Infinity").replace("nan", "NaN")
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return value


class StateHandoff:
    """The indicator state hand-off of PostgresStore (colfill state, the live engine), on the catalogue's pool
    and DDL transactions."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def read_bars(self, table: str, columns: Sequence[str], batch_rows: int = 100_000,
                  since: dt.datetime | None = None) -> Iterator[pa.Table]:
        """`columns` of `table` in (ticker, ts) order, a slice at a time: keyset pages on the primary key,
        fetched as Arrow through ADBC (binary COPY out), so no row passes through Python objects. With
        `since`, only bars after it."""
        cat = self._catalog
        if "ticker" not in columns or "ts" not in columns:
            raise InvalidArgument("read_bars needs the ticker and ts columns")
        if not cat.read_one("SELECT to_regclass(%s::text) IS NOT NULL", [cat.rel(table)]):
            raise StoreError(f"{cat.describe()} has no table {table}: nothing was backfilled into it yet")
        cols = ", ".join(POSTGRES.quote(c) for c in columns)
        try:
            session = _AdbcSession(cat.target.dsn)
        except Exception as exc:
            raise cat.error(f"reading {table}", exc) from None
        after: list[object] | None = None
        try:
            while True:
                terms = ["(ticker, ts) > ($1::text, $2::timestamptz)"] if after else []
                params = list(after or [])
                if since is not None:
                    terms.append(f"ts > ${len(params) + 1}::timestamptz")
                    params.append(since.isoformat())
                where = f"WHERE {' AND '.join(terms)} " if terms else ""
                try:
                    page = session.fetch_arrow(f"SELECT {cols} FROM {cat.rel(table)} {where}ORDER BY ticker, ts "
                                               f"LIMIT {int(batch_rows)}", params or None)
                except Exception as exc:
                    raise cat.error(f"reading {table}", exc) from None
                if not page.num_rows:
                    return
                yield page
                after = [page["ticker"][-1].as_py(), page["ts"][-1].as_py().isoformat()]
        finally:
            session.close()

    def read_state(self, timeframe: str) -> pa.Table | None:
        """Every `indicator_state` row of `timeframe`, all columns, by ticker; None when there is no such table."""
        cat = self._catalog
        with cat.pool.session() as s:
            try:
                _, columns = cat.existing(s, STATE_TABLE)
                if not columns:
                    s.rollback()
                    return None
                names = ", ".join(POSTGRES.quote(c) for c in columns)
                rows = s.execute(f"SELECT {names} FROM {cat.rel(STATE_TABLE)} WHERE timeframe = %s::text "
                                 "ORDER BY ticker", [timeframe])
                s.rollback()
            except Exception as exc:
                raise cat.error(f"reading {STATE_TABLE}", exc) from None
        data = list(zip(*rows)) if rows else [()] * len(columns)
        arrays, fields = [], []
        for (name, pg), values in zip(columns.items(), data):
            if pg not in _ARROW:
                raise SchemaMismatch(f"{STATE_TABLE} in {cat.describe()} has column {name} of type {pg}, which no "
                                     "state column has. Hint: rename that table; colfill never drops it for you.")
            typ = _ARROW[pg]
            arrays.append(pa.array(list(values), typ))
            fields.append(pa.field(name, typ))
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))

    def write_state(self, timeframe: str, rows: pa.Table, replace: bool = False) -> int:
        """Upsert `rows` (all of `timeframe`) into `indicator_state` by (ticker, timeframe) in one transaction,
        creating the table or adding the columns it lacks; `replace` first deletes the timeframe's other rows.

        Rows travel as one JSON parameter expanded by `json_populate_recordset` into the table's own row type,
        so both drivers bind it the same way and floats keep every bit (JSON numbers are Python's shortest
        round-trip repr; non-finite values go as the strings PostgreSQL's float8 input reads)."""
        cat = self._catalog
        rel = cat.rel(STATE_TABLE)
        payload = json.dumps([{k: _json_value(v) for k, v in r.items()} for r in rows.to_pylist()], allow_nan=False)
        with cat.ddl() as s:
            try:
                sql.write_state(s, POSTGRES, rel, cat.existing(s, STATE_TABLE)[1], rows,
                                f"json_populate_recordset(NULL::{rel}, %s::json) AS r", [payload], timeframe, replace,
                                cat.describe())
            except ColfillError:
                raise
            except Exception as exc:
                raise cat.error(f"saving {STATE_TABLE}", exc) from None
        return rows.num_rows
