"""PostgreSQL load throughput of `PostgresStore` against a raw binary COPY, measured in the same run.

Data: 2 trading days x 2,000 tickers x 390 minutes = 1.56 M rows of 21-column bars (ticker, ts, OHLCV, vw,
transactions, 12 indicators; vw and the indicators' warm-up null, as in staged flat files), generated with
numpy from a fixed seed: the size of one real trading day of the whole market.

Baselines (psycopg, one COPY statement per connection, into a table with the same columns and primary key, of
the kind the store makes in that database: a hypertable with the store's chunking where TimescaleDB is enabled
there, else a plain table; the kind is printed beside each figure):
  pg_copy_binary_keyed        the rows pre-encoded as PGCOPY (outside the timing), sent with one connection
  pg_copy_binary_keyed_2conn  the same split by day over two connections in parallel
  pg_copy_direct_compress     (TimescaleDB 2.21+ only) the anchor of issue 20: the rows pre-encoded in (ticker, ts)
                              order, one COPY per day with direct compress on (client-sorted) into the store's
                              own layout without a key (its DDL from colfill.stores.timescale)
Stages (each in a fresh process and a fresh schema; rows/s of the loads alone, data already in memory):
  pg_load_insert          PostgresStore.load of both days, new days (fast path), one worker
  pg_load_insert_2workers the same from two threads (load_workers=2), what `colfill run` does
  pg_load_insert_adbc     the fast path through ADBC's adbc_ingest instead of the encoded COPY
  pg_load_replace         reloading both days with new values (a new day partition swapped in), one worker
  pg_load_merge           the same through a staging table + INSERT ... ON CONFLICT DO UPDATE
  end_to_end_postgres     `colfill run` (pipeline.run) into PostgreSQL on bench.py's sample, with
                          end_to_end_duckdb and end_to_end_lake measured alongside for the 50% targets

On TimescaleDB each load stage and the anchor print their chunks compressed at commit (whether the client's COPY
direct-compressed), and the targets add each load against the anchor (>= 80%) and the end to end against the lake.

Needs COLFILL_TEST_PG_URL (`make services`); each stage uses a schema of its own and drops it. With
COLFILL_BENCH_TIMESCALE_URL (or COLFILL_TEST_TIMESCALE_URL) set, the same again on that TimescaleDB server, recorded
as `<name>_timescale`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import drop_schema, measure, postgres_cpu_seconds, record, record_extra, show, timed  # noqa: E402
from _common import report_inner as _report_inner  # noqa: E402
from bench import stage_end_to_end  # noqa: E402  (the same DuckDB end to end as bench.py's)

TICKERS, MINUTES = 2_000, 390
DAYS = (dt.date(2024, 3, 7), dt.date(2024, 3, 8))
INDICATORS = ("sma_20", "sma_50", "ema_20", "ema_50", "rsi_14", "macd", "macd_signal", "macd_hist",
              "bb_upper", "bb_middle", "bb_lower", "vwap")
TARGET_LOAD, TARGET_E2E, TARGET_ANCHOR = 0.60, 0.50, 0.80


# --- data -------------------------------------------------------------------------------------------------

def make_day(date: dt.date, seed: int):  # type: ignore[no-untyped-def]
    import numpy as np
    import pyarrow as pa

    from colfill.stores.base import NEW_YORK

    rng = np.random.default_rng(seed)
    start = dt.datetime.combine(date, dt.time(9, 30), NEW_YORK).astimezone(dt.timezone.utc)
    base = int(start.timestamp() * 1_000_000)
    n = TICKERS * MINUTES
    tickers = np.array([f"T{i:04d}" for i in range(TICKERS)], dtype=object)
    price = rng.uniform(5, 500, n)
    cols = {
        "ticker": pa.array(np.repeat(tickers, MINUTES), pa.large_string()),
        "ts": pa.array(np.tile(base + np.arange(MINUTES, dtype=np.int64) * 60_000_000, TICKERS),
                       pa.timestamp("us", tz="UTC")),
        "open": price, "high": price * 1.01, "low": price * 0.99, "close": price * rng.uniform(0.99, 1.01, n),
        "volume": rng.uniform(1, 1e6, n),
        "vw": pa.nulls(n, pa.float64()),
        "transactions": rng.integers(1, 10_000, n),
    }
    minute = np.tile(np.arange(MINUTES), TICKERS)
    for name in INDICATORS:
        warm = 49 if name.endswith("_50") else 33 if name.startswith("macd") else 19
        cols[name] = pa.array(rng.normal(100, 10, n), mask=minute < warm)
    return pa.table(cols)


def prepare(workdir: Path) -> int:
    """Both days as Parquet, and the baseline's PGCOPY streams (one per day)."""
    import pyarrow.parquet as pq

    from colfill.stores.postgres import encode_pgcopy

    rows = 0
    for i, d in enumerate(DAYS):
        table = make_day(d, seed=i)
        pq.write_table(table, workdir / f"day{i}.parquet")
        for suffix, keep_order in (("", False), (".sorted", True)):  # sorted: as direct compress needs
            order, chunks = encode_pgcopy(table, keep_order=keep_order)
            with open(workdir / f"day{i}{suffix}.pgcopy", "wb") as fh:
                for chunk in chunks:
                    fh.write(chunk)
        (workdir / "columns.txt").write_text(",".join(order))
        rows += table.num_rows
    return rows


