"""`DataIngestionEngine` end to end: our WebSocket server -> the official client -> incremental indicators ->
every store kind (`upsert_live`) -> the in-memory bus and a real redis-server; and batch mode from REST.

What each test holds: a dropped connection with a resend loses and duplicates nothing, in the store and
on the bus; a revision of the current minute replaces its row and is flagged on the bus; a late correction
of an older minute is counted, not applied; the stored live indicators equal a batch recompute
(colfill.indicators.batch) of the backfill's bars plus the live ones; Redis gets every bar on its
ticker's channel and the `live` status; batch mode stores the REST bars with the batch engine's numbers.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from colfill.bus import InMemoryMessageBus, bar_channel
from colfill.indicators.batch import enrich
from colfill.indicators.spec import IndicatorSet
from colfill.interrupt import Stop
from colfill.live.engine import DataIngestionEngine
from colfill.sample import generate
from tests.live.conftest import flat_bars
from tests.live.engine_helpers import KEY, MIN, SHORT, T0, live_source, rows_of, run_until
from tests.pipeline.conftest import assert_frames_close, backfill
from tests.polygon_ws_server import PolygonWsServer, minute_bar


@pytest.fixture(params=["duckdb", "lake", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "duckdb":
        yield f"duckdb:///{tmp_path / 'live.duckdb'}"
    elif request.param == "lake":
        yield f"lake:///{tmp_path / 'data'}"
    else:
        yield request.getfixturevalue("pg_url")


def test_drop_resend_and_revision_lose_and_duplicate_nothing(store_url: str) -> None:
    tickers = ("AAPL", "MSFT", "NA")
    price = {t: 100.0 + 10 * i for i, t in enumerate(tickers)}
    bars = [minute_bar(t, T0 + i * MIN, price[t] + i * 0.25, volume=100.0 + i) for i in range(40) for t in tickers]
    revised = minute_bar("MSFT", T0 + 39 * MIN, 999.0, volume=777.0)  # the current minute, revised
    late = minute_bar("AAPL", T0 + 5 * MIN, 1.0)  # an older minute with other values: not applicable
    bus = InMemoryMessageBus(keep=10_000)
    engine = DataIngestionEngine(storage=store_url, message_bus=bus, indicators=SHORT)
    with PolygonWsServer(api_key=KEY) as srv:
        srv.drop_after(50, resend=9)  # 9 frames (bars) sent again after the reconnect
        srv.publish(bars)
        src = live_source(srv, tickers)
        run_until(engine, src, lambda: engine.stats.published >= 120)
        srv.publish([revised, late])
        src2 = live_source(srv, tickers)
        run_until(engine, src2, lambda: engine.stats.revisions + engine.stats.late >= 2)
    engine.close()
    s = engine.stats
    assert (s.bars_in, s.duplicates, s.revisions, s.late, s.published) == (131, 9, 1, 1, 121)
    assert src.health.reconnects == 1
    stored = rows_of(store_url)
    assert stored.height == 120 and stored.select("ticker", "ts").is_unique().all()
    msft = stored.filter(pl.col("ticker") == "MSFT").sort("ts")
    assert msft["close"][-1] == 999.0 and msft["volume"][-1] == 777.0
    aapl = stored.filter(pl.col("ticker") == "AAPL").sort("ts")
    assert aapl["close"].to_list() == [price["AAPL"] + i * 0.25 for i in range(40)]
    channel = bus.messages(bar_channel("1m", "MSFT"))
    assert len(channel) == 41 and [m["revision"] for m in channel].count(True) == 1
    assert channel[-1]["revision"] and channel[-1]["close"] == 999.0 and channel[-1]["t"] == T0 + 39 * MIN
    # the revision's indicators are those of the revised series, as a batch recompute gives them
    series = [b for b in bars if b["sym"] == "MSFT"][:-1] + [revised]
    frame = pl.DataFrame({"ticker": "MSFT", "ts": [b["s"] for b in series], "high": [b["h"] for b in series],
                          "low": [b["l"] for b in series], "close": [b["c"] for b in series],
                          "volume": [b["v"] for b in series]}).with_columns(
        pl.from_epoch("ts", time_unit="ms").dt.replace_time_zone("UTC").dt.cast_time_unit("us"))
    expected, _ = enrich(frame, SHORT)
    assert abs(channel[-1]["sma_3"] - expected["sma_3"][-1]) < 1e-9
    assert abs(msft["rsi_3"][-1] - expected["rsi_3"][-1]) < 1e-9


# -- parity with a batch recompute, continuing a backfill --------------------------------------------------

START, CUT, LIVE_DAY = dt.date(2024, 3, 4), dt.date(2024, 3, 7), dt.date(2024, 3, 8)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["lake", "duckdb"])
def test_live_indicators_equal_a_batch_recompute_of_backfill_plus_live(kind: str, tmp_path: Path) -> None:
    root = tmp_path / "ff"
    generate(root, START, LIVE_DAY, tickers=4, seed=5, minute_fill=0.3, datasets=("minute_aggs_v1",))
    data = tmp_path / "data"
    # native DuckDB tables in <data>/colfill.duckdb (a URL query makes the tests' backfill choose them)
    url = f"lake:///{data.resolve()}" if kind == "lake" else f"duckdb:///{data / 'colfill.duckdb'}?index=all"
    result = backfill(root, data, start=START, end=CUT, tables=("bars_1m",), query="" if kind == "lake" else
                      "?index=all")
    assert result.ok
    everything = flat_bars(root)
    cut = dt.datetime.combine(LIVE_DAY, dt.time(4), dt.timezone.utc)
    live = everything.filter(pl.col("ts") >= cut)
    events = [{"ev": "AM", "sym": r["ticker"], "v": r["volume"], "o": r["open"], "h": r["high"], "l": r["low"],
               "c": r["close"], "z": r["transactions"], "s": int(r["ts"].timestamp() * 1000),
               "e": int(r["ts"].timestamp() * 1000) + MIN} for r in live.sort("ts", "ticker").iter_rows(named=True)]
    tickers = tuple(sorted(set(live["ticker"])))
    engine = DataIngestionEngine(storage=url, message_bus=InMemoryMessageBus(), indicators=IndicatorSet.default())
    with PolygonWsServer(api_key=KEY) as srv:
        srv.publish(events, per_frame=len(tickers))  # one frame a minute, every ticker's bar in it
        src = live_source(srv, tickers)
        run_until(engine, src, lambda: engine.stats.published >= len(events), timeout=60)
    engine.close()
    assert engine.stats.published == len(events) and engine.stats.rejected == 0
    assert any("continue" in n and "backfill" in n for n in engine.notices)
    cols = ["ticker", "ts", "close", *IndicatorSet.default().columns]
    expected, _ = enrich(everything, IndicatorSet.default())
    expected = expected.filter(pl.col("ts") >= cut).select(cols).sort("ticker", "ts")
    con = duckdb.connect(str(data / "colfill.duckdb"), read_only=True)
    try:
        got = con.sql(f"SELECT {', '.join(cols)} FROM bars_1m WHERE ts >= ? ORDER BY ticker, ts", params=[cut]).pl()
    finally:
        con.close()
    assert got.height == expected.height == len(events)
    assert_frames_close(got.with_columns(pl.col("ts").dt.convert_time_zone("UTC")),
                        expected.with_columns(pl.col("ts").dt.convert_time_zone("UTC")))


# -- Redis ----------------------------------------------------------------------------------------------------

@pytest.mark.redis
def test_every_bar_reaches_redis_with_the_live_status(redis_url: str, tmp_path: Path) -> None:
    from colfill.bus.redis import RedisMessageBus, subscribe

    tickers = tuple(f"Z{uuid.uuid4().hex[:5].upper()}" for _ in range(2))  # channels of this test alone
    bars = [minute_bar(t, T0 + i * MIN, 50.0 + i) for i in range(30) for t in tickers]
    revision = minute_bar(tickers[0], T0 + 29 * MIN, 10.0)
    got: list[dict[str, Any]] = []
    ready = threading.Event()

    def listen() -> None:
        for message in subscribe(redis_url, tickers, timeout=1.0, ready=ready.set):
            got.append(message)

    listener = threading.Thread(target=listen)
    listener.start()
    assert ready.wait(10)
    name = f"live-test-{uuid.uuid4().hex[:6]}"
    bus = RedisMessageBus(redis_url)
    engine = DataIngestionEngine(storage=f"duckdb:///{tmp_path / 'r.duckdb'}", message_bus=bus, indicators=SHORT,
                                 status_name=name)
    with PolygonWsServer(api_key=KEY) as srv:
        srv.publish(bars)

        def done() -> bool:  # the revision goes out once the minute it revises was published
            if engine.stats.published == 60 and not srv.pending():
                srv.publish([revision])
            return engine.stats.published >= 61

        run_until(engine, live_source(srv, tickers), done)
    status = bus.status(name)
    engine.close()
    listener.join(15)
    bus.close()
    assert len(got) == 61
    assert [(m["ticker"], m["t"]) for m in got] == [(b["sym"], b["s"]) for b in [*bars, revision]]
    assert [m["revision"] for m in got].count(True) == 1 and got[-1]["close"] == 10.0
    assert list(got[0])[:5] == ["v", "ticker", "timeframe", "t", "ts"] and "sma_3" in got[0]
    assert status is not None and status["kind"] == "live" and status["tickers"] == list(tickers)
    assert status["bars"] == 61 and status["reconnects"] == 0 and {"bars_per_s", "lag_ms", "updated_ms"} <= set(status)


# -- batch mode ------------------------------------------------------------------------------------------------

def test_batch_mode_stores_rest_bars_with_the_batch_engines_numbers(tmp_path: Path) -> None:
    from colfill.sources.historical import HistoricalDataSource
    from colfill.sources.rest import RestSettings
    from tests.polygon_server import PolygonServer

    day = dt.date(2024, 3, 5)
    t0 = int(dt.datetime(2024, 3, 5, 14, 30, tzinfo=dt.timezone.utc).timestamp() * 1000)
    with PolygonServer(api_key=KEY) as srv:
        for k, ticker in enumerate(("AAPL", "TSLA")):
            srv.add_aggs(ticker, [{"t": t0 + i * MIN, "o": 10.0 + k, "h": 10.6 + k + i / 50, "l": 9.4 + k,
                                   "c": 10.0 + k + i / 50, "v": 100.0 + i, "vw": 10.1, "n": 3} for i in range(120)])
        urls = {}
        for mode in ("batch", "stream"):  # stream mode over a batch source: the same rows, in micro-batches
            source = HistoricalDataSource("AAPL,TSLA", day, day, settings=RestSettings.from_env(
                url=srv.url, api_key=KEY, rate="1000/s"))
            urls[mode] = url = f"duckdb:///{tmp_path / mode}.duckdb"
            engine = DataIngestionEngine(storage=url, message_bus=InMemoryMessageBus(), indicators=SHORT,
                                         batch_size=50 if mode == "stream" else 10_000)
            stats = engine.ingest(source, mode=mode)
            engine.close()
            source.close()
            assert stats.stored == 240 and stats.published == 240 and source.rejected == 0
            assert stats.batches == (1 if mode == "batch" else 5)
    got = rows_of(urls["batch"])
    assert rows_of(urls["stream"]).equals(got)
    frame = got.select("ticker", "ts", "close", "volume").with_columns(
        high=pl.Series([10.6 + k + i / 50 for k in range(2) for i in range(120)]),
        low=pl.Series([9.4 + k for k in range(2) for i in range(120)]))
    expected, _ = enrich(frame, SHORT)
    assert_frames_close(got.select("sma_3", "rsi_3", "vwap"), expected.select("sma_3", "rsi_3", "vwap"))


def test_duplicate_revision_and_late_rules_of_a_micro_batch() -> None:
    bus = InMemoryMessageBus()
    engine = DataIngestionEngine(storage=None, message_bus=bus, indicators=SHORT)
    engine.prepare("1m")

    def bar(minute: int, close: float) -> tuple[Any, ...]:
        return ("AAPL", T0 + minute * MIN, close, close, close, close, 1.0, None, None, T0 + (minute + 1) * MIN)

    now = time.time()
    engine.flush("1m", [(now, [bar(0, 10.0), bar(1, 11.0)]), (now, [bar(1, 11.5)])])  # revised within the batch
    engine.flush("1m", [(now, [bar(1, 11.5)])])  # the same bar again (a resend): dropped
    engine.flush("1m", [(now, [bar(1, 12.0)])])  # revised after it was published: flagged
    # an older minute: the resend dropped, the correction applied and the later minute recomputed, both revisions
    engine.flush("1m", [(now, [bar(0, 10.0), bar(0, 9.0)])])
    messages = bus.messages(bar_channel("1m", "AAPL"))
    assert [(m["t"], m["close"], m["revision"]) for m in messages] == [
        (T0, 10.0, False), (T0 + MIN, 11.5, False), (T0 + MIN, 12.0, True), (T0, 9.0, True), (T0 + MIN, 12.0, True)]
    s = engine.stats
    assert (s.bars_in, s.duplicates, s.revisions, s.late, s.recomputed, s.published) == (7, 2, 3, 0, 1, 5)
    assert messages[-1]["sma_3"] is None and messages[-1]["ema_4"] is None  # 2 bars: still warming up
    assert messages[-1]["vwap"] == pytest.approx((9.0 + 12.0) / 2)  # from the corrected bar on
    engine.flush("1m", [(now, [bar(m, 10.0 + m) for m in range(2, 11)])])
    engine.flush("1m", [(now, [bar(1, 1.0)])])  # older than the last `keep` bars held: late, not applied
    assert (s.late, s.published) == (1, 14) and len(bus.messages(bar_channel("1m", "AAPL"))) == 14


def test_a_live_source_in_batch_mode_moves_whole_tables() -> None:
    bus = InMemoryMessageBus()
    engine = DataIngestionEngine(storage=None, message_bus=bus, indicators=SHORT)
    with PolygonWsServer(api_key=KEY) as srv:
        srv.publish([minute_bar("AAPL", T0 + i * MIN, 10.0 + i) for i in range(20)], per_frame=20)
        stop = Stop()
        thread = threading.Thread(target=engine.ingest, args=(live_source(srv, ("AAPL",)),),
                                  kwargs={"mode": "batch", "stop": stop})
        thread.start()
        deadline = time.monotonic() + 15
        while engine.stats.published < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        stop.request()
        thread.join(15)
    assert engine.stats.published == 20 and engine.stats.batches == 1
    assert [m["close"] for m in bus.messages(bar_channel("1m", "AAPL"))] == [10.0 + i for i in range(20)]
