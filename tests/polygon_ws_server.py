"""A local Polygon/Massive stocks WebSocket server, so live tests and benchmarks run without the network.

It speaks the protocol as Polygon documents it: `connected` on open, `auth` answered with
`auth_success` or `auth_failed` (then closed), `subscribe` answered with one `success` status per topic,
every frame a JSON array. Bars are put on a tape (`publish`, `play`, `replay_recorded`): each connection
sends the tape from where the previous connection stopped, filtered by its subscriptions, so a test can
drop a connection mid-stream and see every bar arrive once the client has reconnected and resubscribed.

Faults, each for the next connection that reaches it:
- `drop_after(n, resend=r)`: abort the connection (no close frame, as a network drop looks) after `n` more
  frames, and make the next connection start `r` frames back (a resend: bars received twice);
- `kick(status)`: send a `max_connections`, `force_disconnect` or `slow_consumer` status, then close;
- `outage()` ... `resume()`: abort the connection and every new one until `resume()`; the frames published
  meanwhile are never sent (no replay, as on the real feed): the next connection starts at the tape's end;
- a wrong key gets `auth_failed` and a close.

A REST face: `rest=PolygonServer(...)` adds every minute bar to that REST replay server as it is published
(the feed's timeline: a bar exists once its minute's event went out, a revision replaces it once sent), whether
or not a client was connected to receive it.

`stamp=True` records the wall-clock time each bar left (`sent_at[(sym, s)]`), for latency benchmarks.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

FRAMES_FILE = Path(__file__).resolve().parent / "fixtures" / "polygon" / "websocket_samples" / "stocks_frames.jsonl"
STATUS_MESSAGES = {
    "max_connections": "Maximum number of connections exceeded.",
    "force_disconnect": "Forced disconnect.",
    "slow_consumer": "Slow consumer: messages were dropped.",
}


def recorded_frames() -> list[list[dict[str, Any]]]:
    """The recorded sample frames (one JSON array a line)."""
    return [json.loads(line) for line in FRAMES_FILE.read_text().splitlines() if line.strip()]


def minute_bar(sym: str, s: int, close: float, volume: float = 100.0, **extra: Any) -> dict[str, Any]:
    """An `AM` event for the minute starting at `s` (epoch ms), shaped like the recorded one."""
    bar = {"ev": "AM", "sym": sym, "v": volume, "av": volume * 10, "op": close, "vw": close,
           "o": close, "c": close, "h": close + 0.05, "l": close - 0.05, "a": close, "z": 3,
           "s": s, "e": s + 60_000}
    bar.update(extra)
    return bar


class PolygonWsServer:
    """The server in a background thread (see the module docstring); a context manager."""

    def __init__(self, api_key: str = "test-key", market: str = "stocks", stamp: bool = False,
                 rest: Any = None) -> None:
        self.api_key = api_key
        self.rest = rest
        self.down = False
        self._live: set[Any] = set()
        self.market = market
        self.stamp = stamp
        self.tape: list[list[dict[str, Any]]] = []
        self.cursor = 0  # the next tape frame to send
        self.connections = 0
        self.auths: list[bool] = []  # per auth attempt: accepted?
        self.subscribes: list[str] = []  # params of every subscribe message, in order
        self.sent_frames = 0
        self.sent_at: dict[tuple[str, int], float] = {}
        self._drops: list[tuple[int, int]] = []  # (frames to send before dropping, resend)
        self._kicks: list[str] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self.port = 0

    # -- life cycle --

    def __enter__(self) -> PolygonWsServer:
        self._thread = threading.Thread(target=self._run, name="polygon-ws-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the WebSocket test server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        if self._thread is not None:
            self._thread.join(10)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/{self.market}"

    @property
    def feed(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        from websockets.asyncio.server import serve

        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        async with serve(self._handle, "127.0.0.1", 0, compression=None, close_timeout=2) as server:
            self._server = server
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await server.wait_closed()

    # -- what tests call --

    def publish(self, events: Iterable[dict[str, Any]], per_frame: int = 1) -> None:
        """Put events on the tape, `per_frame` to a frame."""
        events = list(events)
        frames = [events[i:i + per_frame] for i in range(0, len(events), per_frame)]
        with self._lock:
            self.tape.extend(frames)
        if self.rest is not None:
            by_sym: dict[str, list[dict[str, Any]]] = {}
            for e in events:
                if e.get("ev") == "AM":
                    by_sym.setdefault(e["sym"], []).append({"t": e["s"], "o": e["o"], "h": e["h"], "l": e["l"],
                                                            "c": e["c"], "v": e["v"], "vw": e.get("vw"),
                                                            "n": e.get("z")})
            for sym, bars in by_sym.items():
                self.rest.add_aggs(sym, bars)
        self._poke()

    def play(self, events: Sequence[dict[str, Any]], rate: float, per_frame: int = 1) -> threading.Thread:
        """Publish `events` at `rate` events a second (paced on the wall clock), from a thread; returns it."""

        def pace() -> None:
            t0 = time.perf_counter()
            for i in range(0, len(events), per_frame):
                due = t0 + i / rate
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                self.publish(events[i:i + per_frame], per_frame)

        thread = threading.Thread(target=pace, name="polygon-ws-play", daemon=True)
        thread.start()
        return thread

    def replay_recorded(self) -> None:
        """The recorded sample frames' events (bars, trades, quotes; not their statuses) onto the tape."""
        with self._lock:
            self.tape.extend([[e for e in f if e.get("ev") != "status"] for f in recorded_frames()
                              if any(e.get("ev") != "status" for e in f)])
        self._poke()

    def drop_after(self, frames: int, resend: int = 0) -> None:
        with self._lock:
            self._drops.append((frames, resend))

    def kick(self, status: str) -> None:
        """Send `status` on the current (or next) connection before its next frame, then close it."""
        if status not in STATUS_MESSAGES:
            raise ValueError(f"unknown status {status!r}")
        with self._lock:
            self._kicks.append(status)
        self._poke()

    def outage(self) -> None:
        """Drop the connection now and refuse (abort) every new one until `resume()`."""
        self.down = True
        loop = self._loop
        if loop is not None:
            for ws in list(self._live):
                loop.call_soon_threadsafe(ws.transport.abort)

    def resume(self) -> None:
        """End the outage: what was published meanwhile is skipped, the next connection starts at the tape's end."""
        with self._lock:
            self.cursor = len(self.tape)
            self.down = False
        self._poke()

    def pending(self) -> int:
        with self._lock:
            return len(self.tape) - self.cursor

    def _poke(self) -> None:
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    # -- one connection --

    async def _handle(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        self.connections += 1
        if self.down:
            ws.transport.abort()
            return
        self._live.add(ws)
        try:
            await ws.send(json.dumps([{"ev": "status", "status": "connected", "message": "Connected Successfully"}]))
            topics: set[str] = set()
            authed = False
            while not authed:
                msg = json.loads(await ws.recv())
                if msg.get("action") != "auth":
                    await ws.send(json.dumps([{"ev": "status", "status": "auth_required",
                                               "message": "you must authenticate first"}]))
                    continue
                ok = msg.get("params") == self.api_key
                self.auths.append(ok)
                if not ok:
                    await ws.send(json.dumps([{"ev": "status", "status": "auth_failed",
                                               "message": "authentication failed"}]))
                    await ws.close()
                    return
                authed = True
                await ws.send(json.dumps([{"ev": "status", "status": "auth_success", "message": "authenticated"}]))
            reader = asyncio.create_task(self._read(ws, topics))
            try:
                await self._send_tape(ws, topics, reader)
            finally:
                reader.cancel()
        except ConnectionClosed:
            return
        finally:
            self._live.discard(ws)

    async def _read(self, ws: Any, topics: set[str]) -> None:
        async for raw in ws:
            msg = json.loads(raw)
            params = [p.strip() for p in str(msg.get("params", "")).split(",") if p.strip()]
            if msg.get("action") == "subscribe":
                self.subscribes.append(msg.get("params", ""))
                topics.update(params)
                await ws.send(json.dumps([{"ev": "status", "status": "success", "message": f"subscribed to: {p}"}
                                          for p in params]))
                self._poke()
            elif msg.get("action") == "unsubscribe":
                topics.difference_update(params)

    @staticmethod
    def _wanted(event: dict[str, Any], topics: set[str]) -> bool:
        ev = event.get("ev")
        return f"{ev}.{event.get('sym')}" in topics or f"{ev}.*" in topics

    async def _send_tape(self, ws: Any, topics: set[str], reader: asyncio.Task[None]) -> None:
        assert self._wake is not None
        budget: int | None = None
        resend = 0
        with self._lock:
            if self._drops:
                budget, resend = self._drops.pop(0)
        while not reader.done():
            with self._lock:
                kick = self._kicks.pop(0) if self._kicks and topics else None
            if kick:
                await ws.send(json.dumps([{"ev": "status", "status": kick, "message": STATUS_MESSAGES[kick]}]))
                await ws.close(1008 if kick == "max_connections" else 1000)
                return
            if budget == 0:
                with self._lock:
                    self.cursor = max(0, self.cursor - resend)
                ws.transport.abort()  # a network drop: no close frame
                return
            frame = None
            if topics and not self.down:
                with self._lock:
                    if self.cursor < len(self.tape):
                        frame = [e for e in self.tape[self.cursor] if self._wanted(e, topics)]
                        self.cursor += 1
            if frame is None:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), 0.2)
                except asyncio.TimeoutError:
                    pass
                continue
            if not frame:
                continue
            if self.stamp:
                now = time.time()
                for e in frame:
                    self.sent_at[(e.get("sym"), e.get("s"))] = now
            await ws.send(json.dumps(frame, separators=(",", ":")))
            self.sent_frames += 1
            if budget is not None:
                budget -= 1