def read_days(workdir: Path) -> list:  # type: ignore[type-arg]
    import pyarrow.parquet as pq

    return [pq.read_table(workdir / f"day{i}.parquet") for i in range(len(DAYS))]


# --- plumbing ---------------------------------------------------------------------------------------------





def _schema_url(url: str) -> tuple[str, str]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    return url + ("&" if "?" in url else "?") + f"schema={schema}", schema


def _drop(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as con:
        drop_schema(con, schema)


def table_kind(url: str) -> tuple[str, tuple[int, int] | None, str]:
    """("hypertable", version, extension schema) when TimescaleDB is enabled in the database (and loaded), where
    `PostgresStore` makes bars_1m a hypertable; else ("plain table", None, "")."""
    import psycopg

    from colfill.stores import timescale as tsdb

    with psycopg.connect(url) as con:
        row = con.execute("SELECT e.extversion, n.nspname FROM pg_extension e JOIN pg_namespace n "
                          "ON n.oid = e.extnamespace WHERE e.extname = 'timescaledb'").fetchone()
        loaded = con.execute("SELECT count(*) FROM pg_settings WHERE name = 'timescaledb.max_background_workers'"
                             ).fetchone()[0]  # type: ignore[index]
    if row and loaded and tsdb.parse_version(row[0]) >= tsdb.MIN_VERSION:
        return "hypertable", tsdb.parse_version(row[0]), row[1]
    return "plain table", None, ""


def _keyed_table(con, schema: str, names: list[str], url: str, key: bool = True) -> str:  # type: ignore[no-untyped-def]
    """bars_1m as the store makes it: with its primary key, or (`key` False, TimescaleDB) the hypertable without
    one and with its non-unique (ticker, ts) index."""
    from colfill.stores import timescale as tsdb
    from colfill.stores.postgres import bars_schema, pg_type

    types = {f.name: pg_type(f.type) for f in bars_schema(INDICATORS)}
    cols = ", ".join(f'"{n}" {types[n]}' + (' COLLATE "C"' if n == "ticker" else "")  # as the store makes it
                     + (" NOT NULL" if n in ("ticker", "ts") else "") for n in names)
    con.execute(f'CREATE SCHEMA "{schema}"')
    con.execute(f'CREATE TABLE "{schema}".bars_1m ({cols}' + (", PRIMARY KEY (ticker, ts))" if key else ")"))
    kind, version, ext_schema = table_kind(url)
    if version is not None:  # the store's own DDL: 1-day chunks on ts, its compression settings
        for statement in tsdb.hypertable_sql(schema, "bars_1m", version, ext_schema):
            con.execute(statement)  # type: ignore[arg-type]
        if not key:
            con.execute(tsdb.load_index_sql(schema, "bars_1m"))  # type: ignore[arg-type]
    con.commit()
    return f'"{schema}".bars_1m'


def has_direct_compress(url: str) -> bool:
    """Whether the database's TimescaleDB accepts direct compress of COPY (2.21+)."""
    import psycopg

    from colfill.stores import timescale as tsdb

    if table_kind(url)[1] is None:
        return False
    with psycopg.connect(url) as con:
        return bool(con.execute("SELECT count(*) FROM pg_settings WHERE name = %s",
                                [tsdb.DIRECT_COMPRESS_GUC]).fetchone()[0])  # type: ignore[index]


def chunks_compressed(url: str, schema: str) -> tuple[int, int]:
    """(compressed, all) chunks of `schema`.bars_1m."""
    import psycopg

    with psycopg.connect(url) as con:
        row = con.execute("SELECT count(*) FILTER (WHERE is_compressed), count(*) FROM timescaledb_information.chunks "
                          "WHERE hypertable_schema = %s AND hypertable_name = 'bars_1m'", [schema]).fetchone()
    return int(row[0]), int(row[1])  # type: ignore[index]


# --- baselines --------------------------------------------------------------------------------------------

def _copy_file(url: str, target: str, columns: str, path: Path, out: list[float]) -> None:
    import psycopg

    data = path.read_bytes()
    with psycopg.connect(url) as con:
        t0 = time.perf_counter()
        with con.cursor() as cur, cur.copy(f"COPY {target} ({columns}) FROM STDIN (FORMAT BINARY)") as cp:
            view = memoryview(data)
            for i in range(0, len(view), 4 << 20):
                cp.write(view[i:i + (4 << 20)])
        con.commit()
        out.append(time.perf_counter() - t0)


def baseline_copy(url: str, workdir: Path, connections: int) -> int:
    """Raw binary COPY of the pre-encoded days: all in one stream, or one day per connection in parallel."""
    import psycopg

    names = (workdir / "columns.txt").read_text().split(",")
    columns = ", ".join(f'"{n}"' for n in names)
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url) as con:
        target = _keyed_table(con, schema, names, url)
    try:
        if connections == 1:
            # one stream: the second file without its header, the first without its trailer
            merged = workdir / "both.pgcopy"
            first, second = (workdir / "day0.pgcopy").read_bytes(), (workdir / "day1.pgcopy").read_bytes()
            merged.write_bytes(first[:-2] + second[19:])
            times: list[float] = []
            _copy_file(url, target, columns, merged, times)
            merged.unlink()
            elapsed = times[0]
        else:
            times = []
            threads = [threading.Thread(target=_copy_file, args=(url, target, columns, workdir / f"day{i}.pgcopy",
                                                                  times)) for i in range(len(DAYS))]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - t0
        with psycopg.connect(url) as con:
            rows = con.execute(f"SELECT count(*) FROM {target}").fetchone()[0]  # type: ignore[index]
    finally:
        _drop(url, schema)
    _report_inner(rows, elapsed)
    return rows


