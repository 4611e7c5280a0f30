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

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import importlib.util
import json
import math
import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from colfill.config import env
from colfill.errors import ColfillError, InvalidArgument, SchemaMismatch, StoreError, TransientError
from colfill.stores import timescale as tsdb
from colfill.stores.base import BAR_TABLES, STATE_TABLE, LoadBatch, day_bounds
from colfill.stores.timescale import qualified, quote_ident

PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 UTC in Unix microseconds: binary timestamptz's origin
MANIFEST = "colfill_files"
KEY = ("ticker", "ts")
MAX_IDENT_BYTES = 63  # NAMEDATALEN - 1: longer names are silently truncated by PostgreSQL
COPY_CHUNK_ROWS = 32_768  # rows per encoded COPY message (~7 MB for bars): the fastest measured
EXACT_COUNT_BELOW = 5_000_000  # status counts rows exactly below this estimate, else reports the estimate
DAY_PARTITIONED = frozenset({"bars_1m"})  # plain-PostgreSQL tables made of one partition per New York day
INDEX_BUILD_MEMORY = "256MB"  # maintenance_work_mem for a day's key: a 2 M-row day sorts in memory

# Columns every bars table has, before the indicator columns (all float64).
BAR_BASE: tuple[tuple[str, pa.DataType], ...] = (
    ("ticker", pa.string()),
    ("ts", pa.timestamp("us", tz="UTC")),
    ("open", pa.float64()),
    ("high", pa.float64()),
    ("low", pa.float64()),
    ("close", pa.float64()),
    ("volume", pa.float64()),
    ("vw", pa.float64()),
    ("transactions", pa.int64()),
)

# Type an existing column may have for an Arrow type we load into it (binary COPY formats must match).
_COMPATIBLE = {
    "text": ("text", "character varying"),
    "timestamp with time zone": ("timestamp with time zone",),
    "double precision": ("double precision",),
    "bigint": ("bigint",),
}

_TRANSIENT_STATES = {"40001", "40P01", "55P03", "57P01", "57P02", "57P03", "08000", "08003", "08006", "08001"}

REFERENCE_DDL = {
    "tickers": """(
        ticker text PRIMARY KEY,
        name text,
        market text,
        locale text,
        primary_exchange text,
        type text,
        active boolean,
        currency_name text,
        cik text,
        composite_figi text,
        share_class_figi text,
        list_date date,
        delisted_utc timestamptz,
        last_updated_utc timestamptz
    )""",
    "splits": """(
        ticker text NOT NULL,
        execution_date date NOT NULL,
        split_from double precision NOT NULL,
        split_to double precision NOT NULL,
        id text,
        PRIMARY KEY (ticker, execution_date)
    )""",
    "dividends": """(
        ticker text NOT NULL,
        ex_dividend_date date NOT NULL,
        dividend_type text NOT NULL DEFAULT 'CD',
        cash_amount double precision,
        currency text,
        declaration_date date,
        record_date date,
        pay_date date,
        frequency integer,
        id text,
        PRIMARY KEY (ticker, ex_dividend_date, dividend_type)
    )""",
}

MANIFEST_COLUMNS = """(
    table_name text NOT NULL,
    date date NOT NULL,
    lineage text NOT NULL,
    source_key text NOT NULL,
    etag text NOT NULL,
    size bigint NOT NULL,
    fingerprint text NOT NULL,
    "rows" bigint NOT NULL,
    status text NOT NULL,
    loaded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_name, date, lineage)
)"""


def bars_schema(indicator_columns: Sequence[str] = ()) -> pa.Schema:
    """The Arrow schema of a bars table: ticker, ts (UTC microseconds), OHLCV, vw, transactions, indicators."""
    return pa.schema([*BAR_BASE, *((c, pa.float64()) for c in indicator_columns)])



def pg_type(t: pa.DataType) -> str:
    """The PostgreSQL column type colfill creates for an Arrow type."""
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "text"
    if pa.types.is_timestamp(t):
        return "timestamp with time zone"
    if pa.types.is_integer(t):
        return "bigint"
    if pa.types.is_floating(t):
        return "double precision"
    raise SchemaMismatch(f"column type {t} cannot be loaded into PostgreSQL by colfill. Hint: cast it to float64")


def pg_array(values: Sequence[str]) -> str:
    """A text[] literal, passed as a bound parameter (`%s::text[]`): quotes and backslashes escaped.

    >>> pg_array(['AAPL', 'A"B'])
    '{"AAPL","A\\\\"B"}'
    """
    return "{" + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "}"


def check_name(name: str, what: str) -> str:
    """Refuse names PostgreSQL would truncate or cannot hold; anything else is fine, since names are quoted."""
    if not name or "\x00" in name or len(name.encode()) > MAX_IDENT_BYTES:
        raise InvalidArgument(
            f"{what} {name!r} cannot be a PostgreSQL name. Hint: use 1 to {MAX_IDENT_BYTES} bytes, no NUL character"
        )
    return name


# --- URL ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PgTarget:
    """A parsed `--db` URL: what libpq gets (`dsn`, secret), what people see (`display`), and colfill's options."""

    dsn: str
    display: str
    dbname: str
    schema: str | None
    driver: str
    secrets: tuple[str, ...]

    def scrub(self, text: str) -> str:
        """`text` without the password (raw or percent-decoded) and with the URL redacted."""
        text = text.replace(self.dsn, self.display)
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def with_dbname(self, dbname: str) -> str:
        parts = urlsplit(self.dsn)
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "dbname"]
        return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, urlencode(query, safe="/:"), ""))


def parse_url(url: str) -> PgTarget:
    """Split colfill's options (`+driver` in the scheme, `schema=` in the query) from what libpq understands.

    >>> t = parse_url("postgresql://me:pw@db.example/prices?schema=bars&sslmode=require")
    >>> (t.display, t.schema, t.dbname, t.driver)
    ('postgresql://me:***@db.example/prices?schema=bars&sslmode=require', 'bars', 'prices', 'auto')
    """
    parts = urlsplit(url)
    scheme, _, driver = parts.scheme.partition("+")
    secrets: list[str] = []
    if parts.password:
        secrets += [parts.password, unquote(parts.password)]
    query = parse_qsl(parts.query, keep_blank_values=True)
    secrets += [v for k, v in query if k == "password" and v]
    display = _redact(url)
    if scheme not in ("postgresql", "postgres"):
        raise InvalidArgument(f"--db {display!r} is not a postgresql:// URL")
    driver = driver or "auto"
    if driver not in ("auto", "psycopg", "adbc"):
        raise InvalidArgument(
            f"--db {display!r}: unknown driver {driver!r}. Hint: postgresql:// (automatic), postgresql+psycopg:// "
            "or postgresql+adbc://"
        )
    schema = next((v for k, v in query if k == "schema"), None)
    kept = [(k, v) for k, v in query if k != "schema"]
    keys = {k for k, _ in kept}
    if "connect_timeout" not in keys:
        kept.append(("connect_timeout", "10"))  # an unreachable host fails in seconds, not minutes
    if "application_name" not in keys:
        kept.append(("application_name", "colfill"))
    dsn = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(kept, safe="/:"), ""))
    dbname = unquote(parts.path.lstrip("/")) or dict(kept).get("dbname") or unquote(parts.username or "")
    return PgTarget(dsn=dsn, display=display, dbname=dbname, schema=schema, driver=driver,
                    secrets=tuple(sorted({s for s in secrets if s}, key=len, reverse=True)))


def _redact(url: str) -> str:
    from colfill.stores import redact_url

    shown = redact_url(url)
    return re.sub(r"([?&]password=)[^&]*", r"\1***", shown)


