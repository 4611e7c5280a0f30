"""The Kafka bus and the Kafka -> Redis bridge against a real Kafka broker (Tansu) and a real redis-server.

What each test holds: the bus puts every bar on `colfill.bars.{tf}` keyed by ticker, one ticker's bars in order
in one partition, the value byte for byte Redis's message; `open_bus` takes kafka:// URLs; a broker that is gone
is a TransientError after the delivery timeout; the bridge skips and counts messages that are not bars; a bridge
killed with SIGKILL mid-stream and started again leaves each message exactly once on the Redis stream; the
installed `colfill bridge` exits 0 on Ctrl-C. Kafka or Redis restarted under a bridge: test_bridge_restarts.py.
"""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
import uuid
from typing import Any

import pytest

from colfill import errors
from colfill.bus import open_bus
from colfill.errors import TransientError
from tests.helpers import BIN, ENV, Tansu, wait_for

from .conftest import Lines, bars

pytestmark = pytest.mark.redis
ck = pytest.importorskip("confluent_kafka")


def tickers(n: int) -> list[str]:
    return [f"K{uuid.uuid4().hex[:6].upper()}" for _ in range(n)]


def read_topic(kafka_url: str, topic: str, want: int, timeout: float = 20) -> list[Any]:
    """Every message of `topic` from the start, until `want` of them are read."""
    consumer = ck.Consumer({"bootstrap.servers": kafka_url.removeprefix("kafka://"),
                            "group.id": f"test-{uuid.uuid4().hex[:6]}", "auto.offset.reset": "earliest",
                            "enable.auto.commit": False})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([ck.TopicPartition(topic, p, ck.OFFSET_BEGINNING) for p in parts])
        got: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(got) < want and time.monotonic() < deadline:
            got += [m for m in consumer.consume(1000, 0.5) if m.error() is None]
        return got
    finally:
        consumer.close()


def stream(client: Any, timeframe: str) -> list[dict[str, Any]]:
    import orjson

    return [orjson.loads(f[b"bar"]) for _, f in client.xrange(f"colfill:stream:bars:{timeframe}")]


def without_published(payload: bytes) -> bytes:
    return re.sub(rb'"published_ms":[0-9.e+]+', b'"published_ms":0', payload)


def test_bars_go_to_their_topic_keyed_by_ticker_as_redis_carries_them(kafka_url: str, redis_url: str,
                                                                      redis_client: Any, timeframe: str) -> None:
    names = tickers(4)
    table = bars(names, minutes=5)
    bus = open_bus(kafka_url)
    try:
        assert bus.name == "kafka" and bus.publish(timeframe, table) == 20
        bus.publish_status("live", {"bars": 20})
    finally:
        bus.close()
    redis_bus = open_bus(redis_url)
    try:
        redis_bus.publish(timeframe, table)
    finally:
        redis_bus.close()
    got = read_topic(kafka_url, f"colfill.bars.{timeframe}", 20)
    assert len(got) == 20
    on_redis = [f[b"bar"] for _, f in redis_client.xrange(f"colfill:stream:bars:{timeframe}")]
    assert sorted(without_published(m.value()) for m in got) == sorted(without_published(p) for p in on_redis)
    for name in names:
        mine = [m for m in got if m.key() == name.encode()]
        assert len({m.partition() for m in mine}) == 1  # one partition per ticker ...
        ts = [int(re.search(rb'"t":(\d+)', m.value()).group(1)) for m in sorted(mine, key=lambda m: m.offset())]
        assert ts == sorted(ts) and len(ts) == 5  # ... in order


def test_a_broker_that_is_gone_is_a_transient_error_after_the_delivery_timeout(timeframe: str) -> None:
    from colfill.bus.kafka import KafkaMessageBus

    own = Tansu().start()
    try:
        bus = KafkaMessageBus(own.url, delivery_timeout=2)
        assert bus.publish(timeframe, bars(["AAA"])) == 1
        own.stop()
        started = time.monotonic()
        with pytest.raises(TransientError, match=r"cannot reach Kafka at 127\.0\.0\.1:\d+ .*not confirmed"):
            bus.publish(timeframe, bars(["AAA"], minutes=2))
        assert time.monotonic() - started < 15
        own.start()  # back (empty): the same bus publishes again, with a new producer if the broker forgot its id

        def published() -> bool:
            try:
                return bus.publish(timeframe, bars(["AAA"], minutes=3)) == 3
            except TransientError:
                return False
        wait_for(published, 30, 0.1, what="publishing again")
        bus.close()
    finally:
        own.stop()