def baseline_direct_compress(url: str, workdir: Path) -> int:
    """Raw binary COPY of the days pre-encoded in (ticker, ts) order, one transaction per day with direct compress
    (client-sorted) on, into the store's layout without a key: the anchor a colfill load is held to."""
    import psycopg

    from colfill.stores import timescale as tsdb

    names = (workdir / "columns.txt").read_text().split(",")
    columns = ", ".join(f'"{n}"' for n in names)
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url) as con:
        target = _keyed_table(con, schema, names, url, key=False)
    try:
        data = [(workdir / f"day{i}.sorted.pgcopy").read_bytes() for i in range(len(DAYS))]
        with psycopg.connect(url) as con:
            t0 = time.perf_counter()
            for day in data:
                with con.cursor() as cur:
                    for statement in tsdb.direct_compress_sql(True):
                        cur.execute(statement)  # type: ignore[arg-type]
                    with cur.copy(f"COPY {target} ({columns}) FROM STDIN (FORMAT BINARY)") as cp:
                        view = memoryview(day)
                        for i in range(0, len(view), 4 << 20):
                            cp.write(view[i:i + (4 << 20)])
                con.commit()
            elapsed = time.perf_counter() - t0
            rows = con.execute(f"SELECT count(*) FROM {target}").fetchone()[0]  # type: ignore[index]
        done, chunks = chunks_compressed(url, schema)
        print(f"  (pg_copy_direct_compress: {done}/{chunks} chunks compressed at commit)")
    finally:
        _drop(url, schema)
    _report_inner(rows, elapsed)
    return rows


# --- stages -----------------------------------------------------------------------------------------------

def _restated(table):  # type: ignore[no-untyped-def]
    """A new version of a day, as after a restated source file: every row's close and indicators change."""
    import pyarrow.compute as pc

    for name in ("close", *INDICATORS):
        i = table.column_names.index(name)
        table = table.set_column(i, name, pc.multiply(table[name], 1.0001))
    return table


