"""The dashboard's side of the Redis bus (see the bus contract): bar messages of one ticker as server-sent events,
and the status keys of `colfill run` and `colfill live`.

Each open chart holds its own pub/sub subscription to `colfill:bars:{timeframe}:{ticker}` (redis.asyncio), so
a bar reaches the page one hop after it is published, without a broker thread in between; a status is read
with GET of `colfill:status:{name}`, which the publisher sets with a 60 s expiry (a dead process's status
goes away by itself). redis is imported only here, when `--redis` is given.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from colfill._lazy import require

STATUS_NAMES = ("live", "run")
KEEPALIVE_S = 15.0


def bars_channel(timeframe: str, ticker: str) -> str:
    return f"colfill:bars:{timeframe}:{ticker}"


class LiveHub:
    """Redis at `url` for the dashboard; `describe()` never shows a password."""

    def __init__(self, url: str) -> None:
        self.redis = require("redis", "ui")
        self.url = url
        self._sync = self.redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    def describe(self) -> str:
        from colfill.config import redact

        return redact(self.url)

    def ping(self) -> bool:
        try:
            return bool(self._sync.ping())
        except self.redis.RedisError:
            return False

    def statuses(self) -> dict[str, Any]:
        """{"live": {...} | None, "run": {...} | None, "reachable": bool}; each status gets `age_ms`."""
        out: dict[str, Any] = {"reachable": True}
        try:
            values = self._sync.mget([f"colfill:status:{n}" for n in STATUS_NAMES])
        except self.redis.RedisError:
            return {"reachable": False, **dict.fromkeys(STATUS_NAMES)}
        now = time.time() * 1000
        for name, raw in zip(STATUS_NAMES, values):
            status = None
            if raw:
                try:
                    status = json.loads(raw)
                except ValueError:
                    status = None
            if isinstance(status, dict) and isinstance(status.get("updated_ms"), (int, float)):
                status["age_ms"] = round(now - status["updated_ms"], 1)
            out[name] = status
        return out

    async def bars(self, timeframe: str, ticker: str) -> AsyncIterator[str]:
        """Server-sent events: one `data:` line per bar message of the ticker, comments as keep-alives."""
        client = self.redis.asyncio.Redis.from_url(self.url)
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(bars_channel(timeframe, ticker))
            yield ": subscribed\n\n"
            last = time.monotonic()
            while True:
                msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if msg is not None and msg.get("type") == "message":
                    data = msg["data"]
                    text = data.decode() if isinstance(data, bytes) else str(data)
                    yield "data: " + text.replace("\n", " ") + "\n\n"
                    last = time.monotonic()
                elif time.monotonic() - last > KEEPALIVE_S:
                    yield ": keep-alive\n\n"
                    last = time.monotonic()
                else:
                    await asyncio.sleep(0)
        finally:
            try:
                await pubsub.unsubscribe()
                await pubsub.aclose()
                await client.aclose()
            except Exception:
                pass

    def close(self) -> None:
        try:
            self._sync.close()
        except Exception:
            pass
