"""Executors: the Ray executor's overhead against the local one, the local stage graph from 1 to 2 cores, and the
per-stage CPU costs and PostgreSQL ingest cost that docs/scaling.md's model is built from.

On bench.py's sample (BENCH_TICKERS x BENCH_DAYS minute files, bars_1m only, into the lake), each in a fresh
process:
  exec_local_1core    local executor pinned to one core (sched_setaffinity, POLARS_MAX_THREADS=1), 1 worker
  exec_local_2cores   local executor on both cores (the default: 2 workers, 1 shard)
  exec_local_2shards  the same with 2 shards (what a bigger machine's default does with its shards)
  exec_ray_2cpus      Ray executor, a private instance of 2 CPUs (2 shards); cluster start and the workers' first
                      imports are timed apart (ray_startup_s), as a backfill of hours pays them once
Per-stage CPU (one core, so CPU time is one core's time): parse + split into 8 shards, the shards' indicator
steps, assembling a day, the lake commit (partition + state). PostgreSQL: `PostgresStore.load` of the enriched
days, one connection, with the CPU time of every postgres process on this machine over the loads (the server is
shared with other users' tests: an upper bound).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import RESULTS, Span, drop_schema, measure, postgres_cpu_seconds, record, record_extra, show, timed  # noqa: E402
from bench import DAYS, TICKERS, sample_dir  # noqa: E402

TARGET_OVERHEAD = 0.70  # Ray end to end / local end to end, on this machine


def _pin(cores: int | None) -> None:
    """Before Polars is imported: run on the first `cores` cores, with as many Polars threads."""
    if cores:
        os.sched_setaffinity(0, set(range(cores)))
        os.environ["POLARS_MAX_THREADS"] = str(cores)


def _job(root: Path, data: Path, end: dt.date = dt.date(2100, 1, 1)):  # type: ignore[no-untyped-def]
    from colfill.pipeline import BackfillJob

    return BackfillJob(source=str(root), start=dt.date(2000, 1, 1), end=end, data_dir=data, tables=("bars_1m",))


def stage_executor(root: Path, kind: str, cores: int | None, workers: int | None, shards: int | None = None,
                   startup: Path | None = None) -> int:
    _pin(cores)
    from colfill.execute import open_executor
    from colfill.pipeline import run
    from colfill.stores import open_store

    t0 = time.perf_counter()
    runner = open_executor(kind, workers=workers, shards=shards)
    warm = Path(tempfile.mkdtemp())
    if kind == "ray":  # every worker's first imports (Polars, colfill: ~1 s each) on a 3-day job of its own
        store = open_store(f"lake:///{warm}")
        run(_job(root, warm, dt.date(2024, 1, 4)), store, executor=runner)
        store.close()
    if startup is not None:
        startup.write_text(f"{time.perf_counter() - t0:.3f}")
    data = Path(tempfile.mkdtemp())
    store = open_store(f"lake:///{data}")
    with Span() as span:
        result = run(_job(root, data), store, executor=runner)
        store.close()
    runner.close()
    assert result.ok, [t.errors for t in result.tables]
    span.report(result.tables[0].rows_out)
    shutil.rmtree(data)
    shutil.rmtree(warm)
    return result.tables[0].rows_out


def stage_costs(root: Path, out: Path, shards: int = 8) -> int:
    """CPU time per row of each node of the stage graph on one core, over every day of the sample."""
    _pin(1)
    from colfill.execute import graph
    from colfill.indicators.spec import IndicatorSet
    from colfill.sources.flatfiles import FlatFiles
    from colfill.stage.lake import Lake

    src = FlatFiles(str(root))
    objs = src.list("bars_1m", dt.date(2000, 1, 1), dt.date(2100, 1, 1))
    ind = IndicatorSet.default()
    lake = Lake(Path(tempfile.mkdtemp()))
    graph.parse(src, objs[0], None, shards)  # warm-up
    cpu = dict.fromkeys(("parse_split", "steps", "assemble", "lake_commit"), 0.0)
    states: list = [None] * shards  # type: ignore[type-arg]
    rows = 0
    for obj in objs:
        t = time.process_time()
        parts = graph.parse(src, obj, None, shards)
        cpu["parse_split"] += time.process_time() - t
        t = time.process_time()
        outs = [graph.step(parts[k + 1], states[k], ind, "1m") for k in range(shards)]  # type: ignore[arg-type]
        cpu["steps"] += time.process_time() - t
        states = [s for _, s in outs]
        t = time.process_time()
        staged = graph.assemble(parts[0], outs)  # type: ignore[arg-type]
        cpu["assemble"] += time.process_time() - t
        t = time.process_time()
        assert staged.bars is not None and staged.state is not None
        lake.write_partition("bars_1m", obj.date, "bench", staged.bars)
        lake.write_state("bars_1m", "bench", obj.date, staged.state, "fp")
        cpu["lake_commit"] += time.process_time() - t
        rows += staged.bars.height
    out.write_text(json.dumps({k: round(v / rows * 1e6, 4) for k, v in cpu.items()}))
    shutil.rmtree(lake.root)
    return rows


def stage_pg_ingest(root: Path, url: str, out: Path, workers: int = 1) -> int:
    """Enriched days of the sample loaded by PostgresStore, `workers` connections; server CPU over the loads."""
    import uuid
    from concurrent.futures import ThreadPoolExecutor

    import polars as pl

    from colfill.execute import open_executor
    from colfill.pipeline import run
    from colfill.stage.lake import Lake
    from colfill.stores import LoadBatch, open_store

    data = Path(tempfile.mkdtemp())
    lake_store = open_store(f"lake:///{data}")
    run(_job(root, data), lake_store, executor=open_executor("local"))
    lake_store.close()
    lake = Lake(data / "lake")
    (lineage,) = {e.lineage for e in lake.entries("bars_1m")}
    days = [(e.date, pl.read_parquet(lake.partition("bars_1m", e.date, lineage)).to_arrow())
            for e in sorted(lake.entries("bars_1m"), key=lambda e: e.date)]
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    store = open_store(url + ("&" if "?" in url else "?") + f"schema={schema}", load_workers=workers, compress=False)
    rows = sum(t.num_rows for _, t in days)
    try:
        store.load(LoadBatch("bars_1m", days[0][0], days[0][1], "warm", "e", 1, "fp", "warm"))  # tables, connections
        before = postgres_cpu_seconds()
        with Span() as span, ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda d: store.load(LoadBatch("bars_1m", d[0], d[1], f"k/{d[0]}", "e", 1, "fp", "lin")),
                          days[1:]))
        server = postgres_cpu_seconds() - before
        loaded = rows - days[0][1].num_rows
        out.write_text(json.dumps({"server_cpu_us_per_row": round(server / loaded * 1e6, 3)}))
        span.report(loaded)
    finally:
        import psycopg

        store.close()
        with psycopg.connect(url, autocommit=True) as con:
            drop_schema(con, schema)
        shutil.rmtree(data)
    return rows


def main() -> None:
    root = sample_dir(DAYS)
    print(f"\nbench_ray: {TICKERS} tickers x {DAYS} minute files, {len(os.sched_getaffinity(0))} cores "
          f"(load average {os.getloadavg()[0]:.1f} at start: the machine is shared)")
    startup = Path(tempfile.mkstemp()[1])
    stages = {
        "exec_local_1core": timed(stage_executor, root, "local", 1, 1),
        "exec_local_2cores": timed(stage_executor, root, "local", None, None),
        "exec_local_2shards": timed(stage_executor, root, "local", None, None, 2),
        "exec_ray_2cpus": timed(stage_executor, root, "ray", None, 2, None, startup),
    }
    ray_startup = float(startup.read_text())
    costs_file = Path(tempfile.mkstemp()[1])
    measure(stage_costs, root, costs_file)
    costs = json.loads(costs_file.read_text())
    pg: dict[str, float] = {}
    url = os.environ.get("COLFILL_TEST_PG_URL")
    if url:
        pg_file = Path(tempfile.mkstemp()[1])
        for workers in (1, 2):
            fig = timed(stage_pg_ingest, root, url, pg_file, workers)
            stages[f"exec_pg_ingest_{workers}conn"] = fig
            pg[f"{workers}conn_rows_per_s"] = fig["rows_per_s"]
            pg[f"{workers}conn_server_cpu_us_per_row"] = json.loads(pg_file.read_text())["server_cpu_us_per_row"]
    else:
        print("bench_ray: COLFILL_TEST_PG_URL is not set: PostgreSQL ingest cost not measured")
    record(stages=stages)
    figures = {"stage_cpu_us_per_row_1core": costs, "ray_startup_s": ray_startup, "postgres_ingest": pg,
               "load_average": round(os.getloadavg()[0], 2)}
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    record_extra({"executors": {**data.get("executors", {}), **figures}})
    show("executors (end to end, bars_1m into the lake)", [(k, v["rows_per_s"], v["peak_rss_mb"])
                                                           for k, v in stages.items()])
    local, ray_ = stages["exec_local_2cores"]["rows_per_s"], stages["exec_ray_2cpus"]["rows_per_s"]
    one = stages["exec_local_1core"]["rows_per_s"]
    print("\ntargets")
    print(f"  Ray / local end to end          {ray_ / local:6.1%}  (target >= {TARGET_OVERHEAD:.0%}); Ray start "
          f"and first imports {ray_startup:.1f} s, paid once per run")
    print(f"  local stage graph, 1 -> 2 cores {local / one:6.2f}x  ({one / 1e6:.2f} -> {local / 1e6:.2f} M rows/s; "
          f"2 shards: {stages['exec_local_2shards']['rows_per_s'] / 1e6:.2f})")
    print("\nper-stage CPU on one core (us/row): " + ", ".join(f"{k} {v:.3f}" for k, v in costs.items())
          + f"; sum {sum(costs.values()):.3f}")
    if pg:
        print(f"PostgreSQL ingest: 1 connection {pg['1conn_rows_per_s'] / 1e3:.0f} k rows/s, server CPU "
              f"{pg['1conn_server_cpu_us_per_row']:.2f} us/row; 2 connections {pg['2conn_rows_per_s'] / 1e3:.0f} k "
              f"rows/s, {pg['2conn_server_cpu_us_per_row']:.2f} us/row")


if __name__ == "__main__":
    main()
