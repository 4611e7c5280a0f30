"""PostgresStore against a real PostgreSQL: schema, the load paths, atomicity with the manifest, concurrency,
schema conflicts, and names/tickers with quotes or SQL in them. Load tests run through both drivers."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from colfill.errors import InvalidArgument, SchemaMismatch, StoreError
from colfill.stores import open_store
from colfill.stores.base import day_bounds
from colfill.stores.postgres import PostgresStore, bars_schema, encode_pgcopy
from colfill.stores.postgres.load import Loader
from tests.postgres.conftest import INDICATORS, Db, batch, drop_schema, expected_rows, make_day, with_query

pytestmark = pytest.mark.postgres

D1, D2, D3 = dt.date(2024, 3, 7), dt.date(2024, 3, 8), dt.date(2024, 3, 11)
TICKERS = ["AAPL", "MSFT", "TSLA", "XOM"]


@pytest.fixture(params=["psycopg", "adbc"])
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(pg_url: str, driver: str) -> Iterator[PostgresStore]:
    s = PostgresStore(pg_url.replace("postgresql://", f"postgresql+{driver}://", 1), load_workers=2)
    yield s
    s.close()


def test_registry_opens_postgres_store(pg_url: str) -> None:
    s = open_store(pg_url, load_workers=3)
    try:
        assert isinstance(s, PostgresStore) and s.load_workers == 3 and s.supports_upsert
        assert s.schema == pg_url.rsplit("schema=", 1)[1]
    finally:
        s.close()


def test_init_creates_tables_keys_and_indexes(pg_url: str, db: Db) -> None:
    with PostgresStore(pg_url) as s:
        report = s.init(INDICATORS)
        again = s.init(INDICATORS)  # idempotent
    assert set(report.tables) == {"bars_1m", "bars_1d", "tickers", "splits", "dividends", "colfill_files"}
    assert again.tables == report.tables
    tables = {r[0] for r in db.rows("SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                                    [db.schema])}
    assert tables == set(report.tables)
    for table in ("bars_1m", "bars_1d"):
        cols = db.rows("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s "
                       "AND table_name = %s ORDER BY ordinal_position", [db.schema, table])
        assert [c for c, _ in cols] == bars_schema(INDICATORS).names
        types = dict(cols)
        assert types["ts"] == "timestamp with time zone" and types["ticker"] == "text"
        assert types["transactions"] == "bigint" and types["sma_20"] == "double precision"
        collation = db.one("SELECT collation_name FROM information_schema.columns WHERE table_schema = %s "
                           "AND table_name = %s AND column_name = 'ticker'", [db.schema, table])
        assert collation == "C"  # bytewise key comparisons, whatever the server's locale
        key = db.rows("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                      "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary "
                      "ORDER BY array_position(i.indkey, a.attnum)", [db.rel(table)])
        assert [k for (k,) in key] == ["ticker", "ts"]
        indexes = db.rows("SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = %s::regclass",
                          [db.rel(table)])
        assert [i.split(".")[-1] for (i,) in indexes] == [f"{table}_pkey"]  # the key only: loads stay fast
    manifest_key = db.rows("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                           "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary",
                           [db.rel("colfill_files")])
    assert {k for (k,) in manifest_key} == {"table_name", "date", "lineage"}


def test_fast_path_then_reload_replaces_the_day(store: PostgresStore, db: Db) -> None:
    v1_d1, v1_d2 = make_day(D1, TICKERS, seed=1), make_day(D2, TICKERS, seed=2)
    assert store.load(batch(v1_d1, D1, "a1")) == v1_d1.num_rows
    assert store.load(batch(v1_d2, D2, "a2")) == v1_d2.num_rows
    assert store.paths == {"insert": 2}
    assert db.bars() == expected_rows(v1_d1, v1_d2)
    # the new version of D1 has fewer tickers and fewer minutes, and other values
    v2_d1 = make_day(D1, ["AAPL", "TSLA"], minutes=20, seed=3)
    assert store.load(batch(v2_d1, D1, "b1")) == v2_d1.num_rows
    assert store.paths["replace"] == 1
    assert db.bars() == expected_rows(v2_d1, v1_d2)
    assert db.manifest()[("bars_1m", D1, "lin")] == ("b1", v2_d1.num_rows)
    assert store.loaded("bars_1m", "lin") == {D1: "b1", D2: "a2"}
    # the same version again changes nothing
    store.load(batch(v2_d1, D1, "b1"))
    assert db.bars() == expected_rows(v2_d1, v1_d2)


def test_partial_ticker_reload_touches_only_its_tickers(store: PostgresStore, db: Db) -> None:
    whole = make_day(D1, TICKERS, seed=1)
    store.load(batch(whole, D1, "w"))
    msft = make_day(D1, ["MSFT"], minutes=10, seed=9)
    store.load(batch(msft, D1, "m", lineage="msft", tickers=("MSFT",)))
    others = whole.filter(pc.not_equal(whole["ticker"], "MSFT"))
    assert db.bars() == expected_rows(others, msft)
    assert set(db.manifest()) == {("bars_1m", D1, "lin"), ("bars_1m", D1, "msft")}


def test_merge_path_gives_the_same_tables(pg_url: str, driver: str, db: Db) -> None:
    url = pg_url.replace("postgresql://", f"postgresql+{driver}://", 1)
    with PostgresStore(url, strategy="merge") as s:
        v1, v2 = make_day(D1, TICKERS, seed=1), make_day(D1, TICKERS[1:], minutes=12, seed=2)
        s.load(batch(v1, D1, "a"))
        s.load(batch(v2, D1, "b"))
        assert s.paths == {"merge": 2}
    assert db.bars() == expected_rows(v2)


@pytest.mark.parametrize("table", ["bars_1m", "bars_1d"])
def test_a_reload_finds_the_day_without_scanning_the_table(store: PostgresStore, db: Db, table: str) -> None:
    """Neither table has a ts index: bars_1m's day is its own partition (pruning), bars_1d's DELETE uses the
    (ticker, ts) key, never a scan of the table."""
    for i, d in enumerate((D1, D2, D3)):
        store.load(batch(make_day(d, TICKERS, seed=i), d, table=table))
    filt = store.loader.partition_filter(batch(make_day(D2, TICKERS), D2, table=table))
    lo, hi = (t.isoformat() for t in day_bounds(D2))
    db.rows("SET enable_seqscan = off")
    plan = "\n".join(r[0] for r in db.rows(f"EXPLAIN SELECT * FROM {db.rel(table)} t WHERE {filt}", [lo, hi]))
    if table == "bars_1m":
        scanned = set(re.findall(r" on (bars_1m\w*)", plan))
        assert scanned == {f"bars_1m_{D2:%Y%m%d}"}, plan
    else:
        assert "bars_1d_pkey" in plan and "Seq Scan" not in plan, plan
    store.load(batch(make_day(D2, TICKERS[:1], seed=7), D2, "again", table=table))
    assert db.one(f"SELECT count(DISTINCT ticker) FROM {db.rel(table)} WHERE ts::date = %s", [D2]) == 1


def test_rows_written_outside_colfill_fall_back_to_the_merge(store: PostgresStore, db: Db) -> None:
    """A day colfill never recorded but whose rows exist (written by hand) in a plain keyed table: the insert path
    conflicts, the transaction is redone as a merge, and the day ends exactly as the partition says."""
    day = make_day(D1, TICKERS, seed=1)
    store.ensure_table("bars_1d", day.schema)
    db.rows(f"INSERT INTO {db.rel('bars_1d')} (ticker, ts, open, high, low, close, volume, transactions) "
            "VALUES ('AAPL', %s, 1, 1, 1, 1, 1, 1), ('ZZZ', %s, 1, 1, 1, 1, 1, 1)",
            [day["ts"][0].as_py(), day["ts"][0].as_py()])
    store.load(batch(day, D1, "a", table="bars_1d"))
    assert store.paths == {"merge": 1}
    assert db.bars("bars_1d") == expected_rows(day)  # ZZZ was in the day and not in the partition: replaced


def partitions(db: Db, table: str = "bars_1m") -> list[str]:
    return [r[0] for r in db.rows("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                                  "WHERE i.inhparent = %s::regclass ORDER BY 1", [db.rel(table)])]


def test_minute_days_are_partitions_built_then_attached(store: PostgresStore, db: Db) -> None:
    """Each minute day becomes its own partition with its own key; reloading a day swaps the partition (twice, so
    the names a swap leaves are reusable); a day written by hand as that partition is replaced as a whole."""
    v1 = {d: make_day(d, TICKERS, seed=i) for i, d in enumerate((D1, D2))}
    for d, part in v1.items():
        store.load(batch(part, d, f"a{d}"))
    assert partitions(db) == [f"bars_1m_{D1:%Y%m%d}", f"bars_1m_{D2:%Y%m%d}"]
    for name in partitions(db):
        assert db.one("SELECT count(*) FROM pg_index WHERE indrelid = %s::regclass AND indisprimary",
                      [db.rel(name)]) == 1
    assert db.rows("SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = %s::regclass",
                   [db.rel(f"bars_1m_{D1:%Y%m%d}")])[0][0].endswith(f"bars_1m_{D1:%Y%m%d}_pkey")
    latest = v1[D1]
    for round_ in range(2):
        latest = make_day(D1, TICKERS[round_:], minutes=10 + round_, seed=10 + round_)
        store.load(batch(latest, D1, f"b{round_}"))
        assert db.bars() == expected_rows(latest, v1[D2])
    assert store.paths == {"insert": 2, "replace": 2}
    assert partitions(db) == [f"bars_1m_{D1:%Y%m%d}", f"bars_1m_{D2:%Y%m%d}"]
    assert not db.rows("SELECT 1 FROM pg_class WHERE relname LIKE '%%\\_new%%' AND relnamespace = %s::regnamespace",
                       [f'"{db.schema}"'])
    # a day the user made as a partition and filled by hand: the load replaces it with exactly the day's rows
    lo, hi = (t.isoformat() for t in day_bounds(D3))
    db.rows(f"CREATE TABLE {db.rel(f'bars_1m_{D3:%Y%m%d}')} PARTITION OF {db.rel('bars_1m')} "
            f"FOR VALUES FROM ('{lo}') TO ('{hi}')")
    d3 = make_day(D3, TICKERS, seed=3)
    db.rows(f"INSERT INTO {db.rel('bars_1m')} (ticker, ts, open, high, low, close, volume, transactions) "
            "VALUES ('ZZZ', %s, 1, 1, 1, 1, 1, 1)", [d3["ts"][0].as_py()])
    store.load(batch(d3, D3, "c"))
    assert db.bars() == expected_rows(latest, v1[D2], d3)


def test_a_swapped_in_day_is_frozen_and_all_visible(pg_url: str, db: Db) -> None:
    """COPY FREEZE into the day's new table: its first readers answer index-only (no heap fetch, no hint-bit
    writes) and vacuum has nothing to freeze later. Through psycopg; ADBC's ingest cannot freeze."""
    with PostgresStore(pg_url) as s:
        s.load(batch(make_day(D1, TICKERS, seed=1), D1))
    db.rows("SET enable_seqscan = off")
    db.rows("SET enable_bitmapscan = off")
    plan = db.one(f"EXPLAIN (ANALYZE, FORMAT JSON) SELECT ticker, ts FROM {db.rel('bars_1m')} WHERE ticker = 'AAPL'")
    node = plan[0]["Plan"]
    while node["Node Type"] != "Index Only Scan":
        node = node["Plans"][0]
    assert node["Actual Rows"] == 30 and node["Heap Fetches"] == 0, node


