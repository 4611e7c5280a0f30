"""Kafka figures (BENCH_KAFKA_URL, else COLFILL_TEST_KAFKA_URL, else kafka://127.0.0.1:9092) through the bridge
onto the local redis-server: latency from `KafkaMessageBus.publish()` to the bar on the Redis stream at
1,000 bars/s (p50, p99; targets p99 < 50 ms), and the most bars/s the bridge sustains (target >= 20,000).
Skips with a message when no broker is reachable.
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyarrow as pa  # noqa: E402
from _common import kafka_url, record_extra  # noqa: E402

T0 = dt.datetime(2024, 1, 2, 14, 30, tzinfo=dt.timezone.utc)


def redis_url() -> str:
    return os.environ.get("BENCH_REDIS_URL") or os.environ.get("COLFILL_TEST_REDIS_URL") or "redis://127.0.0.1:6379/0"


def table(tickers: int, minute: int) -> pa.Table:
    n = tickers
    return pa.table({
        "ticker": [f"B{i:04d}" for i in range(n)], "ts": pa.array([T0 + dt.timedelta(minutes=minute)] * n,
                                                                   pa.timestamp("us", tz="UTC")),
        "open": [100.0] * n, "high": [101.0] * n, "low": [99.0] * n, "close": [100.5] * n,
        "volume": [1000.0] * n, "vw": [100.2] * n, "transactions": pa.array([10] * n, pa.int64()),
        **{f"ind_{k}": [50.0 + k] * n for k in range(11)}})


def main() -> None:
    kafka, redis_at = kafka_url(), redis_url()
    if kafka is None:
        return
    try:
        import redis

        redis.Redis.from_url(redis_at, socket_connect_timeout=3).ping()
    except Exception as exc:
        print(f"\nkafka: skipped (no Redis at {redis_at}: {type(exc).__name__}: {exc})")
        return
    from colfill.bus.bridge import KafkaToRedisBridge
    from colfill.bus.kafka import KafkaMessageBus

    client = redis.Redis.from_url(redis_at)
    figures: dict[str, float] = {}
    for phase in ("latency", "throughput"):
        tf = f"b{uuid.uuid4().hex[:8]}"
        group = f"bench-{tf}"
        bus = KafkaMessageBus(kafka)
        bridge = KafkaToRedisBridge(kafka, redis_at, [tf], group, session_timeout=6, notice=lambda _: None)
        stop = threading.Event()
        runner = threading.Thread(target=bridge.run, args=(stop,))
        runner.start()
        bus.publish(tf, table(1, 0))  # wait for the group to form
        while bridge.stats.bridged < 1:
            time.sleep(0.05)
        bridge.stats.latencies_ms.clear()
        if phase == "latency":  # 1,000 bars/s: 100 tickers every 100 ms, 10 s
            start = time.monotonic()
            for i in range(100):
                bus.publish(tf, table(100, i + 1))
                time.sleep(max(0.0, start + (i + 1) * 0.1 - time.monotonic()))
            time.sleep(1.0)
            lat = sorted(bridge.stats.latencies_ms)
            figures["kafka_bridge_p50_ms"] = statistics.median(lat)
            figures["kafka_bridge_p99_ms"] = lat[int(len(lat) * 0.99) - 1] if len(lat) > 1 else lat[0]
        else:  # as fast as the producer goes: 100,000 bars in batches of 2,000
            total, before = 100_000, bridge.stats.bridged
            started = time.monotonic()
            for i in range(total // 2000):
                bus.publish(tf, table(2000, i + 1))
            while bridge.stats.bridged - before < total and time.monotonic() - started < 120:
                time.sleep(0.01)
            figures["kafka_bridge_bars_per_s"] = (bridge.stats.bridged - before) / (time.monotonic() - started)
        stop.set()
        runner.join(30)
        bridge.close()
        bus.close()
        client.delete(f"colfill:stream:bars:{tf}", f"colfill:bridge:{group}:offsets")
    print("\nKafka -> bridge -> Redis stream (Tansu or your broker, local redis-server)")
    print(f"  latency at 1,000 bars/s   p50 {figures['kafka_bridge_p50_ms']:.1f} ms, p99 "
          f"{figures['kafka_bridge_p99_ms']:.1f} ms  (target p99 < 50 ms)")
    print(f"  most bars/s sustained     {figures['kafka_bridge_bars_per_s']:,.0f}  (target >= 20,000; produce and "
          "bridge in this one process)")
    record_extra(figures)


if __name__ == "__main__":
    main()
