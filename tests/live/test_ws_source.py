"""`LiveDataSource` against our WebSocket server (tests/polygon_ws_server.py), through the real official client.

What each test holds: the recorded frames map to the bar schema; one subscribe of every topic per
connection; a drop mid-stream reconnects (with backoff), re-authenticates and resubscribes; auth_failed
and max_connections stop with exit code 3 and say what happened, never the key; force_disconnect and
slow_consumer are reported as what they mean and followed by a reconnect.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from colfill import errors
from colfill.sources.live import (
    AuthRefused,
    LiveDataSource,
    LiveSettings,
    TakenOver,
    backoff_delays,
    parse_frame,
)
from tests.helpers import wait_for
from tests.polygon_ws_server import PolygonWsServer, minute_bar, recorded_frames

KEY = "ws-test-key-5309"
T0 = 1_704_205_800_000  # 2024-01-02 14:30 UTC


def source(srv: PolygonWsServer, tickers: str = "AAPL,MSFT", key: str = KEY) -> LiveDataSource:
    settings = LiveSettings.from_env(tickers, url=srv.url, api_key=key)
    return LiveDataSource(LiveSettings(**{**settings.__dict__, "backoff_base": 0.05}))


def topics(srv: PolygonWsServer) -> list[set[str]]:
    """The topics of each subscribe message the server received."""
    return [set(params.split(",")) for params in srv.subscribes]


def collect(src: LiveDataSource, n: int, timeout: float = 10.0, gaps: list[Any] | None = None
            ) -> list[tuple[Any, ...]]:
    """`n` rows polled; the reconnections met (which hold polling until taken) appended to `gaps`."""
    rows: list[tuple[Any, ...]] = []
    deadline = time.monotonic() + timeout
    while len(rows) < n and time.monotonic() < deadline:
        gap = src.take_gap()
        if gap is not None and gaps is not None:
            gaps.append(gap)
        for _, chunk in src.poll(0.2):
            rows.extend(chunk)
    return rows


def test_recorded_frames_map_to_the_bar_schema() -> None:
    frames = recorded_frames()
    am = next(f for f in frames if f[0].get("ev") == "AM")
    rows, statuses, bad = parse_frame(__import__("json").dumps(am))
    assert (rows, statuses, bad) == ([("GTE", 1610144640000, 0.4488, 0.4489, 0.4486, 0.4486, 4110.0, 0.4488, 685,
                                       1610144700000)], [], 0)
    second = next(f for f in frames if f[0].get("ev") == "A")
    assert parse_frame(__import__("json").dumps(second), "AM")[0] == []  # second bars are another timeframe
    assert parse_frame(__import__("json").dumps(second), "A")[0][0][:2] == ("SPCE", 1610144868000)
    status = frames[-1]
    assert parse_frame(__import__("json").dumps(status))[1] == status
    # fractional volume of newer feeds wins; unreadable events are counted, not fatal
    assert parse_frame('[{"ev":"AM","sym":"A","s":1,"o":1,"h":1,"l":1,"c":1,"v":3,"dv":2.5}]')[0][0][6] == 2.5
    assert parse_frame('[{"ev":"AM","sym":"A","s":1}]')[2] == 1
    assert parse_frame("not json")[2] == 1


def test_backoff_is_jittered_and_capped() -> None:
    delays = backoff_delays(0.5, 4.0)
    for k in range(12):
        wait = next(delays)
        assert 0 <= wait <= min(4.0, 0.5 * 2**k)
    samples = {round(next(backoff_delays(0.5, 4.0)), 6) for _ in range(20)}
    assert len(samples) > 10  # jittered: reconnecting clients do not arrive together


def test_subscribes_once_per_connection_and_receives_bars() -> None:
    with PolygonWsServer(api_key=KEY) as srv:
        srv.replay_recorded()  # a GTE bar, a second bar, trades and quotes: none subscribed here
        srv.publish([minute_bar(t, T0 + i * 60_000, 100 + i, vw=100.5 + i, z=7) for i in range(3)
                     for t in ("AAPL", "MSFT", "TSLA")])
        src = source(srv)
        src.open()
        try:
            rows = collect(src, 6)
        finally:
            src.close()
        assert topics(srv) == [{"AM.AAPL", "AM.MSFT"}]  # one subscribe of every topic (in the client's set order)
        assert srv.auths == [True]
    assert [(r[0], r[1]) for r in rows] == [(t, T0 + i * 60_000) for i in range(3) for t in ("AAPL", "MSFT")]
    assert rows[0][7:9] == (100.5, 7)  # vw, z -> transactions
    assert src.health.subscribed == {"AM.AAPL", "AM.MSFT"}
    assert src.health.reconnects == 0 and src.finished()


def test_a_drop_mid_stream_reconnects_and_resubscribes() -> None:
    with PolygonWsServer(api_key=KEY) as srv:
        srv.drop_after(4, resend=2)
        srv.publish([minute_bar("AAPL", T0 + i * 60_000, 100 + i) for i in range(10)])
        src = source(srv)
        src.open()
        try:
            gaps: list[Any] = []
            rows = collect(src, 12, gaps=gaps)
            notices = src.notices()
        finally:
            src.close()
        assert srv.connections == 2 and srv.auths == [True, True]
        assert topics(srv) == [{"AM.AAPL", "AM.MSFT"}] * 2
    times = [r[1] for r in rows]
    assert times == [T0 + i * 60_000 for i in (0, 1, 2, 3, 2, 3, 4, 5, 6, 7, 8, 9)]  # 2 resent after the reconnect
    assert [g.first_t for g in gaps] == [T0 + 2 * 60_000]  # the reconnection, before its first bars
    assert src.health.reconnects == 1
    assert any("connection lost" in n and "reconnecting in" in n for n in notices)


def test_auth_failed_stops_with_exit_3_and_never_shows_the_key() -> None:
    with PolygonWsServer(api_key=KEY) as srv:
        src = source(srv, key="wrong-key-8675309")
        src.open()
        with pytest.raises(AuthRefused) as info:
            for _ in range(50):
                src.poll(0.2)
        src.close()
        assert srv.auths == [False] and srv.connections == 1  # no reconnect storm with a refused key
    assert info.value.exit_code == errors.UNREACHABLE
    text = str(info.value)
    assert "refused the API key" in text and "auth_failed" in text and "wrong-key-8675309" not in text


def test_max_connections_means_another_connection_took_over() -> None:
    with PolygonWsServer(api_key=KEY) as srv:
        srv.publish([minute_bar("AAPL", T0, 100.0)])
        src = source(srv)
        src.open()
        rows = collect(src, 1)
        srv.kick("max_connections")
        srv.publish([minute_bar("AAPL", T0 + 60_000, 101.0)])
        with pytest.raises(TakenOver) as info:
            for _ in range(50):
                src.poll(0.2)
        src.close()
        assert srv.connections == 1  # colfill does not push the other connection out in turn
    assert len(rows) == 1
    assert info.value.exit_code == errors.UNREACHABLE
    assert "another connection with this API key took over" in str(info.value)


@pytest.mark.parametrize(("status", "meaning"), [
    ("force_disconnect", "the server ended this connection"),
    ("slow_consumer", "read its frames too slowly"),
])
def test_disconnect_statuses_are_reported_and_followed_by_a_reconnect(status: str, meaning: str) -> None:
    with PolygonWsServer(api_key=KEY) as srv:
        srv.publish([minute_bar("MSFT", T0, 100.0)])
        src = source(srv)
        src.open()
        try:
            assert len(collect(src, 1)) == 1
            srv.kick(status)
            srv.publish([minute_bar("MSFT", T0 + 60_000, 101.0)])
            assert [r[1] for r in collect(src, 1)] == [T0 + 60_000]
            notices = src.notices()
        finally:
            src.close()
        assert srv.connections == 2
    assert any(meaning in n for n in notices), notices
    assert src.health.reconnects == 1


def test_an_unreachable_server_is_retried_with_backoff_and_reported() -> None:
    import socket

    from colfill.config import Secret

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    src = LiveDataSource(LiveSettings(url=f"ws://127.0.0.1:{port}/stocks", api_key=Secret(KEY), tickers=("AAPL",),
                                      backoff_base=0.05))
    src.open()
    wait_for(lambda: src.health.failed_attempts >= 2, timeout=10, what="two failed connection attempts")
    assert src.poll(0) == []
    notices = src.notices()
    began = time.monotonic()
    src.close()
    assert time.monotonic() - began < 1 and src.finished()  # a stop is not held up by the retries
    assert src.health.failed_attempts >= 2 and src.health.connects == 0
    assert notices and f"cannot connect to ws://127.0.0.1:{port}/stocks" in notices[0]


def test_second_bars_are_a_timeframe_of_their_own() -> None:
    with PolygonWsServer(api_key=KEY) as srv:
        srv.replay_recorded()
        settings = LiveSettings.from_env("SPCE", url=srv.url, api_key=KEY, timeframe="1s")
        src = LiveDataSource(settings)
        src.open()
        try:
            rows = collect(src, 1)
        finally:
            src.close()
        assert srv.subscribes == ["A.SPCE"]
    assert rows == [("SPCE", 1610144868000, 25.39, 25.39, 25.39, 25.39, 200.0, 25.3981, 50, 1610144869000)]
    assert src.table is None  # published, not stored: the stores have no table of second bars
