"""The live path's figures (issue 11), against our WebSocket server in a process of its own
(tests/polygon_ws_server.py, which stamps each bar as it sends it) and the local redis-server:

- latency at 1,000 bars/s (100 tickers, one bar a frame): from the server sending a frame to the enriched
  bar published on Redis (`published_ms` of the message on the Redis stream minus the server's stamp),
  p50 and p99; targets p50 < 5 ms, p99 < 50 ms. Stored then published (the default), published first
  (`--publish-first`), and with a fixed 1 s flush (`adaptive=False`) for comparison. The same on the Kafka
  bus (COLFILL_TEST_KAFKA_URL or BENCH_KAFKA_URL; skipped when no broker answers): `published_ms` of the
  message read back from `colfill.bars.1m`, the same definition as Redis's, and beside both the time to
  the bus's confirmation (`publish()` returned: Redis's EXEC answered, every Kafka delivery acknowledged);
- sustained 20,000 bars/s (1,000 tickers, 50 bars a frame) through the engine into the lake store and
  Redis, stored then published and published first: the rate achieved, the engine's backlog (publication
  minus arrival) at its worst and at the end, and the memory the process holds (RSS) before and after;
- the most bars/s the engine takes when the server sends as fast as it can;
- the live rollup's added latency (issue 22): the 1,000 bars/s scenario over an hour of minutes with
  `timeframes=("1m",)` and with `("1m", "5m", "15m", "1h")`, the 1m bars' p50/p99 of each.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import kafka_url, record_extra  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
KEY = "bench-key"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Confirmed:
    """A bus that notes when each bar's `publish()` returned, i.e. the bus confirmed it (epoch ms by `ticker t`)."""

    def __init__(self, bus: Any) -> None:
        self.bus = bus
        self.at: dict[str, float] = {}

    def publish(self, timeframe: str, bars: Any, revision: Any = False) -> int:
        import pyarrow.compute as pc

        n = self.bus.publish(timeframe, bars, revision)
        now = time.time() * 1000
        ms = pc.divide(bars["ts"].cast("int64"), 1000).to_pylist()
        self.at.update((f"{t} {m}", now) for t, m in zip(bars["ticker"].to_pylist(), ms))
        return int(n)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.bus, name)


