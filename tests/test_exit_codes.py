"""The installed `colfill` console script, run as users and schedulers run it: exit codes and what it prints.

`CliRunner` bypasses the entry point (`colfill.cli:main`), which is where exit codes are decided, so
these tests start `.venv/bin/colfill` in a subprocess.
"""

from __future__ import annotations

import fcntl
import gzip
import shutil
import signal
import subprocess
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest

from colfill import errors
from tests.helpers import BIN, ENV, colfill
from tests.pipeline.conftest import assert_frames_close


@pytest.fixture(scope="module")
def flatfiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("exit-codes") / "ff"
    proc = colfill("sample", "--out", str(root), "--start", "2024-01-02", "--end", "2024-01-31", "--tickers", "6")
    assert proc.returncode == 0, proc.stderr
    return root


@pytest.fixture
def source(flatfiles: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "src"
    shutil.copytree(flatfiles, dst)
    return dst


def day_files(root: Path, dataset: str = "day_aggs_v1") -> list[Path]:
    return sorted((root / "us_stocks_sip" / dataset).rglob("*.csv.gz"))


def run_args(src: Path, data: Path, *extra: str) -> list[str]:
    return ["run", "--source", str(src), "--data-dir", str(data), "--start", "2024-01-01", "--end", "2024-01-31",
            *extra]


def test_0_when_everything_loads(source: Path, tmp_path: Path) -> None:
    proc = colfill(*run_args(source, tmp_path / "d"))
    assert proc.returncode == errors.OK, proc.stderr
    assert "bars_1m" in proc.stderr and "problem" not in proc.stderr
    again = colfill(*run_args(source, tmp_path / "d"))  # nothing left to do is still success
    assert again.returncode == errors.OK, again.stderr


def test_1_when_a_file_fails_or_rows_are_rejected(source: Path, tmp_path: Path) -> None:
    days = day_files(source)
    days[1].write_bytes(days[1].read_bytes()[:200])  # truncated gzip
    lines = gzip.decompress(days[2].read_bytes()).decode().splitlines()
    t, v, o, c, h, lo, ws, n = lines[3].split(",")
    lines[3] = ",".join([t, v, "12.x", c, h, lo, ws, n])  # line 4: unparsable price
    t, v, o, c, h, lo, ws, n = lines[5].split(",")
    lines[5] = ",".join([t, v, o, c, lo, str(float(h) + 1), ws, n])  # line 6: high < low
    days[2].write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    proc = colfill(*run_args(source, tmp_path / "d", "--skip-minute"))
    assert proc.returncode == errors.PARTIAL, proc.stderr
    out = " ".join(proc.stderr.split())
    assert "3 problem(s)" in out and "corrupt gzip" in out and "Traceback" not in out
    assert f"{days[2].name} line 4: unparsable open 12.x" in out and "line 6: high" in out
    loaded = duckdb.connect(str(tmp_path / "d" / "colfill.duckdb"), read_only=True)
    try:  # the rest loaded: every other day, and the good rows of the damaged one
        assert loaded.execute("SELECT count(DISTINCT ts) FROM bars_1d").fetchone()[0] == len(days) - 1  # type: ignore[index]
    finally:
        loaded.close()


@pytest.mark.parametrize(("args", "says"), [
    (["nosuch"], "No such command 'nosuch'"),
    (["run", "--limit", "abc"], "Invalid value for '--limit'"),
    (["run", "--start", "2024-13-01"], "--start '2024-13-01' is not a date"),
    (["run", "--rerank"], "--rerank re-ranks the tickers of --limit N"),
    (["run", "--indicators", "sma:x"], "sma:x"),
    (["sql", "SELECT * FROM nope"], "SQL error"),
    (["sql", "SELECT 1", "--format", "xml"], "--format 'xml'"),
    (["db", "status"], "--db (or COLFILL_DB_URL) is needed"),
    (["db", "init", "--db", "duckdb:///x.duckdb"], "`colfill db` manages PostgreSQL"),
    (["state", "export", "--out", "s.parquet", "--store", "nothere.duckdb"], "no DuckDB file"),
    (["state", "import"], "Missing option '--in'"),
    (["sample", "--no-minute", "--no-daily"], "write nothing"),
    (["demo", "--tickers", "many"], "Invalid value for '--tickers'"),
])
def test_2_for_bad_usage_in_every_command(args: list[str], says: str, tmp_path: Path) -> None:
    proc = colfill(*args, "--data-dir", str(tmp_path), cwd=tmp_path) if args[0] in ("sql", "run") else colfill(
        *args, cwd=tmp_path)
    assert proc.returncode == errors.USAGE, proc.stderr
    assert says in " ".join(proc.stderr.split()) and "Traceback" not in proc.stderr


def test_2_for_a_bad_setting_in_the_environment(source: Path, tmp_path: Path) -> None:
    proc = colfill(*run_args(source, tmp_path / "d"), COLFILL_DUCKDB_MEMORY="lots'; DROP TABLE x; --")
    assert proc.returncode == errors.USAGE, proc.stderr
    assert "COLFILL_DUCKDB_MEMORY=" in proc.stderr and "is not a size" in proc.stderr


def test_sql_reads_the_store_colfill_db_url_names(tmp_path: Path) -> None:
    native = tmp_path / "elsewhere" / "native.duckdb"
    native.parent.mkdir()
    con = duckdb.connect(str(native))
    con.execute("CREATE TABLE bars_1d AS SELECT 'AAPL' AS ticker, 187.5 AS close")
    con.close()
    query = ("sql", "SELECT ticker, close FROM bars_1d", "--format", "csv", "--data-dir", str(tmp_path / "empty"))
    proc = colfill(*query, COLFILL_DB_URL=f"duckdb:///{native}")
    assert proc.returncode == errors.OK, proc.stderr
    assert proc.stdout.splitlines() == ["ticker,close", "AAPL,187.5"]
    assert colfill(*query).returncode == errors.USAGE  # without it: the empty data dir's lake, no bars_1d
    proc = colfill(*query, COLFILL_DB_URL="postgresql://me:hunter2-pw@127.0.0.1:1/market")
    assert proc.returncode == errors.USAGE and "for PostgreSQL use psql" in proc.stderr
    assert "hunter2" not in proc.stdout + proc.stderr


def test_2_for_a_source_folder_that_does_not_exist(tmp_path: Path) -> None:
    proc = colfill("run", "--source", str(tmp_path / "nowhere"), "--data-dir", str(tmp_path))
    assert proc.returncode == errors.USAGE
    assert "error: no day_aggs_v1 folder" in proc.stderr and "Traceback" not in proc.stderr


def test_3_when_the_store_cannot_be_reached_and_the_password_stays_secret(source: Path, tmp_path: Path) -> None:
    proc = colfill(*run_args(source, tmp_path / "d", "--db", "postgresql://someone:hunter2-pw@127.0.0.1:1/market"))
    assert proc.returncode == errors.UNREACHABLE, proc.stderr
    assert "cannot connect to PostgreSQL" in proc.stderr and "hunter2" not in proc.stdout + proc.stderr


def test_3_when_another_run_holds_the_data_dir(source: Path, tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.mkdir()
    with open(data / ".colfill.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        proc = colfill(*run_args(source, data))
    assert proc.returncode == errors.UNREACHABLE
    assert "another colfill run is using" in proc.stderr


def test_4_when_no_file_matches_the_dates(source: Path, tmp_path: Path) -> None:
    proc = colfill("run", "--source", str(source), "--data-dir", str(tmp_path))  # default: the last year
    assert proc.returncode == errors.NO_DATA, proc.stderr
    out = " ".join(proc.stderr.split())
    assert "no flat files in" in out and "day_aggs_v1 holds 2024-01-02..2024-01-31" in out
    assert "minute_aggs_v1 holds 2024-01-02..2024-01-31" in out and "rows/s" not in out
    con = duckdb.connect(str(tmp_path / "colfill.duckdb"), read_only=True)
    assert not {"bars_1d", "bars_1m"} & {r[0] for r in con.execute("SHOW TABLES").fetchall()}
    con.close()


# --- signals -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def long_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Enough minute files that a run is still going when the signal arrives (about 5 s here)."""
    root = tmp_path_factory.mktemp("signals") / "ff"
    proc = colfill("sample", "--out", str(root), "--start", "2024-01-02", "--end", "2024-03-28", "--tickers", "120")
    assert proc.returncode == 0, proc.stderr
    return root


@pytest.fixture(scope="module")
def uninterrupted(long_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("signals-reference")
    proc = colfill(*long_args(long_source, data))
    assert proc.returncode == 0, proc.stderr
    return data


def long_args(src: Path, data: Path) -> list[str]:
    return ["run", "--source", str(src), "--data-dir", str(data), "--start", "2024-01-01", "--end", "2024-03-31"]


def table(data: Path, name: str) -> pl.DataFrame:
    con = duckdb.connect(str(data / "colfill.duckdb"), read_only=True)
    try:
        return con.sql(f"SELECT * FROM {name} ORDER BY ticker, ts").pl()
    finally:
        con.close()


def staged_minute_days(data: Path) -> int:
    return len(list((data / "lake" / "_manifest" / "table=bars_1m").rglob("*.json")))


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code", "name"), [(signal.SIGINT, errors.INTERRUPTED, "Ctrl-C"),
                                                   (signal.SIGTERM, errors.TERMINATED, "SIGTERM")])
def test_signal_stops_cleanly_and_a_rerun_completes_exactly(
    sig: int, code: int, name: str, long_source: Path, uninterrupted: Path, tmp_path: Path
) -> None:
    data = tmp_path / "d"
    proc = subprocess.Popen([str(BIN), *long_args(long_source, data)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while staged_minute_days(data) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted; make the sample larger"
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    lines = [line for line in err.splitlines() if line.startswith("interrupted after")]
    assert len(lines) == 1 and lines[0].endswith("days; run again to continue"), err
    done, total = (int(x) for x in lines[0].split()[2:5:2])
    assert 0 < done < total
    assert f"{name}: finishing the days in flight" in err and "Traceback" not in err
    staged = staged_minute_days(data)
    rerun = colfill(*long_args(long_source, data))
    assert rerun.returncode == 0, rerun.stderr
    assert staged < staged_minute_days(data)
    for name_ in ("bars_1d", "bars_1m"):  # every row once, indicators continued exactly
        assert_frames_close(table(data, name_), table(uninterrupted, name_))