# --- binary COPY encoding -----------------------------------------------------------------------------

PGCOPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"  # signature, flags, ext
PGCOPY_TRAILER = b"\xff\xff"


def encode_pgcopy(table: pa.Table, chunk_rows: int = COPY_CHUNK_ROWS) -> tuple[list[str], Iterator[bytes | memoryview]]:
    """Encode `table` as a PostgreSQL binary COPY stream: (column order to name in COPY, byte chunks).

    Vectorised, no per-row Python (~0.17 us a row for 21-column bars): within a chunk, rows that share a
    layout (which values are null, how long each string is) are written into one buffer with exactly
    PostgreSQL's row layout (int16 field count, then int32 length + big-endian value per field, nothing
    for a null) through strided numpy views. Rows are grouped by layout inside a chunk and otherwise keep
    their order, so a ticker's bars (one string length) stay together and in time order. Fixed-width
    columns go first and strings last: the COPY names the columns. Types: string/large_string (text),
    float64, int64, timestamp[us, UTC] (timestamptz).
    """
    fixed: list[tuple[str, str]] = []
    var: list[str] = []
    for f in table.schema:
        t = f.type
        if pa.types.is_float64(t):
            fixed.append((f.name, ">f8"))
        elif pa.types.is_int64(t):
            fixed.append((f.name, ">i8"))
        elif pa.types.is_timestamp(t) and t.unit == "us":
            fixed.append((f.name, "ts"))
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            var.append(f.name)
        else:
            raise TypeError(f"encode_pgcopy: column {f.name} has unsupported type {t}")
    order = [n for n, _ in fixed] + var
    table = table.combine_chunks()
    arrays = {n: table.column(n).chunk(0) if table.column(n).num_chunks else pa.array([], table.schema.field(n).type)
              for n in order}

    def chunks() -> Iterator[bytes | memoryview]:
        yield PGCOPY_HEADER
        for start in range(0, table.num_rows, chunk_rows):
            yield from _encode_rows({k: a.slice(start, chunk_rows) for k, a in arrays.items()}, fixed, var)
        yield PGCOPY_TRAILER

    return order, chunks()


def _string_parts(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start offsets into the data buffer, lengths with -1 for null, data buffer) of a string array."""
    width = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offsets = np.frombuffer(arr.buffers()[1], dtype=width)[arr.offset: arr.offset + len(arr) + 1].astype(np.int64)
    lens = np.diff(offsets)
    if arr.null_count:
        lens = np.where(arr.is_valid().to_numpy(zero_copy_only=False), lens, -1)
    data = arr.buffers()[2]
    return offsets[:-1], lens, np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)


def _be(value: int, kind: str) -> int:
    """`value` encoded big-endian, as the native integer with the same bytes (assigned without a byteswap)."""
    native = {">i2": "<i2", ">i4": "<i4"}[kind] if np.little_endian else kind
    return int(np.array(value, dtype=kind).view(native))


def _values(arr: pa.Array, kind: str) -> np.ndarray:
    """The column's values as native int64/float64 (timestamps shifted to PostgreSQL's epoch); they are
    byte-swapped on their way into the buffer. Values under nulls are whatever the buffer holds: they are
    never written."""
    base = np.float64 if kind == ">f8" else np.int64
    raw = np.frombuffer(arr.buffers()[1], dtype=base)[arr.offset: arr.offset + len(arr)]
    return raw - PG_EPOCH_US if kind == "ts" else raw


def _field(buf: np.ndarray, rows: int, width: int, offset: int, dtype: Any, cols: int = 0,
           step: int = 12) -> np.ndarray:
    """A strided view into `buf` (rows of `width` bytes) of one field at `offset` in every row, or of `cols`
    fields `step` bytes apart (a run of int32 lengths or of 8-byte values)."""
    shape, strides = ((rows, cols), (width, step)) if cols else ((rows,), (width,))
    return np.ndarray(shape, dtype=dtype, buffer=buf, offset=offset, strides=strides)


def _encode_rows(arrays: dict[str, pa.Array], fixed: list[tuple[str, str]], var: list[str]) -> list[memoryview]:
    """The rows' COPY encoding, one buffer per row layout (see encode_pgcopy)."""
    m = len(next(iter(arrays.values()))) if arrays else 0
    if m == 0:
        return []
    values = [_values(arrays[name], kind) for name, kind in fixed]
    valid = [arrays[name].is_valid().to_numpy(zero_copy_only=False) if arrays[name].null_count else None
             for name, _ in fixed]
    strings = [_string_parts(arrays[name]) for name in var]

    # each row's layout as one integer: a bit per nullable column, then each string's length + 1
    parts = [~v for v in valid if v is not None] + [lens + 1 for _, lens, _ in strings]
    bits = sum(1 for v in valid if v is not None) + sum(int(lens.max() + 1).bit_length() for _, lens, _ in strings)
    if not parts:
        key = np.zeros(m, dtype=np.int64)
    elif bits <= 62:
        key, shift = np.zeros(m, dtype=np.int64), 0
        for part in parts:
            key |= part.astype(np.int64) << shift
            shift += 1 if part.dtype == np.bool_ else int(part.max()).bit_length()
    else:
        key = np.unique(np.column_stack(parts).astype(np.int64), axis=0, return_inverse=True)[1].ravel()
    if key.min() == key.max():
        groups: list[np.ndarray | None] = [None]
    else:
        _, inverse = np.unique(key, return_inverse=True)
        inverse = inverse.ravel()
        order = np.argsort(inverse.astype(np.int32), kind="stable")
        groups = [*np.split(order, np.cumsum(np.bincount(inverse))[:-1])]

    kinds = [">f8" if kind == ">f8" else ">i8" for _, kind in fixed]
    count, eight, null = _be(len(fixed) + len(var), ">i2"), _be(8, ">i4"), _be(-1, ">i4")
    out = []
    for rows in groups:
        first = 0 if rows is None else int(rows[0])
        n = m if rows is None else len(rows)
        present = [v is None or bool(v[first]) for v in valid]
        widths = [int(lens[first]) for _, lens, _ in strings]
        width = 2 + sum(12 if p else 4 for p in present) + sum(4 + max(w, 0) for w in widths)
        buf = np.empty(n * width, dtype=np.uint8)
        _field(buf, n, width, 0, np.int16)[...] = count
        offset, i = 2, 0
        while i < len(fixed):
            if not present[i]:
                _field(buf, n, width, offset, np.int32)[...] = null
                offset, i = offset + 4, i + 1
                continue
            run = i
            while run < len(fixed) and present[run]:
                run += 1
            _field(buf, n, width, offset, np.int32, run - i)[...] = eight
            for j in range(i, run):  # one strided pass per column, byte-swapping as it copies
                _field(buf, n, width, offset + 4 + 12 * (j - i), kinds[j])[...] = (
                    values[j] if rows is None else values[j][rows])
            offset, i = offset + 12 * (run - i), run
        for (starts, _, data), w in zip(strings, widths):
            _field(buf, n, width, offset, np.int32)[...] = _be(w, ">i4")
            if w > 0:
                at = starts if rows is None else starts[rows]
                _field(buf, n, width, offset + 4, np.uint8, w, 1)[...] = data[at[:, None] + np.arange(w)]
            offset += 4 + max(w, 0)
        out.append(buf.data)
    return out


# --- indicator_state (the live hand-off, see colfill.live.handoff) -------------------------------------

