"""A bus inside one process: the default of `colfill live` without Redis, and what tests and the dashboard's
in-process mode subscribe to.

It publishes exactly what `RedisMessageBus` does (the same JSON, decoded back into dicts, under the same
channel and stream names), keeps the last `keep` messages per channel and per stream, and hands each new
message to its listeners: callables called as `listener(channel, message)`, or queues given
`(channel, message)` tuples. A listener that raises is dropped, so one bad reader cannot stop publishing.
"""

from __future__ import annotations

import fnmatch
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from colfill.bus.base import STATUS_CHANNEL, bar_channel, bar_stream, decode, encode_bars, status_key

if TYPE_CHECKING:
    import polars as pl

Listener = Callable[[str, dict[str, Any]], None] | queue.Queue


class InMemoryMessageBus:
    """Pub/sub and bounded streams in this process (see the module docstring)."""

    name = "memory"

    def __init__(self, keep: int = 1000, maxlen: int = 100_000) -> None:
        self.keep = keep
        self.maxlen = maxlen
        self._channels: dict[str, deque[dict[str, Any]]] = {}
        self._streams: dict[str, deque[dict[str, Any]]] = {}
        self._status: dict[str, dict[str, Any]] = {}
        self._listeners: list[tuple[str, Listener]] = []
        self._lock = threading.Lock()

    # -- publishing --

    def publish(self, timeframe: str, bars: pa.Table | pl.DataFrame, revision: bool | Sequence[bool] = False) -> int:
        tickers, _, payloads = encode_bars(timeframe, bars, revision)
        stream = bar_stream(timeframe)
        for ticker, payload in zip(tickers, payloads):
            message = decode(payload)
            self._append(self._streams, stream, message, self.maxlen)
            self._deliver(bar_channel(timeframe, ticker), message)
        return len(payloads)

    def publish_status(self, name: str, status: dict[str, Any]) -> None:
        message = {"name": name, **status}
        with self._lock:
            self._status[name] = message
        self._deliver(STATUS_CHANNEL, message)

    def close(self) -> None:
        with self._lock:
            self._listeners.clear()

    # -- reading --

    def add_listener(self, listener: Listener, pattern: str = "*") -> None:
        """Call (or put into) `listener` for every message on a channel matching the glob `pattern`
        (Redis PSUBSCRIBE's `*` and `?`), e.g. `colfill:bars:1m:*`."""
        with self._lock:
            self._listeners.append((pattern, listener))

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners = [(p, li) for p, li in self._listeners if li is not listener]

    def subscribe(self, tickers: Iterable[str], timeframe: str = "1m", timeout: float | None = None
                  ) -> Iterator[dict[str, Any]]:
        """The bars of `tickers` published from now on, as messages; ends after `timeout` seconds without one."""
        channels = {bar_channel(timeframe, t) for t in tickers}
        inbox: queue.Queue = queue.Queue()

        def take(channel: str, message: dict[str, Any]) -> None:
            if channel in channels:
                inbox.put(message)

        self.add_listener(take, f"colfill:bars:{timeframe}:*")
        try:
            while True:
                try:
                    yield inbox.get(timeout=timeout)
                except queue.Empty:
                    return
        finally:
            self.remove_listener(take)

    def messages(self, channel: str) -> list[dict[str, Any]]:
        """The last `keep` messages published on `channel`, oldest first."""
        with self._lock:
            return list(self._channels.get(channel, ()))

    def stream(self, timeframe: str) -> list[dict[str, Any]]:
        """The last `maxlen` bars of the timeframe's stream, oldest first."""
        with self._lock:
            return list(self._streams.get(bar_stream(timeframe), ()))

    def status(self, name: str) -> dict[str, Any] | None:
        """The last status `name` published (the value Redis keeps under `status_key(name)`)."""
        with self._lock:
            return self._status.get(name)

    @staticmethod
    def status_key(name: str) -> str:
        return status_key(name)

    # -- internals --

    def _append(self, store: dict[str, deque[dict[str, Any]]], name: str, message: dict[str, Any], bound: int) -> None:
        with self._lock:
            box = store.get(name)
            if box is None:
                box = store[name] = deque(maxlen=bound)
            box.append(message)

    def _deliver(self, channel: str, message: dict[str, Any]) -> None:
        self._append(self._channels, channel, message, self.keep)
        with self._lock:
            listeners = [li for p, li in self._listeners if fnmatch.fnmatchcase(channel, p)]
        for listener in listeners:
            try:
                if isinstance(listener, queue.Queue):
                    listener.put((channel, message))
                else:
                    listener(channel, message)
            except Exception:
                self.remove_listener(listener)
