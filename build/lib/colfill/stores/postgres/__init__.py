"""PostgreSQL/TimescaleDB store: each day partition is loaded exactly once, in one transaction with its manifest row.

`postgresql://user@host/db?schema=NAME` (or `COLFILL_DB_SCHEMA`) chooses the schema; `schema` is removed
before the URL reaches libpq. The password is never printed: messages use the redacted URL and every
driver message is scrubbed of it.

How a partition (`LoadBatch`: one table, one trading day) is applied, in one transaction:

1. an advisory lock on (schema, table, date), so two loaders of the same day queue instead of colliding;
2. on plain PostgreSQL, `bars_1m` is partitioned by New York day (`bars_1m_YYYYMMDD`), and a whole day
   (or the first load of a day for a --tickers lineage) is **swapped in**: COPYed into a new table with
   no index (COPY FREEZE: its pages are written frozen and all-visible, so first reads and vacuum need not
   rewrite them), its (ticker, ts) key built by one sort, attached with a CHECK constraint that spares
   ATTACH its validation scan; a reloaded day's old partition is detached and dropped in the same transaction;
3. otherwise the manifest (`colfill_files`) says whether any lineage loaded that day before:
   - never: **insert** - the rows are COPYed straight into the keyed table;
   - before: **replace** - DELETE the day's rows (of the batch's tickers, when it has a ticker list),
     then COPY. A whole-day reload thereby also drops rows the new version no longer has;
4. the manifest row is upserted, and the transaction commits.

A kill at any moment leaves the day either wholly loaded and recorded or untouched: a rerun loads it
again by the same rules. If the insert or replace COPY meets rows it did not expect (a unique
violation: rows written outside colfill, or rows outside the day's range), the transaction is rolled
back and redone on the general **merge** path: COPY into a temporary staging table, delete the day's
rows missing from it, then `INSERT ... ON CONFLICT (ticker, ts) DO UPDATE` (skipping unchanged rows).

Why: measured on this machine's 2 vCPUs (benchmarks/bench_postgres.py: 1.56 M rows of 21 columns), a
binary COPY into a keyed table costs the server ~2.1 us/row, half of it maintaining the B-tree one row
at a time; into an unindexed table ~0.9 us/row plus ~0.4 us/row to build the key afterwards. So a
swapped-in day loads at ~570 k rows/s on one connection (~130% of a raw keyed COPY, ~900 k on two),
new or reloaded alike; DELETE + COPY into a keyed table reloads at ~220 k, staging + ON CONFLICT at
~130 k. Day partitions also make a day's rows findable without a ts index (partition pruning) and a
day's reload O(1) in the table's size. `load_workers` connections (default 2) load days in parallel.
Each row writes ~260 bytes of WAL: for long backfills raise the server's max_wal_size (say 8-16 GB).

COPY itself: with psycopg installed (`postgresql://` or `postgresql+psycopg://`) the Arrow columns are
encoded to PostgreSQL's binary COPY format with numpy (about 6 M rows/s) and streamed, so the server
is the bottleneck; ADBC's `adbc_ingest` (`postgresql+adbc://`, and the fallback when psycopg is absent)
spends ~1 us/row encoding on the client, between server turns, and loads 15-25% slower on one connection.
Rows are sent in (ticker, ts) order, the primary key's: appends to each ticker's key range and, on a
hypertable, time-ordered inserts within each chunk.

Indexes: the primary key (ticker, ts) only, which serves per-ticker time ranges. Without day partitions
(`bars_1d`, or a plain `bars_1m` an older colfill made) a reload's DELETE names every ticker of the table
(read with a skip scan of the key, ~50 us a ticker) and the day's range, so it never scans the table;
on a hypertable, chunk exclusion on ts does it (see `colfill.stores.timescale` for their DDL).
"""

from colfill.stores.postgres.encode import COPY_CHUNK_ROWS, PG_EPOCH_US, PGCOPY_HEADER, PGCOPY_TRAILER, encode_pgcopy
from colfill.stores.postgres.load import INDEX_BUILD_MEMORY
from colfill.stores.postgres.schema import (
    BAR_BASE,
    DAY_PARTITIONED,
    KEY,
    MANIFEST,
    MANIFEST_COLUMNS,
    MAX_IDENT_BYTES,
    REFERENCE_DDL,
    PgTarget,
    bars_schema,
    check_name,
    distinct_tickers_sql,
    parse_url,
    pg_array,
    pg_type,
)
from colfill.stores.postgres.status import EXACT_COUNT_BELOW, TableStatus
from colfill.stores.postgres.store import InitReport, PostgresStore

__all__ = [
    "BAR_BASE",
    "COPY_CHUNK_ROWS",
    "DAY_PARTITIONED",
    "EXACT_COUNT_BELOW",
    "INDEX_BUILD_MEMORY",
    "KEY",
    "MANIFEST",
    "MANIFEST_COLUMNS",
    "MAX_IDENT_BYTES",
    "PGCOPY_HEADER",
    "PGCOPY_TRAILER",
    "PG_EPOCH_US",
    "REFERENCE_DDL",
    "InitReport",
    "PgTarget",
    "PostgresStore",
    "TableStatus",
    "bars_schema",
    "check_name",
    "distinct_tickers_sql",
    "encode_pgcopy",
    "parse_url",
    "pg_array",
    "pg_type",
]