_STATE_TYPES: dict[str, tuple[str, pa.DataType]] = {  # type as format_type prints it -> (DDL type, Arrow type)
    "text": ("text", pa.string()),
    "bigint": ("bigint", pa.int64()),
    "double precision": ("double precision", pa.float64()),
    "timestamp with time zone": ("timestamptz", pa.timestamp("us", tz="UTC")),
    "date": ("date", pa.date32()),
    "double precision[]": ("double precision[]", pa.list_(pa.float64())),
}


def _state_type(t: pa.DataType) -> str:
    """The format_type name of the state column for Arrow type `t`."""
    if (pa.types.is_list(t) or pa.types.is_large_list(t)) and pa.types.is_floating(t.value_type):
        return "double precision[]"
    if pa.types.is_date(t):
        return "date"
    return pg_type(t)


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value).replace("inf", "Infinity").replace("nan", "NaN")
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return value


# --- sessions: one connection each, psycopg or ADBC -------------------------------------------------

class _Conflict(Exception):
    """A unique violation on the insert/replace path: redo the partition on the merge path."""


class _Retry(Exception):
    """A transient failure (deadlock, serialization, dropped connection): worth another attempt."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


def _sqlstate(exc: BaseException) -> str | None:
    state = getattr(exc, "sqlstate", None)
    return state if isinstance(state, str) else None


class _Session:
    """One connection in a transaction of its own; `%s` placeholders; every parameter cast in the SQL."""

    driver = ""
    rowcount = -1

    def execute(self, sql: str, params: Sequence[object] | None = None) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def copy(self, schema: str | None, table: str, data: pa.Table, freeze: bool = False) -> None:
        """COPY `data` into the table; `freeze` (a table made in this transaction) writes its rows frozen and
        all-visible, so neither the first reads nor vacuum have to rewrite the day's pages later."""
        raise NotImplementedError

    def commit(self) -> None:
        raise NotImplementedError

    def rollback(self) -> None:
        raise NotImplementedError

    def set_autocommit(self, on: bool) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    @property
    def broken(self) -> bool:
        raise NotImplementedError

    def reset(self) -> None:
        """After a failure: roll back, or mark the session broken when even that fails."""
        try:
            self.rollback()
        except Exception:
            self._dead = True

    _dead = False


class _PsycopgSession(_Session):
    """psycopg 3: SQL as is, COPY as colfill's encoded binary stream."""

    driver = "psycopg"

    def __init__(self, dsn: str) -> None:
        import psycopg

        self.conn = psycopg.connect(dsn, autocommit=False)

    def execute(self, sql: str, params: Sequence[object] | None = None) -> list[tuple[Any, ...]]:
        cur = self.conn.execute(sql, params if params is not None else None)
        self.rowcount = cur.rowcount
        return cur.fetchall() if cur.description else []

    def copy(self, schema: str | None, table: str, data: pa.Table, freeze: bool = False) -> None:
        order, chunks = encode_pgcopy(data)
        target = qualified(schema, table) if schema else quote_ident(table)
        columns = ", ".join(quote_ident(c) for c in order)
        options = "FORMAT BINARY, FREEZE" if freeze else "FORMAT BINARY"
        with self.conn.cursor() as cur, cur.copy(f"COPY {target} ({columns}) FROM STDIN ({options})") as cp:
            for chunk in chunks:
                cp.write(chunk)

    def commit(self) -> None:
        self.conn.commit()

    def rollback(self) -> None:
        self.conn.rollback()

    def set_autocommit(self, on: bool) -> None:
        self.conn.autocommit = on

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()

    @property
    def broken(self) -> bool:
        return self._dead or self.conn.closed or bool(getattr(self.conn, "broken", False))


class _AdbcSession(_Session):
    """ADBC (libpq, COPY under the hood): `$n` placeholders, COPY through `adbc_ingest`."""

    driver = "adbc"

    def __init__(self, dsn: str) -> None:
        import adbc_driver_postgresql.dbapi as adbc

        self.conn = adbc.connect(dsn)
        self.cur = self.conn.cursor()
        self._autocommit = False

    def execute(self, sql: str, params: Sequence[object] | None = None) -> list[tuple[Any, ...]]:
        if params:
            counter = iter(range(1, len(params) + 1))
            sql = re.sub(r"%s", lambda _: f"${next(counter)}", sql)
            self.cur.execute(sql, tuple(params))
        else:
            self.cur.execute(sql)
        self.rowcount = self.cur.rowcount
        return [tuple(r) for r in self.cur.fetchall()] if self.cur.description else []

    def fetch_arrow(self, sql: str, params: Sequence[object] | None = None) -> pa.Table:
        """A read-only query's result as Arrow (`$n` placeholders), in its own transaction."""
        self.cur.execute(sql, tuple(params) if params else None)
        table = self.cur.fetch_arrow_table()
        self.rollback()
        return table

    def copy(self, schema: str | None, table: str, data: pa.Table, freeze: bool = False) -> None:
        if schema is None:
            self.cur.adbc_ingest(table, data, mode="append", temporary=True)
        else:
            self.cur.adbc_ingest(table, data, mode="append", db_schema_name=schema)

    def commit(self) -> None:
        if not self._autocommit:
            self.conn.commit()

    def rollback(self) -> None:
        if not self._autocommit:
            self.conn.rollback()

    def set_autocommit(self, on: bool) -> None:
        self.conn.adbc_connection.set_autocommit(on)
        self._autocommit = on

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.cur.close()
        with contextlib.suppress(Exception):
            self.conn.close()

    @property
    def broken(self) -> bool:
        return self._dead


class _Pool:
    """At most `size` sessions, each used by one thread at a time; broken ones are dropped and replaced."""

    def __init__(self, opener: Any, size: int) -> None:
        self._open = opener
        self._idle: list[_Session] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(size)

    def put(self, session: _Session) -> None:
        with self._lock:
            self._idle.append(session)

    @contextlib.contextmanager
    def session(self) -> Iterator[_Session]:
        with self._slots:
            with self._lock:
                s = self._idle.pop() if self._idle else None
            if s is None:
                s = self._open()
            ok = False
            try:
                yield s
                ok = True
            finally:
                if not ok:
                    s.reset()
                if s.broken:
                    s.close()
                else:
                    self.put(s)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for s in idle:
            s.close()


# --- the store ----------------------------------------------------------------------------------------

@dataclass
class InitReport:
    """What `init()` did: the schema, the tables it made sure of, and notices for the user (one line each)."""

    schema: str
    tables: list[str]
    hypertables: bool
    timescale_version: str | None
    notices: list[str] = field(default_factory=list)


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


