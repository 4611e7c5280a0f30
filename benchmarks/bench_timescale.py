"""TimescaleDB backfill with compression during the run against the same run leaving chunks to the policy.

Needs a TimescaleDB server (`COLFILL_BENCH_TIMESCALE_URL`, else `COLFILL_TEST_TIMESCALE_URL`); CI has none, so
this is not part of `make bench`. Both runs load the same sample flat files into a fresh schema through the
installed `colfill run` and its default pipeline; the compression policies are paused, so what ends compressed
was compressed by the run. Prints rows/s, minute chunks compressed, and the table's bytes at the end.

    python benchmarks/bench_timescale.py [--tickers 200] [--end 2024-03-28]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import drop_schema  # noqa: E402

BIN = Path(sys.executable).with_name("colfill")


def with_schema(url: str, schema: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "schema"] + [("schema", schema)]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query, safe="/:"), ""))


def plain(url: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "schema"]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query, safe="/:"), ""))


def one_run(url: str, src: Path, start: str, end: str, compress: bool) -> dict[str, float]:
    import psycopg

    schema = f"bench_ts_{uuid.uuid4().hex[:8]}"
    target = with_schema(url, schema)
    subprocess.run([str(BIN), "db", "init", "--db", target], check=True, capture_output=True)
    with psycopg.connect(plain(url), autocommit=True) as con:
        con.execute("SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs "
                    "WHERE hypertable_schema = %s", [schema])
    with tempfile.TemporaryDirectory() as data:
        t0 = time.perf_counter()
        subprocess.run([str(BIN), "run", "--source", str(src), "--data-dir", data, "--start", start, "--end", end,
                        "--skip-daily", "--db", target, *([] if compress else ["--no-compress"])],
                       check=True, capture_output=True)
        seconds = time.perf_counter() - t0
    with psycopg.connect(plain(url), autocommit=True) as con:
        rows = con.execute(f'SELECT count(*) FROM "{schema}".bars_1m').fetchone()[0]  # type: ignore[index]
        chunks, compressed = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE is_compressed) FROM timescaledb_information.chunks "
            "WHERE hypertable_schema = %s AND hypertable_name = 'bars_1m'", [schema]).fetchone()  # type: ignore[misc]
        size = con.execute(f"SELECT hypertable_size('\"{schema}\".bars_1m')").fetchone()[0]  # type: ignore[index]
        drop_schema(con, schema)
    return {"rows": rows, "seconds": seconds, "chunks": chunks, "compressed": compressed, "bytes": size}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tickers", type=int, default=200)
    ap.add_argument("--start", default="2024-01-02")
    ap.add_argument("--end", default="2024-03-28")
    args = ap.parse_args()
    url = os.environ.get("COLFILL_BENCH_TIMESCALE_URL") or os.environ.get("COLFILL_TEST_TIMESCALE_URL")
    if not url:
        sys.exit("set COLFILL_BENCH_TIMESCALE_URL (or COLFILL_TEST_TIMESCALE_URL) to a TimescaleDB server")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "ff"
        subprocess.run([str(BIN), "sample", "--out", str(src), "--start", args.start, "--end", args.end,
                        "--tickers", str(args.tickers), "--no-daily"], check=True, capture_output=True)
        results = {mode: one_run(url, src, args.start, args.end, mode == "compress") for mode in ("policy", "compress")}
    for mode, r in results.items():
        print(f"{mode:>9}: {r['rows']:,} rows in {r['seconds']:.1f} s = {r['rows'] / r['seconds']:,.0f} rows/s "
              f"(end to end); bars_1m {r['compressed']}/{r['chunks']} chunks compressed, {r['bytes'] / 2**20:,.1f} MB")
    p, c = results["policy"], results["compress"]
    print(f"compression during the run: {p['bytes'] / c['bytes']:.1f}x less disk at the end, "
          f"{c['rows'] / c['seconds'] / (p['rows'] / p['seconds']):.0%} of the uncompressed run's rows/s")


if __name__ == "__main__":
    main()