def test_a_broker_back_without_its_log_is_published_to_again_by_the_same_bus(timeframe: str) -> None:
    from colfill.bus.kafka import KafkaMessageBus

    own = Tansu().start()
    names = ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF"]
    try:
        bus = KafkaMessageBus(own.url, delivery_timeout=2)
        assert bus.publish(timeframe, bars(names)) == 6
        own.stop()
        own.start()  # empty: the topic comes back (Tansu makes it on first use) with fewer partitions, our id unknown
        tries = []

        def published() -> bool:
            tries.append(1)
            try:
                return bus.publish(timeframe, bars(names, minutes=3)) == 18
            except TransientError:
                return False
        wait_for(published, 20, 0.1, what="publishing again")
        assert len(tries) <= 3  # the batch after a failed one has a new producer
        bus.close()
    finally:
        own.stop()


def test_messages_that_are_not_bars_are_skipped_counted_and_named_once(kafka_url: str, redis_url: str,
                                                                     redis_client: Any, timeframe: str) -> None:
    from colfill.bus.bridge import KafkaToRedisBridge

    notices: list[str] = []
    producer = ck.Producer({"bootstrap.servers": kafka_url.removeprefix("kafka://")})
    bus = open_bus(kafka_url)
    bus.publish(timeframe, bars(["GOOD"], minutes=2))
    for junk in (b"not json", b'{"v":1}', b'[1,2]', b'{"v":1,"ticker":"X","timeframe":"9z","t":1}'):
        producer.produce(f"colfill.bars.{timeframe}", junk, b"X")
    producer.flush(10)
    bus.publish(timeframe, bars(["GOOD"], minutes=3, start=bars(["GOOD"], 4)["ts"][3].as_py()))
    bus.close()
    group = f"g{uuid.uuid4().hex[:8]}"
    with KafkaToRedisBridge(kafka_url, redis_url, [timeframe], group, session_timeout=6,
                            notice=notices.append) as bridge:
        wait_for(lambda: bridge.step() is not None and bridge.stats.bridged + bridge.stats.skipped >= 9, 30,
                 what="every message handled")
        assert (bridge.stats.bridged, bridge.stats.skipped) == (5, 4)
    assert len(stream(redis_client, timeframe)) == 5
    bad = [n for n in notices if "not bar messages" in n]
    assert len(bad) == 1 and "not json" in bad[0], notices
    saved = redis_client.hgetall(f"colfill:bridge:{group}:offsets")
    assert sum(int(v) for v in saved.values()) == 9  # the checkpoint covers the skipped ones too
    redis_client.delete(f"colfill:bridge:{group}:offsets")