def percentiles(lat: list[float], out: dict[str, float], name: str = "") -> None:
    lat.sort()
    if lat:
        out[f"p50{name}_ms"] = lat[len(lat) // 2]
        out[f"p99{name}_ms"] = lat[min(len(lat) - 1, int(len(lat) * 0.99))]


def read_back(url: str, prefix: str, total: int) -> tuple[threading.Thread, list[dict[str, Any]], threading.Event]:
    """A thread reading the bars of tickers `prefix*` from `colfill.bars.1m` (from its end now) until `total`."""
    from colfill.bus.kafka import subscribe

    got: list[dict[str, Any]] = []
    ready = threading.Event()

    def read() -> None:
        for msg in subscribe(url, [f"{prefix}*"], "1m", timeout=10, ready=ready.set):
            got.append(msg)
            if len(got) >= total:
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    ready.wait(30)
    return reader, got, ready


def scenario(tickers: int, minutes: int, rate: float, per_frame: int, adaptive: bool = True,
             redis_url: str | None = None, write_behind: bool = False, kafka: str | None = None,
             timeframes: tuple[str, ...] = ("1m",)) -> dict[str, float]:
    """Run one server process against the engine (lake store, the Redis bus, or the Kafka bus with `kafka`);
    the figures of that run."""
    from colfill.bus.redis import RedisMessageBus
    from colfill.interrupt import Stop
    from colfill.live.engine import DataIngestionEngine
    from colfill.sources.live import LiveDataSource, LiveSettings

    prefix = f"B{uuid.uuid4().hex[:3].upper()}"
    stamps = Path(tempfile.mkdtemp(prefix="colfill-bench-live-")) / "stamps.json"
    server = subprocess.Popen([sys.executable, str(ROOT / "tests" / "polygon_ws_server.py"), "--key", KEY,
                               "--tickers", str(tickers), "--minutes", str(minutes), "--rate", str(rate),
                               "--per-frame", str(per_frame), "--prefix", prefix, "--stamps", str(stamps)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert server.stdout is not None and server.stdin is not None
    url = server.stdout.readline().strip()
    names = tuple(f"{prefix}{i:04d}" for i in range(tickers))
    total = tickers * minutes
    bus: Any = RedisMessageBus(redis_url, maxlen=max(200_000, 2 * total)) if redis_url else None
    if kafka:
        from colfill.bus.kafka import KafkaMessageBus

        bus = KafkaMessageBus(kafka)
        reader, back, _ = read_back(kafka, prefix, total)
    bus = Confirmed(bus) if bus is not None else None
    with tempfile.TemporaryDirectory(prefix="colfill-bench-live-") as tmp:
        settings = LiveSettings.from_env(",".join(names), url=url, api_key=KEY)
        source = LiveDataSource(settings)
        engine = DataIngestionEngine(storage=f"lake:///{tmp}", message_bus=bus, adaptive=adaptive,
                                     batch_size=50_000, write_behind=write_behind, timeframes=timeframes)
        engine.prepare("1m")
        rss0 = rss_mb()
        stop = Stop()
        worst = [0.0]

        def watch() -> None:
            while not stop.is_set():
                worst[0] = max(worst[0], engine.stats.behind_ms if engine.stats.published else 0.0)
                if engine.stats.published >= total:
                    stop.request()
                time.sleep(0.05)

        watcher = threading.Thread(target=watch)
        watcher.start()
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        first_publish: list[float] = []
        engine.on_flush = lambda e: first_publish.append(time.time()) if not first_publish else None
        engine.ingest(source, mode="stream", stop=stop)
        # first to last publication (the first batch's own bars are counted as published at its start)
        seconds = engine.stats.last_publish - first_publish[0] if first_publish else time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        watcher.join()
        rss1 = rss_mb()
        done = json.loads(server.stdout.readline() or "{}")
        server.stdin.close()
        server.wait(30)
        stats = engine.stats
        out = {"bars": stats.published, "sent_per_s": done.get("sent", 0) / max(done.get("seconds", 1e-9), 1e-9),
               "bars_per_s": stats.published / max(seconds, 1e-9), "worst_backlog_ms": worst[0],
               "final_backlog_ms": stats.behind_ms, "rss_before_mb": rss0, "rss_after_mb": rss1,
               "cpu_us_per_bar": cpu / max(stats.published, 1) * 1e6, "batches": stats.batches,
               "derived": stats.derived,
               "engine_p50_ms": stats.percentile(50) or 0.0, "engine_p99_ms": stats.percentile(99) or 0.0}
        if bus is not None and stamps.exists():
            sent = json.loads(stamps.read_text())
            if kafka:
                reader.join(15)
                messages = back
            else:
                messages = bus.recent("1m", count=min(total, bus.maxlen))
            lat = []
            for msg in messages:
                at = sent.get(f"{msg['ticker']} {msg['t']}")
                if at is not None:
                    lat.append(msg["published_ms"] - at * 1000)
            out["measured"] = len(lat)
            percentiles(lat, out)
            percentiles([bus.at[k] - at * 1000 for k, at in sent.items() if k in bus.at], out, "_confirmed")
        engine.close()
    if bus is not None:
        bus.close()
    return out


def rollup_latency(redis_url: str) -> dict[str, dict[str, float]]:
    """1,000 bars/s for an hour of minutes (14:30-15:29: 5m, 15m and 1h buckets close), without and with the
    rollup; the 1m bars' latency of each."""
    return {"1m": scenario(100, 60, 1000.0, 1, redis_url=redis_url),
            "1m,5m,15m,1h": scenario(100, 60, 1000.0, 1, redis_url=redis_url, timeframes=("1m", "5m", "15m", "1h"))}


def print_rollup(runs: dict[str, dict[str, float]]) -> None:
    base, rolled = runs["1m"], runs["1m,5m,15m,1h"]
    nan = float("nan")
    print(f"  live rollup at 1,000 bars/s: 1m bars published on Redis p50 {base.get('p50_ms', nan):.2f} ms, p99 "
          f"{base.get('p99_ms', nan):.2f} ms with --timeframes 1m; p50 {rolled.get('p50_ms', nan):.2f} ms, p99 "
          f"{rolled.get('p99_ms', nan):.2f} ms with 1m,5m,15m,1h ({rolled['derived']:,} derived bars published)")


def main() -> None:
    redis_url = os.environ.get("COLFILL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    if "--rollup" in sys.argv:  # this scenario alone
        print_rollup(rollup_latency(redis_url))
        return
    lat = scenario(100, 50, 1000.0, 1, redis_url=redis_url)
    first = scenario(100, 50, 1000.0, 1, redis_url=redis_url, write_behind=True)
    fixed = scenario(100, 10, 1000.0, 1, adaptive=False, redis_url=redis_url)
    sustained = scenario(1000, 100, 20_000.0, 50, redis_url=redis_url)
    sustained_first = scenario(1000, 100, 20_000.0, 50, redis_url=redis_url, write_behind=True)
    flat_out = scenario(1000, 100, 1e9, 50, redis_url=redis_url)
    broker = kafka_url()
    on_kafka = scenario(100, 50, 1000.0, 1, kafka=broker) if broker else {}
    rolled = rollup_latency(redis_url)
    record_extra({"live": {"latency_1k": lat, "latency_1k_publish_first": first, "latency_1k_fixed_1s": fixed,
                           "latency_1k_kafka": on_kafka, "sustained_20k": sustained,
                           "sustained_20k_publish_first": sustained_first, "as_fast_as_sent": flat_out,
                           "rollup_1k": rolled}})
    print("\nLive path (WebSocket server in its own process -> engine -> lake store -> Redis)")
    print(f"  1,000 bars/s, one bar a frame: frame sent -> published on Redis p50 {lat.get('p50_ms', float('nan')):.2f}"
          f" ms, p99 {lat.get('p99_ms', float('nan')):.2f} ms over {lat.get('measured', 0):,} bars  "
          "(targets < 5 ms, < 50 ms)")
    nan = float("nan")
    if on_kafka:
        print(f"    on Kafka (--bus kafka://, {broker}): p50 {on_kafka.get('p50_ms', nan):.2f} ms, p99 "
              f"{on_kafka.get('p99_ms', nan):.2f} ms over {on_kafka.get('measured', 0):,} bars read back from "
              "colfill.bars.1m")
    print(f"    to the bus's confirmation: Redis p50 {lat.get('p50_confirmed_ms', nan):.2f} ms, p99 "
          f"{lat.get('p99_confirmed_ms', nan):.2f} ms" + (f"; Kafka (every delivery acknowledged) p50 "
          f"{on_kafka.get('p50_confirmed_ms', nan):.2f} ms, p99 {on_kafka.get('p99_confirmed_ms', nan):.2f} ms"
          if on_kafka else ""))
    print(f"    arrival -> published (the engine alone) p50 {lat['engine_p50_ms']:.2f} ms, p99 "
          f"{lat['engine_p99_ms']:.2f} ms; {lat['batches']:,} micro-batches for {lat['bars']:,} bars")
    print(f"    published first, stored right after (--publish-first): p50 {first.get('p50_ms', float('nan')):.2f} ms, "
          f"p99 {first.get('p99_ms', float('nan')):.2f} ms")
    print(f"    with a fixed 1 s flush instead: p50 {fixed.get('p50_ms', float('nan')):.0f} ms, p99 "
          f"{fixed.get('p99_ms', float('nan')):.0f} ms")
    print(f"  sustained: server sent {sustained['sent_per_s']:,.0f} bars/s, engine published "
          f"{sustained['bars_per_s']:,.0f} bars/s ({sustained['bars']:,} bars, {sustained['batches']:,} batches); "
          f"backlog worst {sustained['worst_backlog_ms']:.0f} ms, at the end {sustained['final_backlog_ms']:.0f} ms; "
          f"{sustained['cpu_us_per_bar']:.1f} us CPU a bar  (target >= 20,000 bars/s, backlog bounded)")
    print(f"    memory held: RSS {sustained['rss_before_mb']:.0f} MB before, {sustained['rss_after_mb']:.0f} MB after")
    print(f"    --publish-first: {sustained_first['bars_per_s']:,.0f} bars/s, backlog worst "
          f"{sustained_first['worst_backlog_ms']:.0f} ms, at the end {sustained_first['final_backlog_ms']:.0f} ms, "
          f"{sustained_first['cpu_us_per_bar']:.1f} us CPU a bar, RSS {sustained_first['rss_after_mb']:.0f} MB")
    print(f"  as fast as the server sends ({flat_out['sent_per_s']:,.0f} bars/s sent): engine "
          f"{flat_out['bars_per_s']:,.0f} bars/s, worst backlog {flat_out['worst_backlog_ms']:.0f} ms, RSS "
          f"{flat_out['rss_after_mb']:.0f} MB")
    print_rollup(rolled)


if __name__ == "__main__":
    main()
