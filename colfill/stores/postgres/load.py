"""The loader: a day partition's load paths (swap into a day-partitioned table, insert, replace, merge, or
rewrite into a hypertable without a key), one transaction with its manifest row, retried by
`session.retrying`; and the manifest read back.

Into a hypertable without a unique index (colfill.stores.timescale) one row per (ticker, ts) is kept here:
under the day's advisory lock the day's rows (of the batch's tickers) are deleted, the batch COPYed in (with
direct compress where the server has it), and the rows the day then holds counted against the rows sent
before commit. A difference rolls back and the day is tried once more without direct compress (still
experimental upstream), then it is an error naming the day: never a silent loss or duplicate."""

from __future__ import annotations

import collections
import datetime as dt
import threading
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from colfill.dialect import POSTGRES
from colfill.errors import InvalidArgument, SchemaMismatch, StoreError, TransientError
from colfill.stores import timescale as tsdb
from colfill.stores.base import LoadBatch, day_bounds
from colfill.stores.postgres.catalog import Catalog
from colfill.stores.postgres.schema import KEY, MANIFEST, check_name, distinct_tickers_sql, pg_array
from colfill.stores.postgres.session import _TRANSIENT_STATES, _Conflict, _Retry, _Session, _sqlstate, retrying

_MANIFEST_UPSERT = POSTGRES.upsert(("table_name", "date", "lineage"), (
    "source_key", "etag", "size", "fingerprint", "rows", "status", "loaded_at"))
INDEX_BUILD_MEMORY = "256MB"  # maintenance_work_mem for a day's key: a 2 M-row day sorts in memory


def prepare(batch: LoadBatch) -> pa.Table:
    """The batch with colfill's column types, in (ticker, ts) order; duplicate keys are refused here."""
    data = batch.data
    columns, names = [], []
    for f, col in zip(data.schema, data.columns):
        t = f.type
        if pa.types.is_dictionary(t):
            col, t = col.cast(t.value_type), t.value_type
        if pa.types.is_string_view(t):
            col = col.cast(pa.large_string())
        elif pa.types.is_timestamp(t):
            col = col.cast(pa.timestamp("us", tz="UTC"), safe=False)
        elif pa.types.is_integer(t):
            col = col.cast(pa.int64())
        elif pa.types.is_floating(t):
            col = col.cast(pa.float64())
        elif pa.types.is_null(t):
            col = col.cast(pa.float64())
        elif not (pa.types.is_large_string(t) or pa.types.is_string(t)):
            raise SchemaMismatch(f"{batch.source_key}: column {f.name} has type {t}, which colfill does not "
                                 "load into PostgreSQL. Hint: cast it to float64")
        columns.append(col)
        names.append(check_name(f.name, f"column of {batch.table}"))
    data = pa.Table.from_arrays(columns, names=names)
    missing = [k for k in KEY if k not in names]
    if missing:
        raise SchemaMismatch(
            f"{batch.source_key}: no {' and '.join(missing)} column; bars are keyed by (ticker, ts)")
    if data.num_rows < 2:
        return data
    ordered, dupes = _key_order(data)
    if not ordered:
        data = data.sort_by([("ticker", "ascending"), ("ts", "ascending")])
        _, dupes = _key_order(data)
    if dupes is not None:
        ticker, ts = data["ticker"][dupes].as_py(), data["ts"][dupes].as_py()
        raise StoreError(
            f"{batch.source_key}: the partition for {batch.table} {batch.date} has the key (ticker, ts) = "
            f"({ticker!r}, {ts}) more than once. Hint: nothing was loaded; the staged partition is invalid, "
            "restage it."
        )
    return data

def day_range(date: dt.date) -> str:
    """`('lo') TO ('hi')`: the New York day's bounds as partition bound literals (DDL takes no parameters;
    both are ISO timestamps colfill formats itself)."""
    lo, hi = (t.isoformat() for t in day_bounds(date))
    return f"('{lo}') TO ('{hi}')"


def day_partition(catalog: Catalog, s: _Session, table: str, date: dt.date) -> tuple[str, bool]:
    """(name of the day's partition of a day-partitioned table, whether it exists). Partitions are named
    `<table>_YYYYMMDD` by colfill; a table of that name that is not the day's partition is refused."""
    name = f"{table}_{date:%Y%m%d}"
    check_name(f"{name}_new_pkey", "partition index")  # the longest name a swap makes
    row = s.execute(
        "SELECT c.relispartition AND i.inhparent = to_regclass(%s::text) FROM pg_class c "
        "LEFT JOIN pg_inherits i ON i.inhrelid = c.oid WHERE c.oid = to_regclass(%s::text)",
        [catalog.rel(table), catalog.rel(name)])
    if row and not row[0][0]:
        raise StoreError(f"{catalog.schema}.{name} exists but is not the {date} partition of "
                         f"{catalog.schema}.{table}. Hint: colfill names its day partitions so; rename that "
                         "table (colfill never drops it for you).")
    return name, bool(row)