class PostgresStore:
    """Store into PostgreSQL, with hypertables when TimescaleDB is there (see the module docstring).

    `timescale`: None uses hypertables when the extension exists in the database, True creates the
    extension if needed (an error when the server lacks it), False never uses hypertables.
    `create_db` creates a missing database. `strategy` is for tests and benchmarks: "auto" (insert new
    days, replace loaded ones), or "replace"/"merge" to force a path.
    """

    name = "postgresql"
    supports_upsert = True
    supports_hypertables = True

    def __init__(
        self,
        url: str,
        *,
        load_workers: int = 2,
        timescale: bool | None = None,
        create_db: bool = False,
        strategy: str = "auto",
    ) -> None:
        if load_workers < 1:
            raise InvalidArgument(f"--load-workers {load_workers} must be at least 1")
        if strategy not in ("auto", "replace", "merge"):
            raise InvalidArgument(f"unknown load strategy {strategy!r}")
        self.target = parse_url(url)
        self.load_workers = load_workers
        self.strategy = strategy
        self.driver = self._pick_driver(self.target.driver)
        self.notices: list[str] = []
        self.paths: collections.Counter[str] = collections.Counter()  # load paths taken, for tests and benchmarks
        self._want_timescale = timescale
        self._columns: dict[str, dict[str, str]] = {}
        self._hyper: set[str] = set()  # bars tables that are hypertables
        self._partitioned: set[str] = set()  # bars tables partitioned by day (DAY_PARTITIONED, plain PostgreSQL)
        self._ddl_lock = threading.RLock()
        self._stats_lock = threading.Lock()
        self._decompress_guc: bool | None = None

        first = self._first_session(create_db)
        try:
            row = first.execute(
                "SELECT current_schema()::text, current_database()::text, "
                "(SELECT extversion FROM pg_extension WHERE extname = 'timescaledb')::text, "
                "(SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                " WHERE e.extname = 'timescaledb')::text, "
                "(SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb')::text"
            )[0]
            first.rollback()
        except Exception as exc:
            first.close()
            raise self._error("reading the server's settings", exc) from None
        current, self.database, self.ts_version, self.ts_schema, self.ts_available = row
        try:
            self.schema = check_name(self.target.schema or env("COLFILL_DB_SCHEMA") or current or "public", "schema")
            self.hypertables = self._decide_timescale()
        except ColfillError:
            first.close()
            raise
        self._pool = _Pool(self._open, load_workers + 1)  # one more for the pipeline's control queries
        self._pool.put(first)

    # -- connections --

    @staticmethod
    def _pick_driver(wanted: str) -> str:
        if wanted == "auto":
            return "psycopg" if importlib.util.find_spec("psycopg") else "adbc"
        if wanted == "psycopg" and not importlib.util.find_spec("psycopg"):
            from colfill.errors import MissingDependency

            raise MissingDependency("postgresql+psycopg:// needs psycopg. Hint: pip install 'psycopg[binary]'")
        return wanted

    def _open_raw(self, dsn: str | None = None) -> _Session:
        cls = _PsycopgSession if self.driver == "psycopg" else _AdbcSession
        return cls(dsn or self.target.dsn)

    def _try_open(self, dsn: str | None = None) -> _Session | BaseException:
        """A session, or the driver's exception (returned, not raised, so that the scrubbed error raised in its
        place does not carry it, and the URL in its text, as __context__)."""
        try:
            return self._open_raw(dsn)
        except Exception as exc:
            return exc

    def _open(self) -> _Session:
        session = self._try_open()
        if isinstance(session, BaseException):
            raise self._connect_error(session)[1]
        return session

    def _first_session(self, create_db: bool) -> _Session:
        session = self._try_open()
        if not isinstance(session, BaseException):
            return session
        kind, error = self._connect_error(session)
        if kind != "missing-db" or not create_db:
            raise error
        self._create_database()
        return self._open()

    def _connect_error(self, exc: BaseException) -> tuple[str, StoreError]:
        """Classify a failed connection attempt into a scrubbed StoreError with a hint."""
        t = self.target
        text = t.scrub(" ".join(str(exc).split()))
        detail = re.sub(r"^(IO: )?(\[libpq\] )?(Failed to connect: )?(connection failed: )?", "", text).strip()
        low = detail.lower()
        if "authentication failed" in low or "no password supplied" in low or (
                "role" in low and "does not exist" in low):
            return "auth", StoreError(
                f"PostgreSQL at {t.display} refused the login: {detail}. Hint: check the user and password in "
                "--db/COLFILL_DB_URL (or PGPASSWORD, ~/.pgpass)."
            )
        if "database" in low and "does not exist" in low:
            return "missing-db", StoreError(
                f"database {t.dbname!r} does not exist at {t.display}. Hint: pass --create-db to create it "
                f"(or run: createdb {t.dbname})."
            )
        return "unreachable", StoreError(
            f"cannot connect to PostgreSQL at {t.display}: {detail}. Hint: is the server running and accepting "
            "connections at that host and port?"
        )

    def _create_database(self) -> None:
        name = check_name(self.target.dbname, "database")
        last: BaseException | None = None
        for maintenance in ("postgres", "template1"):
            s = self._try_open(self.target.with_dbname(maintenance))
            if isinstance(s, BaseException):
                last = s
                continue
            try:
                s.set_autocommit(True)
                s.execute(f"CREATE DATABASE {quote_ident(name)}")
                return
            except Exception as exc:
                if _sqlstate(exc) == "42P04":  # created meanwhile
                    return
                raise StoreError(
                    f"--create-db: could not create database {name!r} at {self.target.display}: "
                    f"{self.target.scrub(str(exc).strip())}. Hint: the user needs the CREATEDB privilege."
                ) from None
            finally:
                s.close()
        raise self._connect_error(last or RuntimeError("no maintenance database"))[1] from None

    def _error(self, what: str, exc: BaseException, hint: str = "") -> StoreError:
        if isinstance(exc, ColfillError):
            return StoreError(str(exc))
        message = self.target.scrub(" ".join(str(exc).split()))
        hint = hint or "nothing was changed (the transaction was rolled back)."
        return StoreError(f"{what} at {self.target.display} failed: {message}. Hint: {hint}")

    # -- TimescaleDB --

    def _decide_timescale(self) -> bool:
        want, version = self._want_timescale, self.ts_version
        if want is False:
            return False
        if version:
            if tsdb.parse_version(version) < tsdb.MIN_VERSION:
                if want:
                    raise StoreError(
                        f"--timescale: TimescaleDB {version} in database {self.database!r} is older than "
                        f"{'.'.join(map(str, tsdb.MIN_VERSION))}. Hint: ALTER EXTENSION timescaledb UPDATE"
                    )
                self._notice(f"TimescaleDB {version} is older than 2.13: bars tables are plain PostgreSQL tables.")
                return False
            return True
        if want:
            if not self.ts_available:
                raise StoreError(
                    f"--timescale: the server at {self.target.display} does not have the TimescaleDB extension "
                    "installed. Hint: install TimescaleDB 2.13+ on the server, or run without --timescale."
                )
            return True  # created by the first DDL transaction
        if self.ts_available:
            self._notice(f"TimescaleDB is available but not enabled in database {self.database!r}: bars tables "
                         "are plain PostgreSQL tables, bars_1m partitioned by day (same columns and keys). Hint: pass "
                         "--timescale to use it.")
        else:
            self._notice("TimescaleDB is not installed on this server: bars tables are plain PostgreSQL tables, "
                         "bars_1m partitioned by day (same columns and primary key).")
        return False

    def _notice(self, message: str) -> None:
        if message not in self.notices:
            self.notices.append(message)

    def _ensure_extension(self, s: _Session) -> None:
        if not self.hypertables or self.ts_version:
            return
        try:
            s.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        except Exception as exc:
            raise self._error("--timescale: CREATE EXTENSION timescaledb", exc,
                              "TimescaleDB must be in shared_preload_libraries and the user may need superuser") \
                from None
        self.ts_version, self.ts_schema = s.execute(
            "SELECT e.extversion::text, n.nspname::text FROM pg_extension e "
            "JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'timescaledb'")[0]

    @property
    def _ts(self) -> tuple[tuple[int, int], str]:
        return tsdb.parse_version(self.ts_version or ""), self.ts_schema or "public"

    # -- DDL --

    def describe(self) -> str:
        kind = f"TimescaleDB {self.ts_version}" if self.hypertables and self.ts_version else "PostgreSQL"
        return f"{kind} {self.target.display} (schema {self.schema})"

    def _rel(self, table: str) -> str:
        return qualified(self.schema, table)

    @contextlib.contextmanager
    def _ddl(self) -> Iterator[_Session]:
        """A DDL transaction, serialised per schema across processes (advisory lock), schema and manifest made."""
        with self._ddl_lock, self._pool.session() as s:
            had_extension = self.ts_version
            try:
                s.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s::text, 0))", [f"colfill-ddl:{self.schema}"])
                # existence first: CREATE ... IF NOT EXISTS checks the CREATE privilege even when nothing is made
                if not s.execute("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s::text)",
                                 [self.schema])[0][0]:
                    s.execute(f"CREATE SCHEMA {quote_ident(self.schema)}")
                if s.execute("SELECT to_regclass(%s::text) IS NULL", [self._rel(MANIFEST)])[0][0]:
                    s.execute(f"CREATE TABLE {self._rel(MANIFEST)} {MANIFEST_COLUMNS}")
                self._ensure_extension(s)
                yield s
                s.commit()
            except BaseException as exc:
                s.reset()
                self.ts_version = had_extension  # a CREATE EXTENSION of this transaction was rolled back too
                if isinstance(exc, ColfillError) or not isinstance(exc, Exception):
                    raise
                raise self._error(f"preparing schema {self.schema!r}", exc) from None

    def _existing(self, s: _Session, table: str) -> tuple[str | None, dict[str, str]]:
        """(relkind, {column: type}) of `table` in our schema; (None, {}) when it does not exist."""
        rows = s.execute(
            "SELECT c.relkind::text, a.attname::text, format_type(a.atttypid, a.atttypmod)::text "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
            "WHERE n.nspname = %s::text AND c.relname = %s::text ORDER BY a.attnum",
            [self.schema, table],
        )
        if not rows:
            return None, {}
        return rows[0][0], {r[1]: r[2] for r in rows if r[1] is not None}

    def ensure_table(self, table: str, schema: pa.Schema) -> None:
        """Create the bars table (key (ticker, ts); hypertable when TimescaleDB is on) or check and extend it."""
        self._ensure_tables({table: schema})

    def _ensure_tables(self, tables: dict[str, pa.Schema], extra_ddl: Sequence[str] = ()) -> None:
        """Bars tables (and `extra_ddl`) in one transaction: all of them are made or checked, or none; then
        the compression policies of new hypertables, which must run outside a transaction block."""
        wanted: dict[str, dict[str, str]] = {}
        for table, schema in tables.items():
            check_name(table, "table")
            wanted[table] = {check_name(f.name, f"column of {table}"): pg_type(f.type) for f in schema}
            missing = [k for k in KEY if k not in wanted[table]]
            if missing:
                raise SchemaMismatch(f"{table}: the data has no {' and '.join(missing)} column; bars tables are "
                                     "keyed by (ticker, ts)")
        policies: list[str] = []
        found: dict[str, tuple[dict[str, str], bool, bool]] = {}
        with self._ddl() as s:
            for table, cols in wanted.items():
                policies += self._ensure_in(s, table, cols)
                kind, columns = self._existing(s, table)
                hyper = bool(self.ts_version) and bool(s.execute(
                    "SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_schema = %s::text "
                    "AND hypertable_name = %s::text", [self.schema, table]))
                found[table] = (columns, hyper, kind == "p")
            for stmt in extra_ddl:
                s.execute(stmt)
        if policies:
            self._autocommit(policies, "adding the compression policies")
        for table, (columns, hyper, partitioned) in found.items():
            self._columns[table] = columns
            for kinds, member in ((self._hyper, hyper), (self._partitioned, partitioned)):
                if member:
                    kinds.add(table)
                else:
                    kinds.discard(table)

    def _ensure_in(self, s: _Session, table: str, wanted: dict[str, str]) -> list[str]:
        """Create or check-and-extend one bars table in the open transaction; the policies still to add."""
        kind, existing = self._existing(s, table)
        rel = self._rel(table)
        if kind is not None:
            self._check_existing(s, table, kind, existing, wanted)
            for n, t in wanted.items():
                if n not in existing:
                    s.execute(f"ALTER TABLE {rel} ADD COLUMN {quote_ident(n)} {t}")
            return []
        # Tickers are compared bytewise (COLLATE "C"): the key's B-tree then uses memcmp, not the locale's
        # rules, which on en_US.UTF-8 servers are a large share of a load's CPU; the order is the files'.
        cols = ", ".join(f"{quote_ident(n)} {t}" + (' COLLATE "C"' if n == "ticker" else "")
                         + (" NOT NULL" if n in KEY else "") for n, t in wanted.items())
        hyper = self.hypertables and table in tsdb.SPECS
        by_day = " PARTITION BY RANGE (ts)" if table in DAY_PARTITIONED and not hyper else ""
        s.execute(f"CREATE TABLE {rel} ({cols}, PRIMARY KEY (ticker, ts)){by_day}")
        if not hyper:
            return []
        version, ext = self._ts
        for stmt in tsdb.hypertable_sql(self.schema, table, version, ext):
            s.execute(stmt)
        return [tsdb.policy_sql(self.schema, table, version, ext)]

    def _check_existing(self, s: _Session, table: str, kind: str, existing: dict[str, str],
                        wanted: dict[str, str]) -> None:
        where = f"table {self.schema}.{table} in database {self.database!r}"
        hint = "Hint: colfill never drops or rewrites data; rename the table, or use another schema (?schema=NAME)."
        if kind not in ("r", "p"):
            raise SchemaMismatch(f"{where} exists but is not a table (relkind {kind!r}). {hint}")
        for n, t in wanted.items():
            have = existing.get(n)
            if have is not None and have not in _COMPATIBLE[t]:
                raise SchemaMismatch(f"{where} has column {n} of type {have}; colfill loads {t} into it. {hint}")
        keys = s.execute(
            "SELECT string_agg(a.attname::text, ',' ORDER BY k.ord) FROM pg_index i "
            "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
            "WHERE i.indrelid = to_regclass(%s::text) AND i.indisunique GROUP BY i.indexrelid",
            [self._rel(table)],
        )
        if not any(r[0] == "ticker,ts" for r in keys):
            raise SchemaMismatch(f"{where} has no primary key or unique index on (ticker, ts), which colfill needs "
                                 f"to replace days exactly once. {hint}")

    def _autocommit(self, statements: Sequence[str], what: str) -> None:
        """Statements that must not run inside a transaction block (procedures, continuous aggregates)."""
        with self._pool.session() as s:
            s.set_autocommit(True)
            try:
                for stmt in statements:
                    s.execute(stmt)
            except Exception as exc:
                raise self._error(what, exc, "the tables were created; rerun `colfill db init` after fixing this") \
                    from None
            finally:
                try:
                    s.set_autocommit(False)
                except Exception:
                    s._dead = True

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

    # -- loading --

    def _prepare(self, batch: LoadBatch) -> pa.Table:
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

    def load(self, batch: LoadBatch) -> int:
        """Apply one partition with its manifest row, in one transaction; returns the rows written."""
        check_name(batch.table, "table")
        data = self._prepare(batch)
        known = self._columns.get(batch.table)
        if known is None or any(c not in known for c in data.column_names):
            self.ensure_table(batch.table, data.schema)
        strategy = self.strategy
        for attempt in range(1, 5):
            try:
                with self._pool.session() as s:
                    return self._apply(s, batch, data, strategy)
            except _Conflict:
                strategy = "merge"
            except _Retry as exc:
                if attempt >= 4:
                    raise TransientError(
                        f"loading {batch.source_key} ({batch.table} {batch.date}) into {self.target.display} failed "
                        f"{attempt} times: {exc}. Hint: nothing was changed; rerun to retry."
                    ) from None
                time.sleep(0.2 * attempt)
        raise AssertionError("unreachable")

    def _apply(self, s: _Session, batch: LoadBatch, data: pa.Table, strategy: str) -> int:
        table, rel = batch.table, self._rel(batch.table)
        params: list[object] = [t.isoformat() for t in day_bounds(batch.date)]
        if batch.tickers is not None:
            params.append(pg_array(batch.tickers))
        try:
            s.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s::text, 0))",
                      [f"colfill-load:{self.schema}.{table}:{batch.date.isoformat()}"])
            if self.hypertables and self._lift_decompression_limit(s):
                s.execute(f"SET LOCAL {tsdb.DECOMPRESSION_LIMIT_GUC} = 0")
            path = strategy
            if strategy == "auto":
                seen = s.execute(
                    f"SELECT EXISTS (SELECT 1 FROM {self._rel(MANIFEST)} WHERE table_name = %s::text "
                    "AND date = %s::date)", [table, batch.date.isoformat()])[0][0]
                path = "replace" if seen else "insert"
            by_day = table in self._partitioned
            part, exists = self._day_partition(s, batch) if by_day else ("", False)
            if by_day and path != "merge" and (not exists or batch.tickers is None):
                self._swap_day(s, batch, data, part, replacing=exists)
            else:
                if by_day and not exists:
                    s.execute(f"CREATE TABLE {self._rel(part)} PARTITION OF {rel} FOR VALUES FROM "
                              f"{self._day_range(batch.date)}")
                if path == "replace":
                    s.execute(f"DELETE FROM {rel} AS t WHERE {self._partition_filter(batch)}", params)
                if path in ("insert", "replace"):
                    if data.num_rows:
                        s.copy(self.schema, table, data)
                else:
                    self._merge(s, rel, data, self._partition_filter(batch), params)
            s.execute(
                f"INSERT INTO {self._rel(MANIFEST)} (table_name, date, lineage, source_key, etag, size, fingerprint, "
                '"rows", status, loaded_at) VALUES (%s::text, %s::date, %s::text, %s::text, %s::text, %s::bigint, '
                "%s::text, %s::bigint, 'loaded', now()) ON CONFLICT (table_name, date, lineage) DO UPDATE SET "
                "source_key = EXCLUDED.source_key, etag = EXCLUDED.etag, size = EXCLUDED.size, "
                'fingerprint = EXCLUDED.fingerprint, "rows" = EXCLUDED."rows", status = EXCLUDED.status, '
                "loaded_at = EXCLUDED.loaded_at",
                [table, batch.date.isoformat(), batch.lineage, batch.source_key, batch.etag, int(batch.size),
                 batch.fingerprint, data.num_rows],
            )
            s.commit()
        except Exception as exc:
            s.reset()
            state = _sqlstate(exc)
            if state == "23505" and strategy != "merge":
                raise _Conflict() from None
            if state in _TRANSIENT_STATES or s.broken:
                raise _Retry(self.target.scrub(" ".join(str(exc).split()))) from None
            hint = {
                "23502": "the partition has a null in a NOT NULL column (ticker or ts); nothing was loaded",
                "42501": "the user needs INSERT, DELETE and CREATE TEMP privileges on the schema",
            }.get(state or "", "nothing was changed (the transaction was rolled back); rerun to retry")
            raise self._error(f"loading {batch.source_key} ({table} {batch.date})", exc, hint) from None
        with self._stats_lock:
            self.paths[path] += 1
        return data.num_rows

    @staticmethod
    def _day_range(date: dt.date) -> str:
        """`('lo') TO ('hi')`: the New York day's bounds as partition bound literals (DDL takes no parameters;
        both are ISO timestamps colfill formats itself)."""
        lo, hi = (t.isoformat() for t in day_bounds(date))
        return f"('{lo}') TO ('{hi}')"

    def _day_partition(self, s: _Session, batch: LoadBatch) -> tuple[str, bool]:
        """(name of the day's partition of a day-partitioned table, whether it exists). Partitions are named
        `<table>_YYYYMMDD` by colfill; a table of that name that is not the day's partition is refused."""
        name = f"{batch.table}_{batch.date:%Y%m%d}"
        check_name(f"{name}_new_pkey", "partition index")  # the longest name a swap makes
        row = s.execute(
            "SELECT c.relispartition AND i.inhparent = to_regclass(%s::text) FROM pg_class c "
            "LEFT JOIN pg_inherits i ON i.inhrelid = c.oid WHERE c.oid = to_regclass(%s::text)",
            [self._rel(batch.table), self._rel(name)])
        if row and not row[0][0]:
            raise StoreError(f"{self.schema}.{name} exists but is not the {batch.date} partition of "
                             f"{self.schema}.{batch.table}. Hint: colfill names its day partitions so; rename that "
                             "table (colfill never drops it for you).")
        return name, bool(row)

    def _swap_day(self, s: _Session, batch: LoadBatch, data: pa.Table, name: str, replacing: bool) -> None:
        """Build the day as a new table and attach it as the day's partition, replacing any old one.

        The rows are COPYed into a table without an index, the key is then built by one sort (about half
        the server work of inserting every row into a B-tree, measured: 0.87 + 0.43 us/row against 2.1),
        and a CHECK constraint equal to the partition bounds lets ATTACH skip its validation scan. A
        replaced day's old partition is detached and dropped in the same transaction, so readers see the
        old day or the new one, and a kill leaves the old one in place.
        """
        rel, final = self._rel(batch.table), self._rel(name)
        build = f"{name}_new" if replacing else name
        lo, hi = (t.isoformat() for t in day_bounds(batch.date))
        if replacing:  # one swap per table at a time: two DETACHes upgrading their locks would deadlock
            s.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s::text, 0))",
                      [f"colfill-swap:{self.schema}.{batch.table}"])
        s.execute(f"CREATE TABLE {self._rel(build)} (LIKE {rel} INCLUDING DEFAULTS)")
        s.execute(f"ALTER TABLE {self._rel(build)} ADD CONSTRAINT {quote_ident(name + '_day')} "
                  f"CHECK (ts >= '{lo}' AND ts < '{hi}')")
        if data.num_rows:
            s.copy(self.schema, build, data, freeze=True)
        # One sort in this backend: parallel build workers only compete with the other loads for the cores.
        s.execute(f"SET LOCAL maintenance_work_mem = '{INDEX_BUILD_MEMORY}'")
        s.execute("SET LOCAL max_parallel_maintenance_workers = 0")
        s.execute(f"ALTER TABLE {self._rel(build)} ADD CONSTRAINT {quote_ident(build + '_pkey')} "
                  "PRIMARY KEY (ticker, ts)")
        if replacing:
            s.execute(f"ALTER TABLE {rel} DETACH PARTITION {final}")
            s.execute(f"DROP TABLE {final}")
            s.execute(f"ALTER TABLE {self._rel(build)} RENAME TO {quote_ident(name)}")
            s.execute(f"ALTER INDEX {self._rel(build + '_pkey')} RENAME TO {quote_ident(name + '_pkey')}")
        s.execute(f"ALTER TABLE {rel} ATTACH PARTITION {final} FOR VALUES FROM {self._day_range(batch.date)}")

    def _merge(self, s: _Session, rel: str, data: pa.Table, where: str, params: list[object]) -> None:
        """Staging table + delete-missing + INSERT ... ON CONFLICT DO UPDATE: replaces whatever rows exist."""
        s.execute(f"CREATE TEMP TABLE colfill_stage (LIKE {rel} INCLUDING DEFAULTS) ON COMMIT DROP")
        if data.num_rows:
            s.copy(None, "colfill_stage", data)
        s.execute("ANALYZE colfill_stage")
        s.execute(
            f"DELETE FROM {rel} AS t WHERE {where} "
            "AND NOT EXISTS (SELECT 1 FROM colfill_stage s WHERE s.ticker = t.ticker AND s.ts = t.ts)", params)
        cols = [quote_ident(c) for c in data.column_names]
        rest = [c for c, name in zip(cols, data.column_names) if name not in KEY]
        update = ", ".join(f"{c} = EXCLUDED.{c}" for c in rest)
        changed = (f" WHERE ({', '.join('t.' + c for c in rest)}) IS DISTINCT FROM "
                   f"({', '.join('EXCLUDED.' + c for c in rest)})") if rest else ""
        action = f"DO UPDATE SET {update}{changed}" if rest else "DO NOTHING"
        s.execute(f"INSERT INTO {rel} AS t ({', '.join(cols)}) SELECT {', '.join(cols)} FROM colfill_stage "
                  f"ORDER BY ticker, ts ON CONFLICT (ticker, ts) {action}")

    def _partition_filter(self, batch: LoadBatch) -> str:
        """The rows a partition replaces (alias t): its New York day, of its tickers when it names them. The
        ticker condition lets a plain table use its (ticker, ts) key; a hypertable excludes chunks by ts."""
        where = "t.ts >= %s::timestamptz AND t.ts < %s::timestamptz"
        if batch.tickers is not None:
            return where + " AND t.ticker = ANY(%s::text[])"
        if batch.table in self._hyper or batch.table in self._partitioned:
            return where  # chunk exclusion or partition pruning finds the day
        return where + f" AND t.ticker = ANY(ARRAY({distinct_tickers_sql(self._rel(batch.table))}))"

    def _lift_decompression_limit(self, s: _Session) -> bool:
        if self._decompress_guc is None:
            rows = s.execute("SELECT 1 FROM pg_settings WHERE name = %s::text", [tsdb.DECOMPRESSION_LIMIT_GUC])
            self._decompress_guc = bool(rows)
        return self._decompress_guc

    def loaded(self, table: str, lineage: str) -> dict[dt.date, str]:
        """Fingerprints of the days of `table` loaded for `lineage`, from the manifest."""
        with self._pool.session() as s:
            try:
                if s.execute("SELECT to_regclass(%s::text) IS NULL", [self._rel(MANIFEST)])[0][0]:
                    rows: list[tuple[Any, ...]] = []
                else:
                    rows = s.execute(
                        f"SELECT date::text, fingerprint FROM {self._rel(MANIFEST)} WHERE table_name = %s::text "
                        "AND lineage = %s::text AND status = 'loaded'", [table, lineage])
                s.rollback()
            except Exception as exc:
                raise self._error("reading the manifest", exc, "check that the user may read the schema") from None
        return {dt.date.fromisoformat(d): fp for d, fp in rows}

    # -- indicator state hand-off (colfill state, the live engine) --

    def read_bars(self, table: str, columns: Sequence[str], batch_rows: int = 100_000) -> Iterator[pa.Table]:
        """`columns` of `table` in (ticker, ts) order, a slice at a time: keyset pages on the primary key,
        fetched as Arrow through ADBC (binary COPY out), so no row passes through Python objects."""
        if "ticker" not in columns or "ts" not in columns:
            raise InvalidArgument("read_bars needs the ticker and ts columns")
        if not self._read_one("SELECT to_regclass(%s::text) IS NOT NULL", [self._rel(table)]):
            raise StoreError(f"{self.describe()} has no table {table}: nothing was backfilled into it yet")
        cols = ", ".join(quote_ident(c) for c in columns)
        try:
            session = _AdbcSession(self.target.dsn)
        except Exception as exc:
            raise self._error(f"reading {table}", exc) from None
        after: list[object] | None = None
        try:
            while True:
                where = "WHERE (ticker, ts) > ($1::text, $2::timestamptz) " if after else ""
                try:
                    page = session.fetch_arrow(f"SELECT {cols} FROM {self._rel(table)} {where}ORDER BY ticker, ts "
                                               f"LIMIT {int(batch_rows)}", after)
                except Exception as exc:
                    raise self._error(f"reading {table}", exc) from None
                if not page.num_rows:
                    return
                yield page
                after = [page["ticker"][-1].as_py(), page["ts"][-1].as_py().isoformat()]
        finally:
            session.close()

    def read_state(self, timeframe: str) -> pa.Table | None:
        """Every `indicator_state` row of `timeframe`, all columns, by ticker; None when there is no such table."""
        with self._pool.session() as s:
            try:
                _, columns = self._existing(s, STATE_TABLE)
                if not columns:
                    s.rollback()
                    return None
                names = ", ".join(quote_ident(c) for c in columns)
                rows = s.execute(f"SELECT {names} FROM {self._rel(STATE_TABLE)} WHERE timeframe = %s::text "
                                 "ORDER BY ticker", [timeframe])
                s.rollback()
            except Exception as exc:
                raise self._error(f"reading {STATE_TABLE}", exc) from None
        data = list(zip(*rows)) if rows else [()] * len(columns)
        arrays, fields = [], []
        for (name, pg), values in zip(columns.items(), data):
            if pg not in _STATE_TYPES:
                raise SchemaMismatch(f"{STATE_TABLE} in {self.describe()} has column {name} of type {pg}, which no "
                                     "state column has. Hint: rename that table; colfill never drops it for you.")
            typ = _STATE_TYPES[pg][1]
            arrays.append(pa.array(list(values), typ))
            fields.append(pa.field(name, typ))
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))

    def write_state(self, timeframe: str, rows: pa.Table, replace: bool = False) -> int:
        """Upsert `rows` (all of `timeframe`) into `indicator_state` by (ticker, timeframe) in one transaction,
        creating the table or adding the columns it lacks; `replace` first deletes the timeframe's other rows.

        Rows travel as one JSON parameter expanded by `json_populate_recordset` into the table's own row type,
        so both drivers bind it the same way and floats keep every bit (JSON numbers are Python's shortest
        round-trip repr; non-finite values go as the strings PostgreSQL's float8 input reads)."""
        wanted = {f.name: _state_type(f.type) for f in rows.schema}
        rel = self._rel(STATE_TABLE)
        payload = json.dumps([{k: _json_value(v) for k, v in r.items()} for r in rows.to_pylist()], allow_nan=False)
        tickers = json.dumps(rows.column("ticker").to_pylist())
        with self._ddl() as s:
            try:
                _, existing = self._existing(s, STATE_TABLE)
                if not existing:
                    cols = ", ".join(f"{quote_ident(n)} {_STATE_TYPES[t][0]}"
                                     + (" NOT NULL" if n in ("ticker", "timeframe") else "") for n, t in wanted.items())
                    s.execute(f"CREATE TABLE {rel} ({cols}, saved_at timestamptz NOT NULL DEFAULT now(), "
                              "PRIMARY KEY (ticker, timeframe))")
                    existing = wanted
                for n, t in wanted.items():
                    if n not in existing:
                        s.execute(f"ALTER TABLE {rel} ADD COLUMN {quote_ident(n)} {_STATE_TYPES[t][0]}")
                    elif existing[n] != t:
                        raise SchemaMismatch(
                            f"{STATE_TABLE} in {self.describe()} has column {n} of type {existing[n]}, the state "
                            f"needs {t}. Hint: rename or drop that table; colfill never drops it for you.")
                if replace:
                    s.execute(f"DELETE FROM {rel} WHERE timeframe = %s::text", [timeframe])
                else:
                    s.execute(f"DELETE FROM {rel} WHERE timeframe = %s::text AND ticker IN "
                              "(SELECT value FROM json_array_elements_text(%s::json))", [timeframe, tickers])
                names = ", ".join(quote_ident(n) for n in wanted)
                s.execute(f"INSERT INTO {rel} ({names}) SELECT {names} FROM json_populate_recordset(NULL::{rel}, "
                          "%s::json)", [payload])
            except ColfillError:
                raise
            except Exception as exc:
                raise self._error(f"saving {STATE_TABLE}", exc) from None
        return rows.num_rows

    # -- status --

    def status(self) -> list[TableStatus]:
        """Per table: rows, time range, tickers, days in the manifest, size; chunks and compression on hypertables."""
        out = []
        names = [*BAR_TABLES, tsdb.DAILY_CAGG, *REFERENCE_DDL, MANIFEST, STATE_TABLE]
        hyper = set(self._read("SELECT hypertable_name::text FROM timescaledb_information.hypertables "
                               "WHERE hypertable_schema = %s::text", [self.schema])) if self.ts_version else set()
        caggs = set(self._read("SELECT view_name::text FROM timescaledb_information.continuous_aggregates "
                               "WHERE view_schema = %s::text", [self.schema])) if self.ts_version else set()
        for name in names:
            rel = self._rel(name)
            kind_row = self._read(
                "SELECT c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s::text AND c.relname = %s::text", [self.schema, name])
            if not kind_row:
                if name != tsdb.DAILY_CAGG:
                    out.append(TableStatus(name, "missing"))
                continue
            kind = "hypertable" if name in hyper else "continuous aggregate" if name in caggs else "table"
            if kind_row[0] == "p":
                out.append(self._partitioned_status(name))
                continue
            st = TableStatus(name, kind)
            version, ext = self._ts
            ts_sql = tsdb.stats_sql(self.schema, name, version, ext) if kind == "hypertable" else {}
            estimate = (self._read_one(ts_sql["rows"]) if ts_sql else
                        self._read_one("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s::text)",
                                       [rel]))
            if kind == "continuous aggregate" or estimate is None or estimate < EXACT_COUNT_BELOW:
                st.rows = self._read_one(f"SELECT count(*)::bigint FROM {rel}")
            else:
                st.rows, st.rows_exact = int(estimate), False
            if name in BAR_TABLES or kind == "continuous aggregate":
                row = self._read_row(
                    f"SELECT count(t.ticker)::bigint, "
                    f"extract(epoch FROM min((SELECT min(x.ts) FROM {rel} x WHERE x.ticker = t.ticker)))::float8, "
                    f"extract(epoch FROM max((SELECT max(x.ts) FROM {rel} x WHERE x.ticker = t.ticker)))::float8 "
                    f"FROM ({distinct_tickers_sql(rel)}) t")
                if row:
                    st.tickers = row[0]
                    st.first_ts, st.last_ts = (dt.datetime.fromtimestamp(v, dt.timezone.utc) if v is not None
                                               else None for v in row[1:3])
            if name in BAR_TABLES:
                self._manifest_status(st)
            if ts_sql:
                st.size_bytes = self._read_one(ts_sql["size"])
                chunks = self._read_row(ts_sql["chunks"])
                if chunks:
                    st.chunks, st.compressed_chunks = chunks
                sizes = self._read_row(ts_sql["compression"])
                if sizes and sizes[0] and sizes[1]:
                    st.compression_ratio = sizes[0] / sizes[1]
            else:
                st.size_bytes = self._read_one("SELECT pg_total_relation_size(to_regclass(%s::text))::bigint", [rel])
            out.append(st)
        return out

    def _partitioned_status(self, name: str) -> TableStatus:
        """Status of a day-partitioned table from its partitions: queries across every partition (a ticker's whole
        range, distinct tickers) would probe each one, so large tables report the last day's tickers."""
        rel = self._rel(name)
        leaves = self._read("SELECT c.oid::regclass::text FROM pg_partition_tree(to_regclass(%s::text)) p "
                            "JOIN pg_class c ON c.oid = p.relid WHERE p.isleaf ORDER BY c.relname", [rel])
        st = TableStatus(name, f"table, {len(leaves)} day partition{'' if len(leaves) == 1 else 's'}")
        stats = self._read_row("SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint, "
                               "coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint "
                               "FROM pg_partition_tree(to_regclass(%s::text)) p JOIN pg_class c ON c.oid = p.relid "
                               "WHERE p.isleaf", [rel])
        estimate, st.size_bytes = stats if stats else (0, None)
        if estimate < EXACT_COUNT_BELOW:
            st.rows = self._read_one(f"SELECT count(*)::bigint FROM {rel}")
            st.tickers = self._read_one(f"SELECT count(DISTINCT ticker)::bigint FROM {rel}")
        else:
            st.rows, st.rows_exact = int(estimate), False
            st.tickers = self._read_one(f"SELECT count(*)::bigint FROM ({distinct_tickers_sql(leaves[-1])}) t")
            st.tickers_last_day = True
        if leaves:
            first = self._read_one(f"SELECT extract(epoch FROM min(ts))::float8 FROM {leaves[0]}")
            last = self._read_one(f"SELECT extract(epoch FROM max(ts))::float8 FROM {leaves[-1]}")
            st.first_ts, st.last_ts = (dt.datetime.fromtimestamp(v, dt.timezone.utc) if v is not None else None
                                       for v in (first, last))
        self._manifest_status(st)
        return st

    def _manifest_status(self, st: TableStatus) -> None:
        """Days loaded into the table and when the last was, from the manifest."""
        row = self._read_row(
            f"SELECT count(DISTINCT date)::bigint, extract(epoch FROM max(loaded_at))::float8 "
            f"FROM {self._rel(MANIFEST)} WHERE table_name = %s::text AND status = 'loaded'", [st.table])
        if row:
            st.days = row[0]
            st.last_loaded = dt.datetime.fromtimestamp(row[1], dt.timezone.utc) if row[1] else None

    def _read(self, sql: str, params: Sequence[object] | None = None) -> list[Any]:
        """First column of every row of a read-only query, in its own transaction; [] when it fails."""
        return [r[0] for r in self._read_rows(sql, params)]

    def _read_one(self, sql: str, params: Sequence[object] | None = None) -> Any:
        rows = self._read_rows(sql, params)
        return rows[0][0] if rows else None

    def _read_row(self, sql: str, params: Sequence[object] | None = None) -> tuple[Any, ...] | None:
        rows = self._read_rows(sql, params)
        return rows[0] if rows else None

    def _read_rows(self, sql: str, params: Sequence[object] | None = None) -> list[tuple[Any, ...]]:
        with self._pool.session() as s:
            try:
                rows = s.execute(sql, params)
                s.rollback()
                return rows
            except Exception:
                s.reset()
                return []

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def distinct_tickers_sql(rel: str) -> str:
    """Every ticker of `rel`, one index probe each on the (ticker, ts) key (a skip scan), not a table scan."""
    return (f"WITH RECURSIVE k(ticker) AS ((SELECT ticker FROM {rel} ORDER BY ticker LIMIT 1) UNION ALL "
            f"SELECT (SELECT x.ticker FROM {rel} x WHERE x.ticker > k.ticker ORDER BY x.ticker LIMIT 1) "
            "FROM k WHERE k.ticker IS NOT NULL) SELECT ticker FROM k WHERE ticker IS NOT NULL")


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
