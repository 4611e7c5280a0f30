"""PostgresStore: the store, made of its parts in this package (load paths, status, state hand-off)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from colfill import dialect as sql
from colfill.bars import BAR_TABLES
from colfill.dialect import POSTGRES
from colfill.errors import StoreError
from colfill.stores import timescale as tsdb
from colfill.stores.base import LoadBatch
from colfill.stores.postgres.compress import _Compressing
from colfill.stores.postgres.live import _LiveWrites
from colfill.stores.postgres.load import _Loading
from colfill.stores.postgres.schema import MANIFEST, REFERENCE_DDL, bars_schema
from colfill.stores.postgres.state import _StateHandoff
from colfill.stores.postgres.status import _Status


@dataclass
class InitReport:
    """What `init()` did: the schema, the tables it made sure of, and notices for the user (one line each)."""

    schema: str
    tables: list[str]
    hypertables: bool
    timescale_version: str | None
    notices: list[str] = field(default_factory=list)


class PostgresStore(_LiveWrites, _Loading, _Compressing, _Status, _StateHandoff):
    """Store into PostgreSQL, with hypertables when TimescaleDB is there (see colfill.stores.postgres).

    `timescale`: None uses hypertables when the extension exists in the database, True creates the
    extension if needed (an error when the server lacks it), False never uses hypertables.
    `create_db` creates a missing database. `compress` (TimescaleDB) compresses loaded chunks during the
    run, see colfill.stores.postgres.compress. `strategy` is for tests and benchmarks: "auto" (insert new
    days, replace loaded ones), or "replace"/"merge" to force a path.
    """

    name = "postgresql"
    supports_upsert = True
    supports_hypertables = True
    lake_is_store = False

    def __init__(self, url: str, *, compress: bool = True, **options: object) -> None:
        super().__init__(url, **options)  # type: ignore[arg-type]
        self.compress = compress
        self._compression_init()

    def load(self, batch: LoadBatch) -> int:
        """Apply one partition with its manifest row in one transaction (see _Loading), then compress the chunks
        that loading has left behind (TimescaleDB)."""
        self._begin_load(batch)
        committed = False
        try:
            rows = super().load(batch)
            committed = True
        finally:
            self._end_load(batch, committed)
        return rows

    def init(self, indicator_columns: Sequence[str] = (), *, daily_cagg: bool = False) -> InitReport:
        """`colfill db init`: schema, bars tables (with these indicator columns), reference tables, manifest."""
        bars = bars_schema(indicator_columns)
        reference = [f"CREATE TABLE IF NOT EXISTS {self._rel(name)} {ddl}" for name, ddl in REFERENCE_DDL.items()]
        self._ensure_tables(dict.fromkeys(BAR_TABLES, bars), reference)
        tables = [*BAR_TABLES, *REFERENCE_DDL, MANIFEST]
        if daily_cagg:
            if not self.hypertables:
                raise StoreError(f"--daily-cagg needs TimescaleDB, which is not in use for {self.target.display}. "
                                 "Hint: pass --timescale (the server must have the extension).")
            version, ext = self._ts
            self._autocommit(tsdb.daily_cagg_sql(self.schema, version, ext), f"creating {tsdb.DAILY_CAGG}")
            tables.append(tsdb.DAILY_CAGG)
        return InitReport(self.schema, tables, self.hypertables, self.ts_version if self.hypertables else None,
                          list(self.notices))

    def write_reference(self, table: str, rows: pa.Table) -> int:
        """Upsert reference rows (`colfill.bars`) by the dataset's key, in one statement over arrays."""
        from colfill.bars import REFERENCE_TABLES, arrow_schema

        ds = REFERENCE_TABLES[table]
        names = [n for n, _ in ds.columns]
        arrays = ", ".join(f"%s::{POSTGRES.sql_type(f.type)}[]" for f in arrow_schema(ds))
        source = f"unnest({arrays}) AS r({', '.join(POSTGRES.quote(n) for n in names)})"
        with self._ddl() as s:  # the schema made if needed, one transaction, its errors scrubbed
            sql.write_reference(s, POSTGRES, self._rel(table),
                                f"CREATE TABLE IF NOT EXISTS {self._rel(table)} {REFERENCE_DDL[table]}", names, ds.key,
                                source, [rows.column(n).to_pylist() for n in names])
        if table == "splits":
            self.adjusted_views()
        return rows.num_rows

    def adjusted_views(self, dividends: bool | None = None) -> None:
        """`split_factors`, `dividend_factors` and `<bars>_adjusted` (colfill.adjust) where `splits` and the bars
        table exist; `dividends` None keeps the store's choice."""
        from colfill.adjust import adjusted_views, wants_dividends

        present = set(self._read("SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                                 "WHERE n.nspname = %s::text", [self.schema]))
        if "splits" not in present:
            return
        dividends = wants_dividends(present) if dividends is None else dividends
        with self._ddl() as s:
            # dropped first: they depend on the factor views, their columns on the table
            for name in [*(f"{t}_adjusted" for t in BAR_TABLES), "dividend_factors"]:
                s.execute(f"DROP VIEW IF EXISTS {self._rel(name)}")
            views = adjusted_views(POSTGRES, present, dividends, self._rel, lambda t: list(self._existing(s, t)[1]))
            for name, view in views.items():
                if view is not None:
                    s.execute(f"CREATE OR REPLACE VIEW {self._rel(name)} AS {view}")

    def finish(self, table: str) -> list[str]:
        lines = super().finish(table)
        self.adjusted_views()
        return lines

    def read_reference(self, table: str) -> pa.Table | None:
        from colfill.bars import REFERENCE_TABLES, arrow_schema

        ds = REFERENCE_TABLES[table]
        if not self._read("SELECT 1 WHERE to_regclass(%s::text) IS NOT NULL", [self._rel(table)]):
            return None
        rows = self._read_rows(f"SELECT {', '.join(POSTGRES.quote(n) for n, _ in ds.columns)} FROM {self._rel(table)}")
        return pa.Table.from_pylist([dict(zip([n for n, _ in ds.columns], r)) for r in rows], schema=arrow_schema(ds))

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
