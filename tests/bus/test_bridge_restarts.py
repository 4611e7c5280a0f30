"""Kafka or Redis restarted under a running `KafkaToRedisBridge`, each a server of the test's own.

What each test holds: a Kafka that keeps its log (Tansu on S3, moto's server) and restarts leaves the bars
produced before, during (queued by the producer) and after the restart each exactly once on the stream, on the
one topic; a Kafka that kept its log in memory and comes back empty behind the bridge's checkpoint is noticed
and read from its start, its new bars each once on the stream within seconds; a Redis that keeps its append-only
file and is killed mid-stream leaves each bar exactly once.
"""

from __future__ import annotations

import datetime as dt
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need_service
from tests.helpers import S3Server, Tansu, free_port, wait_for

from .conftest import T0, OwnRedis, bars

pytestmark = [pytest.mark.redis, pytest.mark.slow]
pytest.importorskip("confluent_kafka")


def tickers(n: int) -> list[str]:
    return [f"R{uuid.uuid4().hex[:6].upper()}" for _ in range(n)]


def minutes(names: list[str], first: int, count: int) -> Any:
    return bars(names, minutes=count, start=T0 + dt.timedelta(minutes=first))


def on_stream(client: Any, timeframe: str) -> list[tuple[str, int]]:
    import orjson

    return [(m["ticker"], m["t"]) for m in (orjson.loads(f[b"bar"]) for _, f in
                                             client.xrange(f"colfill:stream:bars:{timeframe}"))]


def exactly_once(got: list[tuple[str, int]], names: list[str], count: int) -> None:
    assert len(got) == len(set(got)) == len(names) * count, (len(got), len(set(got)))
    for name in names:  # every minute of every ticker, in order
        ts = [t for n, t in got if n == name]
        assert ts == sorted(ts) and len(ts) == count


class Running:
    """A bridge in a thread of the test, with what it told the operator."""

    def __init__(self, kafka_url: str, redis_url: str, timeframe: str) -> None:
        from colfill.bus.bridge import KafkaToRedisBridge

        self.notices: list[str] = []
        self.group = f"g{uuid.uuid4().hex[:8]}"
        self.bridge = KafkaToRedisBridge(kafka_url, redis_url, [timeframe], self.group, session_timeout=6,
                                         notice=self.notices.append)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.bridge.run, args=(self.stop,))
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive()
        self.bridge.close()


def clean_up(running: Running | None, own: Tansu, redis_client: Any) -> None:
    """After a test, passed or not: the bridge stopped, its checkpoint deleted, the broker stopped."""
    if running is not None:
        running.stop.set()
        redis_client.delete(f"colfill:bridge:{running.group}:offsets")
    own.stop()


@pytest.fixture
def s3() -> Iterator[S3Server]:
    pytest.importorskip("moto")
    server = S3Server()
    yield server
    server.stop()


def test_kafka_that_keeps_its_log_restarted_under_the_bridge(s3: S3Server, redis_url: str, redis_client: Any,
                                                            timeframe: str) -> None:
    from colfill.bus.kafka import KafkaMessageBus

    own = Tansu(s3=s3).start()
    names = tickers(5)
    running = None
    try:
        bus = KafkaMessageBus(own.url, delivery_timeout=60)
        bus.publish(timeframe, minutes(names, 0, 10))  # before: 50
        running = Running(own.url, redis_url, timeframe)
        wait_for(lambda: redis_client.xlen(f"colfill:stream:bars:{timeframe}") == 50, 30, what="the first 50 bars")
        own.stop()
        during = threading.Thread(target=bus.publish, args=(timeframe, minutes(names, 10, 8)))  # queued: 40
        during.start()
        time.sleep(1.5)
        assert during.is_alive()  # not confirmed while the broker is down
        own.start()
        during.join(60)
        bus.publish(timeframe, minutes(names, 18, 8))  # after: 40
        wait_for(lambda: redis_client.xlen(f"colfill:stream:bars:{timeframe}") >= 130, 60, 0.1,
                 what="every bar on the stream")
        time.sleep(1.0)  # anything more would be a duplicate
        running.close()
        bus.close()
    finally:
        clean_up(running, own, redis_client)
    exactly_once(on_stream(redis_client, timeframe), names, 26)
    assert not any("lost its log" in n for n in running.notices), running.notices


