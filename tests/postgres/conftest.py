"""PostgreSQL fixtures: `pg_url` is the session's own database (tests/conftest.pg_server_url) with a fresh
uuid-named `schema=`, dropped afterwards; `db` runs SQL in that schema; `make_day` builds deterministic bars partitions.

Without a reachable server the tests skip, or fail under CI=true (see tests/conftest.need_service).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pytest

from colfill.stores.base import LoadBatch
from colfill.stores.postgres import bars_schema
from colfill.stores.timescale import quote_ident
from tests.conftest import drop_schema, plain_url, schema_of, with_query  # noqa: F401 (re-exported)

INDICATORS = ("sma_20", "ema_20", "rsi_14", "vwap")
NEW_YORK = ZoneInfo("America/New_York")
SECRET = "hunter2-Sup3r"  # a password distinctive enough that any leak of it is found


def with_password(url: str, password: str, host: str | None = None, port: int | None = None,
                  user: str | None = None) -> str:
    parts = urlsplit(url)
    user = user or parts.username or "postgres"
    netloc = f"{user}:{password}@{host if host is not None else (parts.hostname or '')}"
    if port or parts.port:
        netloc += f":{port or parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


class Db:
    """Direct SQL in the test's schema through psycopg, independent of the store."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.schema = schema_of(url)
        self.url = plain_url(url)
        self.con = psycopg.connect(self.url, autocommit=True)
        self.con.execute("SET TIME ZONE 'UTC'")

    def rel(self, table: str) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(table)}"

    def rows(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        cur = self.con.execute(sql.replace("{s}", quote_ident(self.schema)), params)
        return cur.fetchall() if cur.description else []

    def one(self, sql: str, params: Any = None) -> Any:
        return self.rows(sql, params)[0][0]

    def bars(self, table: str = "bars_1m", where: str = "TRUE") -> list[tuple[Any, ...]]:
        cols = ", ".join(quote_ident(c) for c in bars_schema(INDICATORS).names)
        return self.rows(f"SELECT {cols} FROM {self.rel(table)} WHERE {where} ORDER BY ticker, ts")

    def manifest(self) -> dict[tuple[str, dt.date, str], tuple[str, int]]:
        if self.one("SELECT to_regclass(%s) IS NULL", [self.rel("colfill_files")]):
            return {}
        return {(r[0], r[1], r[2]): (r[3], r[4]) for r in self.rows(
            'SELECT table_name, date, lineage, fingerprint, "rows" FROM {s}.colfill_files')}


def chunk_states(db: Db, table: str) -> list[tuple[str, bool, bool]]:
    """(chunk, compressed, partially compressed) of each chunk of `table` (the partial bit is catalog-internal)."""
    return db.rows(
        "SELECT c.chunk_name, c.is_compressed, (k.status & 8) = 8 FROM timescaledb_information.chunks c "
        "JOIN _timescaledb_catalog.chunk k ON k.schema_name = c.chunk_schema AND k.table_name = c.chunk_name "
        "WHERE c.hypertable_schema = %s AND c.hypertable_name = %s ORDER BY c.range_start", [db.schema, table])


@contextlib.contextmanager
def fresh_schema(request: pytest.FixtureRequest, hypertable: bool, prefix: str) -> Iterator[str]:
    """A URL with a new schema on plain PostgreSQL (`pg_server_url`), or on a TimescaleDB server (`ts_server`,
    skipped where none is at hand), dropped afterwards."""
    server = request.getfixturevalue("ts_server" if hypertable else "pg_server_url")
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    yield with_query(server, schema=schema)
    drop_schema(server, schema)


@pytest.fixture
def ts_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh schema on a TimescaleDB server (`ts_server`; skipped where none is at hand), dropped afterwards."""
    with fresh_schema(request, True, "colfill_ts") as url:
        yield url


@pytest.fixture
def db(pg_url: str) -> Iterator[Db]:
    d = Db(pg_url)
    yield d
    d.con.close()


def make_day(date: dt.date, tickers: list[str], minutes: int = 30, seed: int = 0, start: dt.time = dt.time(9, 30),
             nulls: bool = True) -> pa.Table:
    """Minute bars of New York `date`: `minutes` bars per ticker from `start`, values from `seed`, in (ticker, ts)
    order; indicator columns are null for each ticker's first bars (as in a warm-up)."""
    rng = np.random.default_rng(seed)
    t0 = dt.datetime.combine(date, start, NEW_YORK).astimezone(dt.timezone.utc)
    base = int(t0.timestamp() * 1_000_000)
    n = len(tickers) * minutes
    ts = np.tile(base + np.arange(minutes, dtype=np.int64) * 60_000_000, len(tickers))
    price = np.round(rng.uniform(5, 500, n), 4)
    cols: dict[str, pa.Array] = {
        "ticker": pa.array(np.repeat(np.array(tickers, dtype=object), minutes), pa.large_string()),
        "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "open": pa.array(price), "high": pa.array(price + 1), "low": pa.array(price - 1),
        "close": pa.array(np.round(price + rng.normal(0, 0.5, n), 4)),
        "volume": pa.array(rng.integers(100, 10_000, n).astype(float)),
        "vw": pa.array(price + 0.25, mask=rng.random(n) < 0.2 if nulls else None),
        "transactions": pa.array(rng.integers(1, 500, n)),
    }
    warm = np.tile(np.arange(minutes) < 3, len(tickers)) if nulls else np.zeros(n, bool)
    for c in INDICATORS:
        cols[c] = pa.array(rng.normal(100, 10, n), mask=warm)
    return pa.table(cols)


def batch(data: pa.Table, date: dt.date, fingerprint: str = "fp", lineage: str = "lin", table: str = "bars_1m",
          tickers: tuple[str, ...] | None = None) -> LoadBatch:
    key = f"us_stocks_sip/minute_aggs_v1/{date:%Y/%m}/{date}.csv.gz"
    return LoadBatch(table, date, data, key, f"etag-{fingerprint}", 1234, fingerprint, lineage, tickers)


def expected_rows(*tables: pa.Table) -> list[tuple[Any, ...]]:
    """Rows as PostgreSQL returns them, in (ticker, ts) order, for comparison with `Db.bars()`."""
    names = bars_schema(INDICATORS).names
    t = pa.concat_tables([x.select(names) for x in tables]).sort_by([("ticker", "ascending"), ("ts", "ascending")])
    return [tuple(r[c] for c in names) for r in t.to_pylist()]
