"""Live bars from the Polygon/Massive stocks WebSocket, through the official client's `WebSocketClient`.

Why the official client (polygon-api-client 1.16.3) and not `websockets` directly: it can be pointed at any
URL (`client.url`, here `--ws-url`/`COLFILL_WS_URL`, so tests run it against `tests/polygon_ws_server.py`),
it is the client the project already pins and tests, and it speaks the protocol (auth, one subscribe of
every topic, resubscription). Three of its behaviours are taken out of its hands, because a long-running
process cannot live with them (measured against the real feed):

- `raw=True`: parsed mode drops every status frame, so `max_connections`, `force_disconnect` and
  `slow_consumer` would pass unseen; we parse the frames ourselves (one `json.loads` per frame).
- `max_reconnects=0`: it would reconnect at once after a drop (no backoff) and count drops over its whole
  life. Instead `connect()` returns or raises on every drop, and our loop reconnects with jittered
  exponential backoff (`backoff_delays`, reset once a connection has carried bars), re-authenticating and
  resubscribing every topic each time. Failed connection attempts inside `connect()` (websockets' own
  retry loop) use the same delays (`reconnect_delays=`) and are counted through the `logger=` we pass.
- A close with code 1000 ends its `connect()` for good; we reconnect anyway unless we asked to stop.

Statuses mean: `auth_failed` -> `AuthRefused` (exit 3, the key is never shown); `max_connections` ->
`TakenOver` (exit 3: another connection with this key took over; reconnecting would only push it out in
turn); `force_disconnect` (the server ended this connection) and `slow_consumer` (this process read too
slowly and the server dropped it; bars may be missing) are reported, then we reconnect.

The socket is read by an asyncio loop in a thread of its own, so a slow store never stalls reading (which
is what earns `slow_consumer`); each frame's bars go into a queue as one chunk stamped with its arrival
time, and `poll()` hands the engine everything queued (see `colfill.live.engine` for the batching).
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import random
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from colfill.bars import table_of
from colfill.config import Secret, env, redact
from colfill.config import api_key as configured_key
from colfill.errors import InvalidArgument, SourceUnreachable

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger("colfill.live.ws")

DEFAULT_WS_URL = "wss://socket.massive.com/stocks"  # real time
DELAYED_WS_URL = "wss://delayed.massive.com/stocks"  # 15-minute delayed feed
EVENTS = {"1m": "AM", "1s": "A"}  # timeframe -> the aggregate event (and topic prefix) that carries it
BACKOFF_BASE = 0.5  # seconds; reconnect k waits uniform(0, min(BACKOFF_MAX, BACKOFF_BASE * 2**k))
BACKOFF_MAX = 30.0

# One bar as the socket gives it: ticker, start ms, open, high, low, close, volume, vw, transactions, end ms.
Row = tuple[str, int, float, float, float, float, float, "float | None", "int | None", int]
Chunk = tuple[float, list[Row]]  # (wall-clock arrival of the frame, epoch s; its bars)


class AuthRefused(SourceUnreachable):
    """The WebSocket server refused the API key (`auth_failed`)."""


class TakenOver(SourceUnreachable):
    """`max_connections`: another connection with this key took over (the server keeps the newest)."""


@dataclass(frozen=True)
class LiveSettings:
    """Where to connect and what to subscribe to. `api_key` is a Secret: it never prints."""

    url: str = DEFAULT_WS_URL
    api_key: Secret | None = None
    tickers: tuple[str, ...] = ()
    timeframe: str = "1m"
    backoff_base: float = BACKOFF_BASE
    backoff_max: float = BACKOFF_MAX

    @classmethod
    def from_env(cls, tickers: str | tuple[str, ...], url: str | None = None, api_key: str | None = None,
                 delayed: bool = False, timeframe: str = "1m") -> LiveSettings:
        """Flags first, then COLFILL_WS_URL / POLYGON_API_KEY / MASSIVE_API_KEY; `delayed` picks the delayed feed."""
        if url and delayed:
            raise InvalidArgument("give either --ws-url or --delayed, not both")
        chosen = url or (DELAYED_WS_URL if delayed else env("COLFILL_WS_URL") or DEFAULT_WS_URL)
        parts = urlsplit(chosen)
        if parts.scheme not in ("ws", "wss") or not parts.netloc:
            raise InvalidArgument(f"--ws-url {chosen!r} is not a ws:// or wss:// URL. Hint: e.g. {DEFAULT_WS_URL}")
        names = tuple(t.strip().upper() for t in tickers.split(",")) if isinstance(tickers, str) else tickers
        names = tuple(dict.fromkeys(t for t in names if t))
        if not names:
            raise InvalidArgument("--tickers: give at least one ticker, e.g. AAPL,MSFT (or * for all)")
        if timeframe not in EVENTS:
            raise InvalidArgument(f"timeframe {timeframe!r}: choose {' or '.join(EVENTS)}")
        key = configured_key(api_key)
        if key is None:
            raise InvalidArgument("the WebSocket needs an API key: set POLYGON_API_KEY or MASSIVE_API_KEY, or pass "
                                  "--api-key. Hint: the key from the Massive/Polygon dashboard (the REST key).")
        return cls(url=chosen, api_key=key, tickers=names, timeframe=timeframe)

    @property
    def topics(self) -> list[str]:
        """`AM.AAPL`, ... (or `AM.*`)."""
        return [f"{EVENTS[self.timeframe]}.{t}" for t in self.tickers]


def backoff_delays(base: float = BACKOFF_BASE, cap: float = BACKOFF_MAX) -> Generator[float, None, None]:
    """Full-jitter exponential backoff: attempt k waits uniform(0, min(cap, base * 2**k)) seconds."""
    k = 0
    while True:
        yield random.uniform(0, min(cap, base * 2**k))
        k += 1


def parse_frame(raw: str | bytes, event: str = "AM") -> tuple[list[Row], list[dict[str, Any]], int]:
    """(bars of `event`, status messages, events that could not be read) of one frame (a JSON array).

    `s` (window start, epoch ms) is the bar's time; `dv` (fractional volume, newer feeds) wins over `v`;
    `vw` is the bar's VWAP, `z` its transactions. Trades, quotes and other events are ignored."""
    try:
        events = json.loads(raw)
    except ValueError:
        return [], [], 1
    if isinstance(events, dict):
        events = [events]
    rows: list[Row] = []
    statuses: list[dict[str, Any]] = []
    bad = 0
    for e in events:
        if not isinstance(e, dict):
            bad += 1
            continue
        kind = e.get("ev")
        if kind == event:
            try:
                vw, z, dv = e.get("vw"), e.get("z"), e.get("dv")
                rows.append((str(e["sym"]), int(e["s"]), float(e["o"]), float(e["h"]), float(e["l"]), float(e["c"]),
                             float(e["v"] if dv is None else dv), None if vw is None else float(vw),
                             None if z is None else int(z), int(e.get("e") or int(e["s"]) + 60_000)))
            except (KeyError, TypeError, ValueError):
                bad += 1
        elif kind == "status":
            statuses.append(e)
    return rows, statuses, bad