def test_kafka_that_lost_its_log_restarted_under_the_bridge(redis_url: str, redis_client: Any,
                                                           timeframe: str) -> None:
    from colfill.bus.kafka import KafkaMessageBus

    own = Tansu().start()  # in memory: a restart loses every topic, message and group
    names = tickers(5)
    running = None
    stream = f"colfill:stream:bars:{timeframe}"
    try:
        bus = KafkaMessageBus(own.url, delivery_timeout=5)
        bus.publish(timeframe, minutes(names, 0, 10))  # 10 a ticker: each partition's checkpoint >= 10
        running = Running(own.url, redis_url, timeframe)
        wait_for(lambda: redis_client.xlen(stream) == 50, 30, what="the first 50 bars")
        own.stop()
        own.start()
        bus.close()
        bus = KafkaMessageBus(own.url, delivery_timeout=5)  # (a producer's retry could duplicate bars on Kafka)
        bus.publish(timeframe, minutes(names, 10, 3))  # 3 a ticker: every log now ends below its checkpoint
        wait_for(lambda: redis_client.xlen(stream) >= 65, 5, 0.05, what="the new bars on the stream")
        time.sleep(1.0)  # anything more would be a duplicate
        running.close()
        bus.close()
    finally:
        clean_up(running, own, redis_client)
    exactly_once(on_stream(redis_client, timeframe), names, 13)
    lost = [n for n in running.notices if "lost its log" in n]
    assert lost and all(f"colfill.bars.{timeframe} partition " in n for n in lost), running.notices
    assert len(lost) == len(set(lost)), lost  # once a partition


@pytest.fixture
def persistent_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    if shutil.which("redis-server") is None:
        need_service("redis-server", "the redis-server program is not installed")
    server = OwnRedis(free_port(), persist=tmp_path)
    server.start()
    yield server
    server.stop()


def test_redis_restarted_under_the_bridge(kafka_url: str, persistent_redis: OwnRedis) -> None:
    import redis

    from colfill.bus.kafka import KafkaMessageBus

    timeframe = f"t{uuid.uuid4().hex[:10]}"
    names = tickers(10)
    count = 100  # 1,000 bars over ~2 s
    bus = KafkaMessageBus(kafka_url)
    client = redis.Redis.from_url(persistent_redis.url)
    key = f"colfill:stream:bars:{timeframe}"

    def produce() -> None:
        for m in range(1, count):
            bus.publish(timeframe, minutes(names, m, 1))
            time.sleep(0.02)

    running = Running(kafka_url, persistent_redis.url, timeframe)
    producer = threading.Thread(target=produce)
    try:
        bus.publish(timeframe, minutes(names, 0, 1))
        wait_for(lambda: client.xlen(key) >= len(names), 30, what="the bridge running")
        producer.start()
        wait_for(lambda: client.xlen(key) >= 200, 30, what="200 bars on the stream")
        persistent_redis.stop()  # SIGKILL, mid-stream
        time.sleep(1.0)
        persistent_redis.start()

        def length() -> int:
            try:
                return int(client.xlen(key))
            except redis.RedisError:  # still loading its append-only file
                return 0
        producer.join(60)
        wait_for(lambda: length() >= len(names) * count, 60, 0.1, what="every bar on the stream")
        time.sleep(1.0)  # anything more would be a duplicate
        running.close()
    finally:
        running.stop.set()
        bus.close()
    exactly_once(on_stream(client, timeframe), names, count)
    assert running.bridge.stats.redis_failures >= 1  # the restart came mid-stream
    assert any("Redis write failed" in n for n in running.notices), running.notices
    client.close()
