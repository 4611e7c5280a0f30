"""A local Polygon/Massive REST replay server, so REST tests run against real HTTP without the network.

It answers from three sources, in this order: generated aggregates (`add_aggs`), the recorded mocks of the
official client's own test suite (see `tests/fixtures/polygon/SOURCE.md`), and empty Polygon-shaped answers
for aggregates nobody added. Splits and dividends added with `add_reference` join the recorded ones, and
generated aggregates asked for `adjusted=true` are split-adjusted here, by the server's own arithmetic (each
bar's prices divided and volume multiplied by the ratios of the ticker's splits after its New York date), so
tests can hold colfill's adjusted views against what the API would answer. Faults (`inject`) and a global
`latency` let tests exercise retries, timeouts and rate limits; `requests` logs every request received so
tests can count and time them.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import uuid
from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit
from zoneinfo import ZoneInfo

MOCKS_DIR = Path(__file__).resolve().parent / "fixtures" / "polygon" / "test_rest" / "mocks"
NEW_YORK = ZoneInfo("America/New_York")
BAR_KEYS = ("t", "o", "h", "l", "c", "v", "vw", "n")
TIMESPANS = ("minute", "day")
FAULTS = ("429", "500", "502", "503", "slow", "drop", "malformed", "401", "403")
DEFAULT_LIMIT, MAX_LIMIT = 5000, 50000
UNKNOWN_KEY = {"status": "ERROR", "error": "Unknown API Key"}
NOT_ENTITLED = {"status": "NOT_AUTHORIZED",
                "message": "You are not entitled to this data. Please upgrade your plan at https://polygon.io/pricing"}
_AGGS = re.compile(r"/v2/aggs/ticker/([^/]+)/range/([^/]+)/([^/]+)/([^/]+)/([^/]+)")
_GROUPED = re.compile(r"/v2/aggs/grouped/locale/us/market/stocks/(\d{4}-\d{2}-\d{2})")
_NEXT_URL = re.compile(r'("next_url"\s*:\s*")https?://[^/"]+')
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

Params = dict[str, str]
Reply = tuple[int, dict[str, str], bytes]


@dataclass
class Fault:
    """One queued fault: applies to the next `count` requests whose path starts with `path_prefix`."""

    kind: str
    count: int
    path_prefix: str | None
    retry_after: float
    delay: float


def _request_id() -> str:
    return uuid.uuid4().hex


def _json(status: int, body: Mapping[str, Any], headers: dict[str, str] | None = None) -> Reply:
    return status, headers or {}, json.dumps(body).encode()


def _ny_midnight_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=NEW_YORK).timestamp() * 1000)


def _ny_date(ms: int) -> date:
    return datetime.fromtimestamp(ms / 1000, NEW_YORK).date()


def _bound(text: str, end: bool) -> int:
    """A range bound in epoch ms, inclusive: a date is the whole New York day, anything else is epoch ms."""
    if _DATE.fullmatch(text):
        day = date.fromisoformat(text)
        return _ny_midnight_ms(day + timedelta(days=1)) - 1 if end else _ny_midnight_ms(day)
    return int(text)


def _rows(bars: Any) -> list[dict[str, Any]]:
    """Bars as dicts, from a list of mappings, a polars DataFrame (`to_dicts`) or a pyarrow Table (`to_pylist`)."""
    if hasattr(bars, "to_dicts"):
        bars = bars.to_dicts()
    elif hasattr(bars, "to_pylist"):
        bars = bars.to_pylist()
    rows = [{k: row[k] for k in BAR_KEYS if k in row and row[k] is not None} for row in bars]
    if any("t" not in row for row in rows):
        raise ValueError("every bar needs a 't' (epoch ms)")
    for row in rows:
        row["t"] = int(row["t"])
    return rows


def _index_mocks(root: Path) -> dict[str, list[tuple[Params, Path]]]:
    """URL path -> (query params, file) of every recorded mock, by the rule of the client's test_rest/base.py."""
    index: dict[str, list[tuple[Params, Path]]] = {}
    for file in sorted(root.rglob("*.json")):
        url = re.sub(r"/index$", "", "/" + file.relative_to(root).as_posix()[: -len(".json")])
        url = url.replace("&", "?", 1).replace(";", ":", 1)
        path, _, query = url.partition("?")
        index.setdefault(path, []).append((dict(parse_qsl(query, keep_blank_values=True)), file))
    return index


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: PolygonServer