def stage_store(url: str, workdir: Path, mode: str, workers: int, driver: str = "auto") -> int:
    """PostgresStore.load of both days: `insert` into a fresh table, or `replace`/`merge` over loaded days."""
    from colfill.stores.base import LoadBatch
    from colfill.stores.postgres import PostgresStore

    days = read_days(workdir)
    store_url, schema = _schema_url(url)
    if driver != "auto":
        store_url = store_url.replace("postgresql://", f"postgresql+{driver}://", 1)
    strategy = "merge" if mode == "merge" else "auto"

    def batches(tag: str) -> list[LoadBatch]:
        tables = days if tag == "v1" else [_restated(t) for t in days]
        return [LoadBatch("bars_1m", d, t, f"bench/{d}", tag, 1, f"{tag}-{d}", "bench")
                for d, t in zip(DAYS, tables)]

    try:
        with PostgresStore(store_url, load_workers=workers, strategy=strategy) as store:
            store.ensure_table("bars_1m", days[0].schema)
            if mode != "insert":
                for b in batches("v1"):  # the days to reload, untimed
                    store.load(b)
            todo = batches("v2")
            # on a hypertable without a key (TimescaleDB) a merge is a day rewrite: counted as "replace"
            def taken() -> int:
                return store.paths[mode] + (store.paths["replace"] if mode == "merge" else 0)

            before = taken()
            t0 = time.perf_counter()
            if workers == 1:
                for b in todo:
                    store.load(b)
            else:
                threads = [threading.Thread(target=store.load, args=(b,)) for b in todo]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
            elapsed = time.perf_counter() - t0
            assert taken() - before == len(todo), store.paths
            rows = sum(b.data.num_rows for b in todo)
            if table_kind(url)[1] is not None:  # did this client's COPY direct-compress? (compressed at commit)
                done, chunks = chunks_compressed(url, schema)
                print(f"  ({mode}, {workers} worker(s), {driver}: {done}/{chunks} chunks compressed at commit, "
                      f"paths {dict(store.paths)})")
    finally:
        _drop(url, schema)
    _report_inner(rows, elapsed)
    return rows


def stage_end_to_end_postgres(url: str, root: Path, cpu_out: Path | None = None) -> int:
    """`colfill run` into PostgreSQL; `cpu_out` gets the CPU per row of this process (every thread) and of the
    server's processes over the run, which bound what the machine's cores allow."""
    import json
    import shutil

    from colfill.indicators.spec import IndicatorSet
    from colfill.pipeline import BackfillJob, run
    from colfill.stores.postgres import PostgresStore

    data = Path(tempfile.mkdtemp())
    store_url, schema = _schema_url(url)
    job = BackfillJob(source=str(root), start=dt.date(2000, 1, 1), end=dt.date(2100, 1, 1), data_dir=data,
                      tables=("bars_1m",), indicators=IndicatorSet.default())
    try:
        with PostgresStore(store_url, load_workers=2) as store:
            t0, cpu, server = time.perf_counter(), time.process_time(), postgres_cpu_seconds()
            result = run(job, store)
            elapsed = time.perf_counter() - t0
            cpu, server = time.process_time() - cpu, postgres_cpu_seconds() - server
    finally:
        _drop(url, schema)
        shutil.rmtree(data)
    table = result.tables[0]
    assert not table.errors, table.errors[:3]
    if cpu_out is not None:
        cpu_out.write_text(json.dumps({"client": cpu / table.loaded_rows * 1e6,
                                       "server": server / table.loaded_rows * 1e6}))
    _report_inner(table.loaded_rows, elapsed)
    return table.loaded_rows


def _sample_root() -> Path | None:
    """bench.py's sample flat files (generated there on first use)."""
    try:
        import bench
    except ImportError:
        return None
    root: Path = bench.sample_dir(bench.DAYS)
    return root


def main() -> None:
    """Against COLFILL_TEST_PG_URL, then, when it is set, the TimescaleDB server of COLFILL_BENCH_TIMESCALE_URL (else
    COLFILL_TEST_TIMESCALE_URL): its figures recorded with the suffix `_timescale`."""
    url = os.environ.get("COLFILL_TEST_PG_URL")
    if not url:
        print("\nbench_postgres: COLFILL_TEST_PG_URL is not set (run `make services`); skipped")
        return
    bench_server(url)
    ts = os.environ.get("COLFILL_BENCH_TIMESCALE_URL") or os.environ.get("COLFILL_TEST_TIMESCALE_URL")
    if ts and ts != url:
        bench_server(ts, "_timescale")


