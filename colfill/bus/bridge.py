"""`KafkaToRedisBridge`: bars from Kafka's `colfill.bars.{tf}` onto Redis, each exactly once on the stream.

The readers of live bars (`colfill tail`, the dashboard, stream consumers) read Redis; a deployment that
publishes on Kafka runs this bridge to feed them. Each micro-batch of Kafka messages goes to Redis in one
MULTI/EXEC holding the XADD to `colfill:stream:bars:{tf}` and the PUBLISH on `colfill:bars:{tf}:{ticker}` of
every bar *and* the next offset of each partition (hash `colfill:bridge:{group}:offsets`, field
`topic:partition`). Redis's own record of how far it got is thus never out of step with what it holds: on
partition assignment, and after any failed write, the bridge seeks to those offsets and skips any message
below them, so a bridge killed at any moment and started again adds each message to the stream exactly once
(pub/sub, which keeps nothing, sees a replayed message at least once). The consumer group's offsets are
committed to Kafka after each EXEC as well, for Kafka's own lag tools; Redis's checkpoint is what counts.
A broker that restarts is reconnected to by librdkafka. A partition whose log now ends below the checkpoint
lost it (a broker that kept it in memory, a topic deleted and made again): the bridge says so once, naming
topic and partition, and brings the partition over from its start. Kafka answers a fetch past a log's end
"out of range" (then the bridge reads from the earliest and sees offsets below its checkpoint); some brokers
(Tansu) answer nothing, so the bridge also compares each partition's end with the checkpoint every second. New
messages that carry a lost log past the checkpoint before that look cannot be told from old ones.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from colfill.bus.base import MESSAGE_VERSION, decode
from colfill.bus.kafka import bar_topic, brokers, ensure_topics, kafka, unreachable
from colfill.bus.redis import RedisMessageBus
from colfill.config import redact
from colfill.errors import ColfillError, InvalidArgument, TerminalError

log = logging.getLogger("colfill.bridge")
LOOK_EVERY = 1.0  # seconds between comparisons of the partitions' ends with the checkpoint

_DOWN = ("_TRANSPORT", "_ALL_BROKERS_DOWN", "_TIMED_OUT", "_RESOLVE", "UNKNOWN_TOPIC_OR_PART", "NOT_COORDINATOR",
         "COORDINATOR_NOT_AVAILABLE", "_UNKNOWN_TOPIC", "_UNKNOWN_PARTITION", "LEADER_NOT_AVAILABLE")


def offsets_key(group: str) -> str:
    """The Redis hash of the bridge's checkpoint: `topic:partition` -> the next offset to bring over."""
    return f"colfill:bridge:{group}:offsets"


@dataclass
class BridgeStats:
    bridged: int = 0  # messages added to the stream
    skipped: int = 0  # messages that are not bar messages
    batches: int = 0
    redis_failures: int = 0
    kafka_errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)  # published_ms -> EXEC answered, of each bar