def create_day_partition(catalog: Catalog, s: _Session, table: str, date: dt.date, name: str) -> None:
    """An empty partition `name` of `table` for the day, for rows merged or upserted into it."""
    s.execute(f"CREATE TABLE {catalog.rel(name)} PARTITION OF {catalog.rel(table)} FOR VALUES FROM "
              f"{day_range(date)}")


def load_lock(catalog: Catalog, s: _Session, table: str, date: dt.date) -> None:
    """The advisory lock on (schema, table, day) held by whatever writes that day: two writers of it queue."""
    s.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s::text, 0))",
              [f"colfill-load:{catalog.schema}.{table}:{date.isoformat()}"])


class _Mismatch(Exception):
    """The day's row count after its COPY differs from the rows sent (rolled back)."""

    def __init__(self, written: int, sent: int) -> None:
        super().__init__(f"{written} rows written, {sent} sent")


def rows_in_day(batch: LoadBatch, data: pa.Table) -> int:
    """Rows of `data` that the day's filter (its New York day, its tickers when it names them) selects."""
    lo, hi = day_bounds(batch.date)
    mask = pc.and_(pc.greater_equal(data["ts"], pa.scalar(lo, data.schema.field("ts").type)),
                   pc.less(data["ts"], pa.scalar(hi, data.schema.field("ts").type)))
    if batch.tickers is not None:
        mask = pc.and_(mask, pc.is_in(data["ticker"], pa.array(list(batch.tickers), data.schema.field("ticker").type)))
    return int(pc.sum(pc.cast(mask, pa.int64())).as_py() or 0)


