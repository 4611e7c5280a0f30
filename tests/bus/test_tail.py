"""The installed `colfill tail` in a subprocess: prints the bars a RedisMessageBus (or, with --bus kafka://, a
KafkaMessageBus) publishes, one line each,
revisions marked; exits 130 on SIGINT; an unreachable Redis exits 3 naming the URL without its password."""

from __future__ import annotations

import signal
import subprocess
import uuid

import pytest

from colfill import errors
from colfill.bus.redis import RedisMessageBus
from tests.helpers import BIN, ENV

from .conftest import Lines, bars

pytestmark = pytest.mark.redis


def start(*args: str) -> subprocess.Popen[str]:
    assert BIN.exists(), f"the console script is not installed at {BIN} (pip install -e .)"
    return subprocess.Popen([str(BIN), "tail", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENV, stdin=subprocess.DEVNULL)





def test_tail_prints_published_bars_until_sigint(redis_url: str) -> None:
    a, b, c = (f"Z{uuid.uuid4().hex[:6].upper()}" for _ in range(3))  # tickers no other test publishes
    proc = start(a, b, "--redis", redis_url)
    out, err = Lines(proc.stdout), Lines(proc.stderr)
    try:
        assert "following" in err.next()  # subscribed: nothing published from now on is missed
        table = bars([a, b, c], minutes=2)
        RedisMessageBus(redis_url).publish("1m", table, revision=[False, False, False, False, True, False])
        lines = [out.next() for _ in range(4)]
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    finally:
        proc.kill()
    proc.wait()
    messages = err.rest()
    assert proc.returncode == errors.INTERRUPTED, messages
    assert out.rest() == "" and "Traceback" not in messages and "interrupted" in messages
    assert [line.split()[2] for line in lines] == [a, b, a, b]  # c is not followed
    first = lines[0].split()
    assert first[:2] == ["2024-01-02", "09:30-0500"] and first[3] == "1m"  # New York time
    assert "o 100.00" in lines[0] and "c 100.50" in lines[0] and "v 1,000" in lines[0]
    assert "sma_20 -" in lines[0] and "rsi_14 -" in lines[0]  # NaN and null shown alike
    assert "rsi_14 51.00" in lines[1]
    assert "(revised)" in lines[3] and "(revised)" not in "".join(lines[:3])


def test_tail_json_lines(redis_url: str) -> None:
    import json

    ticker = f"Z{uuid.uuid4().hex[:6].upper()}"
    proc = start(ticker, "--redis", redis_url, "--json")
    out, err = Lines(proc.stdout), Lines(proc.stderr)
    try:
        assert "following" in err.next()
        RedisMessageBus(redis_url).publish("1m", bars([ticker]))
        message = json.loads(out.next())
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    finally:
        proc.kill()
    proc.wait()
    assert message["ticker"] == ticker and message["t"] == 1704205800000 and message["sma_20"] is None
    assert proc.returncode == errors.INTERRUPTED


def test_tail_with_unreachable_redis_exits_3_without_the_password() -> None:
    proc = subprocess.run([str(BIN), "tail", "AAPL", "--redis", "redis://me:hunter2-pw@127.0.0.1:1/0"],
                          capture_output=True, text=True, timeout=60, env=ENV, stdin=subprocess.DEVNULL)
    assert proc.returncode == errors.UNREACHABLE, proc.stderr
    assert "redis://me:***@127.0.0.1:1/0" in proc.stderr and "hunter2-pw" not in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


def test_tail_rejects_a_bad_timeframe() -> None:
    proc = subprocess.run([str(BIN), "tail", "AAPL", "--timeframe", "5m"], capture_output=True, text=True,
                          timeout=60, env=ENV, stdin=subprocess.DEVNULL)
    assert proc.returncode == errors.USAGE and "--timeframe" in proc.stderr


def test_tail_follows_a_kafka_bus(kafka_url: str) -> None:
    from colfill.bus.kafka import KafkaMessageBus

    a, b = (f"Z{uuid.uuid4().hex[:6].upper()}" for _ in range(2))
    proc = start(a, "--bus", kafka_url, "--json")
    out, err = Lines(proc.stdout), Lines(proc.stderr)
    try:
        assert "following" in err.next(60)  # at the partitions' ends: nothing produced from now on is missed
        bus = KafkaMessageBus(kafka_url)
        bus.publish("1m", bars([a, b], minutes=2))
        bus.close()
        import json

        got = [json.loads(out.next()) for _ in range(2)]
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    finally:
        proc.kill()
    proc.wait()
    assert proc.returncode == errors.INTERRUPTED, err.rest()
    assert [m["ticker"] for m in got] == [a, a] and got[0]["t"] < got[1]["t"]  # b is not followed
    assert out.rest() == ""
