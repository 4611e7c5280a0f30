"""Redis fixtures (`redis_url` itself is in tests/conftest.py): `timeframe` is a name no other test uses, so
streams and channels of concurrent tests never meet (pub/sub is shared by every database of a server)."""

from __future__ import annotations

import datetime as dt
import queue
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[object]:
    import redis

    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def timeframe(redis_client: object) -> Iterator[str]:
    """A private timeframe name; its stream is deleted afterwards."""
    name = f"t{uuid.uuid4().hex[:10]}"
    yield name
    redis_client.delete(f"colfill:stream:bars:{name}")  # type: ignore[attr-defined]


T0 = dt.datetime(2024, 1, 2, 14, 30, tzinfo=dt.timezone.utc)


def bars(tickers: list[str], minutes: int = 1, start: dt.datetime = T0, **extra: list[object]) -> pa.Table:
    """Enriched bars, `minutes` per ticker (minute-major, as a live micro-batch), with two indicator columns."""
    rows = [(t, start + dt.timedelta(minutes=m)) for m in range(minutes) for t in tickers]
    n = len(rows)
    cols: dict[str, object] = {
        "ticker": [r[0] for r in rows],
        "ts": pa.array([r[1] for r in rows], pa.timestamp("us", tz="UTC")),
        "open": [100.0 + i for i in range(n)], "high": [101.5 + i for i in range(n)],
        "low": [99.25 + i for i in range(n)], "close": [100.5 + i for i in range(n)],
        "volume": [1000.0 * (i + 1) for i in range(n)], "vw": [100.4 + i for i in range(n)],
        "transactions": pa.array(list(range(1, n + 1)), pa.int64()),
        "sma_20": [float("nan") if i == 0 else 100.0 + i / 3 for i in range(n)],
        "rsi_14": [None if i == 0 else 50.0 + i for i in range(n)],
    }
    cols.update(extra)
    return pa.table(cols)


class Lines:
    """Lines of a child's pipe, read by a thread (a buffered pipe defeats select())."""

    def __init__(self, stream) -> None:  # type: ignore[no-untyped-def]
        self.queue: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(target=lambda: [self.queue.put(line) for line in stream], daemon=True)
        self.reader.start()

    def next(self, timeout: float = 20) -> str:
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no line within the timeout") from None

    def rest(self) -> str:
        """Every line not taken yet, up to the end of the pipe (call after the child exited)."""
        self.reader.join(10)
        return "".join(iter(lambda: "" if self.queue.empty() else self.queue.get(), ""))


class OwnRedis:
    """redis-server on `port`; with `persist` (a directory), an append-only file fsynced at every write, so
    what it acknowledged survives a SIGKILL."""

    def __init__(self, port: int, persist: Path | None = None) -> None:
        self.port, self.url, self.proc, self.persist = port, f"redis://127.0.0.1:{port}/0", None, persist

    def start(self) -> None:
        aof = ["--appendonly", "no"] if self.persist is None else [
            "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.persist)]
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      *aof], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None
