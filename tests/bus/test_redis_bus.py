"""RedisMessageBus and RedisStreamConsumer against the real redis-server: channel names and message shape,
the stream's MAXLEN bound, consumer-group redelivery after a consumer restart, status, errors."""

from __future__ import annotations

import json
import threading

import pytest

from colfill.bus import open_bus
from colfill.bus.redis import RedisMessageBus, RedisStreamConsumer, subscribe
from colfill.errors import UNREACHABLE, ColfillError

from .conftest import bars

pytestmark = pytest.mark.redis

KEYS = ["v", "ticker", "timeframe", "t", "ts", "open", "high", "low", "close", "volume", "vw", "transactions",
        "sma_20", "rsi_14", "revision", "published_ms"]


def listen(redis_client, *patterns: str):  # type: ignore[no-untyped-def]
    """A raw redis-py pub/sub on `patterns`, confirmed before returning (nothing published later is missed)."""
    pubsub = redis_client.pubsub()
    pubsub.psubscribe(*patterns)
    for _ in patterns:
        assert pubsub.get_message(timeout=5)["type"] == "psubscribe"
    return pubsub


def drain(pubsub, n: int) -> list[tuple[str, bytes]]:  # type: ignore[no-untyped-def]
    out = []
    while len(out) < n:
        message = pubsub.get_message(timeout=5)
        assert message is not None, f"only {len(out)} of {n} messages arrived"
        if message["type"] == "pmessage":
            out.append((message["channel"].decode(), message["data"]))
    return out


def test_each_bar_is_published_on_its_ticker_channel_and_appended_to_the_stream(
        redis_url: str, redis_client, timeframe: str) -> None:  # type: ignore[no-untyped-def]
    pubsub = listen(redis_client, f"colfill:bars:{timeframe}:*")
    bus = open_bus(redis_url)
    assert isinstance(bus, RedisMessageBus) and bus.name == "redis"
    table = bars(["AAPL", "MSFT", "BRK.A"], minutes=2)
    assert bus.publish(timeframe, table, revision=[False, False, False, True, False, False]) == 6
    got = drain(pubsub, 6)
    assert [c for c, _ in got] == [f"colfill:bars:{timeframe}:{t}" for t in ["AAPL", "MSFT", "BRK.A"] * 2]
    messages = [json.loads(p) for _, p in got]
    assert all(list(m) == KEYS for m in messages)
    first = messages[0]
    assert first["v"] == 1 and first["timeframe"] == timeframe and first["t"] == 1704205800000
    assert first["ts"] == "2024-01-02T14:30:00+00:00" and first["open"] == 100.0 and first["transactions"] == 1
    assert first["sma_20"] is None and first["rsi_14"] is None  # NaN and null both arrive as null
    assert b"NaN" not in got[0][1]
    assert [m["revision"] for m in messages] == [False, False, False, True, False, False]
    assert messages[3]["t"] == 1704205860000 and messages[3]["ticker"] == "AAPL"
    entries = redis_client.xrange(f"colfill:stream:bars:{timeframe}")
    assert [json.loads(f[b"bar"]) for _, f in entries] == messages  # same JSON, same order
    assert all(set(f) == {b"bar"} for _, f in entries)
    assert bus.recent(timeframe, count=2) == messages[-2:]
    pubsub.close()
    bus.close()


def test_the_stream_is_bounded_by_maxlen(redis_url: str, redis_client, timeframe: str) -> None:  # type: ignore
    bus = RedisMessageBus(redis_url, maxlen=200)
    table = bars([f"T{i}" for i in range(100)], minutes=1)
    for _ in range(30):
        bus.publish(timeframe, table)
    length = redis_client.xlen(f"colfill:stream:bars:{timeframe}")
    assert 200 <= length <= 400, length  # MAXLEN ~ trims whole nodes (100 entries each by default)
    bus.close()


def test_a_restarted_consumer_gets_its_unacknowledged_bars_again(redis_url: str, timeframe: str) -> None:
    bus = RedisMessageBus(redis_url)
    first = RedisStreamConsumer(redis_url, "engine", "worker-1", timeframe, start="0")
    bus.publish(timeframe, bars(["AAPL"], minutes=5))
    got = first.read(count=10, block_ms=2000)
    assert [e.message["t"] for e in got] == [1704205800000 + 60_000 * i for i in range(5)]
    assert first.ack(got[:2]) == 2
    first.close()  # a crash: three bars read and never acknowledged

    again = RedisStreamConsumer(redis_url, "engine", "worker-1", timeframe)
    bus.publish(timeframe, bars(["MSFT"], minutes=1))
    redelivered = again.read(count=10, block_ms=500)
    assert [e.id for e in redelivered] == [e.id for e in got[2:]]  # the unacknowledged ones first, same ids
    assert [e.message for e in redelivered] == [e.message for e in got[2:]]
    new = again.read(count=10, block_ms=2000)
    assert [e.message["ticker"] for e in new] == ["MSFT"]
    assert again.pending() == 4
    assert again.ack([e.id for e in redelivered + new]) == 4
    assert again.pending() == 0
    assert again.read(count=10, block_ms=50) == []

    other = RedisStreamConsumer(redis_url, "dashboard", "d-1", timeframe, start="0")  # groups are independent
    assert len(other.read(count=100, block_ms=500)) == 6
    other.close()
    again.close()
    bus.close()


