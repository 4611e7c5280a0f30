"""`upsert_live` on PostgreSQL: live bars upserted by (ticker, ts) into the backfill's tables (a day partition of
`bars_1m` made when missing), idempotent, revisions replacing rows; a later backfill of the day replaces the live
rows (whole day) or merges with them (a --tickers lineage)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from colfill.errors import SchemaMismatch
from colfill.stores import open_store
from colfill.stores.base import Store
from colfill.stores.postgres import PostgresStore
from tests.postgres.conftest import INDICATORS, NEW_YORK, Db, batch, expected_rows, fresh_schema, make_day

pytestmark = pytest.mark.postgres
DAY, NEXT = dt.date(2024, 3, 7), dt.date(2024, 3, 8)


@pytest.fixture(params=["psycopg", "adbc", "psycopg-hypertable"])
def store_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """Plain tables through either driver, and hypertables where a TimescaleDB server is at hand."""
    driver, _, kind = request.param.partition("-")
    with fresh_schema(request, bool(kind), "colfill_live") as url:
        yield url.replace("postgresql://", f"postgresql+{driver}://", 1)


@pytest.fixture
def db(store_url: str) -> Iterator[Db]:
    d = Db(store_url)
    yield d
    d.con.close()


@pytest.fixture
def store(store_url: str) -> Iterator[PostgresStore]:
    s = open_store(store_url)
    assert isinstance(s, PostgresStore) and isinstance(s, Store)
    yield s
    s.close()


def day_rows(store: PostgresStore, db: Db, day: str) -> int:
    """Rows in the day's partition (plain PostgreSQL), or of that day in the hypertable (TimescaleDB)."""
    if store.ts_version:
        return db.one(f"SELECT count(*) FROM {{s}}.bars_1m WHERE (ts AT TIME ZONE 'America/New_York')::date = "
                      f"DATE '{day}'")
    return db.one(f"SELECT count(*) FROM {{s}}.bars_1m_{day.replace('-', '')}")


def with_close(rows: pa.Table, value: float) -> pa.Table:
    return rows.set_column(rows.column_names.index("close"), "close", pa.array([value] * rows.num_rows))


def test_upsert_live_is_idempotent_and_a_revision_replaces_the_row(store: PostgresStore, db: Db) -> None:
    rows = make_day(DAY, ["AAPL", "MSFT"], minutes=5, seed=1)
    assert store.upsert_live("bars_1m", rows) == 10
    assert store.upsert_live("bars_1m", rows) == 10
    assert db.bars() == expected_rows(rows)
    assert day_rows(store, db, "2024-03-07") == 10  # the day's partition, as the backfill's
    first = rows.slice(0, 1)
    twice = pa.concat_tables([with_close(first, 1.0), with_close(first, 2.0)])  # the last version of a key wins
    assert store.upsert_live("bars_1m", twice) == 1
    assert db.one("SELECT close FROM {s}.bars_1m WHERE ticker = 'AAPL' ORDER BY ts LIMIT 1") == 2.0
    bare = with_close(first, 3.0).drop_columns(list(INDICATORS))  # columns it lacks become null
    store.upsert_live("bars_1m", bare)
    assert db.rows("SELECT close, sma_20, vwap FROM {s}.bars_1m WHERE ticker = 'AAPL' ORDER BY ts LIMIT 1") \
        == [(3.0, None, None)]
    assert db.one("SELECT count(*) FROM {s}.bars_1m") == 10
    two_days = pa.concat_tables([make_day(DAY, ["TSLA"], minutes=2), make_day(NEXT, ["TSLA"], minutes=2)])
    assert store.upsert_live("bars_1m", two_days) == 4
    assert day_rows(store, db, "2024-03-08") == 2
    midnight = dt.datetime.combine(DAY, dt.time(), NEW_YORK).astimezone(dt.timezone.utc)
    daily = make_day(DAY, ["AAPL"], minutes=1, start=midnight.astimezone(NEW_YORK).time())
    assert store.upsert_live("bars_1d", daily) == 1 and store.upsert_live("bars_1d", daily) == 1
    assert db.bars("bars_1d") == expected_rows(daily)
    with pytest.raises(SchemaMismatch, match="bars_7m"):
        store.upsert_live("bars_7m", rows)


