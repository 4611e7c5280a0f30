"""Redis bus figures against the local redis-server (BENCH_REDIS_URL, else COLFILL_TEST_REDIS_URL, else
redis://127.0.0.1:6379/0), same run:

- message encoding, us per bar of 9 bar columns + the 11 default indicators: the template encoder
  (`encode_bars`) with orjson and with stdlib json, against one `bar_message` dict per bar dumped by orjson;
- bars/s published by RedisMessageBus (PUBLISH + XADD per bar, one round trip per batch) in batches of
  1, 100 and 1000, with the CPU time per bar of this process, against redis-py's pipeline sending the same
  commands (same payloads);
- latency of `publish()` of a single bar (p50/p99), and from before `publish()` to a subscriber in another
  process receiving it (p50/p99).
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyarrow as pa  # noqa: E402
from _common import record_extra  # noqa: E402

from colfill.indicators.spec import IndicatorSet  # noqa: E402

T0 = dt.datetime(2024, 1, 2, 14, 30, tzinfo=dt.timezone.utc)


def url() -> str:
    return os.environ.get("BENCH_REDIS_URL") or os.environ.get("COLFILL_TEST_REDIS_URL") or "redis://127.0.0.1:6379/0"


def table(n: int) -> pa.Table:
    """`n` enriched bars of one minute, `n` tickers: a live micro-batch."""
    cols: dict[str, object] = {
        "ticker": [f"T{i:04d}" for i in range(n)],
        "ts": pa.array([T0] * n, pa.timestamp("us", tz="UTC")),
        "open": [100.0 + i / 7 for i in range(n)], "high": [101.0 + i / 7 for i in range(n)],
        "low": [99.0 + i / 7 for i in range(n)], "close": [100.5 + i / 7 for i in range(n)],
        "volume": [1000.0 + i for i in range(n)], "vw": [100.25 + i / 7 for i in range(n)],
        "transactions": pa.array(range(n), pa.int64()),
    }
    for k, name in enumerate(IndicatorSet.default().columns):
        cols[name] = [float("nan") if i % 50 == 0 else 100.0 + k + i / 13 for i in range(n)]
    return pa.table(cols)


def encoding(n: int = 1000, rounds: int = 20) -> dict[str, float]:
    from colfill.bus import base

    bars = table(n)
    out = {}

    def timed(label: str, fn) -> None:  # type: ignore[no-untyped-def]
        fn()
        t0 = time.perf_counter()
        for _ in range(rounds):
            fn()
        out[label] = (time.perf_counter() - t0) / rounds / n * 1e6

    timed("template_orjson", lambda: base.encode_bars("1m", bars))
    rows = bars.to_pylist()
    timed("dict_per_bar_orjson", lambda: [base.dumps(base.bar_message(r, "1m", False)) for r in rows])
    saved, base.orjson = base.orjson, None
    try:
        timed("template_stdlib", lambda: base.encode_bars("1m", bars))
    finally:
        base.orjson = saved
    return out


def throughput(bus, timeframe: str, batch: int, bars: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(bars/s, CPU us per bar of this process) publishing `bars` bars in batches of `batch`."""
    part = table(batch)
    bus.publish(timeframe, part)
    rounds = max(1, bars // batch)
    c0, t0 = time.process_time(), time.perf_counter()
    for _ in range(rounds):
        bus.publish(timeframe, part)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return rounds * batch / wall, cpu / (rounds * batch) * 1e6


def pipeline_baseline(bus, timeframe: str, batch: int, bars: int) -> float:  # type: ignore[no-untyped-def]
    """bars/s of redis-py's pipeline sending the same PUBLISH + XADD commands with the same payloads."""
    from colfill.bus.base import bar_channel, bar_stream, encode_bars

    part = table(batch)
    rounds = max(1, bars // batch)
    t0 = time.perf_counter()
    for _ in range(rounds):
        tickers, _, payloads = encode_bars(timeframe, part)
        pipe = bus.client.pipeline(transaction=False)
        for ticker, payload in zip(tickers, payloads):
            pipe.publish(bar_channel(timeframe, ticker), payload)
            pipe.xadd(bar_stream(timeframe), {"bar": payload}, maxlen=bus.maxlen, approximate=True)
        pipe.execute()
    return rounds * batch / (time.perf_counter() - t0)


SUBSCRIBER = """
import sys, time, orjson, redis
r = redis.Redis.from_url(sys.argv[1]); p = r.pubsub(); p.subscribe(sys.argv[2])
p.get_message(timeout=5); print("ready", flush=True)
n, out = int(sys.argv[3]), []
while len(out) < n:
    m = p.get_message(timeout=5)
    if m is None: break
    if m["type"] == "message": out.append(time.time() * 1000 - orjson.loads(m["data"])["published_ms"])
print(" ".join(f"{x:.4f}" for x in out), flush=True)
"""


def latency(bus, timeframe: str, samples: int = 2000) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """publish() of one bar, and publish -> received by a subscriber process, in ms (p50, p99)."""
    from colfill.bus.base import bar_channel

    one = table(1)
    proc = subprocess.Popen([sys.executable, "-c", SUBSCRIBER, bus.url, bar_channel(timeframe, "T0000"),
                             str(samples)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    calls = []
    for _ in range(samples):
        t0 = time.perf_counter()
        bus.publish(timeframe, one)
        calls.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.0005)  # one bar at a time, as a quiet feed delivers them
    received = [float(x) for x in proc.stdout.readline().split()]
    proc.wait(30)
    # published_ms is stamped inside publish() as the message is encoded: the received delta is publish -> subscriber
    q = statistics.quantiles
    return {"publish_p50_ms": q(calls, n=100)[49], "publish_p99_ms": q(calls, n=100)[98],
            "to_subscriber_p50_ms": q(received, n=100)[49] if len(received) > 99 else float("nan"),
            "to_subscriber_p99_ms": q(received, n=100)[98] if len(received) > 99 else float("nan"),
            "received": len(received)}


def main() -> None:
    from colfill.errors import ColfillError

    try:
        from colfill.bus.redis import RedisMessageBus

        bus = RedisMessageBus(url())
    except ColfillError as exc:
        print(f"\nRedis bus: skipped ({exc})")
        return
    timeframe = f"bench{uuid.uuid4().hex[:8]}"
    try:
        enc = encoding()
        rates = {b: throughput(bus, timeframe, b, 3000 if b == 1 else 50_000) for b in (1, 100, 1000)}
        piped = {b: pipeline_baseline(bus, timeframe, b, 50_000) for b in (100, 1000)}
        lat = latency(bus, timeframe)
    finally:
        bus.client.delete(f"colfill:stream:bars:{timeframe}")
        bus.close()
    record_extra({"bus": {
        "encode_us_per_bar": {k: round(v, 3) for k, v in enc.items()},
        **{f"redis_bars_per_s_batch_{b}": round(r) for b, (r, _) in rates.items()},
        **{f"redis_cpu_us_per_bar_batch_{b}": round(c, 2) for b, (_, c) in rates.items()},
        **{f"redis_py_pipeline_bars_per_s_batch_{b}": round(r) for b, r in piped.items()},
        **{k: round(v, 4) for k, v in lat.items()},
    }})
    import redis.connection

    parser = "hiredis" if getattr(redis.connection, "HIREDIS_AVAILABLE", False) else "redis-py's Python parser"
    print(f"\nRedis bus (PUBLISH + XADD MAXLEN ~ per bar, local redis-server, {parser})")
    print(f"  encoding, us/bar (20 columns): template+orjson {enc['template_orjson']:.2f}, template+stdlib json "
          f"{enc['template_stdlib']:.2f}, a bar_message dict per bar + orjson {enc['dict_per_bar_orjson']:.2f}")
    for b, (r, c) in rates.items():
        extra = f"   redis-py pipeline {piped[b] / 1e3:,.0f} k bars/s" if b in piped else ""
        target = "" if b == 1 else "  (engine target: 20 k sustained)"
        print(f"  batches of {b:>4}: {r / 1e3:8,.1f} k bars/s, {c:6.1f} us CPU/bar here{extra}{target}")
    print(f"  one bar: publish() p50 {lat['publish_p50_ms']:.3f} ms, p99 {lat['publish_p99_ms']:.3f} ms; to a "
          f"subscriber process p50 {lat['to_subscriber_p50_ms']:.3f} ms, p99 {lat['to_subscriber_p99_ms']:.3f} ms "
          f"({lat['received']} received)")


if __name__ == "__main__":
    main()
