"""The Redis bus: each bar PUBLISHed on its ticker's channel and XADDed to its timeframe's bounded stream.

Pub/sub is for readers that follow along (`colfill tail`, the dashboard): fast, but a reader that is not
connected misses what is published meanwhile. The stream (`MAXLEN ~ maxlen`, trimmed in whole macro nodes,
so it is cheap) is for consumers that must not miss a bar: `RedisStreamConsumer` reads it in a consumer
group and acknowledges what it has handled, so after a crash the same consumer gets the unacknowledged
bars again (and `claim_idle_ms` lets another one take over those of a consumer that never comes back).

A micro-batch is one round trip: the PUBLISH and XADD of every bar are written to the socket as one block
of RESP bytes colfill packs itself (redis-py's pipeline packs each command in Python: 1.7-2.3x slower measured
without hiredis, 1.3x with it; benchmarks/bench_bus.py), then the replies are read. `redis` is imported only
here (extra `redis`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from colfill._lazy import require
from colfill.bus.base import STATUS_CHANNEL, bar_channel, bar_stream, decode, dumps, encode_bars, status_key
from colfill.config import redact, url_secrets
from colfill.errors import ColfillError, InvalidArgument, TerminalError, TransientError, Unreachable

if TYPE_CHECKING:
    import polars as pl

STATUS_TTL_S = 60  # a status older than this is gone: the process that wrote it has stopped
ROUND_TRIP_BARS = 5000  # bars per write: a larger micro-batch takes several round trips (~6 MB each at most)


def _redis() -> Any:
    return require("redis", "redis")


def _error(url: str, what: str, exc: BaseException) -> ColfillError:
    """A colfill error for a redis-py exception, naming the URL without its password."""
    redis = _redis()
    where = redact(url)
    detail = redact(" ".join(str(exc).split()).rstrip("."), url_secrets(url))
    if isinstance(exc, redis.exceptions.AuthenticationError) or "NOAUTH" in detail or "WRONGPASS" in detail:
        return Unreachable(f"Redis at {where} refused the login ({what}): {detail}. Hint: check the user and "
                           "password in the URL (redis://user:password@host:6379/0).")
    if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)):
        return TransientError(f"cannot reach Redis at {where} ({what}): {detail}. Hint: is redis-server running "
                              "and listening at that host and port?")
    return TerminalError(f"Redis at {where} refused {what}: {detail}")


def connect(url: str, socket_timeout: float | None = 5.0) -> Any:
    """A checked redis-py client for `url` (PING answered), or the colfill error saying why not."""
    redis = _redis()
    try:
        client = redis.Redis.from_url(url, socket_timeout=socket_timeout, socket_connect_timeout=5.0,
                                      health_check_interval=0)
        client.ping()
    except Exception as exc:
        raise _error(url, "PING", exc) from None
    return client


def _bulk(arg: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(arg), arg)


class RedisMessageBus:
    """Publish bars and status to Redis (`redis://[user:password@]host:port/db`); see the module docstring."""

    name = "redis"

    def __init__(self, url: str | None = None, maxlen: int = 100_000, socket_timeout: float = 5.0, *,
                 host: str | None = None, port: int = 6379, db: int = 0, password: str | None = None) -> None:
        """`url`, or the original tool's `host=`, `port=`, `db=`, `password=`."""
        if url is None:
            from urllib.parse import quote

            auth = f":{quote(password, safe='')}@" if password else ""
            url = f"redis://{auth}{host or 'localhost'}:{int(port)}/{int(db)}"
        if int(maxlen) < 1:
            raise InvalidArgument(f"maxlen {maxlen} must be at least 1 (the bars a stream keeps)")
        self.url = url
        self.maxlen = int(maxlen)
        self.client = connect(url, socket_timeout)
        self._lock = threading.Lock()
        self._xadd_head: dict[str, bytes] = {}

    def describe(self) -> str:
        return f"Redis {redact(self.url)}"

    def _xadd_prefix(self, timeframe: str) -> bytes:
        """`XADD <stream> MAXLEN ~ <n> * bar` as RESP, up to the payload (the same for every bar of a timeframe)."""
        head = self._xadd_head.get(timeframe)
        if head is None:
            args = [b"XADD", bar_stream(timeframe).encode(), b"MAXLEN", b"~", str(self.maxlen).encode(), b"*", b"bar"]
            head = self._xadd_head[timeframe] = b"*8\r\n" + b"".join(map(_bulk, args))
        return head

    def publish(self, timeframe: str, bars: pa.Table | pl.DataFrame, revision: bool | Sequence[bool] = False) -> int:
        """PUBLISH and XADD every bar, in one round trip (per ROUND_TRIP_BARS); the number published."""
        tickers, _, payloads = encode_bars(timeframe, bars, revision)
        if not payloads:
            return 0
        xadd = self._xadd_prefix(timeframe)
        publish = b"*3\r\n$7\r\nPUBLISH\r\n"
        channels: dict[str, bytes] = {}
        for start in range(0, len(payloads), ROUND_TRIP_BARS):
            parts: list[bytes] = []
            for ticker, payload in zip(tickers[start:start + ROUND_TRIP_BARS], payloads[start:start + ROUND_TRIP_BARS]):
                channel = channels.get(ticker)
                if channel is None:
                    channel = channels[ticker] = _bulk(bar_channel(timeframe, ticker).encode())
                body = _bulk(payload)
                parts += (publish, channel, body, xadd, body)
            self._roundtrip(b"".join(parts), 2 * (len(parts) // 5), "PUBLISH/XADD")
        return len(payloads)

    def publish_checkpointed(self, bars: Sequence[tuple[str, str, bytes]], key: str, fields: dict[str, int]) -> None:
        """MULTI, then PUBLISH and XADD of each (timeframe, ticker, payload), HSET `key` `fields`, EXEC: the bars
        and the checkpoint saying how far they go reach Redis together or not at all (`colfill bridge`)."""
        publish = b"*3\r\n$7\r\nPUBLISH\r\n"
        parts = [b"*1\r\n$5\r\nMULTI\r\n"]
        for timeframe, ticker, payload in bars:
            body = _bulk(payload)
            parts += (publish, _bulk(bar_channel(timeframe, ticker).encode()), body, self._xadd_prefix(timeframe), body)
        hset = [b"HSET", key.encode()]
        for name, value in fields.items():
            hset += (name.encode(), b"%d" % value)
        parts += (b"*%d\r\n" % len(hset), *map(_bulk, hset), b"*1\r\n$4\r\nEXEC\r\n")
        self._roundtrip(b"".join(parts), 2 * len(bars) + 3, "MULTI/XADD/EXEC")

    def _roundtrip(self, packed: bytes, replies: int, what: str) -> list[Any]:
        """Send pre-packed commands on one pooled connection and read their replies. On an error reply or a
        broken connection the connection is dropped (replies may be left unread) and the error raised."""
        pool = self.client.connection_pool
        with self._lock:
            try:
                conn = pool.get_connection()
            except Exception as exc:
                raise _error(self.url, what, exc) from None
            try:
                conn.send_packed_command([packed])
                out = [conn.read_response() for _ in range(replies)]
            except Exception as exc:
                conn.disconnect()
                raise _error(self.url, what, exc) from None
            finally:
                pool.release(conn)
        return out

    def publish_status(self, name: str, status: dict[str, Any]) -> None:
        """SET `colfill:status:{name}` (expires after STATUS_TTL_S) and PUBLISH on `colfill:status`."""
        payload = dumps({"name": name, **status})
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.set(status_key(name), payload, ex=STATUS_TTL_S)
            pipe.publish(STATUS_CHANNEL, payload)
            pipe.execute()
        except Exception as exc:
            raise _error(self.url, "the status update", exc) from None

    def status(self, name: str) -> dict[str, Any] | None:
        """The last status `name` published, unless it expired."""
        try:
            payload = self.client.get(status_key(name))
        except Exception as exc:
            raise _error(self.url, "GET", exc) from None
        return None if payload is None else decode(payload)

    def recent(self, timeframe: str = "1m", count: int = 100) -> list[dict[str, Any]]:
        """The last `count` bars of the timeframe's stream, oldest first (a dashboard's first screen)."""
        try:
            entries = self.client.xrevrange(bar_stream(timeframe), count=count)
        except Exception as exc:
            raise _error(self.url, "XREVRANGE", exc) from None
        return [decode(fields[b"bar"]) for _, fields in reversed(entries) if fields and b"bar" in fields]

    def subscribe(self, tickers: Iterable[str], timeframe: str = "1m", timeout: float | None = None
                  ) -> Iterator[dict[str, Any]]:
        """Bars of `tickers` published from now on (a ticker with `*` or `?` is a pattern, e.g. `*` for all);
        ends after `timeout` seconds without a message (None: never)."""
        return subscribe(self.url, tickers, timeframe, timeout)

    def close(self) -> None:
        self.client.close()


def subscribe(url: str, tickers: Iterable[str], timeframe: str = "1m", timeout: float | None = None,
              ready: Callable[[], None] | None = None) -> Iterator[dict[str, Any]]:
    """Messages on the channels of `tickers` (see RedisMessageBus.subscribe); `ready()` is called once subscribed
    (whatever is published after that is delivered)."""
    client = connect(url, socket_timeout=None)
    pubsub = client.pubsub()
    names = list(dict.fromkeys(tickers))
    plain = [bar_channel(timeframe, t) for t in names if not any(c in t for c in "*?[")]
    patterns = [bar_channel(timeframe, t) for t in names if any(c in t for c in "*?[")]
    try:
        try:
            if plain:
                pubsub.subscribe(*plain)
            if patterns:
                pubsub.psubscribe(*patterns)
            confirmed = 0
            while confirmed < len(plain) + len(patterns):  # then nothing published from here on is missed
                reply = pubsub.get_message(timeout=5.0)
                if reply is None:
                    raise TimeoutError("no confirmation of the subscription within 5 s")
                confirmed += reply.get("type") in ("subscribe", "psubscribe")
        except Exception as exc:
            raise _error(url, "SUBSCRIBE", exc) from None
        if ready is not None:
            ready()
        last = time.monotonic()
        while True:
            try:
                message = pubsub.get_message(timeout=0.5)
            except Exception as exc:
                raise _error(url, "reading the subscription", exc) from None
            if message is not None and message.get("type") in ("message", "pmessage"):
                last = time.monotonic()
                yield decode(message["data"])
            elif timeout is not None and time.monotonic() - last >= timeout:
                return
    finally:
        pubsub.close()
        client.close()


@dataclass(frozen=True)
class StreamEntry:
    """One bar read from a stream: its entry id (what `ack` takes) and the message."""

    id: str
    message: dict[str, Any]


class RedisStreamConsumer:
    """A consumer in a consumer group of a timeframe's stream: bars are delivered until acknowledged.

    `read` first returns this consumer's pending entries (delivered before, never acknowledged: what a
    crashed predecessor of the same name left), then, with `claim_idle_ms`, entries other consumers of the
    group left pending that long, then new ones. A new group starts at `start`: "$" (only bars published
    from now on) or "0" (everything the stream still holds).
    """

    def __init__(self, url: str, group: str, consumer: str, timeframe: str = "1m", *, start: str = "$",
                 claim_idle_ms: int | None = None) -> None:
        self.url, self.group, self.consumer = url, group, consumer
        self.stream = bar_stream(timeframe)
        self.claim_idle_ms = claim_idle_ms
        self.client = connect(url, socket_timeout=30.0)
        self._history: str | None = "0"  # cursor through our own pending entries; None once they are read
        self._claim_cursor = "0-0"
        try:
            self.client.xgroup_create(self.stream, group, id=start, mkstream=True)
        except _redis().exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise _error(url, "XGROUP CREATE", exc) from None
        except Exception as exc:
            raise _error(url, "XGROUP CREATE", exc) from None

    def read(self, count: int = 100, block_ms: int = 1000) -> list[StreamEntry]:
        """Up to `count` entries; waits up to `block_ms` (at most 20 s) for new ones when none is pending."""
        try:
            if self._history is not None:
                got = self._entries(self.client.xreadgroup(self.group, self.consumer, {self.stream: self._history},
                                                           count=count))
                if got:
                    self._history = got[-1][0]
                    return self._live(got)
                self._history = None
            if self.claim_idle_ms is not None:
                cursor, claimed, *_ = self.client.xautoclaim(self.stream, self.group, self.consumer,
                                                             self.claim_idle_ms, self._claim_cursor, count=count)
                self._claim_cursor = cursor.decode() if isinstance(cursor, bytes) else str(cursor)
                got = [(_text(i), f) for i, f in claimed]
                if got:
                    return self._live(got)
            got = self._entries(self.client.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=count,
                                                       block=max(1, min(int(block_ms), 20_000))))
        except ColfillError:
            raise
        except Exception as exc:
            raise _error(self.url, "XREADGROUP", exc) from None
        return self._live(got)

    @staticmethod
    def _entries(reply: Any) -> list[tuple[str, Any]]:
        if not reply:
            return []
        _, entries = reply[0]
        return [(_text(i), f) for i, f in entries]

    def _live(self, entries: list[tuple[str, Any]]) -> list[StreamEntry]:
        """Entries with their messages; pending entries the stream trimmed meanwhile are acknowledged and skipped."""
        out, gone = [], []
        for entry_id, fields in entries:
            if fields and b"bar" in fields:
                out.append(StreamEntry(entry_id, decode(fields[b"bar"])))
            else:
                gone.append(entry_id)
        if gone:
            self.ack(gone)
        return out

    def ack(self, ids: Iterable[str | StreamEntry]) -> int:
        """Acknowledge entries (ids or the entries themselves); the number acknowledged."""
        names = [e.id if isinstance(e, StreamEntry) else e for e in ids]
        if not names:
            return 0
        try:
            return int(self.client.xack(self.stream, self.group, *names))
        except Exception as exc:
            raise _error(self.url, "XACK", exc) from None

    def pending(self) -> int:
        """Entries of the group delivered and not yet acknowledged (by any consumer)."""
        try:
            return int(self.client.xpending(self.stream, self.group)["pending"])
        except Exception as exc:
            raise _error(self.url, "XPENDING", exc) from None

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> RedisStreamConsumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