def test_upsert_live_of_a_derived_table_makes_it_and_a_revision_replaces_the_row(store: PostgresStore, db: Db) -> None:
    """The live rollup's bars (`bars_5m`, `bars_1d_rth`): the table made as a backfill makes it (day partitions or
    a hypertable), upserted by (ticker, ts)."""
    minutes = make_day(DAY, ["AAPL", "MSFT"], minutes=30, seed=6)
    rows = minutes.take([i for i in range(minutes.num_rows) if i % 5 == 0])  # 09:30, 09:35 ... of each ticker
    assert store.upsert_live("bars_5m", rows) == 12
    assert store.upsert_live("bars_5m", rows) == 12
    assert db.bars("bars_5m") == expected_rows(rows)
    if store.ts_version:
        assert db.one("SELECT time_interval::text FROM timescaledb_information.dimensions WHERE hypertable_schema = %s "
                      "AND hypertable_name = 'bars_5m'", [db.schema]) == "7 days"
    else:
        assert db.one("SELECT count(*) FROM {s}.bars_5m_20240307") == 12  # the day's partition
    assert store.upsert_live("bars_5m", with_close(rows.slice(1, 1), 9.0)) == 1
    assert db.rows("SELECT ticker, close FROM {s}.bars_5m WHERE close = 9.0") == [("AAPL", 9.0)]
    assert db.one("SELECT count(*) FROM {s}.bars_5m") == 12
    midnight = dt.datetime.combine(DAY, dt.time(), NEW_YORK)
    daily = make_day(DAY, ["AAPL"], minutes=1, start=midnight.time())
    assert store.upsert_live("bars_1d_rth", daily) == 1
    assert store.upsert_live("bars_1d_rth", with_close(daily, 5.0)) == 1
    assert db.rows("SELECT close FROM {s}.bars_1d_rth") == [(5.0,)]


def test_a_backfilled_day_replaces_its_live_rows(store: PostgresStore, db: Db) -> None:
    live = with_close(make_day(DAY, ["AAPL", "LIVE"], minutes=8, seed=2), -1.0)
    store.upsert_live("bars_1m", live)
    flat = make_day(DAY, ["AAPL", "MSFT"], minutes=6, seed=3)
    assert store.load(batch(flat, DAY)) == flat.num_rows  # the day's flat file: the whole day is swapped in
    assert db.bars() == expected_rows(flat)  # no live row left, no duplicate
    store.upsert_live("bars_1m", with_close(make_day(NEXT, ["AAPL", "MSFT"], minutes=4, seed=4), -1.0))
    subset = make_day(NEXT, ["AAPL"], minutes=3, seed=5)
    store.load(batch(subset, NEXT, lineage="aapl-only", tickers=("AAPL",)))  # a --tickers lineage merges
    next_rows = db.bars(where="ts >= '2024-03-08 05:00+00'")
    assert [r[0] for r in next_rows] == ["AAPL"] * 3 + ["MSFT"] * 4  # AAPL's live rows replaced, MSFT's kept
    assert next_rows[:3] == expected_rows(subset)
    assert db.one("SELECT count(*) FROM {s}.bars_1m WHERE close < 0") == 4


def test_unsorted_live_rows_with_large_strings(store: PostgresStore, db: Db) -> None:
    rows = make_day(DAY, ["MSFT", "AAPL"], minutes=3, seed=6)
    rows = rows.take(pc.sort_indices(rows["close"]))  # any order
    assert store.upsert_live("bars_1m", rows) == 6
    assert db.bars() == expected_rows(rows)


def test_live_rows_of_other_numeric_types_and_new_columns_fit_the_backfilled_table(store: PostgresStore,
                                                                                    store_url: str, db: Db) -> None:
    store.load(batch(make_day(DAY, ["AAPL"], minutes=2, seed=7), DAY))  # the table as the backfill made it
    store.close()
    store = PostgresStore(store_url)  # a new process's store: it has not seen the table yet
    rows = make_day(NEXT, ["AAPL"], minutes=2, seed=8)
    rows = rows.set_column(rows.column_names.index("volume"), "volume", pa.array([5, 6], pa.int32()))
    rows = rows.append_column("ema_50", pa.array([1.5, 2.5]))
    assert store.upsert_live("bars_1m", rows) == 2
    assert db.rows("SELECT volume, ema_50 FROM {s}.bars_1m WHERE ts >= '2024-03-08 05:00+00' ORDER BY ts") \
        == [(5.0, 1.5), (6.0, 2.5)]
    assert db.one("SELECT count(*) FROM {s}.bars_1m WHERE ema_50 IS NULL") == 2  # the backfilled rows
    with pytest.raises(SchemaMismatch, match="transactions"):
        store.upsert_live("bars_1m", rows.set_column(rows.column_names.index("transactions"), "transactions",
                                                     pa.array([1.5, 2.0])))
    store.close()
