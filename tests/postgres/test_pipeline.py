"""`colfill run --db postgresql://...` end to end: the same rows as the embedded store, and exactly once when the
whole command (staging, loading, manifests) is SIGKILLed at random moments and run again."""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from colfill.cli import app
from colfill.sample import generate
from tests.pipeline.conftest import assert_frames_close, backfill, stored
from tests.postgres.conftest import Db

pytestmark = [pytest.mark.postgres]

START, END = dt.date(2024, 3, 1), dt.date(2024, 4, 12)
runner = CliRunner()


@pytest.fixture(scope="module")
def flatfiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pg-flatfiles")
    generate(root, START, END, tickers=12, seed=5, minute_fill=0.3)
    return root


@pytest.fixture(scope="module")
def embedded(flatfiles: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, pl.DataFrame]:
    """The embedded store's tables for the same files: the reference the PostgreSQL store must equal."""
    data_dir = tmp_path_factory.mktemp("duck")
    assert backfill(flatfiles, data_dir, START, END).ok
    return {t: stored(data_dir, t) for t in ("bars_1d", "bars_1m")}


def pg_table(db: Db, table: str, columns: list[str]) -> pl.DataFrame:
    cols = ", ".join(f'"{c}"' for c in columns)
    rows = db.rows(f"SELECT {cols} FROM {db.rel(table)} ORDER BY ticker, ts")
    return pl.DataFrame(rows, schema=columns, orient="row")


def assert_same(db: Db, want: dict[str, pl.DataFrame]) -> None:
    for table, frame in want.items():
        got = pg_table(db, table, frame.columns)
        assert got.select("ticker", "ts").is_duplicated().sum() == 0, table
        norm = [pl.col("ts").dt.convert_time_zone("UTC").dt.cast_time_unit("us")]
        got = got.with_columns(norm).cast({c: t for c, t in frame.schema.items() if c != "ts"})
        assert_frames_close(got, frame.with_columns(norm), rel=1e-12)


def loaded_days(db: Db) -> int:
    if db.one("SELECT to_regclass(%s) IS NULL", [db.rel("colfill_files")]):
        return 0
    return int(db.one("SELECT count(*) FROM {s}.colfill_files"))


def cli_args(flatfiles: Path, data_dir: Path, url: str) -> list[str]:
    return ["run", "--source", str(flatfiles), "--start", str(START), "--end", str(END),
            "--data-dir", str(data_dir), "--db", url]


def test_run_into_postgres_equals_embedded(flatfiles: Path, embedded: dict[str, pl.DataFrame], pg_url: str,
                                           db: Db, tmp_path: Path) -> None:
    res = runner.invoke(app, cli_args(flatfiles, tmp_path, pg_url))
    assert res.exit_code == 0, res.output
    assert "notice:" in res.output and "plain PostgreSQL" in res.output  # no TimescaleDB on the test server
    assert_same(db, embedded)
    days = db.one("SELECT count(*) FROM {s}.colfill_files WHERE table_name = 'bars_1m'")
    assert days == len(list((flatfiles / "us_stocks_sip" / "minute_aggs_v1").rglob("*.csv.gz")))
    again = runner.invoke(app, cli_args(flatfiles, tmp_path, pg_url))  # idempotent: nothing new, nothing doubled
    assert again.exit_code == 0, again.output
    assert_same(db, embedded)


@pytest.mark.slow
def test_killed_runs_leave_exactly_the_source_rows(flatfiles: Path, embedded: dict[str, pl.DataFrame], pg_url: str,
                                                   db: Db, tmp_path: Path) -> None:
    """SIGKILL the whole `colfill run` process at random moments, then run it to the end: exactly once."""
    cmd = [sys.executable, "-m", "colfill", *cli_args(flatfiles, tmp_path, pg_url)]
    env = {**os.environ, "COLUMNS": "200"}
    rng = random.Random(int(os.environ.get("COLFILL_TEST_SEED", "0")) or None)
    t0 = time.monotonic()
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)  # times a whole run
    full = time.monotonic() - t0
    assert first.returncode == 0, first.stderr
    db.rows("DROP TABLE {s}.bars_1m, {s}.bars_1d, {s}.colfill_files")
    shutil.rmtree(tmp_path / "lake")
    kills = 0
    for attempt in range(4):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if attempt == 0:  # anywhere: start-up, staging, first loads
            time.sleep(rng.uniform(0.2, full * 0.6))
        else:  # during loading: after a random number of further days committed, plus jitter
            target = loaded_days(db) + rng.randint(1, 6)
            while proc.poll() is None and loaded_days(db) < target:
                time.sleep(0.01)
            time.sleep(rng.uniform(0, 0.05))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    final = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    assert_same(db, embedded)
