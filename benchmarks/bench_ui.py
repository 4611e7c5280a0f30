"""Dashboard figures (`colfill ui` in a subprocess, pages in Debian's headless Chromium through Playwright):

- the chart of one ticker over a year of minute bars (~100,000): first paint (navigation start to the first
  drawn chart, `window.__chart.firstPaintMs`) with a cold browser cache and a warm one, and the API payload;
- the overview of a store with 1,000 tickers x 250 days of day bars: /api/overview cold (first query) and warm,
  and the page until its tables are drawn;
- live: latency from a Redis publish (`published_ms` in the message) to the bar drawn on the open chart, p50/p95.

Targets: first paint under 1 s, overview under 1 s, live p50 under 500 ms.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import drop_schema, record_extra  # noqa: E402

DATA = Path(__file__).parent / "data"
BIN = Path(sys.executable).with_name("colfill")
ENV = {k: v for k, v in os.environ.items() if not k.startswith("COLFILL_")}
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _loaded(root: Path, tickers: Any, days: int, datasets: tuple[str, ...], fill: float = 0.3) -> Path:
    """A data dir loaded by `colfill run` from sample files (cached between runs)."""
    from colfill.calendar import trading_days
    from colfill.sample import generate

    data = root / "data"
    if (root / ".complete").exists():
        return data
    shutil.rmtree(root, ignore_errors=True)
    start = dt.date(2023, 1, 3)
    end = trading_days(start, start + dt.timedelta(days=days * 2))[days - 1]
    generate(root / "src", start, end, tickers=tickers, seed=3, datasets=datasets, minute_fill=fill)
    skip = ["--skip-minute"] if "minute_aggs_v1" not in datasets else ["--skip-daily"]
    subprocess.run([str(BIN), "run", "--source", str(root / "src"), "--data-dir", str(data), "--start",
                    start.isoformat(), "--end", end.isoformat(), *skip], env=ENV, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    (root / ".complete").touch()
    return data


class _Server:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([str(BIN), "ui", "--port", "0", *args], stdout=subprocess.PIPE, text=True,
                                     env=ENV, stderr=subprocess.DEVNULL)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        m = re.search(r"http://127\.0\.0\.1:\d+", line)
        if not m:
            self.proc.kill()
            raise RuntimeError(f"colfill ui did not start: {line!r}")
        self.url = m.group(0)

    def get(self, path: str) -> tuple[float, bytes]:
        t0 = time.perf_counter()
        with urllib.request.urlopen(self.url + path, timeout=60) as res:
            body = res.read()
        return time.perf_counter() - t0, body

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _browser(p: Any) -> Any:
    return p.chromium.launch_persistent_context(tempfile.mkdtemp(prefix="bench-ui-"), executable_path=CHROMIUM,
                                                args=ARGS, headless=True, viewport={"width": 1400, "height": 900})


def _wait(page: Any, js: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = page.evaluate(js)
        if value:
            return value
        time.sleep(0.01)
    raise TimeoutError(js)


def chart_figures(p: Any) -> dict[str, Any]:
    data = _loaded(DATA / "ui-year-minutes", ["AAPL"], 250, ("minute_aggs_v1",), fill=0.42)
    server = _Server("--data-dir", str(data))
    try:
        api_s, body = server.get("/api/bars/AAPL?tf=1m&points=1500&indicators=sma_20,rsi_14")
        api_s, body = server.get("/api/bars/AAPL?tf=1m&points=1500&indicators=sma_20,rsi_14")
        payload = json.loads(body)
        cold, warm, bundle = [], [], []
        for _ in range(3):  # a fresh profile each: an empty cache (the browser itself already running)
            ctx = _browser(p)
            page = ctx.new_page()
            page.goto("about:blank")
            for i in range(3):  # then twice more with the charting bundle in the browser's cache
                page.goto(server.url + "/ticker/AAPL?tf=1m")
                (cold if i == 0 else warm).append(_wait(page, "window.__chart && window.__chart.firstPaintMs") / 1000)
                if i == 0:
                    bundle.append(page.evaluate(
                        "performance.getEntriesByType('navigation')[0].domInteractive - "
                        "performance.getEntriesByType('resource').find(e => e.name.includes('/vendor/')).responseEnd"))
            ctx.close()
    finally:
        server.stop()
    return {"bars": payload["total_bars"], "candles": payload["points"], "width": payload["width"],
            "payload_bytes": len(body), "api_s": round(api_s, 3), "first_paint_cold_s": round(_median(cold), 3),
            "first_paint_warm_s": round(_median(warm), 3), "bundle_exec_ms": round(_median(bundle))}


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def postgres_figures() -> dict[str, Any] | None:
    """The same chart's API on PostgreSQL (minute bars bucketed inside the database), in a schema of its own."""
    base = os.environ.get("COLFILL_TEST_PG_URL")
    if not base:
        return None
    import uuid

    import psycopg

    schema = f"bench_ui_{uuid.uuid4().hex[:8]}"
    url = base + ("&" if "?" in base else "?") + f"schema={schema}"
    root = DATA / "ui-year-minutes"
    data = Path(tempfile.mkdtemp(prefix="bench-ui-pg-"))
    try:
        subprocess.run([str(BIN), "run", "--source", str(root / "src"), "--data-dir", str(data), "--start",
                        "2023-01-01", "--end", "2024-01-31", "--skip-daily", "--db", url, "--load-workers", "1"],
                       env=ENV, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        server = _Server("--data-dir", str(data), "--db", url)
        try:
            server.get("/api/bars/AAPL?tf=1m&points=1500&indicators=sma_20,rsi_14")
            times = [server.get("/api/bars/AAPL?tf=1m&points=1500&indicators=sma_20,rsi_14")[0] for _ in range(3)]
            overview, _ = server.get("/api/overview")
        finally:
            server.stop()
    finally:
        shutil.rmtree(data, ignore_errors=True)
        with psycopg.connect(base, autocommit=True) as con:
            drop_schema(con, schema)
    return {"chart_api_s": round(_median(times), 3), "overview_api_s": round(overview, 3)}


def overview_figures(p: Any) -> dict[str, Any]:
    from colfill.sample import ticker_names

    data = _loaded(DATA / "ui-1000x250", ticker_names(1000), 250, ("day_aggs_v1",))
    server = _Server("--data-dir", str(data))
    try:
        cold, body = server.get("/api/overview")
        warm, _ = server.get("/api/overview")
        overview = json.loads(body)
        ctx = _browser(p)
        page = ctx.new_page()
        t0 = time.perf_counter()
        page.goto(server.url + "/")
        page.wait_for_selector("#tables tbody tr[data-table=bars_1d]")
        page_s = time.perf_counter() - t0
        cov_s, _ = server.get("/api/coverage?table=bars_1d&n=40")
        t0 = time.perf_counter()  # the heatmap page of the 500 most traded tickers x 250 days, drawn
        page.goto(server.url + "/coverage")
        page.fill("#n", "500")
        page.dispatch_event("#n", "change")
        _wait(page, "window.__coverage && window.__coverage.tickers && window.__coverage.tickers.length === 500")
        heatmap_s = time.perf_counter() - t0
        ctx.close()
    finally:
        server.stop()
    (daily,) = [t for t in overview["tables"] if t["table"] == "bars_1d"]
    return {"tickers": daily["tickers"], "days": daily["days"], "rows": daily["rows"], "api_cold_s": round(cold, 3),
            "api_warm_s": round(warm, 3), "page_s": round(page_s, 3), "coverage_api_s": round(cov_s, 3),
            "heatmap_500_s": round(heatmap_s, 3)}


def live_figures(p: Any, count: int = 40) -> dict[str, Any] | None:
    url = os.environ.get("COLFILL_TEST_REDIS_URL")
    if not url:
        return None
    import pyarrow as pa

    from colfill.bus.redis import RedisMessageBus

    data = _loaded(DATA / "ui-year-minutes", ["AAPL"], 250, ("minute_aggs_v1",), fill=0.42)
    server = _Server("--data-dir", str(data), "--redis", url)
    bus = RedisMessageBus(url)
    try:
        ctx = _browser(p)
        page = ctx.new_page()
        page.goto(server.url + "/ticker/AAPL?tf=1m")
        _wait(page, "window.__chart && window.__chart.renders")
        _wait(page, "document.getElementById('live-state').className === 'ok'")
        last = page.evaluate("window.__chart.last('AAPL').close")
        t = int(dt.datetime(2024, 1, 2, 14, 30, tzinfo=dt.timezone.utc).timestamp() * 1000)
        for i in range(count):
            row = {"ticker": "AAPL", "ts": dt.datetime.fromtimestamp((t + i * 60_000) / 1000, dt.timezone.utc),
                   "open": last, "high": last + 1, "low": last - 1, "close": last + 0.5, "volume": 100.0, "vw": None,
                   "transactions": 1}
            bus.publish("1m", pa.Table.from_pylist([row]))
            time.sleep(0.15)
        _wait(page, f"window.__chart.latencies.length >= {count}", timeout=10)
        lat = sorted(page.evaluate("window.__chart.latencies"))
        ctx.close()
    finally:
        bus.close()
        server.stop()
    return {"bars": len(lat), "p50_ms": lat[len(lat) // 2], "p95_ms": lat[int(len(lat) * 0.95) - 1],
            "max_ms": lat[-1]}


def main() -> None:
    if not Path(CHROMIUM).exists():
        print("\nui: skipped (no /usr/bin/chromium; scripts/services.sh installs it)")
        return
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chart = chart_figures(p)
        overview = overview_figures(p)
        live = live_figures(p)
    pg = postgres_figures()
    record_extra({"ui": {"chart": chart, "overview": overview, "live": live, "postgres": pg}})
    print("\nui (colfill ui, headless Chromium)")
    print(f"  chart, one ticker, {chart['bars']:,} minute bars -> {chart['candles']} candles of {chart['width']}: "
          f"payload {chart['payload_bytes'] / 1024:.0f} kB, API {chart['api_s'] * 1000:.0f} ms; first paint "
          f"{chart['first_paint_cold_s'] * 1000:.0f} ms with an empty cache (of which {chart['bundle_exec_ms']} ms "
          f"running the charting bundle), {chart['first_paint_warm_s'] * 1000:.0f} ms cached (target < 1 s; medians)")
    print(f"  overview, {overview['tickers']:,} tickers x {overview['days']} days ({overview['rows']:,} day bars): "
          f"API {overview['api_cold_s'] * 1000:.0f} ms first, {overview['api_warm_s'] * 1000:.0f} ms cached; page "
          f"{overview['page_s'] * 1000:.0f} ms (target < 1 s); coverage API {overview['coverage_api_s'] * 1000:.0f} "
          f"ms, heatmap page of 500 tickers drawn in {overview['heatmap_500_s'] * 1000:.0f} ms")
    if pg:
        print(f"  PostgreSQL, the same chart's API: {pg['chart_api_s'] * 1000:.0f} ms (bucketed in the database); "
              f"overview API {pg['overview_api_s'] * 1000:.0f} ms")
    if live:
        print(f"  live, Redis publish -> drawn on the chart: p50 {live['p50_ms']:.0f} ms, p95 {live['p95_ms']:.0f} ms, "
              f"max {live['max_ms']:.0f} ms over {live['bars']} bars (target p50 < 500 ms)")
    else:
        print("  live: skipped (COLFILL_TEST_REDIS_URL is not set)")


if __name__ == "__main__":
    main()
