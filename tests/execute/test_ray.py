"""The Ray executor against a real two-node Ray cluster (see conftest): the same lake and store rows as the local
executor, a worker killed mid-task changes nothing, a killed driver leaves nothing half-done, and Ray and local
runs resume each other. The installed `colfill run --executor ray` runs in a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from colfill import errors
from colfill.execute import open_executor
from colfill.pipeline import BackfillJob, run
from colfill.stores import open_store
from tests.helpers import wait_for
from tests.pipeline.conftest import assert_frames_close, stored

from .conftest import END, MIDDLE, START, assert_same_lake, backfill

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).with_name("colfill")


def env_for_cli() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("COLFILL_")} | {"COLUMNS": "160"}


def run_args(src: Path, data: Path, *extra: str) -> list[str]:
    return ["run", "--source", str(src), "--data-dir", str(data), "--start", START.isoformat(), "--end",
            END.isoformat(), *extra]


def assert_same_rows(a: Path, b: Path) -> None:
    for table in ("bars_1d", "bars_1m"):
        x, y = stored(a, table), stored(b, table)
        assert x.height > 0 and x.select("ticker", "ts").is_duplicated().sum() == 0
        assert_frames_close(x, y, rel=1e-12)


@pytest.fixture(scope="module")
def local_run(flatfiles: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: one local run of the whole job, one shard."""
    data = tmp_path_factory.mktemp("local-ref")
    assert backfill(flatfiles, data, workers=1, shards=1).ok
    return data


def test_installed_colfill_on_ray_equals_a_local_run(flatfiles: Path, local_run: Path, ray_address: str,
                                                     tmp_path: Path) -> None:
    proc = subprocess.run([str(BIN), *run_args(flatfiles, tmp_path, "--executor", "ray", "--ray-address",
                                               ray_address)],
                          capture_output=True, text=True, timeout=180, env=env_for_cli(), stdin=subprocess.DEVNULL)
    assert proc.returncode == errors.OK, proc.stderr
    assert "executor: Ray (" in proc.stderr and "3 CPUs, 3 shard(s)" in proc.stderr
    assert "CPUs busy" in proc.stderr
    assert_same_lake(local_run, tmp_path)
    assert_same_rows(local_run, tmp_path)


def test_a_worker_killed_mid_task_is_retried_and_the_result_is_unchanged(flatfiles: Path, local_run: Path,
                                                                         ray_address: str, tmp_path: Path) -> None:
    from ray import cloudpickle

    from colfill.execute.ray import RayExecutor
    from tests.execute import slow_source

    cloudpickle.register_pickle_by_value(slow_source)  # the workers need not import the tests
    marks = tmp_path / "marks"
    marks.mkdir()
    victim = MIDDLE
    source = slow_source.SlowFlatFiles(str(flatfiles), marks, victim)
    killed: list[int] = []

    def victim() -> int | None:
        """The pid the victim's read wrote (then it sleeps until killed), once the whole number is there."""
        text = (marks / "pid").read_text() if (marks / "pid").exists() else ""
        return int(text) if text.isdigit() else None

    def killer() -> None:
        pid = wait_for(victim, timeout=60, every=0.05, what="the victim's read")
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    job = BackfillJob(source=str(flatfiles), start=START, end=END, data_dir=tmp_path / "d")
    store = open_store(f"lake:///{(tmp_path / 'd').resolve()}")
    executor = RayExecutor(address=ray_address, shards=2)
    try:
        result = run(job, store, source=source, executor=executor)
    finally:
        executor.close()
        store.close()
    thread.join(5)
    assert killed, "the victim's read never started"
    retry = int((marks / "retry").read_text())  # the retried parse (or the other table's of that day)
    assert retry != killed[0]
    assert result.ok and all(t.failed == 0 and t.staged == t.files for t in result.tables)
    assert_same_lake(local_run, tmp_path / "d")
    assert_same_rows(local_run, tmp_path / "d")


def test_a_ray_run_is_resumed_by_a_local_run_and_the_reverse(flatfiles: Path, local_run: Path, ray_address: str,
                                                              tmp_path: Path) -> None:
    first = tmp_path / "ray-then-local"
    assert backfill(flatfiles, first, "ray", end=MIDDLE, address=ray_address).ok
    again = backfill(flatfiles, first, "local")
    assert again.ok and all(0 < t.staged < t.files for t in again.tables)  # continued from Ray's state
    assert_same_lake(local_run, first)
    assert_same_rows(local_run, first)

    second = tmp_path / "local-then-ray"
    assert backfill(flatfiles, second, "local", end=MIDDLE).ok
    again = backfill(flatfiles, second, "ray", address=ray_address, shards=2)
    assert again.ok and all(0 < t.staged < t.files for t in again.tables)
    assert_same_lake(local_run, second)
    assert_same_rows(local_run, second)


