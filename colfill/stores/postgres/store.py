"""PostgresStore: a facade over its parts, each handed the catalogue it needs in its constructor.

`catalog` (connections, TimescaleDB decision, DDL, table kinds and columns, read-only queries), `loader`
(day loads, the manifest), `live` (live writes), `compressor` (TimescaleDB compression during a backfill),
`state` (the indicator state hand-off), `status` (`db status`). A day load runs inside
`compressor.loading(batch)`, so that compression knows which days are in flight and which committed.
"""

from __future__ import annotations

import collections
import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from colfill import dialect as sql
from colfill.bars import ALL_BAR_TABLES, BAR_TABLES
from colfill.dialect import POSTGRES
from colfill.errors import StoreError
from colfill.stores import timescale as tsdb
from colfill.stores.base import LoadBatch
from colfill.stores.postgres.catalog import Catalog
from colfill.stores.postgres.compress import Compressor
from colfill.stores.postgres.live import LiveWriter
from colfill.stores.postgres.load import Loader
from colfill.stores.postgres.schema import MANIFEST, REFERENCE_DDL, PgTarget, bars_schema
from colfill.stores.postgres.state import StateHandoff
from colfill.stores.postgres.status import Status, TableStatus


@dataclass
class InitReport:
    """What `init()` did: the schema, the tables it made sure of, and notices for the user (one line each)."""

    schema: str
    tables: list[str]
    hypertables: bool
    timescale_version: str | None
    notices: list[str] = field(default_factory=list)