def test_another_consumer_claims_what_a_dead_one_left_pending(redis_url: str, timeframe: str) -> None:
    bus = RedisMessageBus(redis_url)
    dead = RedisStreamConsumer(redis_url, "engine", "dead", timeframe, start="0")
    bus.publish(timeframe, bars(["AAPL", "MSFT"], minutes=1))
    assert len(dead.read(block_ms=2000)) == 2
    dead.close()
    heir = RedisStreamConsumer(redis_url, "engine", "heir", timeframe, claim_idle_ms=0)
    claimed = heir.read(block_ms=100)
    assert sorted(e.message["ticker"] for e in claimed) == ["AAPL", "MSFT"]
    assert heir.ack(claimed) == 2 and heir.pending() == 0
    heir.close()
    bus.close()


def test_pending_entries_trimmed_from_the_stream_are_skipped(redis_url: str, timeframe: str) -> None:
    bus = RedisMessageBus(redis_url)
    consumer = RedisStreamConsumer(redis_url, "engine", "w", timeframe, start="0")
    bus.publish(timeframe, bars(["AAPL"], minutes=3))
    got = consumer.read(block_ms=2000)
    consumer.client.xdel(consumer.stream, got[0].id)  # as MAXLEN trimming would
    consumer.close()
    again = RedisStreamConsumer(redis_url, "engine", "w", timeframe)
    assert [e.id for e in again.read(block_ms=100)] == [e.id for e in got[1:]]
    assert again.pending() == 2  # the trimmed one was acknowledged
    again.close()
    bus.close()


def test_status_is_kept_for_a_minute_and_announced(redis_url: str, redis_client) -> None:  # type: ignore
    name = f"live-test-{threading.get_ident()}"
    pubsub = redis_client.pubsub()
    pubsub.subscribe("colfill:status")
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    bus = RedisMessageBus(redis_url)
    status = {"kind": "live", "tickers": ["AAPL"], "bars": 3, "bars_per_s": 1.5, "lag_ms": 2.0, "reconnects": 0,
              "updated_ms": 1.0}
    bus.publish_status(name, status)
    assert json.loads(redis_client.get(f"colfill:status:{name}")) == {"name": name, **status}
    assert 0 < redis_client.ttl(f"colfill:status:{name}") <= 60
    assert bus.status(name) == {"name": name, **status}
    message = pubsub.get_message(timeout=5)
    assert message["channel"] == b"colfill:status" and json.loads(message["data"]) == {"name": name, **status}
    redis_client.delete(f"colfill:status:{name}")
    pubsub.close()
    bus.close()


def test_subscribe_yields_the_chosen_tickers_and_patterns(redis_url: str, timeframe: str) -> None:
    ready = threading.Event()
    got: list[dict] = []

    def read() -> None:
        got.extend(subscribe(redis_url, ["MSFT", "B*"], timeframe, timeout=1.0, ready=ready.set))

    reader = threading.Thread(target=read)
    reader.start()
    assert ready.wait(5)
    RedisMessageBus(redis_url).publish(timeframe, bars(["AAPL", "MSFT", "BRK.A"], minutes=1))
    reader.join(10)
    assert sorted(m["ticker"] for m in got) == ["BRK.A", "MSFT"]


def test_an_unreachable_redis_is_exit_code_3_and_the_password_is_not_shown() -> None:
    with pytest.raises(ColfillError) as info:
        RedisMessageBus("redis://user:s3cret-pw@127.0.0.1:1/0")
    assert info.value.exit_code == UNREACHABLE
    assert "s3cret-pw" not in str(info.value) and "redis://user:***@127.0.0.1:1/0" in str(info.value)
    with pytest.raises(ColfillError) as info:
        RedisStreamConsumer("redis://127.0.0.1:1/0", "g", "c")
    assert info.value.exit_code == UNREACHABLE


def test_a_large_batch_is_sent_in_several_round_trips(redis_url: str, redis_client, timeframe: str,  # type: ignore
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import colfill.bus.redis as bus_redis

    monkeypatch.setattr(bus_redis, "ROUND_TRIP_BARS", 7)
    bus = RedisMessageBus(redis_url)
    table = bars([f"T{i}" for i in range(10)], minutes=2)
    assert bus.publish(timeframe, table) == 20
    entries = redis_client.xrange(f"colfill:stream:bars:{timeframe}")
    assert [(json.loads(f[b"bar"])["ticker"], json.loads(f[b"bar"])["t"]) for _, f in entries] == \
        list(zip(table["ticker"].to_pylist(), [1704205800000] * 10 + [1704205860000] * 10))
    bus.close()