def test_a_killed_driver_leaves_committed_days_and_the_next_run_resumes(flatfiles: Path, local_run: Path,
                                                                        ray_address: str, tmp_path: Path) -> None:
    data = tmp_path / "d"
    # The GCS address, not `auto`: with two raylets on one IP (this test's cluster) `auto` may pick the wrong one.
    proc = subprocess.Popen([str(BIN), *run_args(flatfiles, data, "--executor", "ray", "--ray-address", ray_address)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env_for_cli(),
                            stdin=subprocess.DEVNULL)
    manifests = data / "lake" / "_manifest" / "table=bars_1m"
    try:
        wait_for(lambda: any(manifests.glob("lineage=*/date=*.json")), timeout=120, every=0.01, what="a committed day")
    finally:
        running = proc.poll() is None
        proc.kill()  # SIGKILL: no clean-up of any kind
        proc.wait(30)
    assert running, f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"  # type: ignore[union-attr]
    committed = len(list(manifests.glob("lineage=*/date=*.json")))
    again = backfill(flatfiles, data, "local")
    assert again.ok
    minute = next(t for t in again.tables if t.table == "bars_1m")
    assert 0 < committed < minute.files
    assert minute.staged <= minute.files - committed + 1  # resumed after the last state it had committed
    assert_same_lake(local_run, data)
    assert_same_rows(local_run, data)


def test_without_ray_installed_the_error_names_the_extra(flatfiles: Path, tmp_path: Path) -> None:
    hide = ("import sys; sys.modules['ray'] = None  # as if ray were not installed: `import ray` raises ImportError\n"
            "from colfill.cli import main; main()")
    proc = subprocess.run([sys.executable, "-c", hide, *run_args(flatfiles, tmp_path, "--executor", "ray")],
                          capture_output=True, text=True, timeout=120, env=env_for_cli(), stdin=subprocess.DEVNULL)
    assert proc.returncode == errors.USAGE, proc.stderr
    assert "pip install 'colfill[ray]'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "lake").exists()  # nothing was started


def test_ctrl_c_on_a_private_ray_instance_stops_cleanly_and_a_rerun_completes(flatfiles: Path, local_run: Path,
                                                                              tmp_path: Path) -> None:
    """No --ray-address: colfill starts a Ray instance for the run. Ctrl-C reaches the whole process group (Ray's
    processes too), as in a terminal; the run still ends with 130 after committing the days in flight."""
    data = tmp_path / "d"
    proc = subprocess.Popen([str(BIN), *run_args(flatfiles, data, "--executor", "ray", "--workers", "2")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env_for_cli(),
                            stdin=subprocess.DEVNULL, start_new_session=True)
    manifests = data / "lake" / "_manifest" / "table=bars_1d"
    try:
        wait_for(lambda: any(manifests.glob("lineage=*/date=*.json")), timeout=120, every=0.01, what="a committed day")
    except AssertionError:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == errors.INTERRUPTED, err
    assert "interrupted after" in err and "Traceback" not in err
    assert backfill(flatfiles, data, "local").ok
    assert_same_lake(local_run, data)
    assert_same_rows(local_run, data)


def test_a_day_that_fails_on_a_worker_fails_as_in_a_local_run(flatfiles: Path, ray_address: str,
                                                              tmp_path: Path) -> None:
    import shutil

    src = tmp_path / "src"
    shutil.copytree(flatfiles, src)
    broken = sorted((src / "us_stocks_sip" / "minute_aggs_v1").rglob("*.csv.gz"))[3]
    broken.write_bytes(broken.read_bytes()[:300])  # a truncated download
    local = backfill(src, tmp_path / "local", "local")
    ray_ = backfill(src, tmp_path / "ray", "ray", address=ray_address)
    for result in (local, ray_):
        minute = next(t for t in result.tables if t.table == "bars_1m")
        assert minute.failed == 1 and any("corrupt gzip" in e and broken.name in e for e in minute.errors)
    assert_same_lake(tmp_path / "local", tmp_path / "ray")  # the failed day's manifest entry and passed-on state too
    assert_same_rows(tmp_path / "local", tmp_path / "ray")


@pytest.mark.parametrize("address, hint", [("127.0.0.1:1", "--ray-address auto"),
                                            ("ray://127.0.0.1:1", "RAY_AUTH_MODE=disabled")])
def test_a_cluster_address_nobody_listens_at_is_exit_3_at_once(flatfiles: Path, tmp_path: Path, address: str,
                                                               hint: str) -> None:
    t0 = time.monotonic()
    proc = subprocess.run([str(BIN), *run_args(flatfiles, tmp_path, "--executor", "ray", "--ray-address", address)],
                          capture_output=True, text=True, timeout=120, env=env_for_cli(), stdin=subprocess.DEVNULL)
    assert proc.returncode == errors.UNREACHABLE, proc.stderr
    said = " ".join(proc.stderr.split())
    assert f"cannot start or join the Ray cluster at {address}" in said and hint in said
    assert time.monotonic() - t0 < 60 and not (tmp_path / "lake").exists()


@pytest.mark.postgres
def test_ray_and_local_runs_load_the_same_postgres_rows(flatfiles: Path, ray_address: str, pg_server_url: str,
                                                        tmp_path: Path) -> None:
    import polars as pl

    from tests.postgres.conftest import Db, drop_schema, with_query

    frames = {}
    for kind in ("local", "ray"):
        url = with_query(pg_server_url, schema=f"colfill_test_ray_{kind}_{os.getpid()}")
        job = BackfillJob(source=str(flatfiles), start=START, end=END, data_dir=tmp_path / kind)
        store = open_store(url, load_workers=2)
        runner = open_executor(kind, address=ray_address if kind == "ray" else None)
        try:
            assert run(job, store, executor=runner).ok
        finally:
            runner.close()
            store.close()
        db = Db(url)
        try:
            frames[kind] = {t: pl.DataFrame(db.rows(f"SELECT * FROM {db.rel(t)} ORDER BY ticker, ts"), orient="row",
                                            schema=[d.name for d in db.con.execute(
                                                f"SELECT * FROM {db.rel(t)} LIMIT 0").description])
                            for t in ("bars_1d", "bars_1m")}
        finally:
            db.con.close()
            drop_schema(pg_server_url, db.schema)
    for table in ("bars_1d", "bars_1m"):
        assert frames["local"][table].height > 0
        assert_frames_close(frames["local"][table], frames["ray"][table], rel=1e-12)