class PostgresStore:
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

    def __init__(self, url: str, *, load_workers: int = 2, timescale: bool | None = None, create_db: bool = False,
                 strategy: str = "auto", compress: bool = True) -> None:
        self.catalog = Catalog(url, load_workers=load_workers, timescale=timescale, create_db=create_db)
        try:
            self.loader = Loader(self.catalog, strategy, compress)
        except BaseException:
            self.catalog.close()
            raise
        self.live = LiveWriter(self.catalog)
        self.compressor = Compressor(self.catalog, compress)
        self.state = StateHandoff(self.catalog)
        self._status = Status(self.catalog)
        self.notices = self.catalog.notices  # the resolver appends its own (colfill.stores.open_store)

    # -- what callers read of the server and the run --

    @property
    def target(self) -> PgTarget:
        return self.catalog.target

    @property
    def schema(self) -> str:
        return self.catalog.schema

    @property
    def database(self) -> str:
        return self.catalog.database

    @property
    def hypertables(self) -> bool:
        """Whether bars tables are made hypertables (TimescaleDB in use)."""
        return self.catalog.hypertables

    @property
    def ts_version(self) -> str | None:
        return self.catalog.ts_version

    @property
    def ts_available(self) -> str | None:
        """The TimescaleDB version the server could install (None: not installed on the server)."""
        return self.catalog.ts_available

    @property
    def ts_preloaded(self) -> bool:
        return self.catalog.ts_preloaded

    @property
    def load_workers(self) -> int:
        return self.catalog.load_workers

    @property
    def paths(self) -> collections.Counter[str]:
        """Load paths taken (insert, replace, merge, ...), for tests and benchmarks."""
        return self.loader.paths

    # -- the Store protocol --

    def describe(self) -> str:
        return self.catalog.describe()

    def ensure_table(self, table: str, schema: pa.Schema) -> None:
        """Create the bars table (key (ticker, ts); hypertable when TimescaleDB is on) or check and extend it."""
        self.catalog.ensure_table(table, schema)

    def load(self, batch: LoadBatch) -> int:
        """Apply one partition with its manifest row in one transaction (the loader), inside the compressor's
        `loading`, which compresses the chunks that loading has left behind (TimescaleDB)."""
        with self.compressor.loading(batch):
            return self.loader.load(batch)

    def loaded(self, table: str, lineage: str) -> dict[dt.date, str]:
        return self.loader.loaded(table, lineage)

    def upsert_live(self, table: str, rows: pa.Table) -> int:
        return self.live.upsert_live(table, rows)

    def read_bars(self, table: str, columns: Sequence[str], batch_rows: int = 100_000,
                  since: dt.datetime | None = None) -> Iterator[pa.Table]:
        return self.state.read_bars(table, columns, batch_rows, since)

    def read_state(self, timeframe: str) -> pa.Table | None:
        return self.state.read_state(timeframe)

    def write_state(self, timeframe: str, rows: pa.Table, replace: bool = False) -> int:
        return self.state.write_state(timeframe, rows, replace)

    def activity(self, table: str) -> str:
        return self.compressor.activity(table)

    def status(self) -> list[TableStatus]:
        """`colfill db status`: see colfill.stores.postgres.status."""
        return self._status.tables()

    def init(self, indicator_columns: Sequence[str] = (), *, daily_cagg: bool = False) -> InitReport:
        """`colfill db init`: schema, bars tables (with these indicator columns), reference tables, manifest."""
        cat = self.catalog
        bars = bars_schema(indicator_columns)
        reference = [f"CREATE TABLE IF NOT EXISTS {cat.rel(name)} {ddl}" for name, ddl in REFERENCE_DDL.items()]
        cat.ensure_tables(dict.fromkeys(BAR_TABLES, bars), reference)
        tables = [*BAR_TABLES, *REFERENCE_DDL, MANIFEST]
        if daily_cagg:
            if not self.hypertables:
                raise StoreError(f"--daily-cagg needs TimescaleDB, which is not in use for {cat.target.display}. "
                                 "Hint: pass --timescale (the server must have the extension).")
            version, ext = cat.ts
            cat.autocommit(tsdb.daily_cagg_sql(self.schema, version, ext), f"creating {tsdb.DAILY_CAGG}")
            tables.append(tsdb.DAILY_CAGG)
        return InitReport(self.schema, tables, self.hypertables, self.ts_version if self.hypertables else None,
                          list(self.notices))

    def write_reference(self, table: str, rows: pa.Table) -> int:
        """Upsert reference rows (`colfill.bars`) by the dataset's key, in one statement over arrays."""
        from colfill.bars import REFERENCE_TABLES, arrow_schema

        cat = self.catalog
        ds = REFERENCE_TABLES[table]
        names = [n for n, _ in ds.columns]
        arrays = ", ".join(f"%s::{POSTGRES.sql_type(f.type)}[]" for f in arrow_schema(ds))
        source = f"unnest({arrays}) AS r({', '.join(POSTGRES.quote(n) for n in names)})"
        with cat.ddl() as s:  # the schema made if needed, one transaction, its errors scrubbed
            sql.write_reference(s, POSTGRES, cat.rel(table),
                                f"CREATE TABLE IF NOT EXISTS {cat.rel(table)} {REFERENCE_DDL[table]}", names, ds.key,
                                source, [rows.column(n).to_pylist() for n in names])
        if table == "splits":
            self.adjusted_views()
        return rows.num_rows

    def adjusted_views(self, dividends: bool | None = None) -> None:
        """`split_factors`, `dividend_factors` and `<bars>_adjusted` (colfill.adjust) where `splits` and the bars
        table exist; `dividends` None keeps the store's choice."""
        from colfill.adjust import adjusted_views, wants_dividends

        cat = self.catalog
        present = cat.relations()
        if "splits" not in present:
            return
        dividends = wants_dividends(present) if dividends is None else dividends
        with cat.ddl() as s:
            # dropped first: they depend on the factor views, their columns on the table
            for name in [*(f"{t}_adjusted" for t in ALL_BAR_TABLES), "dividend_factors"]:
                s.execute(f"DROP VIEW IF EXISTS {cat.rel(name)}")
            views = adjusted_views(POSTGRES, present, dividends, cat.rel, lambda t: list(cat.existing(s, t)[1]))
            for name, view in views.items():
                if view is not None:
                    s.execute(f"CREATE OR REPLACE VIEW {cat.rel(name)} AS {view}")

    def finish(self, table: str) -> list[str]:
        """After the last load of `table` in a run: the compressor's last chunks and aggregate refresh, then the
        adjusted views; lines for the run's summary."""
        lines = self.compressor.finish(table)
        self.adjusted_views()
        return lines

    def read_reference(self, table: str) -> pa.Table | None:
        from colfill.bars import REFERENCE_TABLES, arrow_schema

        cat = self.catalog
        ds = REFERENCE_TABLES[table]
        if not cat.read("SELECT 1 WHERE to_regclass(%s::text) IS NOT NULL", [cat.rel(table)]):
            return None
        rows = cat.read_rows(f"SELECT {', '.join(POSTGRES.quote(n) for n, _ in ds.columns)} FROM {cat.rel(table)}")
        return pa.Table.from_pylist([dict(zip([n for n, _ in ds.columns], r)) for r in rows], schema=arrow_schema(ds))

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
