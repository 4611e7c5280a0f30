"""`colfill db status`: per table, rows, time range, tickers, days loaded, size and compression; the derived
timeframes' tables (`bars_5m` ...) that the schema holds."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from colfill.bars import ALL_BAR_TABLES, BAR_TABLES, DERIVED_TABLES
from colfill.stores import timescale as tsdb
from colfill.stores.base import STATE_TABLE
from colfill.stores.postgres.catalog import Catalog
from colfill.stores.postgres.schema import MANIFEST, REFERENCE_DDL, distinct_tickers_sql

EXACT_COUNT_BELOW = 5_000_000  # status counts rows exactly below this estimate, else reports the estimate


@dataclass
class TableStatus:
    """One table as `colfill db status` shows it. `rows_exact` is False for large tables (an estimate)."""

    table: str
    kind: str  # "hypertable", "table", "table, N day partitions", "continuous aggregate", "missing"
    rows: int | None = None
    rows_exact: bool = True
    first_ts: dt.datetime | None = None
    last_ts: dt.datetime | None = None
    tickers: int | None = None
    tickers_last_day: bool = False  # `tickers` counts the last day only (large day-partitioned tables)
    days: int | None = None
    last_loaded: dt.datetime | None = None
    size_bytes: int | None = None
    chunks: int | None = None
    compressed_chunks: int | None = None
    compression_ratio: float | None = None
    uniqueness: str | None = None  # how one row per (ticker, ts) is kept (bars tables)


class Status:
    """`colfill db status` over the catalogue's read-only queries."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def tables(self) -> list[TableStatus]:
        """Per table: rows, time range, tickers, days in the manifest, size; chunks and compression on hypertables."""
        cat = self._catalog
        out = []
        present = cat.relations()
        derived = [t for t in DERIVED_TABLES if t in present]  # held only: a run makes those it needs
        names = [*BAR_TABLES, *derived, tsdb.DAILY_CAGG, *REFERENCE_DDL, MANIFEST, STATE_TABLE]
        hyper = set(cat.read("SELECT hypertable_name::text FROM timescaledb_information.hypertables "
                               "WHERE hypertable_schema = %s::text", [cat.schema])) if cat.ts_version else set()
        caggs = set(cat.read("SELECT view_name::text FROM timescaledb_information.continuous_aggregates "
                               "WHERE view_schema = %s::text", [cat.schema])) if cat.ts_version else set()
        for name in names:
            rel = cat.rel(name)
            kind_row = cat.read(
                "SELECT c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s::text AND c.relname = %s::text", [cat.schema, name])
            if not kind_row:
                if name != tsdb.DAILY_CAGG:
                    out.append(TableStatus(name, "missing"))
                continue
            kind = "hypertable" if name in hyper else "continuous aggregate" if name in caggs else "table"
            if kind_row[0] == "p":
                out.append(self._partitioned_status(name))
                continue
            st = TableStatus(name, kind)
            version, ext = cat.ts
            ts_sql = tsdb.stats_sql(cat.schema, name, version, ext) if kind == "hypertable" else {}
            estimate = (cat.read_one(ts_sql["rows"]) if ts_sql else
                        cat.read_one("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s::text)",
                                       [rel]))
            if kind == "continuous aggregate" or estimate is None or estimate < EXACT_COUNT_BELOW:
                st.rows = cat.read_one(f"SELECT count(*)::bigint FROM {rel}")
            else:
                st.rows, st.rows_exact = int(estimate), False
            if name in ALL_BAR_TABLES or kind == "continuous aggregate":
                row = cat.read_row(
                    f"SELECT count(t.ticker)::bigint, "
                    f"extract(epoch FROM min((SELECT min(x.ts) FROM {rel} x WHERE x.ticker = t.ticker)))::float8, "
                    f"extract(epoch FROM max((SELECT max(x.ts) FROM {rel} x WHERE x.ticker = t.ticker)))::float8 "
                    f"FROM ({distinct_tickers_sql(rel)}) t")
                if row:
                    st.tickers = row[0]
                    st.first_ts, st.last_ts = (dt.datetime.fromtimestamp(v, dt.timezone.utc) if v is not None
                                               else None for v in row[1:3])
            if name in ALL_BAR_TABLES:
                self._manifest_status(st)
                st.uniqueness = self._uniqueness(name)
            if ts_sql:
                st.size_bytes = cat.read_one(ts_sql["size"])
                chunks = cat.read_row(ts_sql["chunks"])
                if chunks:
                    st.chunks, st.compressed_chunks = chunks
                sizes = cat.read_row(ts_sql["compression"])
                if sizes and sizes[0] and sizes[1]:
                    st.compression_ratio = sizes[0] / sizes[1]
            else:
                st.size_bytes = cat.read_one("SELECT pg_total_relation_size(to_regclass(%s::text))::bigint", [rel])
            out.append(st)
        return out

    def _partitioned_status(self, name: str) -> TableStatus:
        """Status of a day-partitioned table from its partitions: queries across every partition (a ticker's whole
        range, distinct tickers) would probe each one, so large tables report the last day's tickers."""
        cat = self._catalog
        rel = cat.rel(name)
        leaves = cat.read("SELECT c.oid::regclass::text FROM pg_partition_tree(to_regclass(%s::text)) p "
                            "JOIN pg_class c ON c.oid = p.relid WHERE p.isleaf ORDER BY c.relname", [rel])
        st = TableStatus(name, f"table, {len(leaves)} day partition{'' if len(leaves) == 1 else 's'}")
        stats = cat.read_row("SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint, "
                               "coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint "
                               "FROM pg_partition_tree(to_regclass(%s::text)) p JOIN pg_class c ON c.oid = p.relid "
                               "WHERE p.isleaf", [rel])
        estimate, st.size_bytes = stats if stats else (0, None)
        if estimate < EXACT_COUNT_BELOW:
            st.rows = cat.read_one(f"SELECT count(*)::bigint FROM {rel}")
            st.tickers = cat.read_one(f"SELECT count(DISTINCT ticker)::bigint FROM {rel}")
        else:
            st.rows, st.rows_exact = int(estimate), False
            st.tickers = cat.read_one(f"SELECT count(*)::bigint FROM ({distinct_tickers_sql(leaves[-1])}) t")
            st.tickers_last_day = True
        if leaves:
            first = cat.read_one(f"SELECT extract(epoch FROM min(ts))::float8 FROM {leaves[0]}")
            last = cat.read_one(f"SELECT extract(epoch FROM max(ts))::float8 FROM {leaves[-1]}")
            st.first_ts, st.last_ts = (dt.datetime.fromtimestamp(v, dt.timezone.utc) if v is not None else None
                                       for v in (first, last))
        self._manifest_status(st)
        st.uniqueness = self._uniqueness(name)
        return st

    def _uniqueness(self, table: str) -> str:
        cat = self._catalog
        if cat.read("SELECT 1 FROM pg_index WHERE indrelid = to_regclass(%s::text) AND indisunique",
                    [cat.rel(table)]):
            return "primary key"
        how = "direct compress" if cat.direct_compress_guc() else "compressed after loading"
        return f"kept by the loader (no unique index; {how})"

    def _manifest_status(self, st: TableStatus) -> None:
        """Days loaded into the table and when the last was, from the manifest."""
        cat = self._catalog
        row = cat.read_row(
            f"SELECT count(DISTINCT date)::bigint, extract(epoch FROM max(loaded_at))::float8 "
            f"FROM {cat.rel(MANIFEST)} WHERE table_name = %s::text AND status = 'loaded'", [st.table])
        if row:
            st.days = row[0]
            st.last_loaded = dt.datetime.fromtimestamp(row[1], dt.timezone.utc) if row[1] else None
