"""The live path's figures (issue 11), against our WebSocket server in a process of its own
(tests/polygon_ws_server.py, which stamps each bar as it sends it) and the local redis-server:

- latency at 1,000 bars/s (100 tickers, one bar a frame): from the server sending a frame to the enriched
  bar published on Redis (`published_ms` of the message on the Redis stream minus the server's stamp),
  p50 and p99; targets p50 < 5 ms, p99 < 50 ms. Stored then published (the default), published first
  (`--publish-first`), and with a fixed 1 s flush (`adaptive=False`) for comparison;
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import record_extra  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
KEY = "bench-key"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def scenario(tickers: int, minutes: int, rate: float, per_frame: int, adaptive: bool = True,
             redis_url: str | None = None, write_behind: bool = False,
             timeframes: tuple[str, ...] = ("1m",)) -> dict[str, float]:
    """Run one server process against the engine (lake store, Redis bus); the figures of that run."""
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
    bus = RedisMessageBus(redis_url, maxlen=max(200_000, 2 * total)) if redis_url else None
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
            lat = []
            for msg in bus.recent("1m", count=min(total, bus.maxlen if hasattr(bus, "maxlen") else total)):
                at = sent.get(f"{msg['ticker']} {msg['t']}")
                if at is not None:
                    lat.append(msg["published_ms"] - at * 1000)
            lat.sort()
            if lat:
                out["p50_ms"] = lat[len(lat) // 2]
                out["p99_ms"] = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
                out["measured"] = len(lat)
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
    rolled = rollup_latency(redis_url)
    record_extra({"live": {"latency_1k": lat, "latency_1k_publish_first": first, "latency_1k_fixed_1s": fixed,
                           "sustained_20k": sustained,
                           "sustained_20k_publish_first": sustained_first, "as_fast_as_sent": flat_out,
                           "rollup_1k": rolled}})
    print("\nLive path (WebSocket server in its own process -> engine -> lake store -> Redis)")
    print(f"  1,000 bars/s, one bar a frame: frame sent -> published on Redis p50 {lat.get('p50_ms', float('nan')):.2f}"
          f" ms, p99 {lat.get('p99_ms', float('nan')):.2f} ms over {lat.get('measured', 0):,} bars  "
          "(targets < 5 ms, < 50 ms)")
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
