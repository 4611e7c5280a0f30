"""Driver sessions (psycopg or ADBC, one connection each), the pool they are shared from, and how a driver
failure is classified (SQLSTATE, transient or not)."""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import pyarrow as pa

from colfill.dialect import POSTGRES
from colfill.stores.postgres.encode import encode_pgcopy

T = TypeVar("T")
_TRANSIENT_STATES = {"40001", "40P01", "55P03", "57P01", "57P02", "57P03", "08000", "08003", "08006", "08001"}


class _Conflict(Exception):
    """A unique violation on the insert/replace path: redo the partition on the merge path."""


class _Retry(Exception):
    """A transient failure (deadlock, serialization, dropped connection): worth another attempt."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


_MISSING_STATES = {"42P01", "42704", "42883", "3F000"}  # undefined table, object, function; no such schema


def retrying(pool: _Pool, attempt: Callable[[_Session], T], failed: Callable[[int, str], Exception],
             tries: int = 4) -> T:
    """`attempt` in a pooled session, again (after a short pause) while it fails transiently; on the last
    failure `failed(attempts, message)` is raised. One rule for the day loads and the live writes."""
    for n in range(1, tries + 1):
        try:
            with pool.session() as s:
                return attempt(s)
        except _Retry as exc:
            if n >= tries:
                raise failed(n, str(exc)) from None
            time.sleep(0.2 * n)
    raise AssertionError("unreachable")


def _sqlstate(exc: BaseException) -> str | None:
    state = getattr(exc, "sqlstate", None)
    return state if isinstance(state, str) else None


class _Session:
    """One connection in a transaction of its own; `%s` placeholders; every parameter cast in the SQL."""

    driver = ""
    rowcount = -1

    def execute(self, sql: str, params: Sequence[object] | None = None) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def copy(self, schema: str | None, table: str, data: pa.Table, freeze: bool = False,
             keep_order: bool = False) -> None:
        """COPY `data` into the table; `freeze` (a table made in this transaction) writes its rows frozen and
        all-visible, so neither the first reads nor vacuum have to rewrite the day's pages later; `keep_order`
        sends the rows in their order (for direct compress's client-sorted COPY)."""
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
            self.discard()

    def discard(self) -> None:
        """Mark the session broken: the pool closes it instead of handing it out again."""
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

    def copy(self, schema: str | None, table: str, data: pa.Table, freeze: bool = False,
             keep_order: bool = False) -> None:
        order, chunks = encode_pgcopy(data, keep_order=keep_order)
        target = POSTGRES.qualified(schema, table) if schema else POSTGRES.quote(table)
        columns = ", ".join(POSTGRES.quote(c) for c in order)
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

    def copy(self, schema: str | None, table: str, data: pa.Table, freeze: bool = False,
             keep_order: bool = False) -> None:
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