class Loader:
    """Day loads: one partition with its manifest row per transaction, and the manifest read back.

    `strategy` is for tests and benchmarks: "auto" (insert new days, replace loaded ones), or
    "replace"/"merge" to force a path. `paths` counts the paths taken. `compress` False (--no-compress) keeps
    direct compress off: the chunks are left to the policy."""

    def __init__(self, catalog: Catalog, strategy: str = "auto", compress: bool = True) -> None:
        if strategy not in ("auto", "replace", "merge"):
            raise InvalidArgument(f"unknown load strategy {strategy!r}")
        self._catalog = catalog
        self.strategy = strategy
        self.compress = compress
        self.paths: collections.Counter[str] = collections.Counter()
        self._stats_lock = threading.Lock()

    def load(self, batch: LoadBatch) -> int:
        """Apply one partition with its manifest row, in one transaction; returns the rows written."""
        check_name(batch.table, "table")
        cat = self._catalog
        data = prepare(batch)
        known = cat.columns(batch.table)
        if known is None or any(c not in known for c in data.column_names):
            cat.ensure_table(batch.table, data.schema)

        def attempt(s: _Session) -> int:
            try:
                return self.apply(s, batch, data, self.strategy)
            except _Conflict:  # rolled back: the merge path replaces whatever rows are there
                return self.apply(s, batch, data, "merge")
            except _Mismatch:  # rolled back: once more without direct compress
                with self._stats_lock:
                    self.paths["verify-retry"] += 1
                try:
                    return self.apply(s, batch, data, self.strategy, direct=False)
                except _Mismatch as again:
                    raise StoreError(
                        f"loading {batch.source_key} ({batch.table} {batch.date}) into {cat.target.display}: the day "
                        f"held a different number of rows than were sent after its COPY ({again}), with and "
                        "without direct compress. Hint: nothing was changed (rolled back); the server lost or "
                        "added rows, check its TimescaleDB version and triggers on the table.") from None

        return retrying(cat.pool, attempt, lambda n, message: TransientError(
            f"loading {batch.source_key} ({batch.table} {batch.date}) into {cat.target.display} failed {n} times: "
            f"{message}. Hint: nothing was changed; rerun to retry."))

    def apply(self, s: _Session, batch: LoadBatch, data: pa.Table, strategy: str, direct: bool = True) -> int:
        """One attempt at the partition on session `s`, committed with its manifest row, else rolled back: raises
        _Conflict (redo as "merge"), _Mismatch (redo with `direct` False), _Retry (transient) or a StoreError.
        `load` calls it, tests wrap it."""
        cat = self._catalog
        table, rel = batch.table, cat.rel(batch.table)
        params: list[object] = [t.isoformat() for t in day_bounds(batch.date)]
        if batch.tickers is not None:
            params.append(pg_array(batch.tickers))
        try:
            load_lock(cat, s, table, batch.date)
            cat.lift_decompression_limit(s)
            path = strategy
            if strategy == "auto":
                seen = s.execute(
                    f"SELECT EXISTS (SELECT 1 FROM {cat.rel(MANIFEST)} WHERE table_name = %s::text "
                    "AND date = %s::date)", [table, batch.date.isoformat()])[0][0]
                path = "replace" if seen else "insert"
            by_day = cat.kind(table) == "day-partitioned"
            part, exists = day_partition(cat, s, table, batch.date) if by_day else ("", False)
            if cat.keyless(table):
                path = "replace" if path == "merge" else path
                self._rewrite_day(s, batch, data, params, direct and self.compress and cat.direct_compress(table))
            elif by_day and path != "merge" and (not exists or batch.tickers is None):
                self._swap_day(s, batch, data, part, replacing=exists)
            else:
                if by_day and not exists:
                    create_day_partition(cat, s, table, batch.date, part)
                if path == "replace":
                    s.execute(f"DELETE FROM {rel} AS t WHERE {self.partition_filter(batch)}", params)
                if path in ("insert", "replace"):
                    if data.num_rows:
                        s.copy(cat.schema, table, data)
                else:
                    self._merge(s, rel, data, self.partition_filter(batch), params)
            s.execute(
                f"INSERT INTO {cat.rel(MANIFEST)} (table_name, date, lineage, source_key, etag, size, fingerprint, "
                '"rows", status, loaded_at) VALUES (%s::text, %s::date, %s::text, %s::text, %s::text, %s::bigint, '
                f"%s::text, %s::bigint, 'loaded', now()) {_MANIFEST_UPSERT}",
                [table, batch.date.isoformat(), batch.lineage, batch.source_key, batch.etag, int(batch.size),
                 batch.fingerprint, data.num_rows],
            )
            s.commit()
        except Exception as exc:
            s.reset()
            if isinstance(exc, _Mismatch):
                raise
            state = _sqlstate(exc)
            if state == "23505" and strategy != "merge":
                raise _Conflict() from None
            if state in _TRANSIENT_STATES or s.broken:
                raise _Retry(cat.target.scrub(" ".join(str(exc).split()))) from None
            hint = {
                "23502": "the partition has a null in a NOT NULL column (ticker or ts); nothing was loaded",
                "42501": "the user needs INSERT, DELETE and CREATE TEMP privileges on the schema",
            }.get(state or "", "nothing was changed (the transaction was rolled back); rerun to retry")
            raise cat.error(f"loading {batch.source_key} ({table} {batch.date})", exc, hint) from None
        with self._stats_lock:
            self.paths[path] += 1
        return data.num_rows

    def _rewrite_day(self, s: _Session, batch: LoadBatch, data: pa.Table, params: list[object], direct: bool) -> None:
        """Into a hypertable without a key: delete the day's rows, COPY the batch (sorted by (ticker, ts), as
        `prepare` leaves it and direct compress's client-sorted mode needs), count what the day holds."""
        cat = self._catalog
        rel, where = cat.rel(batch.table), self.partition_filter(batch)
        s.execute(f"DELETE FROM {rel} AS t WHERE {where}", params)
        if direct:
            for stmt in tsdb.direct_compress_sql(True):
                s.execute(stmt)
            with self._stats_lock:
                self.paths["direct-compress"] += 1
        if data.num_rows:
            s.copy(cat.schema, batch.table, data, keep_order=direct)
        written = int(s.execute(f"SELECT count(*)::bigint FROM {rel} AS t WHERE {where}", params)[0][0])
        sent = rows_in_day(batch, data)
        if written != sent:
            raise _Mismatch(written, sent)

    def _swap_day(self, s: _Session, batch: LoadBatch, data: pa.Table, name: str, replacing: bool) -> None:
        """Build the day as a new table and attach it as the day's partition, replacing any old one.

        The rows are COPYed into a table without an index, the key is then built by one sort (about half
        the server work of inserting every row into a B-tree, measured: 0.87 + 0.43 us/row against 2.1),
        and a CHECK constraint equal to the partition bounds lets ATTACH skip its validation scan. A
        replaced day's old partition is detached and dropped in the same transaction, so readers see the
        old day or the new one, and a kill leaves the old one in place.
        """
        cat = self._catalog
        rel, final = cat.rel(batch.table), cat.rel(name)
        build = f"{name}_new" if replacing else name
        lo, hi = (t.isoformat() for t in day_bounds(batch.date))
        if replacing:  # one swap per table at a time: two DETACHes upgrading their locks would deadlock
            s.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s::text, 0))",
                      [f"colfill-swap:{cat.schema}.{batch.table}"])
        s.execute(f"CREATE TABLE {cat.rel(build)} (LIKE {rel} INCLUDING DEFAULTS)")
        s.execute(f"ALTER TABLE {cat.rel(build)} ADD CONSTRAINT {POSTGRES.quote(name + '_day')} "
                  f"CHECK (ts >= '{lo}' AND ts < '{hi}')")
        if data.num_rows:
            s.copy(cat.schema, build, data, freeze=True)
        # One sort in this backend: parallel build workers only compete with the other loads for the cores.
        s.execute(f"SET LOCAL maintenance_work_mem = '{INDEX_BUILD_MEMORY}'")
        s.execute("SET LOCAL max_parallel_maintenance_workers = 0")
        s.execute(f"ALTER TABLE {cat.rel(build)} ADD CONSTRAINT {POSTGRES.quote(build + '_pkey')} "
                  "PRIMARY KEY (ticker, ts)")
        if replacing:
            s.execute(f"ALTER TABLE {rel} DETACH PARTITION {final}")
            s.execute(f"DROP TABLE {final}")
            s.execute(f"ALTER TABLE {cat.rel(build)} RENAME TO {POSTGRES.quote(name)}")
            s.execute(f"ALTER INDEX {cat.rel(build + '_pkey')} RENAME TO {POSTGRES.quote(name + '_pkey')}")
        s.execute(f"ALTER TABLE {rel} ATTACH PARTITION {final} FOR VALUES FROM {day_range(batch.date)}")

    def _merge(self, s: _Session, rel: str, data: pa.Table, where: str, params: list[object]) -> None:
        """Staging table + delete-missing + INSERT ... ON CONFLICT DO UPDATE: replaces whatever rows exist."""
        s.execute(f"CREATE TEMP TABLE colfill_stage (LIKE {rel} INCLUDING DEFAULTS) ON COMMIT DROP")
        if data.num_rows:
            s.copy(None, "colfill_stage", data)
        s.execute("ANALYZE colfill_stage")
        s.execute(
            f"DELETE FROM {rel} AS t WHERE {where} "
            "AND NOT EXISTS (SELECT 1 FROM colfill_stage s WHERE s.ticker = t.ticker AND s.ts = t.ts)", params)
        cols = ", ".join(POSTGRES.quote(c) for c in data.column_names)
        s.execute(f"INSERT INTO {rel} AS t ({cols}) SELECT {cols} FROM colfill_stage ORDER BY ticker, ts "
                  f"{POSTGRES.upsert(KEY, data.column_names, unless_same='t')}")

    def partition_filter(self, batch: LoadBatch) -> str:
        """The rows a partition replaces, a condition on alias t (parameters: the day's bounds, then its tickers
        when it names them): its New York day, of its tickers when it names them. The ticker condition lets a
        plain table use its (ticker, ts) key; a hypertable excludes chunks by ts, a day-partitioned table
        prunes partitions. Public so that tests can EXPLAIN it."""
        where = "t.ts >= %s::timestamptz AND t.ts < %s::timestamptz"
        if batch.tickers is not None:
            return where + " AND t.ticker = ANY(%s::text[])"
        if self._catalog.kind(batch.table) in ("hypertable", "day-partitioned"):
            return where  # chunk exclusion or partition pruning finds the day
        return where + f" AND t.ticker = ANY(ARRAY({distinct_tickers_sql(self._catalog.rel(batch.table))}))"

    def loaded(self, table: str, lineage: str) -> dict[dt.date, str]:
        """Fingerprints of the days of `table` loaded for `lineage`, from the manifest."""
        cat = self._catalog
        with cat.pool.session() as s:
            try:
                if s.execute("SELECT to_regclass(%s::text) IS NULL", [cat.rel(MANIFEST)])[0][0]:
                    rows: list[tuple[Any, ...]] = []
                else:
                    rows = s.execute(
                        f"SELECT date::text, fingerprint FROM {cat.rel(MANIFEST)} WHERE table_name = %s::text "
                        "AND lineage = %s::text AND status = 'loaded'", [table, lineage])
                s.rollback()
            except Exception as exc:
                raise cat.error("reading the manifest", exc, "check that the user may read the schema") from None
        return {dt.date.fromisoformat(d): fp for d, fp in rows}


def _key_order(data: pa.Table) -> tuple[bool, int | None]:
    """(rows are in strictly increasing (ticker, ts) order, index of a duplicated key or None)."""
    ticker, ts = data["ticker"].combine_chunks(), data["ts"].combine_chunks()
    n = len(ticker)
    a_t, b_t = ticker.slice(0, n - 1), ticker.slice(1)
    a_s, b_s = ts.slice(0, n - 1), ts.slice(1)
    same_ticker = pc.equal(a_t, b_t)
    ordered = pc.or_(pc.less(a_t, b_t), pc.and_(same_ticker, pc.less(a_s, b_s)))
    is_ordered = bool(pc.all(pc.fill_null(ordered, False)).as_py())
    dup = pc.and_(same_ticker, pc.equal(a_s, b_s))
    dup_at = pc.index(pc.fill_null(dup, False), True).as_py()
    return is_ordered, (None if dup_at < 0 else int(dup_at))