def test_ticker_loads_into_an_existing_day_partition(store: PostgresStore, db: Db) -> None:
    """--tickers lineages: the first builds the day's partition, the next adds and replaces its own tickers in it."""
    aapl = make_day(D1, ["AAPL"], seed=1)
    store.load(batch(aapl, D1, "a", lineage="aapl", tickers=("AAPL",)))
    msft = make_day(D1, ["MSFT"], seed=2)
    store.load(batch(msft, D1, "m", lineage="msft", tickers=("MSFT",)))
    msft2 = make_day(D1, ["MSFT"], minutes=5, seed=3)
    store.load(batch(msft2, D1, "m2", lineage="msft", tickers=("MSFT",)))
    assert db.bars() == expected_rows(aapl, msft2)
    assert partitions(db) == [f"bars_1m_{D1:%Y%m%d}"]


def test_a_table_with_the_partition_name_is_refused(store: PostgresStore, db: Db) -> None:
    day = make_day(D1, TICKERS, seed=1)
    store.ensure_table("bars_1m", day.schema)
    db.rows(f"CREATE TABLE {db.rel(f'bars_1m_{D1:%Y%m%d}')} (x int)")
    with pytest.raises(StoreError, match=f"bars_1m_{D1:%Y%m%d} exists but is not the {D1} partition"):
        store.load(batch(day, D1, "a"))
    assert db.manifest() == {} and partitions(db) == []