def bench_server(url: str, suffix: str = "") -> None:
    workdir = Path(tempfile.mkdtemp(prefix="colfill-bench-pg-"))
    try:
        rows = measure(prepare, workdir)["rows"]
        kind = table_kind(url)[0]
        print(f"\nPostgreSQL load: {len(DAYS)} days x {TICKERS:,} tickers x {MINUTES} minutes = {rows:,.0f} rows, "
              f"{9 + len(INDICATORS)} columns; bars_1m and the baseline are each a {kind}")
        base = {
            "pg_copy_binary_keyed": timed(baseline_copy, url, workdir, 1),
            "pg_copy_binary_keyed_2conn": timed(baseline_copy, url, workdir, 2),
        }
        if has_direct_compress(url):
            base["pg_copy_direct_compress"] = timed(baseline_direct_compress, url, workdir)
        stages = {
            "pg_load_insert": timed(stage_store, url, workdir, "insert", 1),
            "pg_load_insert_2workers": timed(stage_store, url, workdir, "insert", 2),
            "pg_load_insert_adbc": timed(stage_store, url, workdir, "insert", 1, "adbc"),
            "pg_load_replace": timed(stage_store, url, workdir, "replace", 1),
            "pg_load_merge": timed(stage_store, url, workdir, "merge", 1),
        }
    finally:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    root = _sample_root()
    e2e: dict[str, dict[str, float]] = {}
    if root is not None:
        cpu_file = Path(tempfile.mkstemp()[1])
        e2e["end_to_end_postgres"] = timed(stage_end_to_end_postgres, url, root, cpu_file)
        cpu = json.loads(cpu_file.read_text())
        cpu_file.unlink()
        e2e["end_to_end_duckdb_same_run"] = timed(stage_end_to_end, root, "duckdb")
        e2e["end_to_end_lake_same_run"] = timed(stage_end_to_end, root, "lake")
    record(stages={k + suffix: v for k, v in {**stages, **e2e}.items()},
           baselines={k + suffix: v["rows_per_s"] for k, v in base.items()})
    record_extra({"pg_table_kind" + suffix: kind})
    show(f"PostgreSQL stages (into a {kind})",
         [(k, v["rows_per_s"], v["peak_rss_mb"]) for k, v in {**stages, **e2e}.items()])
    show(f"PostgreSQL baselines (same run, same rows, raw COPY into a {kind})",
         [(k, v["rows_per_s"], v["peak_rss_mb"]) for k, v in base.items()])
    copy1 = base["pg_copy_binary_keyed"]["rows_per_s"]
    copy2 = base["pg_copy_binary_keyed_2conn"]["rows_per_s"]
    print("\ntargets")
    for name, ref, label in (
        ("pg_load_insert_2workers", copy1, "raw COPY"),  # both into the same kind of table (printed above)
        ("pg_load_insert", copy1, "raw COPY"),
        ("pg_load_insert_2workers", copy2, "raw COPY x2"),
        ("pg_load_insert_adbc", copy1, "raw COPY"),
        ("pg_load_replace", copy1, "raw COPY"),
        ("pg_load_merge", copy1, "raw COPY"),
    ):
        ratio = stages[name]["rows_per_s"] / ref
        print(f"  {name:<26} / {label:<12} {ratio:6.1%}  (target >= {TARGET_LOAD:.0%})")
    if "pg_copy_direct_compress" in base:  # issue 20's anchor: same layout, same chunking, direct compress
        anchor = base["pg_copy_direct_compress"]["rows_per_s"]
        for name in ("pg_load_insert", "pg_load_insert_2workers", "pg_load_insert_adbc"):
            ratio = stages[name]["rows_per_s"] / anchor
            print(f"  {name:<26} / raw COPY direct-compress {ratio:6.1%}  (target >= {TARGET_ANCHOR:.0%})")
    if e2e:
        name = "TimescaleDB" if kind == "hypertable" else "PostgreSQL"
        pg = e2e["end_to_end_postgres"]["rows_per_s"]
        for other, label in (("end_to_end_duckdb_same_run", "DuckDB"), ("end_to_end_lake_same_run", "lake")):
            ratio = pg / e2e[other]["rows_per_s"]
            print(f"  end to end {name} / {label:<7} {ratio:6.1%}  (target >= {TARGET_E2E:.0%})")
        need, cores = cpu["client"] + cpu["server"], os.cpu_count() or 1
        best, lake = cores / need * 1e6, e2e["end_to_end_lake_same_run"]["rows_per_s"]
        print(f"  its CPU a row: colfill {cpu['client']:.2f} us (all threads) + the server {cpu['server']:.2f} us = "
              f"{need:.2f} us: at most {best / 1e6:.2f} M rows/s on {cores} cores shared with the server, "
              f"{best / lake:.0%} of the lake; with the server on cores of its own, colfill's part allows "
              f"{cores / cpu['client']:.2f} M rows/s, {cores / cpu['client'] * 1e6 / lake:.0%} of the lake")
        record_extra({"pg_end_to_end_cpu_us_per_row" + suffix: {k: round(v, 3) for k, v in cpu.items()}})


if __name__ == "__main__":
    main()