class _Handler(BaseHTTPRequestHandler):
    """Keep-alive HTTP/1.1 like the real API, so urllib3's connection pool behaves as in production."""

    protocol_version = "HTTP/1.1"
    timeout = 30
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection, True)

    def finish(self) -> None:
        self.server.owner._track(self.connection, False)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: pytest output should show test failures, not access logs."""

    def do_GET(self) -> None:
        reply = self.server.owner._handle(self.path, self.headers.get("Authorization"))
        if reply is None:
            self.close_connection = True
            return
        status, headers, body = reply
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            self.close_connection = True


class PolygonServer:
    """Serves Polygon's REST API on 127.0.0.1 (an ephemeral port) from a daemon thread until `close()`."""

    def __init__(self, api_key: str | None = None, mocks: Path | None = MOCKS_DIR, latency: float = 0.0) -> None:
        if mocks is not None and not mocks.is_dir():
            raise FileNotFoundError(f"recorded Polygon mocks not found at {mocks} (pass mocks=None to go without)")
        self.api_key = api_key
        self.latency = latency
        self.requests: list[tuple[float, str]] = []
        self._mocks = _index_mocks(mocks) if mocks is not None else {}
        self._bars: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._reference: dict[str, list[dict[str, Any]]] = {"splits": [], "dividends": []}
        self._answers: dict[str, Reply] = {}  # generated aggregates by request path, until bars are added
        self._generation = 0
        self._faults: list[Fault] = []
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), name="polygon-server",
                                        daemon=True)
        self._thread.start()

    def __enter__(self) -> PolygonServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving and cut kept-alive connections, so a closed server really looks down to the client."""
        if not self._thread.is_alive():
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            for conn in self._connections:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self._thread.join()

    def add_aggs(self, ticker: str, bars: Any, timespan: str = "minute") -> None:
        """Add bars (dicts or a polars/pyarrow table with t, o, h, l, c, v, vw, n); a later bar with the same t wins."""
        if timespan not in TIMESPANS:
            raise ValueError(f"timespan must be one of {TIMESPANS}, not {timespan!r}")
        with self._lock:
            merged = {bar["t"]: bar for bar in self._bars.get((ticker, timespan), [])}
            merged.update((bar["t"], bar) for bar in _rows(bars))
            self._bars[(ticker, timespan)] = [merged[t] for t in sorted(merged)]
            self._answers.clear()
            self._generation += 1

    def add_reference(self, table: str, rows: list[dict[str, Any]]) -> None:
        """Add rows to `/v3/reference/{table}` (splits or dividends), served on the first page before the recorded."""
        if table not in self._reference:
            raise ValueError(f"table must be one of {sorted(self._reference)}, not {table!r}")
        with self._lock:
            self._reference[table].extend(dict(r) for r in rows)

    def split_factor(self, ticker: str, day: date) -> float:
        """Product of split_to/split_from over the added splits of `ticker` executed after `day`."""
        factor = 1.0
        for s in self._reference["splits"]:
            if s["ticker"] == ticker and date.fromisoformat(s["execution_date"]) > day:
                factor *= s["split_to"] / s["split_from"]
        return factor

    def inject(self, fault: str, count: int = 1, path_prefix: str | None = None,
               retry_after: float = 1, delay: float = 1.0) -> None:
        """Queue `fault` for the next `count` requests under `path_prefix` (all paths if None).

        `retry_after` (seconds) is sent as given: urllib3's own retries accept only integers, so pass an int
        when the client's retries are on. `delay` is the sleep of a "slow" fault.
        """
        if fault not in FAULTS:
            raise ValueError(f"fault must be one of {FAULTS}, not {fault!r}")
        if count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._faults.append(Fault(fault, count, path_prefix, retry_after, delay))

    def _track(self, conn: socket.socket, open_: bool) -> None:
        with self._lock:
            if open_:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.path_prefix is None or path.startswith(fault.path_prefix):
                    fault.count -= 1
                    if fault.count == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _handle(self, raw_path: str, authorization: str | None) -> Reply | None:
        """The reply to one GET, or None to drop the connection."""
        with self._lock:
            self.requests.append((time.monotonic(), raw_path))
        if self.latency:
            time.sleep(self.latency)
        split = urlsplit(raw_path)
        path = unquote(split.path)
        params = dict(parse_qsl(split.query, keep_blank_values=True))
        fault = self._take_fault(path)
        if fault is not None:
            if fault.kind == "drop":
                return None
            if fault.kind == "slow":
                time.sleep(fault.delay)
            elif fault.kind == "429":
                return _json(429, {"status": "ERROR", "request_id": _request_id(),
                                   "error": "You've exceeded the maximum requests per minute."},
                             {"Retry-After": f"{fault.retry_after:g}"})
            elif fault.kind in ("500", "502", "503"):
                return _json(int(fault.kind), {"status": "ERROR", "request_id": _request_id(),
                                               "error": f"injected {fault.kind}"})
            elif fault.kind == "401":
                return _json(401, {"status": "ERROR", "request_id": _request_id(), "error": UNKNOWN_KEY["error"]})
            elif fault.kind == "403":
                return _json(403, {"status": NOT_ENTITLED["status"], "request_id": _request_id(),
                                   "message": NOT_ENTITLED["message"]})
        params_key = params.pop("apiKey", None)
        if self.api_key is not None and params_key != self.api_key and authorization != f"Bearer {self.api_key}":
            reply = _json(401, {"status": "ERROR", "request_id": _request_id(), "error": UNKNOWN_KEY["error"]})
        else:
            reply = self._route(path, params)
        if fault is not None and fault.kind == "malformed":
            return 200, reply[1], reply[2][: len(reply[2]) // 2]
        return reply

    def _route(self, path: str, params: Params) -> Reply:
        aggs, grouped = _AGGS.fullmatch(path), _GROUPED.fullmatch(path)
        with self._lock:
            generated = bool(aggs and (aggs[1], aggs[3]) in self._bars)
            if grouped:
                day = date.fromisoformat(grouped[1])
                generated = any(_ny_date(b["t"]) == day for (_, ts), bars in self._bars.items() if ts == "day"
                                for b in bars)
        if not generated:
            recorded = self._recorded(path, params)
            table = path.rsplit("/", 1)[-1]
            if path.startswith("/v3/reference/") and self._reference.get(table) and "cursor" not in params:
                recorded = self._with_added(table, recorded)
            if recorded is not None:
                return recorded
        if aggs:  # the same request gets the same answer, encoded once (a benchmark measures the client, not us)
            key = f"{path}?{urlencode(sorted(params.items()))}"
            with self._lock:
                answer, generation = self._answers.get(key), self._generation
            if answer is None:
                answer = self._aggs(aggs[1], aggs[2], aggs[3], aggs[4], aggs[5], params)
                with self._lock:
                    if answer[0] == 200 and generation == self._generation:
                        self._answers[key] = answer
            return answer
        if grouped:
            return self._grouped(date.fromisoformat(grouped[1]), params)
        return _json(404, {"status": "NOT_FOUND", "request_id": _request_id(), "message": f"no route for {path}"})

    def _recorded(self, path: str, params: Params) -> Reply | None:
        """The most specific recorded file whose query parameters all appear, with equal values, in the request.

        A subset rather than an exact match because the client adds its defaults (e.g. `limit=10&sort=ticker`
        for list_tickers) that the recordings leave out; the client's own tests matched the same way.
        """
        candidates = [(len(p), f) for p, f in self._mocks.get(path, [])
                      if all(params.get(k) == v for k, v in p.items())]
        if not candidates:
            return None
        body = max(candidates, key=lambda c: c[0])[1].read_text()
        return 200, {}, _NEXT_URL.sub(lambda m: m[1] + self.url, body).encode()

    def _with_added(self, table: str, recorded: Reply | None) -> Reply:
        body = json.loads(recorded[2]) if recorded is not None else {"status": "OK", "request_id": _request_id()}
        with self._lock:
            body["results"] = [*self._reference[table], *body.get("results", [])]
        return _json(200, body)

    def _aggs(self, ticker: str, multiplier: str, timespan: str, from_: str, to: str, params: Params) -> Reply:
        """One page of generated bars; `next_url` narrows the range to the bars not yet returned."""
        if multiplier != "1" or timespan not in TIMESPANS:
            return _json(400, {"status": "ERROR", "request_id": _request_id(),
                               "error": "this test server supports multiplier 1 with minute or day only"})
        try:
            lo, hi = _bound(from_, end=False), _bound(to, end=True)
            limit = min(int(params.get("limit", DEFAULT_LIMIT)), MAX_LIMIT)
        except ValueError as e:
            return _json(400, {"status": "ERROR", "request_id": _request_id(), "error": str(e)})
        if limit < 1:
            return _json(400, {"status": "ERROR", "request_id": _request_id(), "error": "limit must be at least 1"})
        descending = params.get("sort", "asc") == "desc"
        adjusted = params.get("adjusted", "true") != "false"
        with self._lock:
            bars = self._bars.get((ticker, timespan), [])
            times = [b["t"] for b in bars]
            chosen = bars[bisect_left(times, lo):bisect_right(times, hi)]
        if descending:
            chosen = chosen[::-1]
        page = chosen[:limit]
        if adjusted:
            page = [self._adjusted(ticker, b) for b in page]
        body: dict[str, Any] = {"ticker": ticker, "queryCount": len(page), "resultsCount": len(page),
                                "adjusted": adjusted}
        if page:
            body["results"] = [dict(b) for b in page]
        body["status"] = "OK"
        body["request_id"] = _request_id()
        if page:
            body["count"] = len(page)
        if len(chosen) > limit:
            nxt = chosen[limit]["t"]
            lo, hi = (lo, nxt) if descending else (nxt, hi)
            query = urlencode({"adjusted": str(adjusted).lower(), "sort": "desc" if descending else "asc",
                               "limit": limit})
            body["next_url"] = f"{self.url}/v2/aggs/ticker/{ticker}/range/1/{timespan}/{lo}/{hi}?{query}"
        return _json(200, body)

    def _adjusted(self, ticker: str, bar: dict[str, Any]) -> dict[str, Any]:
        factor = self.split_factor(ticker, _ny_date(bar["t"]))
        out = {k: (v / factor if k in ("o", "h", "l", "c", "vw") and v is not None else v) for k, v in bar.items()}
        out["v"] = bar["v"] * factor
        return out

    def _grouped(self, day: date, params: Params) -> Reply:
        """Every ticker's generated day bar of `day`, stamped 16:00 New York as the real endpoint does."""
        close_ms = int(datetime(day.year, day.month, day.day, 16, tzinfo=NEW_YORK).timestamp() * 1000)
        with self._lock:
            results = [{"T": ticker, **bar, "t": close_ms} for (ticker, ts), bars in sorted(self._bars.items())
                       if ts == "day" for bar in bars if _ny_date(bar["t"]) == day]
        body: dict[str, Any] = {"queryCount": len(results), "resultsCount": len(results),
                                "adjusted": params.get("adjusted", "true") != "false"}
        if results:
            body["results"] = results
        body["status"] = "OK"
        body["request_id"] = _request_id()
        if results:
            body["count"] = len(results)
        return _json(200, body)