def test_a_plain_minute_table_made_before_keeps_loading(pg_url: str, db: Db) -> None:
    """A bars_1m that is a plain keyed table (an older colfill, or made by hand) is loaded in place."""
    types = {"ticker": 'text COLLATE "C" NOT NULL', "ts": "timestamptz NOT NULL", "transactions": "bigint"}
    cols = ", ".join(f"{c} {types.get(c, 'double precision')}" for c in bars_schema(INDICATORS).names)
    db.rows(f'CREATE SCHEMA "{db.schema}"')
    db.rows(f"CREATE TABLE {db.rel('bars_1m')} ({cols}, PRIMARY KEY (ticker, ts))")
    with PostgresStore(pg_url) as s:
        v1, v2 = make_day(D1, TICKERS, seed=1), make_day(D1, TICKERS[:2], seed=2)
        s.load(batch(v1, D1, "a"))
        s.load(batch(v2, D1, "b"))
        assert s.paths == {"insert": 1, "replace": 1}
    assert db.bars() == expected_rows(v2) and partitions(db) == []


def test_concurrent_loads_of_different_days(pg_url: str, db: Db) -> None:
    days = [D1 + dt.timedelta(days=i) for i in range(12)]
    parts = {d: make_day(d, TICKERS, minutes=25, seed=i) for i, d in enumerate(days)}
    with PostgresStore(pg_url, load_workers=3) as s, ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda d: s.load(batch(parts[d], d, f"fp{d}")), days))
        # a second round of the first half (replace path) concurrently with nothing else
        new = {d: make_day(d, TICKERS[:2], minutes=7, seed=100 + i) for i, d in enumerate(days[:6])}
        list(pool.map(lambda d: s.load(batch(new[d], d, f"fp2{d}")), days[:6]))
        assert s.paths == {"insert": 12, "replace": 6}
        assert s.loaded("bars_1m", "lin") == {d: f"fp2{d}" if d in new else f"fp{d}" for d in days}
    assert db.bars() == expected_rows(*new.values(), *(parts[d] for d in days[6:]))


