"""Shared benchmark plumbing: run a stage in a fresh process, report rows/s and that process's peak RSS.

Each stage runs in its own spawned process so its peak resident memory is its own, not the maximum of
everything measured before it. Results are merged into benchmarks/results/latest.json:
`{"stages": {name: {"rows_per_s": ..., "peak_rss_mb": ...}}, "baselines": {name: rows_per_s}}`.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "latest.json"


def _child(fn: Callable[..., int], args: tuple[Any, ...], queue: Any) -> None:
    t0 = time.perf_counter()
    try:
        rows = fn(*args)
    except BaseException as exc:  # report, so the parent shows which stage failed
        queue.put(("error", repr(exc)))
        raise
    elapsed = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(("ok", (rows, elapsed, peak)))


def measure(fn: Callable[..., int], *args: Any) -> dict[str, float]:
    """Run `fn(*args)` (returns rows processed) in a fresh process; rows/s of its own timing and peak RSS."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn, args, queue))
    proc.start()
    status, payload = queue.get()
    proc.join()
    if status != "ok":
        raise RuntimeError(f"benchmark stage {getattr(fn, '__name__', fn)} failed: {payload}")
    rows, elapsed, peak = payload
    return {"rows": rows, "seconds": round(elapsed, 3), "rows_per_s": round(rows / elapsed, 1),
            "peak_rss_mb": round(peak, 1)}


def record(stages: dict[str, dict[str, float]] | None = None, baselines: dict[str, float] | None = None) -> None:
    """Merge figures into latest.json, keeping what other benchmark modules wrote."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data.setdefault("stages", {}).update(stages or {})
    data.setdefault("baselines", {}).update(baselines or {})
    RESULTS.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def record_extra(figures: dict[str, Any]) -> None:
    """Merge other figures (query latencies, bytes) into latest.json at the top level."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data.update(figures)
    RESULTS.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def show(title: str, rows: list[tuple[str, float, float | None]]) -> None:
    """Print `name  rows/s  peak MB` lines."""
    print(f"\n{title}")
    for name, rps, peak in rows:
        mem = f"{peak:8.0f} MB" if peak is not None else ""
        print(f"  {name:<32} {rps/1e6:8.3f} M rows/s {mem}")


def report_inner(rows: int, seconds: float, cpu_seconds: float | None = None) -> None:
    """Called by a stage to report its own timing (of the measured work only, not set-up) to `timed`;
    `cpu_seconds` is the process's CPU time over the same span (all threads)."""
    path = os.environ.get("BENCH_INNER")
    if path:
        Path(path).write_text(f"{rows} {seconds}" + (f" {cpu_seconds}" if cpu_seconds is not None else ""))


class Span:
    """Wall and process CPU time of a `with` block, reported with `report_inner`."""

    def __enter__(self) -> Span:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu

    def report(self, rows: int) -> None:
        report_inner(rows, self.wall, self.cpu)


def timed(fn: Callable[..., int], *args: Any) -> dict[str, float]:
    """measure() for peak memory, with rows/s from the stage's inner timing when it reports one."""
    inner = Path(tempfile.mkstemp()[1])
    os.environ["BENCH_INNER"] = str(inner)
    try:
        fig = measure(fn, *args)
        text = inner.read_text().split()
        if text:
            rows, secs = int(text[0]), float(text[1])
            fig.update(seconds=round(secs, 3), rows_per_s=round(rows / secs, 1))
            if len(text) > 2:
                fig["cpu_us_per_row"] = round(float(text[2]) / rows * 1e6, 4)
        return fig
    finally:
        inner.unlink(missing_ok=True)
        os.environ.pop("BENCH_INNER", None)


def drop_schema(con: Any, schema: str) -> None:
    """DROP SCHEMA ... CASCADE on a psycopg connection (autocommit), the chunks of its hypertables dropped first:
    TimescaleDB 2.28 leaves a compressed hypertable's compressed chunks behind in `_timescaledb_internal` when
    the table or its schema is dropped (measured here: 158 such tables, 8 GB, after a few bench runs, slowing
    every later one), and `drop_chunks` does not."""
    if con.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone():
        for (name,) in con.execute("SELECT format('%%I.%%I', hypertable_schema, hypertable_name) FROM "
                                   "timescaledb_information.hypertables WHERE hypertable_schema = %s",
                                   [schema]).fetchall():
            con.execute("SELECT drop_chunks(%s::regclass, older_than => 'infinity'::timestamptz)", [name])
    con.execute('DROP SCHEMA IF EXISTS "{}" CASCADE'.format(schema.replace('"', '""')))


def kafka_url() -> str | None:
    """The Kafka broker to measure against (BENCH_KAFKA_URL, else COLFILL_TEST_KAFKA_URL, else the local one);
    None, saying why, when none answers."""
    url = os.environ.get("BENCH_KAFKA_URL") or os.environ.get("COLFILL_TEST_KAFKA_URL") or "kafka://127.0.0.1:9092"
    try:
        from confluent_kafka.admin import AdminClient

        AdminClient({"bootstrap.servers": url.removeprefix("kafka://"), "log_level": 0}).list_topics(timeout=3)
    except Exception as exc:
        print(f"\nKafka figures skipped (no broker at {url}: {type(exc).__name__}: {exc})")
        return None
    return url


def postgres_cpu_seconds() -> float:
    """utime + stime of every postgres process on this machine (root reads every /proc/<pid>/stat): the server's
    share of a run, measured before and after it."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            name, rest = stat.read_text().rsplit(")", 1)
            if "postgres" in name:
                parts = rest.split()
                total += int(parts[11]) + int(parts[12])
        except (OSError, IndexError, ValueError):
            continue
    return total / os.sysconf("SC_CLK_TCK")