class KafkaToRedisBridge:
    """Consume `colfill.bars.{tf}` of `timeframes` in consumer group `group` and write each bar to Redis (see
    the module docstring). `run(stop)` until `stop.is_set()`; `notice(text)` receives what an operator should
    read (default: the `colfill.bridge` logger)."""

    def __init__(self, kafka_url: str, redis_url: str, timeframes: Sequence[str] = ("1m",),
                 group: str = "colfill-bridge", *, maxlen: int = 100_000, batch_size: int = 5000,
                 session_timeout: float = 10.0, notice: Callable[[str], None] | None = None) -> None:
        ck = kafka()
        if not timeframes:
            raise InvalidArgument("the bridge needs at least one timeframe (e.g. 1m)")
        self.bootstrap = brokers(kafka_url)
        self.group = group
        self.key = offsets_key(group)
        self.batch_size = int(batch_size)
        self.topics = {bar_topic(tf): tf for tf in dict.fromkeys(timeframes)}
        self.notice = notice or log.warning
        self.stats = BridgeStats()
        self.redis = RedisMessageBus(redis_url, maxlen=maxlen)
        ensure_topics(self.bootstrap, self.topics)
        self._ck = ck
        self.consumer = ck.Consumer({
            "bootstrap.servers": self.bootstrap, "group.id": group, "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "session.timeout.ms": int(session_timeout * 1000),
            "fetch.wait.max.ms": 10, "enable.partition.eof": False, "error_cb": self._kafka_error})
        self._next: dict[tuple[str, int], int] = {}  # the next offset per partition, as Redis knows it
        self._synced = False  # positions agree with Redis's checkpoint since the last assignment or failure
        self._warned: set[str] = set()
        self._kafka_down = False
        self._looked = 0.0  # when the logs' ends were last compared with the checkpoint
        self.consumer.subscribe(list(self.topics), on_assign=self._assigned, on_revoke=self._revoked)

    def describe(self) -> str:
        return f"Kafka {self.bootstrap} ({', '.join(self.topics)}) → {self.redis.describe()}, group {self.group}"

    # -- positions --

    def _checkpoint(self) -> dict[tuple[str, int], int]:
        try:
            saved = self.redis.client.hgetall(self.key)
        except Exception as exc:
            raise TerminalError(f"cannot read the bridge's checkpoint from Redis: {redact(str(exc))}") from None
        out = {}
        for name, value in saved.items():
            topic, _, partition = name.decode().rpartition(":")
            out[(topic, int(partition))] = int(value)
        return out

    def _assigned(self, consumer: Any, partitions: list[Any]) -> None:
        """Start each partition at Redis's checkpoint (else the group's committed offset, else the earliest)."""
        try:
            saved = self._checkpoint()
        except ColfillError:
            saved = None
        for tp in partitions:
            if saved is not None and (tp.topic, tp.partition) in saved:
                tp.offset = saved[(tp.topic, tp.partition)]
        consumer.assign(partitions)
        self._next = {k: v for k, v in (saved or {}).items()}
        self._synced = saved is not None

    def _revoked(self, consumer: Any, partitions: list[Any]) -> None:
        consumer.unassign()
        self._synced = False

    def _resync(self) -> bool:
        """Seek every assigned partition to Redis's checkpoint; False while Redis or the partitions are not ready."""
        try:
            saved = self._checkpoint()
            for tp in self.consumer.assignment():
                at = saved.get((tp.topic, tp.partition))
                if at is None:
                    committed = self.consumer.committed([tp], timeout=5)[0].offset
                    at = committed if committed >= 0 else self._ck.OFFSET_BEGINNING
                self.consumer.seek(self._ck.TopicPartition(tp.topic, tp.partition, at))
        except Exception as exc:
            self._once("resync", f"waiting to resume from the checkpoint: {redact(str(exc))}")
            return False
        self._next = saved
        self._synced = True
        return True

    # -- the loop --

    def step(self, timeout: float = 0.2) -> int:
        """Bring over one micro-batch (what arrived within `timeout` s, at most batch_size); the bars added."""
        if not self._synced:
            if not self._resync():
                time.sleep(min(timeout, 0.5))
                return 0
        # consume(n, timeout) waits for n messages or the timeout: wait for one only, then take what is there
        messages = self.consumer.consume(self.batch_size, 0) or self.consumer.consume(1, timeout)
        if len(messages) == 1:
            messages += self.consumer.consume(self.batch_size - 1, 0)
        if time.monotonic() - self._looked >= LOOK_EVERY:
            self._look()
        bars: list[tuple[str, str, bytes]] = []
        ends: dict[tuple[str, int], int] = {}
        for msg in messages:
            err = msg.error()
            if err is not None:
                self._kafka_error(err)
                continue
            where = (msg.topic(), msg.partition())
            offset = msg.offset()
            if offset < self._next.get(where, -1) and not self._lost(where):
                continue  # already in Redis (fetched before a seek took effect)
            ends[where] = offset + 1
            timeframe = self.topics.get(msg.topic(), "")
            ticker = self._bar_ticker(msg.value(), timeframe)
            if ticker is None:
                self.stats.skipped += 1
                self._once("bad", f"skipping messages that are not bar messages, first at {where[0]} partition "
                           f"{where[1]} offset {offset}: {(msg.value() or b'')[:120]!r} (they are counted)")
                continue
            bars.append((timeframe, ticker, msg.value()))
        if not ends:
            return 0
        try:
            self.redis.publish_checkpointed(bars, self.key, {f"{t}:{p}": o for (t, p), o in ends.items()})
        except ColfillError as exc:
            self.stats.redis_failures += 1
            self._synced = False
            self._once("redis", f"Redis write failed, retrying from the checkpoint: {exc}")
            time.sleep(0.5)
            return 0
        self._warned.discard("redis")
        self._warned.discard("resync")
        done = time.time() * 1000
        self._next.update(ends)
        self.stats.bridged += len(bars)
        self.stats.batches += 1
        for _, _, payload in bars[-1:]:  # the newest bar of the batch: the latency a reader sees
            published = decode(payload).get("published_ms")
            if isinstance(published, (int, float)):
                self.stats.latencies_ms.append(done - published)
        try:
            self.consumer.commit(offsets=[self._ck.TopicPartition(t, p, o) for (t, p), o in ends.items()],
                                 asynchronous=True)
        except Exception:  # Kafka's copy is for its lag tools only; the next batch commits again
            pass
        return len(bars)

    def _look(self) -> None:
        """Bring over from its start each assigned partition whose log ends below the checkpoint."""
        self._looked = time.monotonic()
        for tp in self.consumer.assignment():
            where = (tp.topic, tp.partition)
            if self._lost(where):
                try:
                    self.consumer.seek(self._ck.TopicPartition(tp.topic, tp.partition, self._ck.OFFSET_BEGINNING))
                except Exception:  # not fetched yet: look again later
                    return
                self._next[where] = 0

    def _lost(self, where: tuple[str, int]) -> bool:
        """True when partition `where`'s log ends below the checkpoint (the broker lost it; said once). The end is
        the one the broker's last fetch answer carried: Tansu 0.6 answers ListOffsets with the last batch's first
        offset + 1, below the true end, which would make every idle bridge read its partitions again."""
        at = self._next.get(where, 0)
        if at <= 0:
            return False
        try:
            high = self.consumer.get_watermark_offsets(self._ck.TopicPartition(*where), cached=True)
        except Exception:  # not fetched yet
            return False
        if high is None or not 0 <= high[1] < at:
            return False
        self._once(f"lost:{where[0]}:{where[1]}", f"{where[0]} partition {where[1]} now ends at offset {high[1]}, "
                   f"below the checkpoint {at}: the broker lost its log (did it keep it in memory?); bringing the "
                   "partition over from its start")
        return True

    @staticmethod
    def _bar_ticker(value: bytes | None, timeframe: str) -> str | None:
        """The ticker of a bar message of `timeframe`, None for anything else."""
        try:
            msg = decode(value or b"")
        except Exception:
            return None
        if not isinstance(msg, dict) or msg.get("v") != MESSAGE_VERSION or msg.get("timeframe") != timeframe:
            return None
        ticker, t = msg.get("ticker"), msg.get("t")
        if not isinstance(ticker, str) or not ticker or not isinstance(t, int) or isinstance(t, bool):
            return None
        return ticker

    def _kafka_error(self, err: Any) -> None:
        if err.fatal():
            raise unreachable(self.bootstrap, "consuming", err)
        self.stats.kafka_errors += 1
        if err.name() in _DOWN:
            self._once("kafka", f"Kafka at {self.bootstrap}: {err.str()}; reconnecting")
        else:
            self._once(f"kafka:{err.name()}", f"Kafka at {self.bootstrap}: {err.str()}")

    def _once(self, kind: str, text: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            self.notice(text)

    def run(self, stop: Any = None) -> BridgeStats:
        """Bridge until `stop.is_set()` (never, without one)."""
        while stop is None or not stop.is_set():
            if self.step() and "kafka" in self._warned:
                self._warned.discard("kafka")
        return self.stats

    def close(self) -> None:
        try:
            self.consumer.close()
        finally:
            self.redis.close()

    def __enter__(self) -> KafkaToRedisBridge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
