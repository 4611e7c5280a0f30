"""The catalogue of a PostgresStore: its connection pool and the errors of its driver, the TimescaleDB
decision, DDL, what kind each bars table is and its columns, and read-only queries. The other parts of the
store (loader, live writer, compressor, status, state) are handed one and use only its public methods."""

from __future__ import annotations

import contextlib
import importlib.util
import re
import threading
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import pyarrow as pa

from colfill import dialect as sql
from colfill.config import env
from colfill.dialect import POSTGRES
from colfill.errors import ColfillError, InvalidArgument, SchemaMismatch, StoreError, StoreUnreachable
from colfill.stores import timescale as tsdb
from colfill.stores.postgres.schema import (
    DAY_PARTITIONED,
    KEY,
    MANIFEST,
    MANIFEST_COLUMNS,
    check_existing,
    check_name,
    has_unique_key,
    parse_url,
    pg_type,
)
from colfill.stores.postgres.session import (
    _MISSING_STATES,
    _AdbcSession,
    _Pool,
    _PsycopgSession,
    _Session,
    _sqlstate,
)

NOT_PRELOADED = ("TimescaleDB is installed on the server at {where} but not loaded (it is not in "
                 "shared_preload_libraries)")

# How a bars table stores its rows: a TimescaleDB hypertable, a plain table partitioned by New York day
# (DAY_PARTITIONED on plain PostgreSQL), or a plain table. A reload finds its day by chunk exclusion, by
# partition pruning, or through the (ticker, ts) key.
TableKind = Literal["hypertable", "day-partitioned", "plain"]


