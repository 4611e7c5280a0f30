"""The Kafka bus (`kafka://host:9092[,host:9092]`): each bar produced to its timeframe's topic, keyed by ticker.

Topics are `colfill.bars.{timeframe}` and `colfill.status`. The key is the ticker, so one ticker's bars stay
in order in one partition; the value is the bus's one JSON message (`colfill.bus.base.encode_bars`), byte for
byte what Redis carries, so `colfill bridge` moves it to Redis untouched. A micro-batch counts as published
only once the broker confirmed every bar (`acks=all`, idempotent producer: librdkafka's retries add no
duplicates); a broker that stays away is retried for `delivery_timeout` seconds, then a TransientError says so.
`confluent_kafka` (librdkafka) is imported only here and in the bridge (extra `kafka`).
"""

from __future__ import annotations

import fnmatch
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pyarrow as pa

from colfill._lazy import require
from colfill.bus.base import decode, dumps, encode_bars
from colfill.config import redact
from colfill.errors import InvalidArgument, TransientError

if TYPE_CHECKING:
    import polars as pl

STATUS_TOPIC = "colfill.status"
PARTITIONS = 6  # of the topics colfill creates (a cluster's own defaults apply to topics that exist)


def bar_topic(timeframe: str) -> str:
    """The topic of a timeframe's bars, e.g. `colfill.bars.1m`; `colfill.bars.5m_rth` of `5m:rth` (a topic's name
    takes no colon)."""
    return f"colfill.bars.{timeframe.replace(':', '_')}"


def kafka() -> Any:
    return require("confluent_kafka", "kafka")


def brokers(url: str) -> str:
    """`kafka://a:9092,b:9092` (or plain `a:9092,b:9092`) -> librdkafka's `bootstrap.servers`."""
    text = url.strip()
    if "://" in text:
        scheme = urlsplit(text).scheme
        if scheme != "kafka":
            raise InvalidArgument(f"Kafka URL {redact(url)!r}: use kafka://host:9092[,host:9092]")
        text = text.split("://", 1)[1]
    if "@" in text:
        raise InvalidArgument(f"Kafka URL {redact(url)!r}: colfill connects to Kafka without credentials (plaintext); "
                              "name the brokers as host:port")
    hosts = [h.strip() for h in text.rstrip("/").split(",") if h.strip()]
    if not hosts or any(":" not in h or not h.rsplit(":", 1)[1].isdigit() for h in hosts):
        raise InvalidArgument(f"Kafka URL {redact(url)!r}: name each broker as host:port, e.g. kafka://localhost:9092")
    return ",".join(hosts)


def unreachable(where: str, what: str, detail: object) -> TransientError:
    return TransientError(f"cannot reach Kafka at {where} ({what}): {detail}. Hint: is the broker running and "
                          "listening at that host and port (and advertising an address this host can reach)?")


