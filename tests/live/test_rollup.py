"""The live rollup (`DataIngestionEngine(timeframes=...)`, `colfill live --timeframes`) against our WebSocket server.

What each test holds: derived bars published on Redis under their timeframe's channel and stream equal the batch
rollup (`colfill.timeframes.rollup`) and the batch indicators (`colfill.indicators.batch`) of the same minutes,
each bucket once, for sizes and regular-session ones; a bucket whose last minute came is closed by the clock
(grace) with no later minute, and not before; a late correction republishes its bucket, and the next, as
revisions with the corrected values and indicators; a session that starts within a bucket an earlier session
stored part of resumes it (its bar and indicators those of all its minutes, one row in the store); the installed
command puts 5m bars on Redis and refuses a bad `--timeframes` with exit 2.
"""

from __future__ import annotations

import datetime as dt
import random
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from colfill import errors
from colfill.bus import InMemoryMessageBus, bar_channel
from colfill.bus.base import decode
from colfill.bus.kafka import bar_topic
from colfill.errors import InvalidArgument
from colfill.indicators.batch import enrich
from colfill.live.engine import DataIngestionEngine
from colfill.timeframes import rollup
from tests.helpers import BIN, ENV, colfill, wait_for
from tests.live.conftest import assert_parity
from tests.live.engine_helpers import KEY, MIN, SHORT, live_source, rows_of, run_until
from tests.polygon_ws_server import PolygonWsServer

# 2024-03-08 (EST): 09:00 New York is 14:00 UTC; the minutes run 09:00-11:29, across the regular open at 09:30
START = int(dt.datetime(2024, 3, 8, 14, tzinfo=dt.timezone.utc).timestamp() * 1000)