class Catalog:
    """Connections, TimescaleDB decision, DDL, table kinds and columns, read-only queries (see PostgresStore
    for the arguments). `load_workers` sizes the pool: one connection each, and one for control queries."""

    def __init__(
        self,
        url: str,
        *,
        load_workers: int = 2,
        timescale: bool | None = None,
        create_db: bool = False,
    ) -> None:
        if load_workers < 1:
            raise InvalidArgument(f"--load-workers {load_workers} must be at least 1")
        self.target = parse_url(url)
        self.load_workers = load_workers
        self.driver = self._pick_driver(self.target.driver)
        self.notices: list[str] = []
        self._want_timescale = timescale
        self._columns: dict[str, dict[str, str]] = {}
        self._kinds: dict[str, TableKind] = {}
        self._ddl_lock = threading.RLock()
        self._decompress_guc: bool | None = None
        self._keyless: dict[str, bool] = {}
        self._direct: dict[str, bool] = {}
        self._direct_guc: bool | None = None

        first = self._first_session(create_db)
        try:
            row = first.execute(
                "SELECT current_schema()::text, current_database()::text, "
                "(SELECT extversion FROM pg_extension WHERE extname = 'timescaledb')::text, "
                "(SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                " WHERE e.extname = 'timescaledb')::text, "
                "(SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb')::text, "
                # the library's own (non-placeholder) settings exist only where shared_preload_libraries loaded it
                "EXISTS (SELECT 1 FROM pg_settings WHERE name = 'timescaledb.max_background_workers')"
            )[0]
            first.rollback()
        except Exception as exc:
            first.close()
            raise self.error("reading the server's settings", exc) from None
        current, self.database, self.ts_version, self.ts_schema, self.ts_available, self.ts_preloaded = row
        try:
            self.schema = check_name(self.target.schema or env("COLFILL_DB_SCHEMA") or current or "public", "schema")
            self.hypertables = self._decide_timescale()
        except ColfillError:
            first.close()
            raise
        self.pool = _Pool(self._open, load_workers + 1)  # one more for the pipeline's control queries
        self.pool.put(first)

    # -- connections --

    @staticmethod
    def _pick_driver(wanted: str) -> str:
        if wanted == "auto":
            return "psycopg" if importlib.util.find_spec("psycopg") else "adbc"
        if wanted == "psycopg" and not importlib.util.find_spec("psycopg"):
            from colfill.errors import MissingDependency

            raise MissingDependency("postgresql+psycopg:// needs psycopg. Hint: pip install 'psycopg[binary]'")
        return wanted

    def connect(self, dsn: str | None = None) -> _Session:
        """A new driver session on the store's database (or `dsn`); the one place a connection is made, so tests
        that record the SQL replace it with a fake session."""
        cls = _PsycopgSession if self.driver == "psycopg" else _AdbcSession
        return cls(dsn or self.target.dsn)

    def _try_open(self, dsn: str | None = None) -> _Session | BaseException:
        """A session, or the driver's exception (returned, not raised, so that the scrubbed error raised in its
        place does not carry it, and the URL in its text, as __context__)."""
        try:
            return self.connect(dsn)
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

    def _connect_error(self, exc: BaseException) -> tuple[str, StoreUnreachable]:
        """Classify a failed connection attempt into a scrubbed StoreError with a hint."""
        t = self.target
        text = t.scrub(" ".join(str(exc).split()))
        detail = re.sub(r"^(IO: )?(\[libpq\] )?(Failed to connect: )?(connection failed: )?", "", text).strip()
        low = detail.lower()
        if "authentication failed" in low or "no password supplied" in low or (
                "role" in low and "does not exist" in low):
            return "auth", StoreUnreachable(
                f"PostgreSQL at {t.display} refused the login: {detail}. Hint: check the user and password in "
                "--db/COLFILL_DB_URL (or PGPASSWORD, ~/.pgpass)."
            )
        if "database" in low and "does not exist" in low:
            return "missing-db", StoreUnreachable(
                f"database {t.dbname!r} does not exist at {t.display}. Hint: pass --create-db to create it "
                f"(or run: createdb {t.dbname})."
            )
        return "unreachable", StoreUnreachable(
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
                s.execute(f"CREATE DATABASE {POSTGRES.quote(name)}")
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

    def error(self, what: str, exc: BaseException, hint: str = "") -> StoreError:
        """The StoreError for a driver failure while doing `what`: its message scrubbed of the password, a hint."""
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
            if not self.ts_preloaded:
                raise StoreError(f"--timescale: {NOT_PRELOADED.format(where=self.target.display)}. Hint: add "
                                 "timescaledb to shared_preload_libraries and restart the server, or run without "
                                 "--timescale.")
            return True  # created by the first DDL transaction
        if self.ts_available and not self.ts_preloaded:
            self._notice(f"{NOT_PRELOADED.format(where=self.target.display)}: bars tables are plain PostgreSQL "
                         "tables, bars_1m partitioned by day. Hint: add timescaledb to shared_preload_libraries and "
                         "restart the server to use it.")
        elif self.ts_available:
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
            raise self.error("--timescale: CREATE EXTENSION timescaledb", exc,
                              "TimescaleDB must be in shared_preload_libraries and the user may need superuser") \
                from None
        self.ts_version, self.ts_schema = s.execute(
            "SELECT e.extversion::text, n.nspname::text FROM pg_extension e "
            "JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'timescaledb'")[0]

    @property
    def ts(self) -> tuple[tuple[int, int], str]:
        """(TimescaleDB version, schema of the extension): what the DDL of colfill.stores.timescale depends on."""
        return tsdb.parse_version(self.ts_version or ""), self.ts_schema or "public"

    # -- DDL --

    def close(self) -> None:
        self.pool.close()

    def describe(self) -> str:
        kind = f"TimescaleDB {self.ts_version}" if self.hypertables and self.ts_version else "PostgreSQL"
        return f"{kind} {self.target.display} (schema {self.schema})"

    def rel(self, table: str) -> str:
        """`table` of the store's schema, quoted for SQL."""
        return POSTGRES.qualified(self.schema, table)

    @contextlib.contextmanager
    def ddl(self) -> Iterator[_Session]:
        """A DDL transaction, serialised per schema across processes (advisory lock), schema and manifest made."""
        with self._ddl_lock, self.pool.session() as s:
            had_extension = self.ts_version
            try:
                s.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s::text, 0))", [f"colfill-ddl:{self.schema}"])
                # existence first: CREATE ... IF NOT EXISTS checks the CREATE privilege even when nothing is made
                if not s.execute("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s::text)",
                                 [self.schema])[0][0]:
                    s.execute(f"CREATE SCHEMA {POSTGRES.quote(self.schema)}")
                if s.execute("SELECT to_regclass(%s::text) IS NULL", [self.rel(MANIFEST)])[0][0]:
                    s.execute(f"CREATE TABLE {self.rel(MANIFEST)} {MANIFEST_COLUMNS}")
                self._ensure_extension(s)
                yield s
                s.commit()
            except BaseException as exc:
                s.reset()
                self.ts_version = had_extension  # a CREATE EXTENSION of this transaction was rolled back too
                if isinstance(exc, ColfillError) or not isinstance(exc, Exception):
                    raise
                raise self.error(f"preparing schema {self.schema!r}", exc) from None

    def existing(self, s: _Session, table: str) -> tuple[str | None, dict[str, str]]:
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
        self.ensure_tables({table: schema})

    def ensure_tables(self, tables: dict[str, pa.Schema], extra_ddl: Sequence[str] = ()) -> None:
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
        found: dict[str, tuple[dict[str, str], bool, bool, bool]] = {}
        with self.ddl() as s:
            for table, cols in wanted.items():
                policies += self._ensure_in(s, table, cols)
                kind, columns = self.existing(s, table)
                hyper = self._is_hypertable(s, table)
                keyless = hyper and not has_unique_key(s, self.schema, table)
                found[table] = (columns, hyper, kind == "p", keyless)
            for stmt in extra_ddl:
                s.execute(stmt)
        if policies:
            self.autocommit(policies, "adding the compression policies")
        for table, (columns, hyper, partitioned, keyless) in found.items():
            self._columns[table] = columns
            self._kinds[table] = "hypertable" if hyper else "day-partitioned" if partitioned else "plain"
            self._keyless[table] = keyless
            if hyper and not keyless and self.direct_compress_guc():
                self._notice(f"the hypertables of schema {self.schema!r} keep their primary key (ticker, ts): loads "
                             "COPY under the key and compress after. Hint: the faster layout (no unique index, "
                             "direct compress) needs `colfill db init` on a new schema (?schema=NAME).")

    def _is_hypertable(self, s: _Session, table: str) -> bool:
        return bool(self.ts_version) and bool(s.execute(
            "SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_schema = %s::text "
            "AND hypertable_name = %s::text", [self.schema, table]))

    def kind(self, table: str) -> TableKind | None:
        """How `table` stores its rows, as found when it was last made or checked; None before that."""
        return self._kinds.get(table)

    def keyless(self, table: str) -> bool:
        """Whether `table` is a hypertable without a unique (ticker, ts) index: one row per key is the loader's."""
        return self._keyless.get(table, False)

    def direct_compress_guc(self) -> bool:
        """Whether the server accepts direct compress of COPY (TimescaleDB 2.21+), asked once."""
        if self._direct_guc is None:
            self._direct_guc = bool(self.ts_version) and bool(self.read(
                "SELECT 1 FROM pg_settings WHERE name = %s::text", [tsdb.DIRECT_COMPRESS_GUC]))
        return self._direct_guc

    def direct_compress(self, table: str) -> bool:
        """Whether loads into `table` COPY with direct compress: a keyless hypertable, a server with the setting,
        and 2.23+ when a continuous aggregate reads the table (older servers COPY, then compress the chunk)."""
        if table not in self._direct:
            on = self.keyless(table) and self.direct_compress_guc()
            if on and self.ts[0] < tsdb.DIRECT_COMPRESS_CAGG_VERSION:
                on = not self.read("SELECT 1 FROM timescaledb_information.continuous_aggregates WHERE "
                                   "hypertable_schema = %s::text AND hypertable_name = %s::text", [self.schema, table])
            self._direct[table] = on
        return self._direct[table]

    def columns(self, table: str) -> dict[str, str] | None:
        """{column: PostgreSQL type} of `table` as last made or checked by this store; None before that."""
        return self._columns.get(table)

    def lift_decompression_limit(self, s: _Session) -> None:
        """In a load transaction on TimescaleDB: lift the limit on tuples decompressed per DML transaction (a
        day's DELETE or COPY into a compressed chunk exceeds the default), where the server has that setting."""
        if not self.hypertables:
            return
        if self._decompress_guc is None:
            rows = s.execute("SELECT 1 FROM pg_settings WHERE name = %s::text", [tsdb.DECOMPRESSION_LIMIT_GUC])
            self._decompress_guc = bool(rows)
        if self._decompress_guc:
            s.execute(f"SET LOCAL {tsdb.DECOMPRESSION_LIMIT_GUC} = 0")

    def _ensure_in(self, s: _Session, table: str, wanted: dict[str, str]) -> list[str]:
        """Create or check-and-extend one bars table in the open transaction; the policies still to add."""
        kind, existing = self.existing(s, table)
        rel = self.rel(table)
        if kind is not None:
            check_existing(s, self.schema, self.database, table, kind, existing, wanted,
                           keyless_ok=self._is_hypertable(s, table))
            for n, t in wanted.items():
                if n not in existing:
                    s.execute(f"ALTER TABLE {rel} ADD COLUMN {POSTGRES.quote(n)} {t}")
            return []
        # Tickers are compared bytewise (COLLATE "C"): the key's B-tree then uses memcmp, not the locale's
        # rules, which on en_US.UTF-8 servers are a large share of a load's CPU; the order is the files'.
        hyper = self.hypertables and table in tsdb.SPECS
        by_day = " PARTITION BY RANGE (ts)" if table in DAY_PARTITIONED and not hyper else ""
        # A hypertable has no key: see "No unique index, direct compress" in colfill.stores.timescale.
        s.execute(sql.create_sql(POSTGRES, rel, wanted, KEY, options=lambda n: ' COLLATE "C"' if n == "ticker" else "",
                                 keyed=not hyper) + by_day)
        if not hyper:
            return []
        version, ext = self.ts
        for stmt in [*tsdb.hypertable_sql(self.schema, table, version, ext), tsdb.load_index_sql(self.schema, table)]:
            s.execute(stmt)
        return [tsdb.policy_sql(self.schema, table, version, ext)]

    def autocommit(self, statements: Sequence[str], what: str) -> None:
        """Statements that must not run inside a transaction block (procedures, continuous aggregates)."""
        with self.pool.session() as s:
            s.set_autocommit(True)
            try:
                for stmt in statements:
                    s.execute(stmt)
            except Exception as exc:
                raise self.error(what, exc, "the tables were created; rerun `colfill db init` after fixing this") \
                    from None
            finally:
                try:
                    s.set_autocommit(False)
                except Exception:
                    s.discard()

    # -- read-only queries --

    def relations(self) -> set[str]:
        """The names of every relation (table, view, ...) in our schema."""
        return set(self.read("SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                             "WHERE n.nspname = %s::text", [self.schema]))

    def read(self, sql: str, params: Sequence[object] | None = None) -> list[Any]:
        """First column of every row of a read-only query, in its own transaction; [] when it fails."""
        return [r[0] for r in self.read_rows(sql, params)]

    def read_one(self, sql: str, params: Sequence[object] | None = None) -> Any:
        rows = self.read_rows(sql, params)
        return rows[0][0] if rows else None

    def read_row(self, sql: str, params: Sequence[object] | None = None) -> tuple[Any, ...] | None:
        rows = self.read_rows(sql, params)
        return rows[0] if rows else None

    def read_rows(self, sql: str, params: Sequence[object] | None = None) -> list[tuple[Any, ...]]:
        """Rows of a read-only query in its own transaction; none when what it reads does not exist (a table,
        function or schema: TimescaleDB's views on a plain server); any other failure is an error."""
        with self.pool.session() as s:
            try:
                rows = s.execute(sql, params)
                s.rollback()
                return rows
            except Exception as exc:
                s.reset()
                if _sqlstate(exc) in _MISSING_STATES:
                    return []
                raise self.error("reading the database", exc, "nothing was changed") from None
