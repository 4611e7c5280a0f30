"""TimescaleDB DDL: the generated statements (asserted as text, for both API generations), the order the store
runs them in (with a recording session), and the server at hand: hypertables with a real TimescaleDB, else
the plain-PostgreSQL path with its one-line notice."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
import pytest

from colfill.errors import StoreError
from colfill.stores import postgres as pgmod
from colfill.stores import timescale as tsdb
from colfill.stores.postgres import PostgresStore, bars_schema
from colfill.stores.postgres.catalog import Catalog
from tests.conftest import timescale_loaded
from tests.postgres.conftest import INDICATORS, Db, batch, make_day

pytestmark = pytest.mark.postgres


# --- the statements --------------------------------------------------------------------------------------

def test_hypertable_ddl_with_compression_names_before_2_18() -> None:
    assert tsdb.hypertable_sql("mkt", "bars_1m", (2, 14)) == [
        "SELECT 1 FROM \"public\".create_hypertable('\"mkt\".\"bars_1m\"', "
        "\"public\".by_range('ts', INTERVAL '1 day'), create_default_indexes => false, if_not_exists => true)",
        'ALTER TABLE "mkt"."bars_1m" SET (timescaledb.compress, timescaledb.compress_segmentby = \'ticker\', '
        "timescaledb.compress_orderby = 'ts')",
    ]
    assert tsdb.policy_sql("mkt", "bars_1m", (2, 17)) == (
        "SELECT \"public\".add_compression_policy('\"mkt\".\"bars_1m\"', compress_after => INTERVAL '7 days', "
        "if_not_exists => true)")


@pytest.mark.parametrize("version", [(2, 18), (2, 28), (2, 29)])
def test_hypertable_ddl_with_columnstore_names_from_2_18(version: tuple[int, int]) -> None:
    assert tsdb.hypertable_sql("mkt", "bars_1d", version, ext_schema="tsdb") == [
        "SELECT 1 FROM \"tsdb\".create_hypertable('\"mkt\".\"bars_1d\"', \"tsdb\".by_range('ts', INTERVAL '365 days'), "
        "create_default_indexes => false, if_not_exists => true)",
        'ALTER TABLE "mkt"."bars_1d" SET (timescaledb.enable_columnstore = true, timescaledb.segmentby = \'ticker\', '
        "timescaledb.orderby = 'ts')",
    ]
    assert tsdb.policy_sql("mkt", "bars_1d", version, ext_schema="tsdb") == (
        "CALL \"tsdb\".add_columnstore_policy('\"mkt\".\"bars_1d\"', after => INTERVAL '30 days', "
        "if_not_exists => true)")


def test_every_derived_table_has_a_chunk_size_of_about_a_minute_chunks_rows_or_fewer() -> None:
    from colfill.bars import DERIVED_TABLES

    assert set(DERIVED_TABLES) <= set(tsdb.SPECS)
    chunks = {t: tsdb.SPECS[t].chunk_interval for t in ("bars_1m_rth", "bars_2m", "bars_30m_rth", "bars_1h",
                                                        "bars_1h_rth", "bars_1d_rth")}
    assert chunks == {"bars_1m_rth": "1 day", "bars_2m": "7 days", "bars_30m_rth": "7 days", "bars_1h": "30 days",
                      "bars_1h_rth": "30 days", "bars_1d_rth": "365 days"}
    assert "INTERVAL '7 days'" in tsdb.hypertable_sql("mkt", "bars_5m", (2, 28))[0]
    assert tsdb.policy_sql("mkt", "bars_1h", (2, 28)).endswith("after => INTERVAL '30 days', if_not_exists => true)")


def test_ddl_quotes_names_with_quotes() -> None:
    stmts = tsdb.hypertable_sql("we'ird \"s\"", "bars_1m", (2, 14))
    assert stmts[0].startswith("SELECT 1 FROM \"public\".create_hypertable('\"we''ird \"\"s\"\"\".\"bars_1m\"', ")
    assert stmts[1].startswith('ALTER TABLE "we\'ird ""s"""."bars_1m" SET (')


def test_daily_continuous_aggregate_and_stats_sql() -> None:
    create, policy = tsdb.daily_cagg_sql("mkt", (2, 18))
    assert create.startswith(
        'CREATE MATERIALIZED VIEW IF NOT EXISTS "mkt"."bars_1d_cagg" WITH (timescaledb.continuous) AS ')
    assert "\"public\".time_bucket(INTERVAL '1 day', ts, 'America/New_York') AS ts" in create
    assert '"public".first(open, ts) AS open' in create and '"public".last(close, ts) AS close' in create
    assert create.endswith("GROUP BY ticker, \"public\".time_bucket(INTERVAL '1 day', ts, 'America/New_York') "
                           "WITH NO DATA")
    assert 'FROM "mkt"."bars_1m"' in create
    assert policy == ("SELECT \"public\".add_continuous_aggregate_policy('\"mkt\".\"bars_1d_cagg\"', start_offset => "
                      "NULL, end_offset => INTERVAL '1 day', schedule_interval => INTERVAL '1 hour', "
                      "if_not_exists => true)")
    assert "hypertable_compression_stats(" in tsdb.stats_sql("mkt", "bars_1m", (2, 17))["compression"]
    assert "hypertable_columnstore_stats(" in tsdb.stats_sql("mkt", "bars_1m", (2, 18))["compression"]
    assert tsdb.parse_version("2.28.1") == (2, 28) and tsdb.parse_version("") == (0, 0)


# --- the order the store runs them in -------------------------------------------------------------------

class Recorder:
    """A session that records SQL and answers the catalogue questions the store asks, as a TimescaleDB server
    of `version` would (extension installed, or only available when `installed` is False)."""

    log: list[tuple[bool, str]] = []

    def __init__(self, version: str, installed: bool) -> None:
        self.version, self.installed = version, installed
        self.autocommit = False
        self.created: dict[str, list[str]] = {}

    driver = "recorder"
    rowcount = 0
    broken = False

    def execute(self, sql: str, params: Sequence[object] | None = None) -> list[tuple[Any, ...]]:
        Recorder.log.append((self.autocommit, sql))
        if sql.startswith("SELECT current_schema()"):
            return [("public", "db", self.version if self.installed else None, "tsx" if self.installed else None,
                     self.version, True)]
        if sql.startswith("SELECT e.extversion"):
            return [(self.version, "tsx")]
        if "format_type" in sql:
            cols = self.created.get(str(params[1])) if params else None
            return [("r", c, pgmod.pg_type(t)) for c, t in cols] if cols else []  # type: ignore[misc]
        if sql.startswith("CREATE TABLE"):
            name = sql.split(".", 1)[1].split(" ", 1)[0].strip('"')
            self.created[name] = [(f.name, f.type) for f in bars_schema(INDICATORS)]  # type: ignore[misc]
        if "FROM pg_namespace WHERE nspname" in sql or sql.startswith("SELECT to_regclass"):
            return [(False,)]  # no such schema yet (it is created), the manifest table exists
        if sql.startswith("SELECT count(*)::bigint"):  # the loader's check: what it COPYed last
            return [(self.copied,)]
        if "FROM timescaledb_information.hypertables" in sql:
            return [(1,)] if self.installed else []
        if sql.startswith("SELECT 1 FROM pg_settings") or sql.startswith("SELECT EXISTS"):
            return [(sql.startswith("SELECT 1"),)]
        return []

    def copy(self, schema: str | None, table: str, data: pa.Table, freeze: bool = False,
             keep_order: bool = False) -> None:
        self.copied = data.num_rows
        Recorder.log.append((self.autocommit, f"COPY {table} {data.num_rows}"))

    def commit(self) -> None:
        Recorder.log.append((self.autocommit, "COMMIT"))

    def rollback(self) -> None:
        pass

    def reset(self) -> None:
        pass

    def set_autocommit(self, on: bool) -> None:
        self.autocommit = on

    def close(self) -> None:
        pass


@pytest.fixture
def recorded() -> Iterator[list[tuple[bool, str]]]:
    Recorder.log = []
    yield Recorder.log


def fake_store(monkeypatch: pytest.MonkeyPatch, version: str, installed: bool = True, **kw: Any) -> PostgresStore:
    session = Recorder(version, installed)
    monkeypatch.setattr(Catalog, "connect", lambda self, dsn=None: session)
    return PostgresStore("postgresql://u:pw@db.example/prices?schema=mkt", load_workers=1, **kw)


@pytest.mark.parametrize("version", ["2.14.2", "2.28.0", "2.29.1"])
def test_store_creates_hypertables_then_the_policy_outside_the_transaction(
        monkeypatch: pytest.MonkeyPatch, recorded: list[tuple[bool, str]], version: str) -> None:
    store = fake_store(monkeypatch, version)
    assert store.hypertables and store.notices == []
    store.ensure_table("bars_1m", bars_schema(INDICATORS))
    statements = [sql for _, sql in recorded]
    create = next(i for i, s in enumerate(statements) if s.startswith('CREATE TABLE "mkt"."bars_1m"'))
    assert "PRIMARY KEY" not in statements[create]  # one row per key is the loader's (direct compress)
    v = tsdb.parse_version(version)
    assert statements[create + 1: create + 3] == tsdb.hypertable_sql("mkt", "bars_1m", v, "tsx")
    assert statements[create + 3] == tsdb.load_index_sql("mkt", "bars_1m")
    assert [s for s in statements if "CREATE INDEX" in s] == [statements[create + 3]]
    commit = statements.index("COMMIT", create)
    assert recorded[commit + 1] == (True, tsdb.policy_sql("mkt", "bars_1m", v, "tsx"))
    recorded.clear()
    store.load(batch(make_day(dt.date(2024, 3, 7), ["AAPL"], seed=1), dt.date(2024, 3, 7)))
    statements = [sql for _, sql in recorded]
    guc = statements.index(f"SET LOCAL {tsdb.DECOMPRESSION_LIMIT_GUC} = 0")
    assert guc < next(i for i, s in enumerate(statements) if s.startswith("COPY bars_1m"))
    # a reload's DELETE relies on chunk exclusion, not the ticker skip scan
    assert store.catalog.kind("bars_1m") == "hypertable"
    day = dt.date(2024, 3, 7)
    assert "ANY(ARRAY(" not in store.loader.partition_filter(batch(make_day(day, ["A"]), day))


def test_timescale_flag_creates_the_extension_when_available(monkeypatch: pytest.MonkeyPatch,
                                                             recorded: list[tuple[bool, str]]) -> None:
    store = fake_store(monkeypatch, "2.17.0", installed=False, timescale=True)
    assert store.hypertables
    store.ensure_table("bars_1d", bars_schema(INDICATORS))
    statements = [sql for _, sql in recorded]
    assert statements.index("CREATE EXTENSION IF NOT EXISTS timescaledb") < statements.index(
        tsdb.hypertable_sql("mkt", "bars_1d", (2, 17), "tsx")[0])
    assert (True, tsdb.policy_sql("mkt", "bars_1d", (2, 17), "tsx")) in recorded


def test_without_the_flag_an_available_extension_is_left_alone(monkeypatch: pytest.MonkeyPatch,
                                                              recorded: list[tuple[bool, str]]) -> None:
    store = fake_store(monkeypatch, "2.17.0", installed=False)
    assert not store.hypertables
    assert store.notices == ["TimescaleDB is available but not enabled in database 'db': bars tables are plain "
                             "PostgreSQL tables, bars_1m partitioned by day (same columns and keys). Hint: pass "
                             "--timescale to use it."]
    store.ensure_table("bars_1m", bars_schema(INDICATORS))
    assert not any("timescaledb" in sql.lower() for _, sql in recorded if not sql.startswith("SELECT current"))
    assert any(sql.startswith('CREATE TABLE "mkt"."bars_1m"') for _, sql in recorded)


def test_too_old_timescaledb(monkeypatch: pytest.MonkeyPatch, recorded: list[tuple[bool, str]]) -> None:
    assert not fake_store(monkeypatch, "2.11.2").hypertables
    with pytest.raises(StoreError, match="older than 2.13"):
        fake_store(monkeypatch, "2.11.2", timescale=True)
    assert not fake_store(monkeypatch, "2.28.0", timescale=False).hypertables


# --- the server at hand ---------------------------------------------------------------------------------

def test_plain_postgresql_path_and_notice(pg_url: str, db: Db) -> None:
    """The database of the tests has no extension, so plain tables, whatever the server has."""
    loaded = timescale_loaded(pg_url)
    with PostgresStore(pg_url) as s:
        report = s.init(INDICATORS)
        assert not report.hypertables and not s.hypertables
        installed = s.ts_available
    if loaded:  # TimescaleDB is there, not enabled in this database: hypertables only when asked
        assert len(report.notices) == 1 and "is available but not enabled in database" in report.notices[0]
    elif installed:  # the extension's files are there, but shared_preload_libraries does not load it
        assert len(report.notices) == 1 and "it is not in shared_preload_libraries" in report.notices[0]
    else:
        assert report.notices == ["TimescaleDB is not installed on this server: bars tables are plain PostgreSQL "
                                  "tables, bars_1m partitioned by day (same columns and primary key)."]
    assert all("\n" not in n for n in report.notices)
    kinds = db.rows("SELECT relname, relkind FROM pg_class WHERE relnamespace = %s::regnamespace "
                    "AND relname IN ('bars_1m', 'bars_1d') ORDER BY 1", [f'"{db.schema}"'])
    assert kinds == [("bars_1d", "r"), ("bars_1m", "p")]  # bars_1m: a partition per day, made as days load
    if not loaded:  # where it is loaded, timescale=True enables it: tests/postgres/test_timescale_server.py
        with pytest.raises(StoreError, match="not loaded" if installed else "does not have the TimescaleDB extension"):
            PostgresStore(pg_url, timescale=True)