def bridge_cmd(kafka_url: str, redis_url: str, timeframe: str, group: str) -> subprocess.Popen[str]:
    return subprocess.Popen([str(BIN), "bridge", "--kafka", kafka_url, "--redis", redis_url, "--timeframes",
                             timeframe, "--group", group, "--session-timeout", "6"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV, stdin=subprocess.DEVNULL)


@pytest.mark.slow
def test_a_bridge_killed_mid_stream_and_restarted_leaves_each_message_once(kafka_url: str, redis_url: str,
                                                                          redis_client: Any, timeframe: str) -> None:
    names = tickers(20)
    minutes = 150  # 3,000 bars, produced over ~3 s while the bridge runs
    group = f"g{uuid.uuid4().hex[:8]}"
    bus = open_bus(kafka_url)
    bus.publish(timeframe, bars(names, minutes=1))

    def produce() -> None:
        for m in range(1, minutes):
            bus.publish(timeframe, bars(names, minutes=1, start=bars(names, m + 1)["ts"][m * len(names)].as_py()))
            time.sleep(0.02)

    key = f"colfill:stream:bars:{timeframe}"
    first = bridge_cmd(kafka_url, redis_url, timeframe, group)
    try:
        wait_for(lambda: redis_client.xlen(key) > 0, 30, what="the first bars on the stream")
        producer = threading.Thread(target=produce)
        producer.start()
        wait_for(lambda: redis_client.xlen(key) >= 600, 30, what="600 bars on the stream")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed_at = redis_client.xlen(key)
        second = bridge_cmd(kafka_url, redis_url, timeframe, group)
        producer.join(60)
        wait_for(lambda: redis_client.xlen(key) >= len(names) * minutes, 60, 0.1, what="every bar on the stream")
        time.sleep(1.0)  # anything more would be a duplicate
        second.send_signal(signal.SIGINT)
        _, err = second.communicate(timeout=30)
    finally:
        for proc in (first, locals().get("second")):
            if proc is not None and proc.poll() is None:
                proc.kill()
        bus.close()
    assert second.returncode == errors.OK, err
    assert killed_at < len(names) * minutes  # the kill came mid-stream
    got = stream(redis_client, timeframe)
    assert len(got) == len(names) * minutes
    assert len({(m["ticker"], m["t"]) for m in got}) == len(got)
    for name in names:  # and in order per ticker
        ts = [m["t"] for m in got if m["ticker"] == name]
        assert ts == sorted(ts) and len(ts) == minutes
    redis_client.delete(f"colfill:bridge:{group}:offsets")


def test_the_bridge_command_exits_0_on_ctrl_c_and_3_without_kafka(kafka_url: str, redis_url: str,
                                                                 timeframe: str) -> None:
    proc = bridge_cmd(kafka_url, redis_url, timeframe, f"g{uuid.uuid4().hex[:8]}")
    lines = Lines(proc.stderr)
    assert "colfill bridge: Kafka" in lines.next(30)
    proc.send_signal(signal.SIGINT)
    proc.wait(30)
    assert proc.returncode == errors.OK, lines.rest()
    assert "0 bars to Redis" in lines.rest()
    gone = subprocess.run([str(BIN), "bridge", "--kafka", "127.0.0.1:1", "--redis", redis_url], capture_output=True,
                          text=True, env=ENV, timeout=60)
    assert gone.returncode == errors.UNREACHABLE and "cannot reach Kafka at 127.0.0.1:1" in gone.stderr


def test_open_bus_refuses_a_kafka_url_without_a_port() -> None:
    from colfill.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="host:port"):
        open_bus("kafka://localhost")
    with pytest.raises(InvalidArgument, match="without credentials") as caught:
        open_bus("kafka://u:hunter2@host:9092")
    assert "hunter2" not in str(caught.value)


def test_a_regular_session_timeframe_goes_to_its_own_topic_and_on_to_redis(kafka_url: str, redis_url: str,
                                                                          redis_client: Any, timeframe: str) -> None:
    """`5m:rth` bars: topic `colfill.bars.5m_rth` (a topic's name takes no colon), then the stream of `5m:rth`."""
    from colfill.bus.bridge import KafkaToRedisBridge

    rth = f"{timeframe}:rth"
    bus = open_bus(kafka_url)
    try:
        assert bus.publish(rth, bars(["RTH"], minutes=3)) == 3
    finally:
        bus.close()
    assert len(read_topic(kafka_url, f"colfill.bars.{timeframe}_rth", 3)) == 3
    group = f"g{uuid.uuid4().hex[:8]}"
    with KafkaToRedisBridge(kafka_url, redis_url, [rth], group, session_timeout=6) as bridge:
        wait_for(lambda: bridge.step() is not None and bridge.stats.bridged >= 3, 30, what="3 bars bridged")
    try:
        got = [m["timeframe"] for m in stream(redis_client, rth)]
        assert got == [rth] * 3
    finally:
        redis_client.delete(f"colfill:stream:bars:{rth}", f"colfill:bridge:{group}:offsets")


def test_the_bridge_command_names_a_bad_timeframes_and_exits_2(redis_url: str) -> None:
    done = subprocess.run([str(BIN), "bridge", "--kafka", "127.0.0.1:1", "--redis", redis_url, "--timeframes",
                           "1m,5 m"], capture_output=True, text=True, env=ENV, timeout=60)
    assert done.returncode == errors.USAGE and "--timeframes" in done.stderr and "1h:rth" in done.stderr
