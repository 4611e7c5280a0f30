"""Exactly once under SIGKILL: a loader process is killed at random moments while it loads (new days on the
insert path, loaded days on the replace path), then run to completion. After every kill the table holds, day
by day, exactly the version the manifest records; at the end exactly the source's rows: same count, same
checksum, and no row more or less (EXCEPT ALL both ways). On plain PostgreSQL the table has its primary key; on
TimescaleDB (where a server has it) the keyless hypertable whose one row per (ticker, ts) the loader alone keeps."""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from tests.postgres import kill_loader as kl
from tests.postgres.conftest import Db, fresh_schema

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

HELPER = Path(kl.__file__)
V1_DAYS, V2_DAYS = 8, 36


@pytest.fixture(params=["plain", "hypertable"])
def store_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh schema on plain PostgreSQL, or on a TimescaleDB server (the keyless direct-compress layout)."""
    with fresh_schema(request, request.param == "hypertable", "colfill_kill") as url:
        yield url


@pytest.fixture
def db(store_url: str) -> Iterator[Db]:
    d = Db(store_url)
    yield d
    d.con.close()


def run(url: str, version: int, days: int) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(HELPER), url, str(version), str(days)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_line(proc: subprocess.Popen[str], prefix: str, timeout: float = 60) -> bool:
    """Read the helper's output until a line starting with `prefix` (True) or its exit (False)."""
    assert proc.stdout is not None
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        ready, _, _ = select.select([proc.stdout], [], [], 0.05)
        if ready:
            line = proc.stdout.readline()
            if not line:
                return False
            if line.startswith(prefix):
                return True
    raise AssertionError(f"no {prefix!r} line from the loader within {timeout} s")


def load_reference(db: Db) -> None:
    """Every partition of both versions, with its fingerprint, loaded independently (ADBC ingest, no store)."""
    import adbc_driver_postgresql.dbapi as adbc

    tables = []
    for v, i in [(1, i) for i in range(V1_DAYS)] + [(2, i) for i in range(V2_DAYS)]:
        part = kl.partition(v, i)
        tables.append(part.append_column("fp", pa.array([kl.fingerprint(v, i)] * part.num_rows)))
    with adbc.connect(db.url) as con:
        with con.cursor() as cur:
            cur.adbc_ingest("reference", pa.concat_tables(tables), mode="create", db_schema_name=db.schema)
        con.commit()


def consistent(db: Db) -> tuple[int, int]:
    """Rows of bars_1m that are not exactly what the manifest says each day holds, both ways (0, 0 = exact)."""
    cols = ", ".join(f'"{c}"' for c in kl.partition(1, 0).column_names)
    expected = (f"SELECT {cols} FROM {db.rel('reference')} r JOIN {db.rel('colfill_files')} m "
                "ON m.fingerprint = r.fp AND m.table_name = 'bars_1m'")
    actual = f"SELECT {cols} FROM {db.rel('bars_1m')}"
    extra = db.one(f"SELECT count(*) FROM ({actual} EXCEPT ALL {expected}) x")
    missing = db.one(f"SELECT count(*) FROM ({expected} EXCEPT ALL {actual}) x")
    return extra, missing


def test_sigkill_at_random_moments_then_rerun(store_url: str, db: Db, request: pytest.FixtureRequest) -> None:
    seed = int(os.environ.get("COLFILL_KILL_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    note = f"(COLFILL_KILL_SEED={seed})"
    first = run(store_url, 1, V1_DAYS)
    assert first.wait(timeout=120) == 0, first.stderr.read() if first.stderr else ""
    if request.node.callspec.params["store_url"] == "hypertable":
        assert db.one("SELECT count(*) FROM timescaledb_information.hypertables WHERE hypertable_schema = %s "
                      "AND hypertable_name = 'bars_1m'", [db.schema]) == 1
        assert db.one("SELECT count(*) FROM pg_indexes WHERE schemaname = %s AND tablename = 'bars_1m' "
                      "AND indexdef LIKE 'CREATE UNIQUE%%'", [db.schema]) == 0, "the layout has no unique index"
    load_reference(db)
    assert consistent(db) == (0, 0)

    outcomes = []
    for moment in ("early", "after-first", "after-first", "after-first", "early"):
        proc = run(store_url, 2, V2_DAYS)
        if moment == "early":
            time.sleep(rng.uniform(0.2, 0.9))  # interpreter start, imports, or the first COPYs
        else:
            wait_for_line(proc, "loaded")
            time.sleep(rng.uniform(0.0, 0.12))
        proc.send_signal(signal.SIGKILL)
        outcomes.append(proc.wait(timeout=60))
        assert consistent(db) == (0, 0), f"not exactly once after a kill {note}"
    assert outcomes.count(-signal.SIGKILL) >= 3, f"the loader finished before most kills: {outcomes} {note}"

    last = run(store_url, 2, V2_DAYS)
    out, err = last.communicate(timeout=120)
    assert last.returncode == 0, err
    assert out.strip().endswith("done")
    manifest = {d: fp for (_, d, _), (fp, _) in db.manifest().items()}
    assert manifest == {kl.trading_day(i): kl.fingerprint(2, i) for i in range(V2_DAYS)}
    assert consistent(db) == (0, 0)
    cols = ", ".join(f'"{c}"' for c in kl.partition(1, 0).column_names)
    checksum = f"SELECT count(*), sum(hashtext(x::text)) FROM (SELECT {cols} FROM %s) x"
    expected = db.rows(checksum % f"{db.rel('reference')} WHERE fp LIKE 'v2-%%'")[0]
    actual = db.rows(checksum % db.rel("bars_1m"))[0]
    assert actual == expected and actual[0] == sum(kl.partition(2, i).num_rows for i in range(V2_DAYS)), note
