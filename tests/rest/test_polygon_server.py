"""The replay server, checked through the official client, so REST tests can trust what it serves."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
import urllib3
from polygon import RESTClient
from polygon.exceptions import BadResponse

from tests.polygon_server import MOCKS_DIR, NEW_YORK, PolygonServer

START = int(datetime(2024, 3, 8, 9, 30, tzinfo=NEW_YORK).timestamp() * 1000)  # a Friday, before the DST switch


def minute_bars(n: int, start: int = START) -> list[dict[str, Any]]:
    return [{"t": start + i * 60_000, "o": 1.0 + i, "h": 2.0 + i, "l": 0.5 + i, "c": 1.5 + i, "v": 100 + i,
             "vw": 1.2 + i, "n": 3} for i in range(n)]


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    """A bare GET, to see statuses and headers the client turns into exceptions."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


@pytest.fixture
def srv() -> Iterator[PolygonServer]:
    with PolygonServer() as server:
        yield server


def client(srv: PolygonServer, retries: int = 0, **kw: Any) -> RESTClient:
    return RESTClient(api_key="k", base=srv.url, retries=retries, **kw)


def test_loopback_only_and_fixtures_found(srv: PolygonServer) -> None:
    assert srv.url.startswith("http://127.0.0.1:")
    assert srv._httpd.server_address[0] == "127.0.0.1"
    assert MOCKS_DIR.parts[-4:] == ("fixtures", "polygon", "test_rest", "mocks") and MOCKS_DIR.is_dir()
    assert MOCKS_DIR.is_relative_to(Path(__file__).resolve().parents[2])  # inside the repository


def test_close_stops_serving() -> None:
    srv = PolygonServer(mocks=None)
    c = client(srv)
    assert c.get_aggs("X", 1, "minute", "2024-03-08", "2024-03-08") == []
    srv.close()
    srv.close()
    with pytest.raises(urllib3.exceptions.HTTPError):
        c.get_aggs("X", 1, "minute", "2024-03-08", "2024-03-08")


def test_recorded_tickers_paginate_over_two_pages(srv: PolygonServer) -> None:
    pages = sorted((MOCKS_DIR / "v3" / "reference").glob("tickers*.json"), key=lambda p: "cursor" in p.name)
    expected = [r["ticker"] for p in pages for r in json.loads(p.read_text())["results"]]
    assert [t.ticker for t in client(srv).list_tickers()] == expected
    assert len(expected) == 4
    assert [p.split("?")[0] for _, p in srv.requests] == ["/v3/reference/tickers"] * 2
    assert srv.requests[1][1].startswith("/v3/reference/tickers?cursor=")
    first = json.loads(get(srv.url + "/v3/reference/tickers")[2])
    assert first["next_url"].startswith(srv.url + "/v3/reference/tickers?cursor=YWN0aXZl")


def test_recorded_match_ignores_order_and_api_key(srv: PolygonServer) -> None:
    status, _, body = get(srv.url + "/v2/aggs/grouped/locale/us/market/stocks/2005-04-04?apiKey=x&adjusted=true")
    assert status == 200 and json.loads(body)["results"][0]["T"] == "GIK"
    assert [a.ticker for a in client(srv).get_grouped_daily_aggs("2005-04-04", adjusted=True)] == ["GIK"]
    assert get(srv.url + "/v2/aggs/grouped/locale/us/market/stocks/2005-04-04")[2].count(b"GIK") == 0
    assert get(srv.url + "/v9/nothing")[0] == 404


