"""The installed `colfill live`, run as a scheduler runs it (a subprocess), against our WebSocket server and a
real redis-server: exit codes, messages, and SIGTERM with nothing lost.

What each test holds: a refused key exits 3 with a clear message that never contains the key; bad usage
exits 2 before connecting; SIGTERM right after the server sent its last frames exits 0 with every bar
stored and published (the bars in flight included), the `live` status on Redis, and a summary.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import duckdb
import pytest

from colfill import errors
from tests.polygon_ws_server import PolygonWsServer, minute_bar

BIN = Path(sys.executable).with_name("colfill")
ENV = {k: v for k, v in os.environ.items() if not k.startswith("COLFILL_") and k not in (
    "POLYGON_API_KEY", "MASSIVE_API_KEY")} | {"COLUMNS": "160"}
KEY = "cli-live-key-4242"
T0 = 1_704_205_800_000
MIN = 60_000


def start(*args: str, key: str = KEY) -> subprocess.Popen[str]:
    assert BIN.exists(), f"the console script is not installed at {BIN} (pip install -e .)"
    return subprocess.Popen([str(BIN), "live", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENV | {"POLYGON_API_KEY": key}, stdin=subprocess.DEVNULL)


def test_a_refused_key_exits_3_and_never_prints_it(tmp_path: Path) -> None:
    with PolygonWsServer(api_key=KEY) as srv:
        proc = start("--tickers", "AAPL", "--ws-url", srv.url, "--data-dir", str(tmp_path), key="wrong-key-31337")
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == errors.UNREACHABLE, err
    assert "refused the API key" in err and "auth_failed" in err
    assert "wrong-key-31337" not in out + err and "Traceback" not in err


@pytest.mark.parametrize(("args", "says"), [
    (["--ws-url", "http://127.0.0.1:1/stocks"], "is not a ws:// or wss:// URL"),
    (["--ws-url", "ws://127.0.0.1:1/stocks", "--delayed"], "either --ws-url or --delayed"),
])
def test_bad_usage_exits_2(args: list[str], says: str, tmp_path: Path) -> None:
    proc = start("--tickers", "AAPL", "--data-dir", str(tmp_path), *args)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == errors.USAGE and says in " ".join(err.split())


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_flushes_everything_received_and_exits_0(signum: int, tmp_path: Path, redis_url: str) -> None:
    import redis

    url = redis_url
    client = redis.Redis.from_url(url, socket_timeout=5)
    tickers = [f"Q{uuid.uuid4().hex[:5].upper()}" for _ in range(2)]
    first = [minute_bar(t, T0 + i * MIN, 20.0 + i) for i in range(50) for t in tickers]
    second = [minute_bar(t, T0 + i * MIN, 20.0 + i) for i in range(50, 80) for t in tickers]
    data = tmp_path / "data"
    with PolygonWsServer(api_key=KEY) as srv:
        srv.publish(first)
        proc = start("--tickers", ",".join(tickers), "--ws-url", srv.url, "--data-dir", str(data), "--redis", url,
                     "--indicators", "sma:5,rsi:3")
        deadline = time.monotonic() + 60
        status: dict = {}
        while time.monotonic() < deadline and proc.poll() is None:
            raw = client.get("colfill:status:live")
            status = json.loads(raw) if raw else {}
            if status.get("tickers") == tickers and status.get("bars") == len(first):
                break
            time.sleep(0.1)
        assert status.get("bars") == len(first), (status, proc.poll())
        srv.publish(second, per_frame=10)  # these are in flight when SIGTERM arrives
        while srv.pending():
            time.sleep(0.005)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == errors.OK, err
    assert "stopping: flushing" in err and f"{len(first) + len(second)} stored" in err
    assert KEY not in out + err
    con = duckdb.connect(str(data / "colfill.duckdb"), read_only=True)
    try:
        rows = con.sql("SELECT ticker, ts, close, sma_5 FROM bars_1m ORDER BY ticker, ts").fetchall()
    finally:
        con.close()
    assert len(rows) == len(first) + len(second) and len({(r[0], r[1]) for r in rows}) == len(rows)
    assert rows[-1][2] == 20.0 + 79 and abs(rows[-1][3] - sum(20.0 + i for i in range(75, 80)) / 5) < 1e-9
    final = json.loads(client.get("colfill:status:live") or b"{}")
    assert final.get("bars") == len(first) + len(second)


@pytest.mark.slow
def test_an_outage_is_filled_from_rest_through_the_installed_command(tmp_path: Path) -> None:
    from tests.polygon_server import PolygonServer

    tickers = ["GX", "GY"]
    bars = [[minute_bar(t, T0 + i * MIN, 30.0 + i * 0.5 + k) for k, t in enumerate(tickers)] for i in range(20)]
    data = tmp_path / "data"
    with PolygonServer(api_key=KEY, mocks=None) as rest, PolygonWsServer(api_key=KEY, rest=rest) as srv:
        for minute in bars[:8]:
            srv.publish(minute, per_frame=2)
        proc = start("--tickers", ",".join(tickers), "--ws-url", srv.url, "--rest-url", rest.url, "--rate", "50/s",
                     "--data-dir", str(data), "--indicators", "sma:5,rsi:3")
        deadline = time.monotonic() + 60
        while srv.pending() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        srv.outage()
        for minute in bars[8:13]:  # never on the socket
            srv.publish(minute, per_frame=2)
        srv.resume()
        for minute in bars[13:]:
            srv.publish(minute, per_frame=2)
        while (srv.pending() or srv.connections < 2) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == errors.OK, err
    assert "gap fill (reconnect)" in err and "2 gap fills from REST: 12 bars inserted" in " ".join(err.split())
    assert KEY not in out + err
    con = duckdb.connect(str(data / "colfill.duckdb"), read_only=True)
    try:
        rows = con.sql("SELECT ticker, epoch_ms(ts), close FROM bars_1m ORDER BY ticker, ts").fetchall()
    finally:
        con.close()
    assert rows == sorted((b["sym"], b["s"], b["c"]) for minute in bars for b in minute)


def test_live_on_kafka_puts_every_bar_on_the_topic(tmp_path: Path, kafka_url: str) -> None:
    ck = pytest.importorskip("confluent_kafka")
    tickers = [f"Q{uuid.uuid4().hex[:5].upper()}" for _ in range(2)]
    events = [minute_bar(t, T0 + i * MIN, 20.0 + i) for i in range(40) for t in tickers]
    with PolygonWsServer(api_key=KEY) as srv:
        srv.publish(events, per_frame=10)
        proc = start("--tickers", ",".join(tickers), "--ws-url", srv.url, "--data-dir", str(tmp_path / "data"),
                     "--bus", kafka_url, "--indicators", "sma:5")
        consumer = ck.Consumer({"bootstrap.servers": kafka_url.removeprefix("kafka://"), "group.id": uuid.uuid4().hex,
                                "auto.offset.reset": "earliest", "enable.auto.commit": False})
        got: list[dict] = []
        try:
            consumer.subscribe(["colfill.bars.1m"])
            deadline = time.monotonic() + 60
            while len(got) < len(events) and time.monotonic() < deadline:
                for m in consumer.consume(500, 0.5):
                    if m.error() is None and m.key().decode() in tickers:
                        got.append(json.loads(m.value()))
        finally:
            consumer.close()
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
    assert proc.returncode == errors.OK, err
    assert "bus kafka://" in err
    assert sorted((m["ticker"], m["t"]) for m in got) == sorted((e["sym"], e["s"]) for e in events)
    assert all("sma_5" in m for m in got)
