"""TimescaleDB DDL for the bars tables: hypertables, compression (columnstore), policies, a daily aggregate.

Only SQL text lives here (pure functions of the version and names, so tests assert the statements);
`colfill.stores.postgres` decides when to run them. TimescaleDB 2.13+ is required (`by_range` and
DML on compressed chunks); 2.18+ gets the columnstore names, older versions the compression names,
which TimescaleDB keeps accepting. PostgreSQL 15 tops out at TimescaleDB 2.28; 2.29+ needs 16-18:
the statements are the same on both.

Choices, and why:

- **Chunk intervals.** `bars_1m`: 1 day. One US trading day of minute bars is 1-2 M rows, about
  300-500 MB with its key: the chunk being loaded and the few recent ones stay in memory, a reload
  of a day touches one chunk, and one ticker-day (at most 960 extended-hours bars) fills about one
  1,000-row compressed batch. Chunks are aligned on UTC midnight, so in winter (EST) a day's last
  post-market hour (19:00-20:00 New York) lands in the next UTC day's chunk: after a Friday or a
  holiday eve that hour is a small chunk of its own (TimescaleDB warns of its compression ratio).
  They stay so: `by_range` has no origin (2.28 nor 2.29), and the one way to shift the cut to 05:00
  UTC, a partitioning function (`ts - 5 hours`), costs more than it saves, measured on 2.28.3:
  continuous aggregates refuse such hypertables ("custom partitioning functions not supported"), and
  chunk exclusion at executor start-up (generic plans of prepared statements) stops working (0 of 5
  chunks excluded against 5 of 5 with plain `by_range`). Plain chunks keep both (tests show the plans).
- **Compression during a backfill.** A day's chunks are compressed by the load worker as soon as
  loading has moved past them and they are older than the policy's `compress_after`, so a
  backfill's disk stays near its compressed size instead of waiting hours for the policy.
  `bars_1d`: 365 days. A year of day bars for the whole market (~12 k tickers x 252 days, ~3 M rows)
  is about one minute chunk's size, and gives each ticker one compressed batch of ~252 rows a year.
- **Derived timeframes** (`bars_5m`, `bars_1h_rth` ..., colfill.timeframes): the same hypertables, chunks
  sized to hold about a `bars_1m` chunk's rows or fewer: `bars_1m_rth` 1 day, 2m-30m 7 days (a week of
  5-minute bars is about one day of minute bars), `1h` 30 days, `bars_1d_rth` as `bars_1d`; compressed after
  7 days (30 for `1h` and day bars), loaded by the same keyless direct-compress path.
- **Indexes.** `create_default_indexes => false`: the primary key (ticker, ts) already serves the
  queries that matter (one ticker over a time range) and includes the partitioning column, as
  TimescaleDB requires; time-range queries across tickers are served by chunk exclusion. The default
  `ts DESC` index would cost about a quarter of the load rate (measured on 2.28).
- **Compression.** `segmentby = ticker` (queries read one ticker at a time), `orderby = ts`, and a
  policy compressing `bars_1m` chunks older than 7 days and `bars_1d` chunks older than 30 days.
- **Backfill into compressed chunks.** TimescaleDB 2.11+ accepts INSERT/COPY and DELETE on compressed
  chunks: a new day is COPYed in (rows land in the chunk's uncompressed part, the unique check
  decompresses only batches whose ticker and time range could match); a reloaded day's DELETE
  decompresses only the batches overlapping that day. The loader lifts
  `timescaledb.max_tuples_decompressed_per_dml_transaction` (default 100 k) for its own transaction,
  since a whole day is more than that; the policy recompresses the chunk later.
- **No unique index, direct compress** (new hypertables). A unique index makes TimescaleDB check every
  row of a COPY against the chunk and skip direct compress; without it, `COPY` with
  `timescaledb.enable_direct_compress_copy` (2.21+) and `..._client_sorted` (rows sent in (ticker, ts)
  order) writes compressed batches straight away: 0.72 M rows/s against 0.22 M for COPY under the key
  + `compress_chunk`, measured on 2.28.3. One row per (ticker, ts) is then the loader's: a day is deleted and rewritten
  under a per-day advisory lock in one transaction, and its row count checked before commit. A
  non-unique (ticker, ts) index stays: it costs direct compress nothing (it indexes only a chunk's
  uncompressed rows) and serves live writes' DELETE of revised minutes and reads of today's chunk.
  With a daily aggregate, direct compress needs 2.23+; older servers COPY and compress the chunk.
- **Daily continuous aggregate** (`bars_1d_cagg`, optional): OHLCV and transactions of New York days
  from `bars_1m`. It cannot replace the `bars_1d` table, which holds the day files' own bars and the
  indicators (window functions are not allowed in continuous aggregates).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from colfill.bars import DERIVED_TABLES, RTH
from colfill.dialect import POSTGRES

MIN_VERSION = (2, 13)  # by_range(); DML on compressed chunks (2.11)
COLUMNSTORE_VERSION = (2, 18)  # ALTER TABLE ... SET (timescaledb.enable_columnstore ...), add_columnstore_policy
DECOMPRESSION_LIMIT_GUC = "timescaledb.max_tuples_decompressed_per_dml_transaction"
DAILY_CAGG = "bars_1d_cagg"
DIRECT_COMPRESS_GUC = "timescaledb.enable_direct_compress_copy"
DIRECT_COMPRESS_SORTED_GUC = "timescaledb.enable_direct_compress_copy_client_sorted"
DIRECT_COMPRESS_CAGG_VERSION = (2, 23)  # direct compress into hypertables with continuous aggregates


@dataclass(frozen=True)
class HypertableSpec:
    """Per-table chunk interval and compression age, as SQL interval literals."""

    chunk_interval: str
    compress_after: str


MINUTE = HypertableSpec(chunk_interval="1 day", compress_after="7 days")
DAY = HypertableSpec(chunk_interval="365 days", compress_after="30 days")


def derived_spec(timeframe: str) -> HypertableSpec:
    """A derived table's chunks hold about as many rows as a `bars_1m` chunk or fewer (see Chunk intervals):
    minute bars of the session like `bars_1m`, 2-30 minute bars a week, hourly bars a month, day bars like
    `bars_1d`."""
    size = timeframe.removesuffix(RTH)
    if size == "1m":
        return MINUTE
    if size == "1d":
        return DAY
    if size == "1h":
        return HypertableSpec(chunk_interval="30 days", compress_after="30 days")
    return HypertableSpec(chunk_interval="7 days", compress_after="7 days")


SPECS: dict[str, HypertableSpec] = {
    "bars_1m": MINUTE,
    "bars_1d": DAY,
    **{table: derived_spec(tf) for table, tf in DERIVED_TABLES.items()},
}


def parse_version(text: str) -> tuple[int, int]:
    """`'2.14.2'` -> (2, 14); anything unparsable sorts as (0, 0).

    >>> parse_version("2.18.0-dev")
    (2, 18)
    """
    m = re.match(r"(\d+)\.(\d+)", text or "")
    return (int(m[1]), int(m[2])) if m else (0, 0)


quote_ident = POSTGRES.quote
quote_literal = POSTGRES.literal
qualified = POSTGRES.qualified


def hypertable_sql(schema: str, table: str, version: tuple[int, int], ext_schema: str = "public") -> list[str]:
    """Turn a freshly created bars table into a hypertable with compression settings (one transaction).

    The compression policy is separate (`policy_sql`): `add_columnstore_policy` is a procedure and is
    run outside the DDL transaction.
    """
    spec = SPECS[table]
    rel = quote_literal(qualified(schema, table))
    ext = quote_ident(ext_schema)
    stmts = [
        # FROM: it returns a record (hypertable_id, created), which the ADBC driver cannot read as one column
        f"SELECT 1 FROM {ext}.create_hypertable({rel}, {ext}.by_range('ts', "
        f"INTERVAL {quote_literal(spec.chunk_interval)}), create_default_indexes => false, if_not_exists => true)"
    ]
    if version >= COLUMNSTORE_VERSION:
        stmts.append(
            f"ALTER TABLE {qualified(schema, table)} SET (timescaledb.enable_columnstore = true, "
            "timescaledb.segmentby = 'ticker', timescaledb.orderby = 'ts')"
        )
    else:
        stmts.append(
            f"ALTER TABLE {qualified(schema, table)} SET (timescaledb.compress, "
            "timescaledb.compress_segmentby = 'ticker', timescaledb.compress_orderby = 'ts')"
        )
    return stmts


def direct_compress_sql(on: bool) -> list[str]:
    """SET LOCAL of direct compress for the COPY of one load transaction (rows sent sorted by (ticker, ts))."""
    value = "on" if on else "off"
    return [f"SET LOCAL {DIRECT_COMPRESS_GUC} = {value}", f"SET LOCAL {DIRECT_COMPRESS_SORTED_GUC} = {value}"]


def load_index_sql(schema: str, table: str) -> str:
    """The non-unique (ticker, ts) index of a hypertable without a key (see Indexes above)."""
    return f"CREATE INDEX IF NOT EXISTS {quote_ident(table + '_ticker_ts')} ON {qualified(schema, table)} (ticker, ts)"


def policy_sql(schema: str, table: str, version: tuple[int, int], ext_schema: str = "public") -> str:
    """The compression policy of a bars hypertable (idempotent: `if_not_exists => true`)."""
    spec = SPECS[table]
    rel = quote_literal(qualified(schema, table))
    ext = quote_ident(ext_schema)
    after = f"INTERVAL {quote_literal(spec.compress_after)}"
    if version >= COLUMNSTORE_VERSION:
        return f"CALL {ext}.add_columnstore_policy({rel}, after => {after}, if_not_exists => true)"
    return f"SELECT {ext}.add_compression_policy({rel}, compress_after => {after}, if_not_exists => true)"


def daily_cagg_sql(schema: str, version: tuple[int, int], ext_schema: str = "public") -> list[str]:
    """`bars_1d_cagg`: New York day bars aggregated from `bars_1m`, refreshed hourly (run in autocommit).

    The refresh window has no start, so days backfilled long after the fact are materialized too
    (only invalidated ranges are recomputed); it ends one day back, so the current day waits for its
    close.
    """
    ext = quote_ident(ext_schema)
    view = qualified(schema, DAILY_CAGG)
    bucket = f"{ext}.time_bucket(INTERVAL '1 day', ts, 'America/New_York')"
    create = (
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {view} WITH (timescaledb.continuous) AS "
        f"SELECT ticker, {bucket} AS ts, {ext}.first(open, ts) AS open, max(high) AS high, min(low) AS low, "
        f"{ext}.last(close, ts) AS close, sum(volume) AS volume, sum(transactions) AS transactions "
        f"FROM {qualified(schema, 'bars_1m')} GROUP BY ticker, {bucket} WITH NO DATA"
    )
    policy = (
        f"SELECT {ext}.add_continuous_aggregate_policy({quote_literal(view)}, start_offset => NULL, "
        "end_offset => INTERVAL '1 day', schedule_interval => INTERVAL '1 hour', if_not_exists => true)"
    )
    return [create, policy]


def stats_sql(schema: str, table: str, version: tuple[int, int], ext_schema: str = "public") -> dict[str, str]:
    """Status queries of one hypertable: chunk counts, compressed/uncompressed bytes, size, row estimate."""
    ext = quote_ident(ext_schema)
    rel = quote_literal(qualified(schema, table))
    fn = "hypertable_columnstore_stats" if version >= COLUMNSTORE_VERSION else "hypertable_compression_stats"
    return {
        "chunks": (
            "SELECT count(*)::bigint, (count(*) FILTER (WHERE is_compressed))::bigint "
            f"FROM timescaledb_information.chunks WHERE hypertable_schema = {quote_literal(schema)} "
            f"AND hypertable_name = {quote_literal(table)}"
        ),
        "compression": (
            "SELECT before_compression_total_bytes::bigint, after_compression_total_bytes::bigint "
            f"FROM {ext}.{fn}({rel})"
        ),
        "size": f"SELECT {ext}.hypertable_size({rel})::bigint",
        "rows": f"SELECT {ext}.approximate_row_count({rel})::bigint",
    }


def compress_after_sql(schema: str, table: str) -> str:
    """Seconds of the hypertable's compression policy `compress_after` (no row: no policy)."""
    return (
        "SELECT extract(epoch FROM (config->>'compress_after')::interval)::float8 FROM timescaledb_information.jobs "
        f"WHERE hypertable_schema = {quote_literal(schema)} AND hypertable_name = {quote_literal(table)} "
        "AND proc_name IN ('policy_compression', 'policy_columnstore') LIMIT 1"
    )