def ensure_topics(bootstrap: str, topics: Iterable[str], partitions: int = PARTITIONS, timeout: float = 10.0) -> None:
    """Create the topics that do not exist yet (an existing topic, or a cluster that refuses creation, is left as
    it is: producing then shows the real error)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except Exception as exc:
        raise unreachable(bootstrap, "metadata", exc) from None
    missing = [t for t in dict.fromkeys(topics) if t not in existing]
    if not missing:
        return
    for future in admin.create_topics([NewTopic(t, num_partitions=partitions, replication_factor=1)
                                       for t in missing], operation_timeout=timeout).values():
        try:
            future.result()
        except Exception:  # already there (a race), or not ours to create
            pass


class KafkaMessageBus:
    """Publish bars and status to Kafka (see the module docstring)."""

    name = "kafka"

    def __init__(self, url: str, delivery_timeout: float = 30.0, partitions: int = PARTITIONS) -> None:
        ck = kafka()
        self.url = url
        self.bootstrap = brokers(url)
        self.partitions = partitions
        self.delivery_timeout = float(delivery_timeout)
        self._config = {
            "bootstrap.servers": self.bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 2,
            "message.timeout.ms": int(self.delivery_timeout * 1000), "queue.buffering.max.messages": 1_000_000,
            "compression.type": "lz4"}
        self.producer = ck.Producer(self._config)
        ensure_topics(self.bootstrap, [STATUS_TOPIC], partitions)
        self._topics: set[str] = set()

    def describe(self) -> str:
        return f"Kafka {self.bootstrap}"

    def publish(self, timeframe: str, bars: pa.Table | pl.DataFrame, revision: bool | Sequence[bool] = False) -> int:
        """Produce every bar and wait until the broker confirmed them all; the number published."""
        tickers, _, payloads = encode_bars(timeframe, bars, revision)
        if not payloads:
            return 0
        topic = bar_topic(timeframe)
        if topic not in self._topics:
            ensure_topics(self.bootstrap, [topic], self.partitions)
            self._topics.add(topic)
        failed: list[Any] = []

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                failed.append(err)

        produce, poll = self.producer.produce, self.producer.poll
        for ticker, payload in zip(tickers, payloads):
            while True:
                try:
                    produce(topic, payload, ticker, on_delivery=delivered)
                    break
                except BufferError:  # the local queue is full: let deliveries drain it
                    poll(0.05)
        self._confirm(len(payloads), failed, "the bars")
        return len(payloads)

    def _confirm(self, n: int, failed: list[Any], what: str) -> None:
        try:
            left = self.producer.flush(self.delivery_timeout + 5)
        except Exception as exc:  # fatal: e.g. a broker that came back without our producer id
            failed.append(exc)
            left = 0
        if failed or left:  # the next batch gets a new producer: this one may hold a dead id (a broker that came
            self.producer = kafka().Producer(self._config)  # back without it) or partitions the topic lost
            self._topics.clear()
            detail = failed[0] if failed else f"{left} still queued"
            raise unreachable(self.bootstrap, f"{len(failed) or left} of {n} of {what} not confirmed within "
                              f"{self.delivery_timeout:.0f} s", detail)

    def publish_status(self, name: str, status: dict[str, Any]) -> None:
        """The status as a message keyed `name` on `colfill.status` (compacted topics keep the last one)."""
        failed: list[Any] = []
        self.producer.produce(STATUS_TOPIC, dumps({"name": name, **status}), name,
                              on_delivery=lambda err, _m: failed.append(err) if err is not None else None)
        self._confirm(1, failed, "the status")

    def subscribe(self, tickers: Iterable[str], timeframe: str = "1m", timeout: float | None = None
                  ) -> Iterator[dict[str, Any]]:
        return subscribe(self.url, tickers, timeframe, timeout)

    def close(self) -> None:
        self.producer.flush(5)


def subscribe(url: str, tickers: Iterable[str], timeframe: str = "1m", timeout: float | None = None,
              ready: Callable[[], None] | None = None) -> Iterator[dict[str, Any]]:
    """Bars of `tickers` (`*`/`?` patterns allowed) produced from now on, as messages; ends after `timeout`
    seconds without one (None: never). Reads every partition from its end, in no consumer group of note."""
    ck = kafka()
    bootstrap = brokers(url)
    topic = bar_topic(timeframe)
    ensure_topics(bootstrap, [topic])
    names = list(dict.fromkeys(tickers))
    consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": f"colfill-tail-{uuid.uuid4().hex[:8]}",
                            "enable.auto.commit": False, "fetch.wait.max.ms": 50})
    try:
        try:
            parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            ends = [ck.TopicPartition(topic, p, consumer.get_watermark_offsets(ck.TopicPartition(topic, p),
                                                                               timeout=10)[1]) for p in parts]
        except Exception as exc:
            raise unreachable(bootstrap, "metadata", exc) from None
        consumer.assign(ends)
        if ready is not None:
            ready()
        last = time.monotonic()
        while True:
            for msg in consumer.consume(500, 0.5):
                if msg.error() is not None:
                    continue
                last = time.monotonic()
                key = (msg.key() or b"").decode()
                if any(fnmatch.fnmatchcase(key, n) for n in names):
                    yield decode(msg.value())
            if timeout is not None and time.monotonic() - last >= timeout:
                return
    finally:
        consumer.close()
