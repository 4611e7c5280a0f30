"""The lake as the embedded store: views in `colfill.duckdb` that any DuckDB client reads from anywhere, every
(ticker, ts) once whatever runs the lake has seen, repaired after a move, never a half-written day."""

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

import duckdb
import polars as pl
import pyarrow.parquet as pq

from colfill.sample import generate
from colfill.stores import open_store
from colfill.stores.lake import LakeStore

from . import conftest
from .conftest import START, assert_frames_close, backfill, files, rewrite, stored

BIN = Path(sys.executable).with_name("colfill")


def read_anywhere(data_dir: Path, sql: str, cwd: Path) -> str:
    """`sql` on the catalogue from another process and working directory, as a DuckDB client would."""
    code = ("import duckdb, sys; con = duckdb.connect(sys.argv[1], read_only=True); "
            "print(con.execute(sys.argv[2]).fetchall())")
    proc = subprocess.run([sys.executable, "-c", code, str(data_dir.resolve() / "colfill.duckdb"), sql], cwd=cwd,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_the_lake_is_the_store_and_bars_are_kept_once(source: Path, tmp_path: Path) -> None:
    result = backfill(source, tmp_path)
    assert result.ok and result.store.startswith("Parquet lake")
    lake_bytes = sum(p.stat().st_size for p in (tmp_path / "lake").rglob("*") if p.is_file())
    assert (tmp_path / "colfill.duckdb").stat().st_size < 0.2 * lake_bytes  # a catalogue, not a copy
    con = duckdb.connect(str(tmp_path / "colfill.duckdb"), read_only=True)
    kinds = dict(con.execute("SELECT table_name, table_type FROM information_schema.tables").fetchall())
    con.close()
    assert kinds["bars_1m"] == kinds["bars_1d"] == kinds["manifest"] == "VIEW"
    native = tmp_path / "native"
    conftest.STORE = "duckdb"
    try:
        backfill(source, native)
    finally:
        conftest.STORE = "lake"
    for table in ("bars_1d", "bars_1m"):
        assert_frames_close(stored(tmp_path, table), stored(native, table), rel=0)


def test_any_client_reads_it_from_any_directory_and_a_move_is_repaired(source: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    backfill(source, data)
    rows = stored(data, "bars_1m").height
    assert read_anywhere(data, "SELECT count(*) FROM bars_1m", cwd=Path("/")) == f"[({rows},)]"
    moved = tmp_path / "elsewhere" / "data"
    moved.parent.mkdir()
    shutil.move(str(data), str(moved))
    shown = subprocess.run(  # colfill sql builds its views from the lake it finds
        [str(BIN), "sql", "SELECT count(*) AS n FROM bars_1m", "--data-dir", str(moved), "--format", "csv"],
        capture_output=True, text=True, timeout=60)
    assert shown.stdout.split() == ["n", str(rows)], shown.stderr
    open_store(f"lake:///{moved}").close()  # what any run does first: the views follow the move
    assert read_anywhere(moved, "SELECT count(*) FROM bars_1m", cwd=tmp_path) == f"[({rows},)]"
    assert read_anywhere(moved, "SELECT count(*) FROM manifest WHERE status = 'done'", cwd=Path("/")) != "[(0,)]"


def test_ticker_subsets_and_reruns_show_each_bar_once_as_a_native_store_would(source: Path, tmp_path: Path) -> None:
    """Runs of other ticker sets over the same days: per day and ticker the newest run's rows, exactly once."""
    lake, native = tmp_path / "lake", tmp_path / "native"
    runs = [dict(tickers=("AAPL", "MSFT")), dict(), dict(tickers=("MSFT", "NA")), dict(tickers=("AAPL",))]
    for kind, data in (("lake", lake), ("duckdb", native)):
        conftest.STORE = kind
        try:
            for kw in runs:
                backfill(source, data, tables=("bars_1m",), **kw)  # type: ignore[arg-type]
        finally:
            conftest.STORE = "lake"
    got, want = stored(lake, "bars_1m"), stored(native, "bars_1m")
    assert got.select("ticker", "ts").is_duplicated().sum() == 0
    assert_frames_close(got, want, rel=0)


def test_a_replaced_file_shows_only_the_new_versions(source: Path, tmp_path: Path) -> None:
    backfill(source, tmp_path)
    day_files = files(source, "bars_1m")
    rewrite(day_files[5], lambda f: f.filter(pl.col("ticker") != "AAPL").with_columns(pl.col("close") * 1))
    backfill(source, tmp_path)
    fresh = tmp_path / "fresh"
    backfill(source, fresh)
    assert_frames_close(stored(tmp_path, "bars_1m"), stored(fresh, "bars_1m"), rel=0)


def test_rejects_stay_in_rejects(source: Path, tmp_path: Path) -> None:
    target = files(source, "bars_1d")[2]
    rewrite(target, lambda f: f.with_columns(pl.when(pl.int_range(pl.len()) == 1).then(-1.0).otherwise(
        pl.col("open")).alias("open")))
    assert not backfill(source, tmp_path, tables=("bars_1d",)).ok
    got = read_anywhere(tmp_path, "SELECT count(*), min(reason) FROM rejects", cwd=Path("/"))
    assert got.startswith("[(1, 'non-positive price")


def test_day_files_are_sorted_with_row_groups_and_statistics(tmp_path: Path) -> None:
    src = tmp_path / "src"
    generate(src, dt.date(2024, 3, 4), dt.date(2024, 3, 5), tickers=100, seed=2, datasets=("minute_aggs_v1",),
             minute_fill=1.0)
    backfill(src, tmp_path / "d", start=dt.date(2024, 3, 4), end=dt.date(2024, 3, 5), tables=("bars_1m",))
    path = next((tmp_path / "d" / "lake").glob("table=bars_1m/date=2024-03-04/*.parquet"))
    meta = pq.ParquetFile(path).metadata
    assert meta.num_rows > 65_536 and meta.num_row_groups == -(-meta.num_rows // 65_536)
    frame = pl.read_parquet(path)
    assert frame.select("ticker", "ts").equals(frame.select("ticker", "ts").sort("ticker", "ts"))
    names = meta.schema.names
    for g in range(meta.num_row_groups):
        for col in ("ticker", "ts"):
            stats = meta.row_group(g).column(names.index(col)).statistics
            assert stats is not None and stats.has_min_max
    con = duckdb.connect(str(tmp_path / "d" / "colfill.duckdb"), read_only=True)
    plan = "".join(r[1] for r in con.execute("EXPLAIN ANALYZE SELECT count(*) FROM bars_1m WHERE ticker = 'AAPL'")
                   .fetchall())
    con.close()
    assert "AAPL" in plan  # the filter reaches the Parquet scan, where row-group statistics skip the rest


def test_a_killed_run_never_shows_half_a_day(tmp_path: Path) -> None:
    src = tmp_path / "src"
    generate(src, START, START + dt.timedelta(days=40), tickers=40, seed=8)
    data = tmp_path / "d"
    args = [str(BIN), "run", "--source", str(src), "--data-dir", str(data), "--start", str(START),
            "--end", str(START + dt.timedelta(days=40))]
    rng = random.Random(int(os.environ.get("COLFILL_KILL_SEED", time.time_ns() % 10**6)))
    for _ in range(3):
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(1.0, 3.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        if not (data / "colfill.duckdb").exists():
            continue
        store = LakeStore(f"lake:///{data}")  # an open repairs the views after the kill
        store.close()
        for table in ("bars_1m", "bars_1d"):
            try:
                frame = stored(data, table)
            except duckdb.CatalogException:
                continue  # nothing of that table committed yet
            assert frame.select("ticker", "ts").is_duplicated().sum() == 0
    assert subprocess.run(args, capture_output=True, timeout=300).returncode == 0
    ref = tmp_path / "ref"
    assert subprocess.run([*args[:5], str(ref), *args[6:]], capture_output=True, timeout=300).returncode == 0
    for table in ("bars_1m", "bars_1d"):
        assert_frames_close(stored(data, table), stored(ref, table))


def test_an_earlier_native_store_keeps_loading_with_a_notice(source: Path, tmp_path: Path) -> None:
    conftest.STORE = "duckdb"
    try:
        backfill(source, tmp_path, tables=("bars_1d",))
    finally:
        conftest.STORE = "lake"
    store = open_store(f"lake:///{tmp_path}")
    try:
        assert store.name == "duckdb" and "from an earlier colfill" in store.notices[0]  # type: ignore[attr-defined]
    finally:
        store.close()



def test_manifest_entries_are_read_again_when_rewritten(tmp_path: Path) -> None:
    """The lake keeps parsed manifest entries between refreshes; a rewritten entry must not be served stale."""
    import dataclasses

    from colfill.stage.lake import Lake, ManifestEntry

    lake = Lake(tmp_path)
    entry = ManifestEntry(table="bars_1m", date=dt.date(2024, 3, 5), lineage="l1", source_key="k", etag="e",
                          size=1, fingerprint="f1", rows_in=10, rows_out=10, rejected=0, status="failed")
    lake.write_manifest(entry)
    assert [e.status for e in lake.entries("bars_1m")] == ["failed"]
    lake.write_manifest(dataclasses.replace(entry, status="done", fingerprint="f2"))
    assert [(e.status, e.fingerprint) for e in lake.entries("bars_1m")] == [("done", "f2")]
    assert lake.manifest("bars_1m", "l1")[entry.date].fingerprint == "f2"