def overlapping_chunks_sql(schema: str, table: str) -> str:
    """Chunks of a hypertable overlapping [%s, %s): schema-qualified name, end of range (epoch s), compressed."""
    return (
        "SELECT quote_ident(chunk_schema) || '.' || quote_ident(chunk_name), extract(epoch FROM range_end)::float8, "
        "is_compressed "
        f"FROM timescaledb_information.chunks WHERE hypertable_schema = {quote_literal(schema)} "
        f"AND hypertable_name = {quote_literal(table)} AND range_start < %s::timestamptz "
        "AND range_end > %s::timestamptz ORDER BY range_start"
    )


def compress_chunk_sql(ext_schema: str = "public") -> str:
    """Compress one chunk (%s: its regclass). The same function on 2.13-2.29+; on a partially compressed chunk
    (rows added or deleted since) it recompresses, and a fully compressed one is left as it is."""
    return f"SELECT {quote_ident(ext_schema)}.compress_chunk(%s::regclass, true)"


def chunk_sizes_sql(schema: str, table: str, version: tuple[int, int], ext_schema: str = "public") -> str:
    """Bytes before and after compression of the chunks named in %s (an array of `schema.name` texts)."""
    fn = "chunk_columnstore_stats" if version >= COLUMNSTORE_VERSION else "chunk_compression_stats"
    rel = quote_literal(qualified(schema, table))
    return (
        "SELECT coalesce(sum(before_compression_total_bytes), 0)::bigint, "
        "coalesce(sum(after_compression_total_bytes), 0)::bigint "
        f"FROM {quote_ident(ext_schema)}.{fn}({rel}) "
        "WHERE quote_ident(chunk_schema) || '.' || quote_ident(chunk_name) = ANY(%s::text[])"
    )


def refresh_cagg_sql(schema: str, ext_schema: str = "public") -> str:
    """Materialize the daily aggregate over [%s, %s) (a procedure: run in autocommit)."""
    view = quote_literal(qualified(schema, DAILY_CAGG))
    return f"CALL {quote_ident(ext_schema)}.refresh_continuous_aggregate({view}, %s::timestamptz, %s::timestamptz)"