@dataclass
class Health:
    """What the connection has been through, for the status line and `colfill live`'s table."""

    connected: bool = False
    connects: int = 0
    reconnects: int = 0
    failed_attempts: int = 0
    frames: int = 0
    bars: int = 0
    malformed: int = 0
    subscribed: set[str] = field(default_factory=set)
    last_error: str = ""


class _AttemptLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The logger handed to websockets: counts its failed connection attempts (it retries them itself)."""

    def __init__(self, source: LiveDataSource) -> None:
        super().__init__(log, {})
        self.source = source

    def info(self, msg: object, *args: object, **kwargs: Any) -> None:
        if isinstance(msg, str) and msg.startswith("connect failed"):
            self.source._attempt_failed(str(args[-1]) if args else "")
        else:
            super().info(msg, *args, **kwargs)


_END = object()


@dataclass(frozen=True)
class Reconnected:
    """Queued before the first bars of a connection after the first: the bars sent while away are missing.
    `first_t`: the latest minute start (epoch ms) in that first frame."""

    first_t: int


class LiveDataSource:
    """Minute (or second) bars of `settings.tickers` from the WebSocket (see the module docstring).

    `open()` starts reading; `poll()` returns the chunks queued so far; `close()` stops and joins. A fatal
    refusal (`AuthRefused`, `TakenOver`) is raised by `poll()` after every chunk received before it."""

    name = "websocket"

    def __init__(self, settings: LiveSettings) -> None:
        self.settings = settings
        self.timeframe = settings.timeframe
        self.table = table_of(settings.timeframe)  # second bars are published, not stored
        self.health = Health()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._notices: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._fatal: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._client: Any = None
        self._thread: threading.Thread | None = None
        self._carried = False  # the current connection has delivered bars (resets the backoff)
        self._fresh = False  # a reconnection that has not delivered bars yet
        self._gap: Reconnected | None = None  # met by poll(), not yet taken by the engine

    def describe(self) -> str:
        topics = self.settings.topics
        return f"WebSocket {self.settings.url} {','.join(topics[:8])}{'...' if len(topics) > 8 else ''}"

    # -- the engine's side --

    def open(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="colfill-ws", daemon=True)
            self._thread.start()

    def poll(self, timeout: float | None, max_rows: int | None = None) -> list[Chunk]:
        """Chunks received: waits up to `timeout` s for the first, then takes what is queued without waiting
        (at most about `max_rows` bars). A reconnection ends the chunks returned; until `take_gap()` takes it,
        nothing more is returned (the new connection's frames are held while the gap is filled)."""
        out: list[Chunk] = []
        rows = 0
        if self._gap is not None:
            time.sleep(min(timeout or 0.0, 0.05))
            return out
        try:
            item = self._queue.get_nowait() if timeout == 0 else self._queue.get(timeout=timeout)
            while True:
                if isinstance(item, Reconnected):
                    self._gap = item
                    return out
                if item is _END:
                    if out:
                        self._queue.put(_END)  # raised on the next poll, after these chunks are flushed
                        return out
                    self._queue.put(_END)
                    if self._fatal is not None:
                        raise self._fatal
                    return out
                out.append(item)
                rows += len(item[1])
                if max_rows is not None and rows >= max_rows:
                    return out
                item = self._queue.get_nowait()
        except queue.Empty:
            return out

    def take_gap(self) -> Reconnected | None:
        """The reconnection `poll()` stopped at, if any (cleared: polling goes on with the new connection)."""
        gap, self._gap = self._gap, None
        return gap

    def finished(self) -> bool:
        """True once the reader has stopped (closed, or a fatal refusal) and its queue may hold nothing more."""
        return self._thread is not None and not self._thread.is_alive()

    def notices(self) -> list[str]:
        """Messages for people since the last call (a reconnect, what a status meant)."""
        out = []
        while True:
            try:
                out.append(self._notices.get_nowait())
            except queue.Empty:
                return out

    def batches(self, stop: Any = None) -> Iterator[pa.Table]:
        """Batch-mode view: one Arrow table per poll until stopped (the engine's stream mode uses `poll`)."""
        from colfill.bars import rows_to_table

        self.open()
        try:
            while stop is None or not stop.is_set():
                self.take_gap()  # batch view: no refill
                chunks = self.poll(0.5)
                if chunks:
                    yield rows_to_table([r for _, rows in chunks for r in rows])
                elif self.finished():
                    return
        finally:
            self.close()

    def close(self, timeout: float = 5.0) -> None:
        """Stop reading (a clean close of the socket) and wait for the reader thread."""
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stopping.set)
            except RuntimeError:
                pass  # the loop ended meanwhile
        if self._thread is not None:
            self._thread.join(timeout)

    # -- the reader thread --

    def _note(self, message: str) -> None:
        log.info("%s", message)
        self._notices.put(message)

    def _attempt_failed(self, why: str) -> None:
        self.health.failed_attempts += 1
        self.health.last_error = f"cannot connect to {self.settings.url}: {why}"
        if self.health.failed_attempts in (1, 10) or self.health.failed_attempts % 100 == 0:
            self._note(f"{self.health.last_error} (attempt {self.health.failed_attempts}; retrying with backoff)")

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # a bug in the reader: surface it to the engine rather than hang
            if self._fatal is None:
                self._fatal = exc
        finally:
            self.health.connected = False
            self._queue.put(_END)

    def _make_client(self) -> Any:
        from polygon import WebSocketClient

        key = self.settings.api_key
        assert key is not None
        client = WebSocketClient(api_key=key.reveal(), feed=urlsplit(self.settings.url).netloc, market="stocks",
                                 raw=True, max_reconnects=0, subscriptions=self.settings.topics,
                                 secure=self.settings.url.startswith("wss:"))
        client.url = self.settings.url  # any path or host, exactly as given
        return client

    async def _main(self) -> None:
        from polygon.exceptions import AuthError

        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        client = self._client = self._make_client()
        delays = backoff_delays(self.settings.backoff_base, self.settings.backoff_max)
        stop_task = asyncio.ensure_future(self._stopping.wait())
        try:
            while not self._stopping.is_set():
                client.scheduled_subs, client.subs, client.schedule_resub = set(self.settings.topics), set(), True
                self._carried = False
                run = asyncio.ensure_future(client.connect(
                    self._on_frame, reconnect_delays=lambda: backoff_delays(self.settings.backoff_base,
                                                                            self.settings.backoff_max),
                    logger=_AttemptLog(self), compression=None))
                done, _ = await asyncio.wait({run, stop_task}, return_when=asyncio.FIRST_COMPLETED)
                if run not in done:  # asked to stop: close cleanly, then give up on the connection
                    await self._shutdown(client, run)
                    return
                self.health.connected = False
                try:
                    run.result()
                    why = "the server closed the connection"
                except AuthError as exc:
                    self._fatal = AuthRefused(
                        f"the WebSocket server at {self.settings.url} refused the API key (auth_failed: "
                        f"{self._scrub(str(exc))}). Hint: check POLYGON_API_KEY / MASSIVE_API_KEY (or --api-key) "
                        "and that your plan includes the WebSocket feed (real time, or --delayed).")
                    return
                except Exception as exc:  # a drop: ConnectionClosedError, OSError, a timed-out handshake
                    why = f"{type(exc).__name__}: {self._scrub(str(exc))[:200]}"
                if self._fatal is not None or self._stopping.is_set():
                    return
                if self._carried:
                    delays = backoff_delays(self.settings.backoff_base, self.settings.backoff_max)
                wait = next(delays)
                self.health.reconnects += 1
                self.health.last_error = why
                self._note(f"WebSocket connection lost ({why}); reconnecting in {wait:.1f} s "
                           f"(reconnect {self.health.reconnects})")
                try:
                    await asyncio.wait_for(asyncio.shield(stop_task), wait)
                except asyncio.TimeoutError:
                    pass
        finally:
            stop_task.cancel()
            await self._close_socket(client)

    @staticmethod
    async def _close_socket(client: Any) -> None:
        """The socket of a connection the client gave up on (it leaves it open after `auth_failed`)."""
        ws = client.websocket
        if ws is None:
            return
        try:
            await asyncio.wait_for(ws.close(), 1)
        except Exception:  # a peer that does not answer the close: drop the connection
            ws.transport.abort()
        client.websocket = None

    async def _shutdown(self, client: Any, run: asyncio.Future[Any]) -> None:
        """A clean close of an open socket, letting the client hand over the frames already received; between
        connections (a retry's wait), just the end of the attempt."""
        try:
            if client.websocket is not None:
                await asyncio.wait_for(client.close(), 2)
                await asyncio.wait_for(asyncio.shield(run), 2)
        except Exception:  # a close that fails or hangs: the task is cancelled below either way
            pass
        run.cancel()
        self.health.connected = False

    def _scrub(self, text: str) -> str:
        return redact(text, [self.settings.api_key.reveal()] if self.settings.api_key else [])

    async def _on_frame(self, raw: str | bytes) -> None:
        received = time.time()
        health = self.health
        if not health.connected:
            health.connected = True
            health.connects += 1
            self._fresh = health.connects > 1
        rows, statuses, bad = parse_frame(raw, EVENTS[self.timeframe])
        health.frames += 1
        if bad:
            health.malformed += bad
            if health.malformed <= 3:
                log.warning("skipped %d unreadable event(s) in a WebSocket frame: %.200r", bad, raw)
        if rows:
            health.bars += len(rows)
            self._carried = True
            if self._fresh:
                self._fresh = False
                self._queue.put(Reconnected(max(r[1] for r in rows)))
            self._queue.put((received, rows))
        for status in statuses:
            await self._on_status(status)

    async def _on_status(self, status: dict[str, Any]) -> None:
        kind, message = str(status.get("status", "")), str(status.get("message", ""))
        if kind == "success" and message.startswith("subscribed to:"):
            self.health.subscribed.add(message.split(":", 1)[1].strip())
        elif kind == "max_connections":
            self._fatal = TakenOver(
                f"another connection with this API key took over the WebSocket feed (max_connections: "
                f"{message!r}); the server keeps the newest connection, so colfill stops instead of pushing it out "
                "in turn. Hint: stop the other consumer of this key, or ask Massive for more connections.")
            await self._client.close()
        elif kind == "force_disconnect":
            self._note(f"the server ended this connection (force_disconnect: {message!r}); reconnecting")
        elif kind == "slow_consumer":
            self._note(f"the server dropped this connection because colfill read its frames too slowly "
                       f"(slow_consumer: {message!r}); bars may be missing until the reconnect. Hint: fewer "
                       "--tickers, a faster store, or backfill the gap with `colfill run --source rest`.")
        elif kind in ("error", "auth_timeout"):
            self._note(f"WebSocket server: {kind}: {message}")
