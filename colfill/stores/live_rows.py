"""Live writes (`Store.upsert_live`): bars of the live engine written beside the backfilled ones.

A live bar may be revised (the same (ticker, ts) published again with new values), so every store
upserts by (ticker, ts): the last row of a key wins, within a call and across calls. The lake store
keeps live rows in small Parquet files of their own (colfill.stores.live_files), and its `bars_*` views
show them only for New York trading days the lake does not hold: once a day's flat file is backfilled,
the lake's rows of that day win and the day's live files are pruned.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from colfill.bars import ALL_BAR_TABLES
from colfill.dialect import DUCKDB
from colfill.errors import SchemaMismatch

NY_DATE = DUCKDB.ny_day("ts")  # the New York trading date of a bar


def check_rows(table: str, rows: pa.Table) -> None:
    if table not in ALL_BAR_TABLES:
        raise SchemaMismatch(f"upsert_live: {table!r} is not a bars table (bars_1m, bars_1d, or a derived one: "
                             "bars_5m, bars_1h_rth ...)")
    missing = [k for k in ("ticker", "ts") if k not in rows.column_names]
    if missing:
        raise SchemaMismatch(f"upsert_live into {table}: the rows have no {' and '.join(missing)} column; bars "
                             "are keyed by (ticker, ts)")


def last_per_key(rows: pa.Table) -> pa.Table:
    """`rows` with one row per (ticker, ts): the last one given (a later revision replaces an earlier one)."""
    if rows.num_rows < 2:
        return rows
    index = pa.array(range(rows.num_rows), pa.int64())
    keyed = pa.table({"ticker": rows["ticker"], "ts": rows["ts"], "__i": index})
    last = keyed.group_by(["ticker", "ts"], use_threads=False).aggregate([("__i", "max")])["__i_max"]
    if len(last) == rows.num_rows:
        return rows
    return rows.take(pc.take(last, pc.sort_indices(last)))  # the kept rows, in the order given


def held_days(entries: list[Any]) -> tuple[set[dt.date], dict[dt.date, set[str]]]:
    """(days the lake holds whole, {day: tickers} it holds in part) from its done manifest entries."""
    whole: set[dt.date] = set()
    partial: dict[dt.date, set[str]] = {}
    for e in entries:
        if e.status != "done":
            continue
        if e.tickers is None:
            whole.add(e.date)
        else:
            partial.setdefault(e.date, set()).update(e.tickers)
    return whole, {d: t for d, t in partial.items() if d not in whole}


def held_condition(whole: set[dt.date], partial: dict[dt.date, set[str]]) -> str | None:
    """SQL true for a row (ticker, ts) of a day the lake holds; None when it holds none."""
    terms = []
    if whole:
        terms.append(f"{NY_DATE} IN (" + ", ".join(DUCKDB.date(d) for d in sorted(whole)) + ")")
    for day in sorted(partial):
        tickers = ", ".join(DUCKDB.literal(t) for t in sorted(partial[day]))
        terms.append(f"({NY_DATE} = {DUCKDB.date(day)} AND ticker IN ({tickers}))")
    return " OR ".join(terms) if terms else None


def with_live_sql(lake_sql: str | None, live_scan: str, held: str | None) -> str:
    """The bars view: the lake's rows, then the live rows (`live_scan`, a FROM item) of days it does not hold."""
    scan = f"SELECT * FROM {live_scan}" + (f" WHERE NOT ({held})" if held else "")
    return scan if lake_sql is None else f"{lake_sql}\nUNION ALL BY NAME\n{scan}"


def duckdb_upsert(con: Any, table: str, columns: list[str], rows: pa.Table) -> int:
    """Replace the rows of `rows`' keys in DuckDB table `table` (columns `columns`), in the caller's transaction."""
    quote = DUCKDB.quote
    present = set(rows.column_names)
    select = ", ".join(quote(c) if c in present else f"NULL AS {quote(c)}" for c in columns)
    lo, hi = pc.min_max(rows["ts"]).values()
    con.register("__colfill_live", rows)
    try:  # the ts range skips every row group outside it (zone maps), whatever DuckDB's own join filters do
        con.execute(f"DELETE FROM {quote(table)} AS t USING __colfill_live AS r "
                    "WHERE t.ts >= ? AND t.ts <= ? AND t.ticker = r.ticker AND t.ts = r.ts", [lo.as_py(), hi.as_py()])
        con.execute(f"INSERT INTO {quote(table)} SELECT {select} FROM __colfill_live")
    finally:
        con.unregister("__colfill_live")
    return rows.num_rows
