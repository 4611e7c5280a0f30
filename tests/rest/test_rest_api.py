"""`colfill.sources.rest.RestApi`: the real client against the replay server, its faults, the limiter's promise."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

import pytest

from colfill.errors import InvalidArgument, SourceUnreachable, TransientError
from colfill.sources import rest
from colfill.sources.ratelimit import Rate
from colfill.sources.rest import RestApi, RestSettings
from tests.polygon_server import NEW_YORK, PolygonServer
from tests.rest.conftest import most_in_any_window

KEY = "k-hunter2-secret"
START = int(datetime(2024, 3, 4, 4, 0, tzinfo=NEW_YORK).timestamp() * 1000)


def minute_bars(n: int, start: int = START) -> list[dict[str, Any]]:
    return [{"t": start + i * 60_000, "o": 10.0 + i % 7, "h": 11.0 + i % 7, "l": 9.0 + i % 7, "c": 10.5 + i % 7,
             "v": 100.0 + i, "vw": 10.2, "n": 3} for i in range(n)]


@pytest.fixture
def server() -> Any:
    with PolygonServer(api_key=KEY) as srv:
        yield srv


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rest, "BACKOFF_BASE", 0.01)


def api(srv: PolygonServer, rate: str = "1000/s", **kw: Any) -> RestApi:
    settings = RestSettings.from_env(url=srv.url, api_key=KEY, rate=rate)
    if kw:
        settings = RestSettings(**{**settings.__dict__, **kw})
    return RestApi(settings)


def test_bars_come_once_in_the_fewest_requests_unadjusted(server: PolygonServer) -> None:
    server.add_aggs("AAPL", minute_bars(120_000))  # 125 days of full 960-minute sessions, back to back
    frame = api(server).bars("AAPL", "minute", START, START + 120_000 * 60_000)
    assert frame.height == 120_000 and frame["ts"].is_sorted() and frame["ts"].n_unique() == 120_000
    assert frame.columns == ["ticker", "ts", "open", "high", "low", "close", "volume", "vw", "transactions"]
    assert str(frame["ts"].dtype) == "Datetime(time_unit='us', time_zone='UTC')"
    assert frame["ts"][0].timestamp() * 1000 == START and frame["vw"][0] == 10.2 and frame["transactions"][0] == 3
    paths = [p for _, p in server.requests]
    assert len(paths) == 3  # ceil(120,000 / 50,000)
    assert all("adjusted=false" in p and "limit=50000" in p for p in paths)


def test_unknown_ticker_is_empty(server: PolygonServer) -> None:
    assert api(server).bars("NOPE", "minute", START, START + 60_000).height == 0


@pytest.mark.parametrize("fault", ["429", "500", "502", "503", "drop", "malformed"])
def test_transient_faults_are_retried(server: PolygonServer, fault: str) -> None:
    server.add_aggs("AAPL", minute_bars(2_000))
    server.inject(fault, count=2, retry_after=1)
    t0 = time.monotonic()
    frame = api(server).bars("AAPL", "minute", START, START + 2_000 * 60_000)
    assert frame.height == 2_000 and frame["ts"].n_unique() == 2_000
    if fault == "429":
        assert time.monotonic() - t0 >= 2.0  # Retry-After: 1, twice


@pytest.mark.parametrize(("fault", "says"), [("401", r"refused the API key \(401\)"), ("403", "your plan does not")])
def test_refusals_stop_at_once_and_say_why(server: PolygonServer, fault: str, says: str) -> None:
    server.add_aggs("AAPL", minute_bars(10))
    server.inject(fault, count=5)
    with pytest.raises(SourceUnreachable, match=says) as err:
        api(server).bars("AAPL", "minute", START, START + 600_000)
    assert len(server.requests) == 1 and KEY not in str(err.value)


def test_a_wrong_key_is_a_401(server: PolygonServer) -> None:
    settings = RestSettings.from_env(url=server.url, api_key="wrong-key")
    with pytest.raises(SourceUnreachable, match="401"):
        RestApi(settings).bars("AAPL", "minute", START, START + 600_000)


def test_timeouts_are_applied_and_end_in_a_transient_error(server: PolygonServer,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rest, "MAX_ATTEMPTS", 2)
    server.add_aggs("AAPL", minute_bars(10))
    server.inject("slow", count=5, delay=1.0)
    t0 = time.monotonic()
    with pytest.raises(TransientError, match="after 2 attempts"):
        api(server, read_timeout=0.2).bars("AAPL", "minute", START, START + 600_000)
    assert time.monotonic() - t0 < 1.5  # two 0.2 s timeouts, not two 1 s answers


def test_the_limit_holds_in_every_window_with_eight_workers_and_retries(server: PolygonServer) -> None:
    for i in range(8):
        server.add_aggs(f"T{i}", minute_bars(3_000))
    server.inject("500", count=6)
    server.latency = 0.03  # answers take a while: a token counted from its grant would free too early
    client = api(server, rate="10/0.2s")
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for _ in range(4):
                assert client.bars(f"T{i}", "minute", START, START + 3_000 * 60_000).height == 3_000
        except BaseException as exc:  # reported below, from the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    arrived = [t for t, _ in server.requests]  # where the server counts: the time each request reached it
    assert len(arrived) == 8 * 4 + 6  # every attempt, retries too
    assert most_in_any_window(arrived, 0.2) <= 10
    assert max(arrived) - min(arrived) >= 3 * 0.2


def test_settings_need_a_key_and_a_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POLYGON_API_KEY", raising=False)
    monkeypatch.delenv("MASSIVE_API_KEY", raising=False)
    with pytest.raises(InvalidArgument, match="POLYGON_API_KEY or MASSIVE_API_KEY"):
        RestApi(RestSettings.from_env())
    with pytest.raises(InvalidArgument, match="--rest-url"):
        RestSettings.from_env(url="ftp://x")
    monkeypatch.setenv("MASSIVE_API_KEY", "mk-secret")
    settings = RestSettings.from_env()
    assert settings.url == "https://api.massive.com" and "mk-secret" not in repr(settings)
    assert settings.rate == Rate(100, 1.0)


def test_a_page_parses_to_columns_whatever_the_json_holds() -> None:
    """Extra keys ignored, integers read as floats, missing `vw`/`n` null, no `results` an empty page, and a
    truncated body a MalformedResponse (retried by the caller)."""
    from colfill.sources.rest import AGG_FIELDS, MalformedResponse, _parse_page

    body = (b'{"ticker":"A","results":[{"v":100,"vw":1.5,"o":1,"c":2,"h":3,"l":0.5,"t":1700000000000,"n":5,'
            b'"otc":true},{"v":1.5e3,"o":1,"c":2,"h":3,"l":0.5,"t":1700000060000}],"status":"OK",'
            b'"next_url":"https://api.example/v2/aggs/x?cursor=abc"}')
    frame, next_url = _parse_page(body, AGG_FIELDS)
    assert frame.rows() == [(1700000000000, 1.0, 3.0, 0.5, 2.0, 100.0, 1.5, 5),
                            (1700000060000, 1.0, 3.0, 0.5, 2.0, 1500.0, None, None)]
    assert next_url == "https://api.example/v2/aggs/x?cursor=abc"
    empty, none = _parse_page(b'{"ticker":"A","queryCount":0,"resultsCount":0,"status":"OK"}', AGG_FIELDS)
    assert empty.height == 0 and empty.columns == list(AGG_FIELDS) and none is None
    with pytest.raises(MalformedResponse):
        _parse_page(b'{"results":[{"v":1', AGG_FIELDS)


def test_a_host_that_is_down_is_said_at_the_first_failed_connection() -> None:
    """Before the host ever answered, a refused connection is not retried with backoff: one attempt, then
    HostUnreachable (a TransientError: flat-file runs load their bars and exit 1)."""
    from colfill.sources.rest import HostUnreachable, RestApi, RestSettings

    with PolygonServer(api_key="k", mocks=None) as gone:
        url = gone.url
    client = RestApi(RestSettings.from_env(url=url, api_key="k"))
    with pytest.raises(HostUnreachable, match=f"the REST API at {url} cannot be reached"):
        client.grouped("2024-03-04")
    assert len(client.limiter._returned) == 1  # one attempt took a token
    client.close()


def test_a_malformed_reference_page_is_fetched_again(server: PolygonServer) -> None:
    """The listing's pages are read inside the retry, so a garbled page restarts it instead of failing the phase."""
    from colfill.sources.reference import fetch

    clean = fetch(api(server), "splits")
    server.inject("malformed", count=1, path_prefix="/v3/reference/splits")
    assert fetch(api(server), "splits").equals(clean) and clean.num_rows > 0