def main(argv: list[str] | None = None) -> None:
    """A server in a process of its own (benchmarks: no GIL shared with the engine measured). Prints its URL,
    waits for a subscription, plays `--tickers` x `--minutes` generated bars at `--rate` bars/s, then on
    stdin's end writes `{"sym s": sent_at}` to `--stamps` and exits."""
    import argparse
    import sys

    ap = argparse.ArgumentParser()
    ap.add_argument("--key", default="bench-key")
    ap.add_argument("--tickers", type=int, default=100)
    ap.add_argument("--minutes", type=int, default=50)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--per-frame", type=int, default=1)
    ap.add_argument("--prefix", default="B")
    ap.add_argument("--stamps", default="")
    args = ap.parse_args(argv)
    names = [f"{args.prefix}{i:04d}" for i in range(args.tickers)]
    t0 = 1_704_205_800_000
    events = [minute_bar(n, t0 + m * 60_000, 50.0 + (m % 17) * 0.1 + k * 0.01) for m in range(args.minutes)
              for k, n in enumerate(names)]
    with PolygonWsServer(api_key=args.key, stamp=bool(args.stamps)) as srv:
        print(srv.url, flush=True)
        while not srv.subscribes:
            time.sleep(0.01)
        time.sleep(0.3)
        started = time.time()
        srv.play(events, args.rate, args.per_frame).join()
        while srv.pending():
            time.sleep(0.001)
        print(json.dumps({"sent": len(events), "seconds": time.time() - started}), flush=True)
        sys.stdin.read()
        if args.stamps:
            Path(args.stamps).write_text(json.dumps({f"{s} {t}": v for (s, t), v in srv.sent_at.items()}))


if __name__ == "__main__":
    main()