def test_failure_mid_load_changes_neither_rows_nor_manifest(store: PostgresStore, db: Db) -> None:
    v1 = make_day(D1, TICKERS, seed=1)
    store.load(batch(v1, D1, "a"))
    before_rows, before_manifest = db.bars(), db.manifest()
    # the new version's last row has no ticker: the COPY fails after the day's rows were deleted
    v2 = make_day(D1, TICKERS, seed=2)
    v2 = v2.set_column(0, "ticker", pa.array(v2["ticker"].to_pylist()[:-1] + [None], pa.large_string()))
    with pytest.raises(StoreError, match="NOT NULL") as err:
        store.load(batch(v2, D1, "b"))
    assert "rolled back" in str(err.value) or "nothing was loaded" in str(err.value)
    assert db.bars() == before_rows and db.manifest() == before_manifest
    # a new day failing on the fast path leaves no rows and no manifest row either
    bad = make_day(D2, TICKERS, seed=3)
    bad = bad.set_column(1, "ts", pa.array(bad["ts"].to_pylist()[:-1] + [None], pa.timestamp("us", tz="UTC")))
    with pytest.raises(StoreError):
        store.load(batch(bad, D2, "c"))
    assert db.bars() == before_rows and db.manifest() == before_manifest


def test_failure_writing_the_manifest_rolls_back_the_rows(store: PostgresStore, db: Db,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    v1 = make_day(D1, TICKERS, seed=1)
    store.load(batch(v1, D1, "a"))
    before = db.bars(), db.manifest()
    real = Loader.apply

    def crash_on_manifest(self, s, b, data, strategy):  # type: ignore[no-untyped-def]
        execute = s.execute

        def execute_or_crash(sql, params=None):  # type: ignore[no-untyped-def]
            if sql.startswith("INSERT INTO") and "colfill_files" in sql:
                raise RuntimeError("simulated crash before the manifest row")
            return execute(sql, params)

        s.execute = execute_or_crash
        try:
            return real(self, s, b, data, strategy)
        finally:
            del s.execute

    monkeypatch.setattr(Loader, "apply", crash_on_manifest)
    with pytest.raises(StoreError, match="simulated crash"):
        store.load(batch(make_day(D1, TICKERS[:1], seed=5), D1, "b"))
    with pytest.raises(StoreError, match="simulated crash"):
        store.load(batch(make_day(D2, TICKERS, seed=6), D2, "c"))
    assert (db.bars(), db.manifest()) == before


def test_duplicate_keys_are_refused_before_writing(store: PostgresStore, db: Db) -> None:
    day = make_day(D1, TICKERS, seed=1)
    doubled = pa.concat_tables([day, day.slice(5, 1)])
    with pytest.raises(StoreError, match="more than once"):
        store.load(batch(doubled, D1))
    assert db.manifest() == {}


def test_unsorted_partitions_load_in_key_order(store: PostgresStore, db: Db) -> None:
    day = make_day(D1, TICKERS, seed=1)
    shuffled = day.take(pa.array(list(range(day.num_rows))[::-1]))
    store.load(batch(shuffled, D1))
    assert db.bars() == expected_rows(day)


def test_indicator_columns_are_added_never_dropped(pg_url: str, db: Db) -> None:
    with PostgresStore(pg_url) as s:
        s.init(["sma_20"])
        s.ensure_table("bars_1m", bars_schema(["ema_50"]))
        day = make_day(D1, TICKERS, seed=1).select(bars_schema([]).names)
        day = day.append_column("rsi_9", pa.array([50.0] * day.num_rows))
        s.load(batch(day, D1))
    cols = [r[0] for r in db.rows("SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
                                  "AND table_name = 'bars_1m' ORDER BY ordinal_position", [db.schema])]
    assert cols[-3:] == ["sma_20", "ema_50", "rsi_9"]
    assert db.one(f"SELECT count(*) FROM {db.rel('bars_1m')} WHERE rsi_9 = 50 AND sma_20 IS NULL") == day.num_rows


def test_incompatible_existing_table_names_the_column(pg_url: str, db: Db) -> None:
    db.rows("CREATE SCHEMA {s}")
    db.rows("CREATE TABLE {s}.bars_1m (ticker text, ts timestamptz, close text, PRIMARY KEY (ticker, ts))")
    db.rows("INSERT INTO {s}.bars_1m VALUES ('KEEP', now(), 'mine')")
    with PostgresStore(pg_url) as s:
        with pytest.raises(SchemaMismatch, match=r"column close of type text; colfill loads double precision"):
            s.ensure_table("bars_1m", bars_schema(INDICATORS))
        with pytest.raises(SchemaMismatch, match="close"):
            s.load(batch(make_day(D1, TICKERS, seed=1), D1))
        db.rows("CREATE TABLE {s}.bars_1d (ticker text, ts timestamptz, open double precision)")
        with pytest.raises(SchemaMismatch, match=r"no primary key .* \(ticker, ts\)"):
            s.ensure_table("bars_1d", bars_schema(INDICATORS))
    assert db.rows("SELECT ticker, close FROM {s}.bars_1m") == [("KEEP", "mine")]
    assert db.one("SELECT count(*) FROM information_schema.columns WHERE table_schema = %s "
                  "AND table_name = 'bars_1d'", [db.schema]) == 3  # nothing added to a refused table


def test_init_is_all_or_nothing(pg_url: str, db: Db) -> None:
    db.rows("CREATE SCHEMA {s}")
    db.rows("CREATE TABLE {s}.bars_1d (ticker text, ts timestamptz, volume bigint, PRIMARY KEY (ticker, ts))")
    with PostgresStore(pg_url) as s, pytest.raises(SchemaMismatch, match="column volume of type bigint"):
        s.init(INDICATORS)
    tables = {r[0] for r in db.rows("SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                                    [db.schema])}
    assert tables == {"bars_1d"}  # neither bars_1m, the reference tables nor the manifest were left behind


QUOTED_TICKERS = ["O'REILLY", 'A"B', "x'); DROP TABLE bars_1m; --", "BRK.B", "Ü\\N", "$T"]


@pytest.mark.parametrize("driver_", ["psycopg", "adbc"])
def test_quotes_and_sql_in_schema_table_and_tickers(pg_server_url: str, driver_: str) -> None:
    schema = "we'ird \"schema\"; DROP SCHEMA public; --"
    url = with_query(pg_server_url, schema=schema).replace("postgresql://", f"postgresql+{driver_}://", 1)
    db = Db(with_query(pg_server_url, schema=schema))
    try:
        with PostgresStore(url) as s:
            s.init(INDICATORS)
            day = make_day(D1, QUOTED_TICKERS, seed=1)
            s.load(batch(day, D1, lineage="l'; --"))
            part = make_day(D1, QUOTED_TICKERS[1:3], minutes=5, seed=2)
            s.load(batch(part, D1, "p", lineage="l'; --", tickers=tuple(QUOTED_TICKERS[1:3])))
            odd_table = 'bars "x"; DROP TABLE bars_1m; --'
            s.ensure_table(odd_table, bars_schema(INDICATORS))
            other = make_day(D2, QUOTED_TICKERS, seed=3)
            s.load(batch(other, D2, table=odd_table))
            assert s.loaded("bars_1m", "l'; --") == {D1: "p"}
        untouched = day.filter(pc.invert(pc.is_in(day["ticker"], pa.array(QUOTED_TICKERS[1:3]))))
        assert db.bars() == expected_rows(untouched, part)
        assert db.bars(odd_table) == expected_rows(other)
        assert db.one("SELECT count(*) FROM pg_namespace WHERE nspname = 'public'") == 1
    finally:
        db.con.close()
        drop_schema(pg_server_url, schema)


def test_names_postgres_would_truncate_are_refused(pg_url: str) -> None:
    with pytest.raises(InvalidArgument, match="cannot be a PostgreSQL name"):
        PostgresStore(with_query(pg_url, schema="s" * 64))
    with PostgresStore(pg_url) as s, pytest.raises(InvalidArgument, match="table"):
        s.ensure_table("t" * 64, bars_schema())


def copy_both(db: Db, table: pa.Table, chunk_sizes: tuple[int, ...]) -> None:
    """`table` into `ours` with our encoder once per chunk size, and into `theirs` once with psycopg's text COPY."""
    for size in chunk_sizes:
        order, chunks = encode_pgcopy(table, chunk_rows=size)
        with db.con.cursor() as cur, cur.copy(
                f"COPY {db.rel('ours')} ({', '.join(order)}) FROM STDIN (FORMAT BINARY)") as cp:
            for c in chunks:
                cp.write(c)
    with db.con.cursor() as cur, cur.copy(f"COPY {db.rel('theirs')} FROM STDIN") as cp:
        for r in table.to_pylist():
            cp.write_row(list(r.values()))


def test_encoder_matches_psycopg_for_every_null_and_string_shape(pg_url: str, db: Db) -> None:
    """Our binary COPY encoder against an independent writer (psycopg's write_row), on awkward values."""
    rows = {
        "ticker": ["", "A", "LONGER_TICKER_NAME_ÄÖ", None, "B"],
        "ts": [0, None, 1_700_000_000_000_000, -5_000_000, 2**50],
        "open": [1.5, None, -0.0, float("inf"), 1e308],
        "transactions": [None, 2**62, -1, 0, 7],
    }
    table = pa.table({"ticker": pa.array(rows["ticker"], pa.large_string()),
                      "ts": pa.array(rows["ts"], pa.timestamp("us", "UTC")),
                      "open": pa.array(rows["open"]), "transactions": pa.array(rows["transactions"], pa.int64())})
    db.rows("CREATE SCHEMA {s}")
    for name in ("ours", "theirs"):
        db.rows(f"CREATE TABLE {db.rel(name)} (ticker text, ts timestamptz, open double precision, "
                "transactions bigint)")
    copy_both(db, table, (1, 2, 5))
    ours = db.rows(f"SELECT * FROM {db.rel('ours')} ORDER BY 1, 2, 3, 4")
    theirs = db.rows(f"SELECT * FROM {db.rel('theirs')} ORDER BY 1, 2, 3, 4")
    assert len(ours) == 15 and sorted(map(repr, ours)) == sorted(map(repr, theirs * 3))


@pytest.mark.parametrize("floats", [3, 70])  # 70 nullable columns: the layout key no longer fits one integer
def test_encoder_on_random_nulls_and_string_lengths(db: Db, floats: int) -> None:
    import numpy as np

    rng = np.random.default_rng(floats)
    n = 700
    alphabet = np.array(list("ABCxyz'\"\\;Ü€ "), dtype=object)
    words = ["".join(rng.choice(alphabet, size=rng.integers(0, 12))) for _ in range(n)]
    cols: dict[str, pa.Array] = {
        "s1": pa.array([w if rng.random() > 0.1 else None for w in words], pa.large_string()),
        "ts": pa.array(rng.integers(-10**15, 10**15, n), pa.timestamp("us", "UTC"), mask=rng.random(n) < 0.2),
        "k": pa.array(rng.integers(-2**62, 2**62, n), pa.int64(), mask=rng.random(n) < 0.3),
        "s2": pa.array([w[::-1] if rng.random() > 0.5 else None for w in words], pa.string()),
    }
    for i in range(floats):
        cols[f"f{i}"] = pa.array(rng.normal(size=n), mask=rng.random(n) < rng.random())
    table = pa.table(cols)
    types = {"s1": "text", "s2": "text", "ts": "timestamptz", "k": "bigint"}
    ddl = ", ".join(f'"{c}" {types.get(c, "double precision")}' for c in table.column_names)
    db.rows("CREATE SCHEMA {s}")
    for name in ("ours", "theirs"):
        db.rows(f"CREATE TABLE {db.rel(name)} ({ddl})")
    copy_both(db, table, (7, 64, 1000))
    cols_sql = ", ".join(f'"{c}"' for c in table.column_names)
    for a, b in (("ours", "theirs"), ("theirs", "ours")):
        diff = db.one(f"SELECT count(*) FROM (SELECT {cols_sql} FROM {db.rel(a)} EXCEPT ALL "
                      f"(SELECT {cols_sql} FROM {db.rel(b)} UNION ALL SELECT {cols_sql} FROM {db.rel(b)} UNION ALL "
                      f"SELECT {cols_sql} FROM {db.rel(b)})) x")
        assert diff == 0
    assert db.one(f"SELECT count(*) FROM {db.rel('ours')}") == 3 * n
