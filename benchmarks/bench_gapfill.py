"""The live gap fill's figure (issue 19): 100 tickers follow the WebSocket replay server, whose REST face answers
with 20 ms of latency; the socket drops for a 5-minute gap (nothing of it resent), and the time from the
reconnection's first frame to every bar of the gap stored (lake store) and published (in-memory bus, Redis with
COLFILL_REDIS_URL) is printed: the fill's fetch, processing, store and bus. Target: under 2 s.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import record_extra  # noqa: E402

KEY = "bench-gapfill-key"
T0 = 1_704_205_800_000
MIN = 60_000
TICKERS, BEFORE, GAP, AFTER = 100, 10, 5, 3


def measure(latency: float = 0.02) -> dict[str, float]:
    from colfill.bus import open_bus
    from colfill.config import Secret
    from colfill.interrupt import Stop
    from colfill.live.engine import DataIngestionEngine
    from colfill.live.gapfill import GapFiller
    from colfill.sources.live import LiveDataSource, LiveSettings
    from colfill.sources.rest import RestApi, RestSettings
    from tests.polygon_server import PolygonServer
    from tests.polygon_ws_server import PolygonWsServer, minute_bar

    names = [f"G{i:03d}" for i in range(TICKERS)]

    def minute(m: int) -> list[dict[str, object]]:
        return [minute_bar(n, T0 + m * MIN, 40.0 + k * 0.1 + (m % 7) * 0.05) for k, n in enumerate(names)]

    data = Path(tempfile.mkdtemp(prefix="colfill-bench-gapfill-"))
    bus = open_bus(os.environ.get("COLFILL_REDIS_URL"))
    with PolygonServer(api_key=KEY, mocks=None, latency=latency) as rest, \
            PolygonWsServer(api_key=KEY, rest=rest) as srv:
        api = RestApi(RestSettings(url=rest.url, api_key=Secret(KEY)))
        engine = DataIngestionEngine(storage=f"lake:///{data}", message_bus=bus, indicators="sma:20,ema:20,rsi:14",
                                     gap_fill=GapFiller(api, api.settings.workers))
        src = LiveDataSource(LiveSettings(url=srv.url, api_key=Secret(KEY), tickers=tuple(names),
                                          backoff_base=0.05, backoff_max=0.2))
        stop = Stop()
        thread = threading.Thread(target=engine.ingest, args=(src,), kwargs={"mode": "stream", "stop": stop})
        thread.start()
        for m in range(BEFORE):
            srv.publish(minute(m), per_frame=TICKERS)
        while engine.stats.published < BEFORE * TICKERS:
            time.sleep(0.01)
        srv.outage()
        while src.health.connected:
            time.sleep(0.01)
        for m in range(BEFORE, BEFORE + GAP):
            srv.publish(minute(m), per_frame=TICKERS)
        srv.resume()
        for m in range(BEFORE + GAP, BEFORE + GAP + AFTER):
            srv.publish(minute(m), per_frame=TICKERS)
        deadline = time.monotonic() + 60
        while not [f for f in engine.fills if f.why == "reconnect"] and time.monotonic() < deadline:
            time.sleep(0.01)
        stop.request()
        thread.join(60)
        engine.close()
        api.close()
    bus.close()
    fill = [f for f in engine.fills if f.why == "reconnect"][0]
    return {"seconds": fill.seconds, "inserted": fill.inserted, "tickers": fill.tickers,
            "requests": len(rest.requests)}


def main() -> None:
    figures = measure()
    print(f"\nlive gap fill: {TICKERS} tickers, a {GAP}-minute gap, REST at 20 ms latency: "
          f"{figures['seconds']:.2f} s from the reconnection's first frame to the gap's {figures['inserted']:,.0f} "
          "bars stored and published (target < 2 s)")
    record_extra({"gapfill": {k: round(v, 3) for k, v in figures.items()}})


if __name__ == "__main__":
    main()