def event(sym: str, s: int, close: float, volume: float = 100.0, spread: float = 0.05) -> dict[str, Any]:
    return {"ev": "AM", "sym": sym, "v": volume, "vw": close - spread / 3, "o": close + spread / 2, "c": close,
            "h": close + spread, "l": close - spread, "z": int(volume // 10), "s": s, "e": s + MIN}


def minutes_of(events: list[dict[str, Any]]) -> pl.DataFrame:
    """The events as minute bars (the batch rollup's input)."""
    return pl.DataFrame({"ticker": [e["sym"] for e in events], "ts": [e["s"] for e in events],
                         "open": [e["o"] for e in events], "high": [e["h"] for e in events],
                         "low": [e["l"] for e in events], "close": [e["c"] for e in events],
                         "volume": [e["v"] for e in events], "vw": [e["vw"] for e in events],
                         "transactions": [e["z"] for e in events]}).with_columns(
        pl.from_epoch("ts", time_unit="ms").dt.replace_time_zone("UTC").dt.cast_time_unit("us"))


def expected(minutes: pl.DataFrame, tf: str) -> pl.DataFrame:
    """The batch path: rollup, then the batch indicators, as (ticker, t, bar columns, indicators)."""
    bars, _ = enrich(rollup(minutes, tf), SHORT)
    return bars.with_columns(pl.col("ts").dt.epoch("ms").alias("t")).sort("ticker", "t")


def received(messages: list[dict[str, Any]]) -> pl.DataFrame:
    columns = ["ticker", "t", "open", "high", "low", "close", "volume", "vw", "transactions", *SHORT.columns]
    return pl.DataFrame([{c: m[c] for c in columns} for m in messages],
                        schema={"ticker": pl.Utf8, "t": pl.Int64, "transactions": pl.Int64,
                                **{c: pl.Float64 for c in columns if c not in ("ticker", "t", "transactions")}}
                        ).sort("ticker", "t")


def assert_bars_equal(got: pl.DataFrame, want: pl.DataFrame) -> None:
    """Same buckets, the same bar values (exactly: both are `rollup`'s), the indicators within 1e-9."""
    bar = ["ticker", "t", "open", "high", "low", "close", "volume", "vw", "transactions"]
    assert got.select(bar).equals(want.select(bar)), (got.select(bar), want.select(bar))
    assert_parity(got, want, SHORT)


@pytest.mark.redis
@pytest.mark.slow
def test_live_derived_bars_equal_the_batch_rollup_on_redis(redis_url: str) -> None:
    """Sparse minutes of three tickers (a dotted one) across the regular open, one frame a minute: every derived
    bucket is published once on `colfill:stream:bars:{tf}` and its ticker's channel, equal to the batch path."""
    import redis

    from colfill.bus.redis import RedisMessageBus

    rng = random.Random(22)
    tag = uuid.uuid4().hex[:4].upper()
    tickers = (f"R{tag}", f"S{tag}.A", f"T{tag}")
    price = dict.fromkeys(tickers, 50.0)
    events = []
    for i in range(150):
        for k, t in enumerate(tickers):
            if rng.random() < (0.95, 0.6, 0.25)[k]:  # dense, sparse, very sparse
                price[t] = round(price[t] * (1 + rng.gauss(0, 0.003)), 4)
                events.append(event(t, START + i * MIN, price[t], volume=float(rng.choice([0, 100, 2500, 17]))))
    timeframes = ("1m", "5m", "15m", "1h", "5m:rth", "1d:rth")
    client = redis.Redis.from_url(redis_url)
    listener = client.pubsub()
    channels = [bar_channel(tf, t) for tf in timeframes[1:] for t in tickers]
    listener.subscribe(*channels)
    confirmed = [0]

    def subscribed() -> bool:
        m = listener.get_message(timeout=0.1)
        confirmed[0] += m is not None and m["type"] == "subscribe"
        return confirmed[0] == len(channels)

    wait_for(subscribed, what="subscribed")
    bus = RedisMessageBus(redis_url)
    engine = DataIngestionEngine(message_bus=bus, indicators=SHORT, timeframes=",".join(timeframes))
    with PolygonWsServer(api_key=KEY) as srv:
        by_minute: dict[int, list[dict[str, Any]]] = {}
        for e in events:
            by_minute.setdefault(e["s"], []).append(e)
        for minute in by_minute.values():
            srv.publish(minute, per_frame=len(minute))
        run_until(engine, live_source(srv, tickers), lambda: engine.stats.published >= len(events), timeout=60)
    assert engine.stats.published == len(events)
    minutes = minutes_of(events)
    on_channels: dict[str, list[str]] = {}
    while (m := listener.get_message(timeout=0.5)) is not None:
        if m["type"] == "message":
            on_channels.setdefault(m["channel"].decode(), []).append(decode(m["data"])["ticker"])
    listener.close()
    total = 0
    for tf in timeframes[1:]:
        want = expected(minutes, tf)
        ours = [m for m in bus.recent(tf, count=5000) if m["ticker"] in tickers]  # colfill:stream:bars:{tf}
        assert all(m["timeframe"] == tf and not m["revision"] for m in ours), tf
        assert_bars_equal(received(ours), want)
        for t in tickers:
            assert on_channels.get(bar_channel(tf, t), []) == [t] * want.filter(pl.col("ticker") == t).height
        total += want.height
    bus.close()
    client.close()
    assert engine.stats.derived == total and total > 100


def test_a_bucket_is_closed_by_the_clock_once_its_end_and_the_grace_passed() -> None:
    """Minutes 14:00-14:03 of a 5-minute bucket: not published (its end is a minute away on the feed's clock);
    14:04 comes: published `close_grace` later with no minute of a later bucket, while the engine runs."""
    bus = InMemoryMessageBus(keep=1000)
    engine = DataIngestionEngine(message_bus=bus, indicators=SHORT, timeframes=("1m", "5m"), close_grace=0.3)
    events = [event("G", START + i * MIN, 10.0 + i) for i in range(5)]
    sent: list[float] = []
    with PolygonWsServer(api_key=KEY) as srv:
        srv.publish(events[:4])

        def fifth_then_bar() -> bool:
            if engine.stats.published == 4 and not sent:
                time.sleep(1.0)  # on the wall clock, well past 0.3 s: the feed's clock is still before 14:05
                assert bus.stream("5m") == []
                srv.publish(events[4:])
                sent.append(time.monotonic())
            return bool(bus.stream("5m"))

        run_until(engine, live_source(srv, ("G",)), fifth_then_bar, timeout=20)
    waited = time.monotonic() - sent[0]
    assert 0.25 < waited < 5, waited
    [bar] = bus.stream("5m")
    assert (bar["t"], bar["open"], bar["close"], bar["volume"], bar["revision"]) == (
        START, events[0]["o"], events[4]["c"], 500.0, False)
    assert_bars_equal(received([bar]), expected(minutes_of(events), "5m"))


def test_a_late_minute_republishes_its_bucket_and_the_next_as_revisions() -> None:
    """Minutes 14:00-14:10 (14:10 closes the 14:05 bucket), then a correction of 14:03: the 14:00 bucket is
    published again with the corrected values, the 14:05 bucket with recomputed indicators, both revisions,
    equal to the batch path over the corrected minutes; the open 14:10 bucket is published at the stop."""
    bus = InMemoryMessageBus(keep=1000)
    engine = DataIngestionEngine(message_bus=bus, indicators=SHORT, timeframes="1m,5m")
    events = [event("V", START + i * MIN, 20.0 + i * 0.5, volume=100.0 + i) for i in range(11)]
    fixed = event("V", START + 4 * MIN, 31.0, volume=900.0, spread=0.4)
    sent: list[bool] = []
    with PolygonWsServer(api_key=KEY) as srv:
        srv.publish(events)
        src = live_source(srv, ("V",))

        def correct_after_close() -> bool:
            if engine.stats.published == len(events) and len(bus.stream("5m")) == 2 and not sent:
                srv.publish([fixed])
                sent.append(True)
            return len(bus.stream("5m")) >= 4

        run_until(engine, src, correct_after_close)
    messages = bus.stream("5m")
    assert [(m["t"], m["revision"]) for m in messages] == [
        (START, False), (START + 5 * MIN, False), (START, True), (START + 5 * MIN, True), (START + 10 * MIN, False)]
    corrected = events[:4] + [fixed] + events[5:]
    want = expected(minutes_of(corrected), "5m")
    assert_bars_equal(received(messages[2:]), want)
    assert (messages[2]["close"], messages[2]["high"], messages[2]["volume"]) == (
        31.0, fixed["h"], sum(e["v"] for e in corrected[:5]))
    assert messages[3]["vwap"] != messages[1]["vwap"] and messages[3]["close"] == messages[1]["close"]
    assert engine.stats.revisions == 1 and engine.stats.derived == 5


def test_the_store_holds_the_derived_bars_published(tmp_path: Path) -> None:
    url = f"lake:///{tmp_path / 'data'}"
    bus = InMemoryMessageBus(keep=1000)
    engine = DataIngestionEngine(storage=url, message_bus=bus, indicators=SHORT, timeframes="1m,5m")
    events = [event("L", START + i * MIN, 20.0 + i * 0.5) for i in range(11)]
    with PolygonWsServer(api_key=KEY) as srv:
        srv.publish(events)
        run_until(engine, live_source(srv, ("L",)), lambda: engine.stats.published >= len(events))
    engine.close()
    assert len(bus.stream("5m")) == 3
    assert not any("not stored" in n for n in engine.notices), engine.notices
    stored = rows_of(url, "bars_5m")
    want = expected(minutes_of(events), "5m")
    assert stored["close"].to_list() == want["close"].to_list() and engine.stats.stored_derived == 3
    assert stored["vwap"].to_list() == pytest.approx(want["vwap"].to_list(), rel=1e-9)


@pytest.fixture(params=["lake", pytest.param("postgresql", marks=pytest.mark.postgres)])
def resume_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return f"lake:///{tmp_path / 'data'}" if request.param == "lake" else str(request.getfixturevalue("pg_url"))


@pytest.mark.parametrize("saved", ["", "before", "with-bar"])
def test_a_session_resumes_the_bucket_an_earlier_one_stopped_in(resume_url: str, saved: str) -> None:
    """Session one gets 09:30-09:36 and stops 2 minutes into the 09:35 bucket (its partial bar published and
    stored at the stop); session two, on the same store, gets 09:37-09:40: the 09:35 bar it publishes and stores
    is the batch rollup and indicators of all five minutes (and the bars before), a revision of the partial one,
    nothing late, one row in bars_5m; so is the regular session's day bar. `saved`: the 5m indicators continue a
    saved `indicator_state`: the one session one would save (the state before the bucket it stopped in), or one
    holding the partial bar (saved by a version that did not resume), which leaves the bucket unresumed."""
    from colfill.live.stored_state import TOKEN
    from colfill.stores import open_store

    base = START + 30 * MIN  # 09:30 New York
    events = [event("Q", base + i * MIN, 30.0 + (i * 7 % 5) * 0.3, volume=100.0 + 10 * i) for i in range(11)]
    timeframes, first, second = "1m,5m,1d:rth", InMemoryMessageBus(keep=1000), InMemoryMessageBus(keep=1000)
    one = DataIngestionEngine(storage=resume_url, message_bus=first, indicators=SHORT, timeframes=timeframes)
    with PolygonWsServer(api_key=KEY) as srv:
        srv.publish(events[:7])
        run_until(one, live_source(srv, ("Q",)), lambda: one.stats.published >= 7 and bool(first.stream("5m")))
    assert [m["t"] for m in first.stream("5m")] == [base, base + 5 * MIN]  # the second as it stood at the stop
    assert one.rollup is not None
    before = one.rollup.state_to_save("5m")
    assert (before["n"].to_list(), before["last_ts"].dt.epoch("ms").to_list()) == ([1], [base])
    if saved:
        state = before if saved == "before" else one.rollup.processors["5m"].export_state()
        assert one.storage is not None
        one.storage.write_state("5m", state.with_columns(pl.lit(SHORT.token()).alias(TOKEN)).to_arrow())
    one.close()

    two = DataIngestionEngine(storage=resume_url, message_bus=second, indicators=SHORT, timeframes=timeframes)
    with PolygonWsServer(api_key=KEY) as srv:
        srv.publish(events[7:])
        run_until(two, live_source(srv, ("Q",)), lambda: two.stats.published >= 4 and bool(second.stream("5m")))
    two.close()
    assert two._derived_saved == (["5m"] if saved else [])
    want = expected(minutes_of(events), "5m")
    fives = second.stream("5m")
    if saved == "with-bar":  # its three minutes make a bar of their own, a revision the state cannot take
        assert [m["t"] for m in fives] == [base + 10 * MIN] and two.stats.derived_late == 1
        return
    assert [(m["t"], m["revision"]) for m in fives] == [(base + 5 * MIN, True), (base + 10 * MIN, False)]
    assert_bars_equal(received(fives), want.filter(pl.col("t") >= base + 5 * MIN))
    assert fives[0]["volume"] == sum(e["v"] for e in events[5:10]) and fives[0]["open"] == events[5]["o"]
    [day] = second.stream("1d:rth")
    assert day["revision"] and day["volume"] == sum(e["v"] for e in events)
    assert_bars_equal(received([day]), expected(minutes_of(events), "1d:rth"))
    assert two.stats.derived_late == two.stats.rejected == 0 and two.stats.derived == 3
    stored = rows_of(resume_url, "bars_5m")
    assert stored["ts"].dt.epoch("ms").to_list() == want["t"].to_list()
    assert stored["volume"].to_list() == want["volume"].to_list()
    for c in ("close", "sma_3", "rsi_3", "vwap"):
        assert stored[c].to_list() == [v if v is None else pytest.approx(v, rel=1e-9) for v in want[c]], c
    store = open_store(resume_url, load_workers=1)
    try:
        [day_row] = [r for t in store.read_bars("bars_1d_rth", ["ticker", "ts", "close", "volume"])
                     for r in t.to_pylist()]
    finally:
        store.close()
    assert (day_row["close"], day_row["volume"]) == (events[-1]["c"], day["volume"])


def test_timeframes_are_checked_and_named() -> None:
    assert bar_topic("5m:rth") == "colfill.bars.5m_rth"  # Kafka topics take no colon
    for bad, says in (("1m,7m", "unknown timeframe '7m'"), ("5m", "add 1m"), ("1m,1d", "1d:rth"), ("", "empty")):
        with pytest.raises(InvalidArgument, match="timeframes") as caught:
            DataIngestionEngine(timeframes=bad)
        assert says in str(caught.value)
    assert [tf.name for tf in DataIngestionEngine(timeframes=("1m", "1d:rth")).timeframes] == ["1m", "1d:rth"]


@pytest.mark.parametrize(("value", "says"), [("1m,7m", "unknown timeframe '7m'"), ("1m,1d", "1d:rth")])
def test_a_bad_timeframes_exits_2_naming_the_argument(value: str, says: str, tmp_path: Path) -> None:
    done = colfill("live", "--tickers", "AAPL", "--data-dir", str(tmp_path), "--ws-url", "ws://127.0.0.1:1/stocks",
                   "--timeframes", value, POLYGON_API_KEY=KEY, timeout=60)
    assert done.returncode == errors.USAGE, done.stderr
    err = " ".join(done.stderr.split())
    assert "--timeframes" in err and says in err and "Traceback" not in err


@pytest.mark.redis
@pytest.mark.slow
def test_the_installed_command_publishes_5m_bars_on_redis(tmp_path: Path, redis_url: str) -> None:
    """`colfill live --timeframes 1m,5m` against the replay server: the 5-minute bars on `colfill:stream:bars:5m`
    (the first closed by the next bucket's minute, the second published at SIGTERM)."""
    import subprocess

    from colfill.bus.redis import RedisMessageBus

    ticker = f"C{uuid.uuid4().hex[:5].upper()}"
    events = [event(ticker, START + i * MIN, 40.0 + i) for i in range(8)]
    bus = RedisMessageBus(redis_url)

    def ours() -> list[dict[str, Any]]:  # colfill:stream:bars:5m
        return [m for m in bus.recent("5m", count=2000) if m["ticker"] == ticker]

    with PolygonWsServer(api_key=KEY) as srv:
        srv.publish(events)
        proc = subprocess.Popen([str(BIN), "live", "--tickers", ticker, "--ws-url", srv.url, "--data-dir",
                                 str(tmp_path / "data"), "--redis", redis_url, "--no-gap-fill", "--indicators",
                                 "sma:3", "--timeframes", "1m,5m"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=ENV | {"POLYGON_API_KEY": KEY}, stdin=subprocess.DEVNULL)
        try:
            first = wait_for(ours, timeout=60, what="the first 5m bar on Redis")
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
    assert proc.returncode == errors.OK, err
    bars = ours()
    assert [m["t"] for m in first] == [START]
    assert [(m["t"], m["open"], m["close"], m["volume"]) for m in bars] == [
        (START, events[0]["o"], events[4]["c"], 500.0), (START + 5 * MIN, events[5]["o"], events[7]["c"], 300.0)]
    assert all(m["timeframe"] == "5m" and "sma_3" in m for m in bars)
    bus.close()
