"""`--timeframes` into PostgreSQL and TimescaleDB: the derived tables (`bars_5m`, `bars_1h_rth` ...) hold exactly the
lake's derived bars and indicators, a backfill split into two runs equals a one-shot, their adjusted views follow
the definition, `db status` and the manifest name them; on TimescaleDB they are compressed hypertables loaded by
direct compress. The run is the installed command's."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from colfill.indicators.spec import IndicatorSet
from colfill.pipeline import BackfillJob, run
from colfill.sample import generate
from colfill.stores.postgres import PostgresStore
from tests.helpers import colfill
from tests.postgres.conftest import Db, chunk_states, fresh_schema

pytestmark = pytest.mark.postgres

START, END = dt.date(2024, 3, 4), dt.date(2024, 3, 15)  # ten sessions across the DST change of 2024-03-10
SPLIT = dt.date(2024, 3, 8)
TIMEFRAMES = "1m,5m,1h:rth,1d"
DERIVED = ("bars_5m", "bars_1h_rth")


@pytest.fixture(scope="module")
def flatfiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tf-flatfiles")
    generate(root, START, END, tickers=6, seed=17, minute_fill=0.2)
    return root


def backfill(src: Path, data: Path, url: str, start: dt.date = START, end: dt.date = END, *extra: str) -> str:
    proc = colfill("run", "--source", str(src), "--data-dir", str(data), "--start", str(start), "--end", str(end),
                   "--timeframes", TIMEFRAMES, "--db", url, *extra, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


@pytest.fixture(scope="module")
def one_shot(request: pytest.FixtureRequest, flatfiles: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(URL of a schema, data dir) of one run over the whole range."""
    with fresh_schema(request, False, "colfill_tf") as url:
        data = tmp_path_factory.mktemp("tf-one-shot")
        backfill(flatfiles, data, url)
        yield url, data


def pg_frame(db: Db, table: str) -> pl.DataFrame:
    cols = [r[0] for r in db.rows("SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
                                  "AND table_name = %s ORDER BY ordinal_position", [db.schema, table])]
    frame = pl.DataFrame(db.rows(f"SELECT * FROM {db.rel(table)} ORDER BY ticker, ts"), schema=cols, orient="row",
                         infer_schema_length=None)
    return frame.with_columns(pl.col("ts").dt.convert_time_zone("UTC"))


def lake_frame(data: Path, table: str) -> pl.DataFrame:
    files = sorted((data / "lake" / f"table={table}").glob("date=*/*.parquet"))
    assert files, table
    return pl.concat([pl.read_parquet(f, hive_partitioning=False) for f in files]).sort("ticker", "ts")


def test_postgresql_holds_the_lakes_derived_bars_row_for_row(one_shot: tuple[str, Path]) -> None:
    url, data = one_shot
    db = Db(url)
    try:
        for table in ("bars_1m", *DERIVED, "bars_1d"):
            want = lake_frame(data, table)
            got = pg_frame(db, table).select(want.columns)
            assert want.height > 0 and "vwap" in want.columns
            assert_frame_equal(got, want.with_columns(pl.col("ts").cast(got.schema["ts"])), check_exact=True,
                               check_dtypes=False)
        assert db.one("SELECT count(*) FROM {s}.bars_1h_rth") < db.one("SELECT count(*) FROM {s}.bars_5m") / 6
        kinds = dict(db.rows("SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = "
                             "c.relnamespace WHERE n.nspname = %s AND c.relname IN ('bars_5m', 'bars_1h_rth')",
                             [db.schema]))
        assert kinds == {"bars_5m": "p", "bars_1h_rth": "p"}  # day-partitioned, as bars_1m
        days = dict(db.rows("SELECT table_name, count(*) FROM {s}.colfill_files GROUP BY table_name"))
        assert days == {t: 10 for t in ("bars_1m", *DERIVED, "bars_1d")}  # the manifest records their days
    finally:
        db.con.close()


def test_split_runs_equal_a_one_shot(one_shot: tuple[str, Path], flatfiles: Path, pg_url: str,
                                     tmp_path: Path) -> None:
    backfill(flatfiles, tmp_path, pg_url, START, SPLIT)
    backfill(flatfiles, tmp_path, pg_url, SPLIT + dt.timedelta(days=1), END)
    one, two = Db(one_shot[0]), Db(pg_url)
    try:
        for table in DERIVED:
            assert_frame_equal(pg_frame(two, table), pg_frame(one, table), check_exact=True)
    finally:
        one.con.close()
        two.con.close()


def test_db_status_names_the_derived_tables(one_shot: tuple[str, Path]) -> None:
    proc = colfill("db", "status", "--db", one_shot[0])
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line.split() for line in proc.stdout.splitlines() if line.strip().startswith("bars_")}
    for table in DERIVED:
        assert lines[table][1:5] == ["table,", "10", "day", "partitions"], lines[table]
        assert "10" in lines[table][5:], lines[table]  # days loaded, from the manifest
    assert "bars_15m" not in lines  # only the tables a run made
    assert "bars_5m: one row per (ticker, ts): primary key" in proc.stdout


@pytest.mark.timescale
def test_timescaledb_keeps_derived_tables_as_compressed_hypertables(ts_url: str, flatfiles: Path,
                                                                    tmp_path: Path) -> None:
    store = PostgresStore(ts_url, load_workers=2)
    db = Db(ts_url)
    schema = db.schema
    try:
        job = BackfillJob(source=str(flatfiles), start=START, end=END, data_dir=tmp_path,
                          indicators=IndicatorSet.default(), timeframes=tuple(TIMEFRAMES.split(",")))
        assert run(job, store).ok
        assert store.paths["direct-compress"] == 4 * 10  # every day of every table, the derived ones included
        status = {t.table: t for t in store.status()}
        for table in DERIVED:
            assert_frame_equal(pg_frame(db, table).select(lake_frame(tmp_path, table).columns),
                               lake_frame(tmp_path, table), check_exact=True, check_dtypes=False)
            states = chunk_states(db, table)
            assert states and all(c and not p for _, c, p in states), (table, states)  # compressed, none partial
            st = status[table]
            assert st.kind == "hypertable" and st.days == 10 and st.chunks == st.compressed_chunks == len(states)
            assert st.uniqueness == "kept by the loader (no unique index; direct compress)"
        chunks = dict(db.rows("SELECT hypertable_name, time_interval::text FROM timescaledb_information.dimensions "
                              "WHERE hypertable_schema = %s", [schema]))
        assert chunks == {"bars_1m": "1 day", "bars_1d": "365 days", "bars_5m": "7 days", "bars_1h_rth": "30 days"}
        settings = db.rows("SELECT hypertable_name, attname, segmentby_column_index, orderby_column_index FROM "
                           "timescaledb_information.compression_settings WHERE hypertable_schema = %s "
                           "AND hypertable_name = 'bars_5m' ORDER BY attname", [schema])
        assert settings == [("bars_5m", "ticker", 1, None), ("bars_5m", "ts", None, 1)]
        policies = dict(db.rows("SELECT hypertable_name, config->>'compress_after' FROM timescaledb_information.jobs "
                                "WHERE hypertable_schema = %s", [schema]))
        assert policies == {"bars_1m": "7 days", "bars_1d": "30 days", "bars_5m": "7 days", "bars_1h_rth": "30 days"}
    finally:
        store.close()
        db.con.close()