@pytest.mark.parametrize("limit", [50000, 1000])
def test_generated_minute_bars_exactly_once(srv: PolygonServer, limit: int) -> None:
    bars = minute_bars(5000)
    srv.add_aggs("AAPL", bars)
    c = client(srv)
    got = [a.timestamp for a in c.list_aggs("AAPL", 1, "minute", "2024-03-08", "2024-03-15", limit=limit)]
    assert got == [b["t"] for b in bars]
    assert len(srv.requests) == -(-5000 // limit)
    first = c.get_aggs("AAPL", 1, "minute", "2024-03-08", "2024-03-15", limit=limit)
    assert [a.timestamp for a in first] == got[:limit] and first[0].vwap == 1.2 and first[0].transactions == 3


def test_descending_pages_and_ms_bounds(srv: PolygonServer) -> None:
    srv.add_aggs("AAPL", minute_bars(250))
    got = [a.timestamp for a in client(srv).list_aggs("AAPL", 1, "minute", START + 60_000, START + 200 * 60_000,
                                                      sort="desc", limit=70)]
    assert got == [START + i * 60_000 for i in range(200, 0, -1)]
    assert len(srv.requests) == 3


def test_dates_are_whole_new_york_days(srv: PolygonServer) -> None:
    midnight = int(datetime(2024, 3, 9, tzinfo=NEW_YORK).timestamp() * 1000)
    srv.add_aggs("AAPL", minute_bars(3, start=midnight - 60_000))
    got = client(srv).get_aggs("AAPL", 1, "minute", "2024-03-09", "2024-03-09")
    assert [a.timestamp for a in got] == [midnight, midnight + 60_000]


def test_unknown_ticker_is_empty_like_polygon(srv: PolygonServer) -> None:
    assert client(srv).get_aggs("NOPE", 1, "minute", "2024-03-08", "2024-03-08") == []
    body = json.loads(get(srv.url + "/v2/aggs/ticker/NOPE/range/1/minute/2024-03-08/2024-03-08")[2])
    assert set(body) == {"ticker", "queryCount", "resultsCount", "adjusted", "status", "request_id"}
    assert (body["resultsCount"], body["status"]) == (0, "OK")


def test_tables_and_grouped_daily(srv: PolygonServer) -> None:
    days = [int(datetime(2024, 3, d, tzinfo=NEW_YORK).timestamp() * 1000) for d in (7, 8)]
    srv.add_aggs("AAPL", pl.DataFrame({"t": days, "o": [1.0, 2.0], "h": [1.0, 2.0], "l": [1.0, 2.0],
                                       "c": [1.0, 2.0], "v": [10, 20], "vw": [1.0, 2.0], "n": [1, 2]}), "day")
    srv.add_aggs("MSFT", pa.table({"t": days[1:], "o": [5.0], "h": [5.0], "l": [5.0], "c": [5.0], "v": [50],
                                   "vw": [5.0], "n": [5]}), "day")
    got = client(srv).get_grouped_daily_aggs("2024-03-08")
    assert [(a.ticker, a.close, a.volume) for a in got] == [("AAPL", 2.0, 20), ("MSFT", 5.0, 50)]
    assert {a.timestamp for a in got} == {int(datetime(2024, 3, 8, 16, tzinfo=NEW_YORK).timestamp() * 1000)}
    assert [a.close for a in client(srv).get_aggs("AAPL", 1, "day", "2024-03-01", "2024-03-08")] == [1.0, 2.0]
    assert client(srv).get_grouped_daily_aggs("2024-03-09") == []


@pytest.mark.parametrize("status", ["429", "500", "502", "503"])
def test_retryable_statuses_exhaust_the_clients_retries(srv: PolygonServer, status: str) -> None:
    srv.add_aggs("AAPL", minute_bars(1))
    srv.inject(status)
    with pytest.raises(urllib3.exceptions.MaxRetryError, match=f"too many {status} error"):
        client(srv).get_aggs("AAPL", 1, "minute", "2024-03-08", "2024-03-08")
    assert len(client(srv).get_aggs("AAPL", 1, "minute", "2024-03-08", "2024-03-08")) == 1


def test_429_carries_retry_after(srv: PolygonServer) -> None:
    srv.inject("429", count=2)
    srv.inject("429", retry_after=0.2)
    url = srv.url + "/v3/reference/tickers"
    assert [get(url)[1]["Retry-After"] for _ in range(3)] == ["1", "1", "0.2"]
    assert get(url)[0] == 200
    srv.inject("429", retry_after=0)
    assert len(list(client(srv, retries=1).list_tickers())) == 4
    assert len(srv.requests) == 7


def test_drop_is_a_connection_error(srv: PolygonServer) -> None:
    srv.inject("drop")
    with pytest.raises(urllib3.exceptions.HTTPError):
        client(srv).get_aggs("AAPL", 1, "minute", "2024-03-08", "2024-03-08")


def test_malformed_body(srv: PolygonServer) -> None:
    srv.add_aggs("AAPL", minute_bars(10))
    srv.inject("malformed", count=2)
    resp = client(srv).get_aggs("AAPL", 1, "minute", "2024-03-08", "2024-03-08", raw=True)
    assert resp.status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(resp.data)
    # The official client swallows bad JSON: it logs and returns no bars, so callers must check themselves.
    assert client(srv).get_aggs("AAPL", 1, "minute", "2024-03-08", "2024-03-08") == []


@pytest.mark.parametrize(("fault", "key", "text"), [
    ("401", "error", "Unknown API Key"), ("403", "message", "You are not entitled to this data")])
def test_auth_fault_bodies(srv: PolygonServer, fault: str, key: str, text: str) -> None:
    srv.inject(fault)
    with pytest.raises(BadResponse) as err:
        client(srv).get_aggs("AAPL", 1, "minute", "2024-03-08", "2024-03-08")
    body = json.loads(str(err.value))
    assert text in body[key] and body["request_id"]
    assert get(srv.url + "/v3/reference/tickers")[0] == 200


def test_faults_respect_path_prefix_and_count(srv: PolygonServer) -> None:
    srv.inject("500", count=2, path_prefix="/v2/aggs")
    assert get(srv.url + "/v3/reference/tickers")[0] == 200
    assert [get(srv.url + "/v2/aggs/ticker/A/range/1/day/2024-03-08/2024-03-08")[0] for _ in range(3)] == [500, 500,
                                                                                                           200]
    with pytest.raises(ValueError):
        srv.inject("418")


def test_slow_and_latency(srv: PolygonServer) -> None:
    srv.inject("slow", count=2, delay=0.3)
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        urllib.request.urlopen(srv.url + "/v3/reference/tickers", timeout=0.1)
    # RESTClient 1.16.3 never passes its connect/read timeouts to urllib3, so the client just waits.
    began = time.monotonic()
    client(srv, read_timeout=0.1).get_aggs("A", 1, "minute", "2024-03-08", "2024-03-08")
    assert time.monotonic() - began >= 0.3
    srv.latency = 0.1
    began = time.monotonic()
    client(srv).get_aggs("A", 1, "minute", "2024-03-08", "2024-03-08")
    assert time.monotonic() - began >= 0.1


def test_api_key() -> None:
    with PolygonServer(api_key="k") as srv:
        assert client(srv).get_aggs("A", 1, "minute", "2024-03-08", "2024-03-08") == []
        with pytest.raises(BadResponse, match="Unknown API Key"):
            RESTClient(api_key="wrong", base=srv.url, retries=0).get_aggs("A", 1, "minute", "2024-03-08", "2024-03-08")
        assert get(srv.url + "/v3/reference/tickers")[0] == 401
        assert get(srv.url + "/v3/reference/tickers?apiKey=k")[0] == 200


def test_requests_log_is_complete_under_threads(srv: PolygonServer) -> None:
    c = client(srv, num_pools=4)
    threads = [threading.Thread(target=lambda: [c.get_aggs("A", 1, "day", "2024-03-08", "2024-03-08")
                                                for _ in range(10)]) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(srv.requests) == 80
    assert all(a[0] <= b[0] for a, b in zip(srv.requests, srv.requests[1:]))


def test_missing_mocks_dir_fails_loudly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        PolygonServer(mocks=tmp_path / "absent")
