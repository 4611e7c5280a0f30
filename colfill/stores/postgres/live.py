"""Live writes into PostgreSQL/TimescaleDB: `upsert_live`, the live engine's bars upserted by (ticker, ts).

A micro-batch is COPYed into a temporary table and merged with `INSERT ... ON CONFLICT (ticker, ts) DO
UPDATE` (a revision replaces the row; columns the batch lacks become null, as a native store's
delete-then-insert leaves them), in one transaction. On a day-partitioned `bars_1m` the day's partition
is created first when missing, under the loader's per-day advisory lock; a later backfill of that day
then swaps its own partition in (the live rows are replaced as a whole) or, for a `--tickers` lineage,
merges into it (colfill.stores.postgres.load). A hypertable without a key (colfill.stores.timescale) has no
ON CONFLICT: under the loader's per-day locks the batch's keys are deleted, then its rows inserted.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc

from colfill.calendar import NEW_YORK
from colfill.dialect import POSTGRES
from colfill.errors import SchemaMismatch, TransientError
from colfill.stores.base import LoadBatch
from colfill.stores.postgres.catalog import Catalog
from colfill.stores.postgres.load import create_day_partition, day_partition, load_lock, prepare
from colfill.stores.postgres.schema import KEY, check_name
from colfill.stores.postgres.session import _TRANSIENT_STATES, _Retry, _Session, _sqlstate, retrying

STAGE = "colfill_live_stage"
_ARROW = {"double precision": pa.float64(), "bigint": pa.int64()}  # casts a batch's numbers into these columns


def _ny_dates(ts: pa.ChunkedArray) -> list[dt.date]:
    """The distinct New York trading dates of a UTC timestamp column, in order."""
    local = pc.cast(ts.cast(pa.timestamp("us", tz="UTC")), pa.timestamp("us", tz=str(NEW_YORK)))
    days = pc.unique(pc.cast(pc.local_timestamp(local), pa.date32())).to_pylist()
    return sorted(d for d in days if d is not None)


class LiveWriter:
    """`upsert_live` of PostgresStore, on the catalogue's tables and pool (retried by `session.retrying`)."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def upsert_live(self, table: str, rows: pa.Table) -> int:
        """Upsert live bars into `table` by (ticker, ts) in one transaction; rows written."""
        from colfill.stores.live_rows import check_rows, last_per_key

        check_rows(table, rows)
        check_name(table, "table")
        batch = LoadBatch(table, dt.date.min, last_per_key(rows), source_key="live bars", etag="", size=0,
                          fingerprint="", lineage="live")
        data = prepare(batch)
        if not data.num_rows:
            return 0
        data = self._conform(table, data)
        days = _ny_dates(data["ts"])
        return retrying(self._catalog.pool, lambda s: self._upsert_live(s, table, data, days),
                        lambda n, message: TransientError(f"writing live bars into {table} at "
                                                          f"{self._catalog.target.display} failed {n} times: "
                                                          f"{message}. Hint: nothing was changed; retry."))

    def _conform(self, table: str, data: pa.Table) -> pa.Table:
        """Make or extend the table as the backfill does (new columns only), and cast the batch's numbers to the
        table's column types (binary COPY needs them exact; an integer volume goes into double precision)."""
        cat = self._catalog
        known = cat.columns(table)
        checked = known is not None  # made or checked by this store already
        if known is None:
            with cat.pool.session() as s:
                try:
                    known = cat.existing(s, table)[1]
                    s.rollback()
                except Exception as exc:
                    s.reset()
                    raise cat.error(f"reading the columns of {table}", exc) from None
        new = [f for f in data.schema if f.name not in known]
        if not checked or new:
            keys = [data.schema.field(k) for k in KEY]
            cat.ensure_table(table, pa.schema(keys + [f for f in new if f.name not in KEY]) if known else data.schema)
        types = cat.columns(table) or {}
        for i, f in enumerate(data.schema):
            want = _ARROW.get(types.get(f.name, ""))
            if want is not None and f.type != want:
                try:
                    data = data.set_column(i, f.name, data[f.name].cast(want))
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise SchemaMismatch(f"upsert_live into {table}: column {f.name} ({f.type}) does not fit the "
                                         f"table's {types[f.name]}: {exc}") from None
        return data

    def _upsert_live(self, s: _Session, table: str, data: pa.Table, days: list[dt.date]) -> int:
        cat = self._catalog
        rel = cat.rel(table)
        keyless = cat.keyless(table)
        try:
            if keyless:
                for day in days:  # the loader rewrites a day under this lock: no live row slips in between
                    load_lock(cat, s, table, day)
            if cat.kind(table) == "day-partitioned":
                for day in days:  # in date order, as the loader takes them: no lock cycles
                    load_lock(cat, s, table, day)
                    part, exists = day_partition(cat, s, table, day)
                    if not exists:
                        create_day_partition(cat, s, table, day, part)
            cat.lift_decompression_limit(s)
            s.execute(f"CREATE TEMP TABLE {STAGE} (LIKE {rel} INCLUDING DEFAULTS) ON COMMIT DROP")
            s.copy(None, STAGE, data)
            cols = ", ".join(POSTGRES.quote(c) for c in data.column_names)
            nulls = [c for c in cat.columns(table) or {} if c not in data.column_names]
            if keyless:
                span = pc.min_max(data["ts"])  # as parameters: the chunks outside it are excluded at planning
                s.execute(f"DELETE FROM {rel} AS t USING {STAGE} AS n WHERE t.ticker = n.ticker AND t.ts = n.ts "
                          "AND t.ts >= %s::timestamptz AND t.ts <= %s::timestamptz",
                          [span["min"].as_py().isoformat(), span["max"].as_py().isoformat()])
                s.execute(f"INSERT INTO {rel} ({cols}) SELECT {cols} FROM {STAGE} ORDER BY ticker, ts")
            else:
                s.execute(f"INSERT INTO {rel} AS t ({cols}) SELECT {cols} FROM {STAGE} ORDER BY ticker, ts "
                          f"{POSTGRES.upsert(KEY, data.column_names, nulls)}")
            s.commit()
        except Exception as exc:
            s.reset()
            if _sqlstate(exc) in _TRANSIENT_STATES or s.broken:
                raise _Retry(cat.target.scrub(" ".join(str(exc).split()))) from None
            raise cat.error(f"writing live bars into {table}", exc) from None
        return data.num_rows
