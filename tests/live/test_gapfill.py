"""Gap refill from REST (issue 19): the official client against our WebSocket server, whose REST face (the REST
replay server, fed on the feed's timeline) serves the bars sent while the client was away.

What each test holds: after an outage (nothing of its minutes resent on the socket) the stored bars, their
indicators (against a batch computation of the final bars) and the bus equal the final bars exactly, filled bars
marked `filled`; the same with a revision of the last received minute sent during the outage, and with one of a
minute before it (the later rows recomputed); a REST host that
is down leaves the gap reported and loses nothing that streamed; a start-up catch-up continues a backfill that
ended an hour ago with no hole.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa

from colfill.bars import rows_to_table
from colfill.bus import InMemoryMessageBus, bar_channel
from colfill.config import Secret
from colfill.indicators.batch import enrich
from colfill.indicators.spec import IndicatorSet
from colfill.interrupt import Stop
from colfill.live.engine import DataIngestionEngine
from colfill.live.gapfill import GapFiller
from colfill.sources.live import LiveDataSource, LiveSettings
from colfill.sources.rest import RestApi, RestSettings
from tests.helpers import wait_for
from tests.polygon_server import PolygonServer
from tests.polygon_ws_server import PolygonWsServer, minute_bar

KEY = "gapfill-test-key"
T0 = 1_704_205_800_000  # 2024-01-02 14:30 UTC
MIN = 60_000
SHORT = IndicatorSet.parse("sma:3,ema:4,rsi:3,macd:3:5:2,vwap")
TICKERS = ("GA", "GB", "GC", "GD")


def bars_of(minutes: range, t0: int = T0, tickers: tuple[str, ...] = TICKERS) -> list[dict[str, Any]]:
    return [minute_bar(t, t0 + m * MIN, 50.0 + 7 * k + (m * 37 % 11) * 0.13, volume=100.0 + m + k)
            for m in minutes for k, t in enumerate(tickers)]


def filler(url: str) -> GapFiller:
    return GapFiller(RestApi(RestSettings(url=url, api_key=Secret(KEY))))


def source(srv: PolygonWsServer, tickers: tuple[str, ...] = TICKERS) -> LiveDataSource:
    return LiveDataSource(LiveSettings(url=srv.url, api_key=Secret(KEY), tickers=tickers, backoff_base=0.05,
                                       backoff_max=0.2))


class Running:
    """`engine.ingest(src)` in a thread until `stop()` (as SIGTERM stops it)."""

    def __init__(self, engine: DataIngestionEngine, src: LiveDataSource) -> None:
        self.stop_ = Stop()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._work, args=(engine, src))
        self.thread.start()

    def _work(self, engine: DataIngestionEngine, src: LiveDataSource) -> None:
        try:
            engine.ingest(src, mode="stream", stop=self.stop_)
        except BaseException as exc:
            self.errors.append(exc)

    def stop(self) -> None:
        self.stop_.request()
        self.thread.join(30)
        assert not self.thread.is_alive()
        if self.errors:
            raise self.errors[0]


def stored(db: Path) -> pl.DataFrame:
    con = duckdb.connect(str(db), read_only=True)
    try:
        cols = ", ".join(["ticker", "ts", "open", "high", "low", "close", "volume", *SHORT.columns])
        return con.sql(f"SELECT {cols} FROM bars_1m ORDER BY ticker, ts").pl().with_columns(
            pl.col("ts").dt.convert_time_zone("UTC"))
    finally:
        con.close()


def final_frame(bars: list[dict[str, Any]]) -> pl.DataFrame:
    """The last version of each (ticker, minute), in the bar schema, with the batch engine's indicators."""
    last = {(b["sym"], b["s"]): b for b in bars}
    frame = pl.DataFrame([{"ticker": b["sym"], "t": b["s"], "open": b["o"], "high": b["h"], "low": b["l"],
                           "close": b["c"], "volume": b["v"]} for b in last.values()]).with_columns(
        pl.from_epoch("t", time_unit="ms").dt.replace_time_zone("UTC").dt.cast_time_unit("us").alias("ts"))
    out, _ = enrich(frame.sort("ticker", "ts"), SHORT)
    return out.select("ticker", "ts", "open", "high", "low", "close", "volume", *SHORT.columns).sort("ticker", "ts")


def assert_equal_to(got: pl.DataFrame, want: pl.DataFrame) -> None:
    assert got.select("ticker", "ts").equals(want.select("ticker", "ts")), (got.height, want.height)
    for col in ("open", "high", "low", "close", "volume"):
        assert got[col].to_list() == want[col].to_list(), col
    for col in SHORT.columns:
        a, b = got[col].to_list(), want[col].to_list()
        assert all((x is None and y is None) or (x is not None and y is not None and abs(x - y) <= 1e-9 * max(
            1.0, abs(y))) for x, y in zip(a, b)), col


def outage(srv: PolygonWsServer, engine: DataIngestionEngine, src: Any, before: list[dict[str, Any]],
           during: list[dict[str, Any]], after: list[dict[str, Any]]) -> None:
    """Stream `before`, drop the connection, publish `during` while it is away (never sent on the socket, as on
    the real feed), let it reconnect and stream `after`."""
    srv.publish(before, per_frame=len(TICKERS))
    wait_for(lambda: engine.stats.published >= len(before), 30, what="the bars before the outage")
    srv.outage()
    wait_for(lambda: not src.health.connected, 10, what="the drop")
    srv.publish(during, per_frame=len(TICKERS))
    srv.resume()
    srv.publish(after, per_frame=len(TICKERS))


def run_outage(tmp_path: Path, revised: list[dict[str, Any]], republished: int = 0
               ) -> tuple[DataIngestionEngine, InMemoryMessageBus, list[dict[str, Any]]]:
    """Minutes 0-11 streamed, 12-17 sent during an outage (with `revised`), 18-29 after; `republished`: the rows
    published again beyond the 120 bars and the revisions."""
    before, during, after = bars_of(range(12)), bars_of(range(12, 18)), bars_of(range(18, 30))
    bus = InMemoryMessageBus(keep=10_000)
    with PolygonServer(api_key=KEY, mocks=None) as rest, PolygonWsServer(api_key=KEY, rest=rest) as srv:
        engine = DataIngestionEngine(storage=f"duckdb:///{tmp_path / 'live.duckdb'}", message_bus=bus,
                                     indicators=SHORT, gap_fill=filler(rest.url))
        src = source(srv)
        run = Running(engine, src)
        outage(srv, engine, src, before, during + revised, after)
        wait_for(lambda: engine.stats.published >= 120 + len(revised) + republished and not srv.pending(), 30,
                 what="every bar, the gap's included")
        time.sleep(0.2)
        run.stop()
    engine.close()
    return engine, bus, before + during + revised + after


def test_an_outage_is_filled_from_rest_exactly(tmp_path: Path) -> None:
    engine, bus, bars = run_outage(tmp_path, [])
    want = final_frame(bars)
    assert_equal_to(stored(tmp_path / "live.duckdb"), want)
    reconnect = [f for f in engine.fills if f.why == "reconnect"]
    assert len(reconnect) == 1 and not reconnect[0].failed
    # minutes 12-17 missed, minute 18 (the new connection's first) fetched too; 9-11 fetched again, equal
    assert (reconnect[0].inserted, reconnect[0].revised) == (7 * len(TICKERS), 0)
    assert reconnect[0].start_ms == T0 + 8 * MIN and reconnect[0].end_ms == T0 + 18 * MIN
    for ticker in TICKERS:
        messages = bus.messages(bar_channel("1m", ticker))
        last = {m["t"]: m for m in messages}
        mine = want.filter(pl.col("ticker") == ticker)
        assert sorted(last) == [int(t.timestamp() * 1000) for t in mine["ts"]]
        assert [last[t]["close"] for t in sorted(last)] == mine["close"].to_list()
        assert all(abs(last[t]["sma_3"] - s) < 1e-9 for t, s in zip(sorted(last), mine["sma_3"]) if s is not None)
        assert {m["t"] for m in messages if m.get("filled")} == {T0 + m * MIN for m in range(12, 19)}
    status = bus.status("live")
    assert status["fills"] == engine.stats.fills and status["last_fill"]["inserted"] == 7 * len(TICKERS)
    assert any("gap fill (reconnect)" in n for n in engine.notices)


def test_a_revision_sent_during_the_outage_is_applied(tmp_path: Path) -> None:
    engine, bus, bars = run_outage(tmp_path, [minute_bar("GA", T0 + 11 * MIN, 77.7, volume=999.0)])
    want = final_frame(bars)
    got = stored(tmp_path / "live.duckdb")
    assert_equal_to(got, want)
    ga = got.filter(pl.col("ticker") == "GA")
    assert ga["close"][11] == 77.7 and ga["volume"][11] == 999.0
    fill = [f for f in engine.fills if f.why == "reconnect"][0]
    assert (fill.inserted, fill.revised) == (7 * len(TICKERS), 1)
    revised = [m for m in bus.messages(bar_channel("1m", "GA")) if m["t"] == T0 + 11 * MIN][-1]
    assert revised["revision"] and revised["filled"] and revised["close"] == 77.7


def test_a_revision_of_an_older_minute_sent_during_the_outage_is_applied_and_the_later_rows_recomputed(
        tmp_path: Path) -> None:
    """Minute 9 of GB revised while away, two minutes before the last bar received (11): only REST holds it. The
    state before minute 9 is restored and minutes 9-11 recomputed, so every later indicator is exact."""
    correction = minute_bar("GB", T0 + 9 * MIN, 88.8, volume=4321.0)
    engine, bus, bars = run_outage(tmp_path, [correction], republished=2)
    want = final_frame(bars)
    got = stored(tmp_path / "live.duckdb")
    assert_equal_to(got, want)
    gb = got.filter(pl.col("ticker") == "GB")
    assert gb["close"][9] == 88.8 and gb["volume"][9] == 4321.0
    assert engine.stats.late == 0 and engine.stats.recomputed == 2
    fill = [f for f in engine.fills if f.why == "reconnect"][0]
    assert (fill.inserted, fill.revised) == (7 * len(TICKERS), 3)  # minute 9 revised, 10 and 11 recomputed
    for ticker in TICKERS:
        mine = want.filter(pl.col("ticker") == ticker)
        last = {m["t"]: m for m in bus.messages(bar_channel("1m", ticker))}
        assert sorted(last) == [int(t.timestamp() * 1000) for t in mine["ts"]]
        for col in ("close", "volume", *SHORT.columns):
            for t, w in zip(sorted(last), mine[col]):
                g = last[t][col]
                assert (g is None and w is None) or abs(g - w) <= 1e-9 * max(1.0, abs(w)), (ticker, t, col)
    again = [m for m in bus.messages(bar_channel("1m", "GB")) if T0 + 9 * MIN <= m["t"] <= T0 + 11 * MIN][-3:]
    assert [m["t"] for m in again] == [T0 + m * MIN for m in (9, 10, 11)]
    assert all(m["revision"] and m["filled"] for m in again) and again[0]["close"] == 88.8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_rest_host_that_is_down_leaves_the_gap_reported_and_loses_nothing_streamed(tmp_path: Path) -> None:
    before, during, after = bars_of(range(10)), bars_of(range(10, 14)), bars_of(range(14, 20))
    bus = InMemoryMessageBus(keep=10_000)
    engine = DataIngestionEngine(storage=f"duckdb:///{tmp_path / 'live.duckdb'}", message_bus=bus,
                                 indicators=SHORT, gap_fill=filler(f"http://127.0.0.1:{free_port()}"))
    with PolygonWsServer(api_key=KEY) as srv:
        src = source(srv)
        run = Running(engine, src)
        outage(srv, engine, src, before, during, after)
        wait_for(lambda: engine.stats.published >= len(before) + len(after), 30, what="the streamed bars")
        run.stop()
    engine.close()
    got = stored(tmp_path / "live.duckdb")
    streamed = {(b["sym"], b["s"]) for b in before + after}
    assert {(t, int(ts.timestamp() * 1000)) for t, ts in got.select("ticker", "ts").iter_rows()} == streamed
    reconnect = [f for f in engine.fills if f.why == "reconnect"]
    assert len(reconnect) == 1 and sorted(reconnect[0].failed) == sorted(TICKERS)
    report = [n for n in engine.notices if "could NOT fill" in n and "reconnect" in n]
    assert len(report) == 1 and "cannot be reached" in report[0] and all(t in report[0] for t in TICKERS)
    assert engine.stats.unfilled >= len(TICKERS)


class Tables:
    """A batch source of socket rows (the backfill of the catch-up test)."""

    timeframe = "1m"

    def __init__(self, table: pa.Table) -> None:
        self.table = table

    def batches(self, stop: Any = None) -> Iterator[pa.Table]:
        yield self.table


def test_start_up_catch_up_continues_a_backfill_that_ended_an_hour_ago(tmp_path: Path) -> None:
    now = int(time.time() * 1000) // MIN * MIN
    t0 = now - 120 * MIN
    history, live = bars_of(range(120), t0, TICKERS[:2]), bars_of(range(120, 125), t0, TICKERS[:2])
    backfill = [b for b in history if b["s"] < now - 60 * MIN]
    url = f"duckdb:///{tmp_path / 'live.duckdb'}"
    first = DataIngestionEngine(storage=url, indicators=SHORT)
    first.ingest(Tables(rows_to_table([(b["sym"], b["s"], b["o"], b["h"], b["l"], b["c"], b["v"], b["vw"], b["z"],
                                        b["e"]) for b in backfill])), mode="batch")
    first.close()
    bus = InMemoryMessageBus(keep=10_000)
    with PolygonServer(api_key=KEY, mocks=None) as rest, PolygonWsServer(api_key=KEY, rest=rest) as srv:
        for ticker in TICKERS[:2]:  # what REST holds of the last two hours
            rest.add_aggs(ticker, [{"t": b["s"], "o": b["o"], "h": b["h"], "l": b["l"], "c": b["c"], "v": b["v"],
                                    "vw": b["vw"], "n": b["z"]} for b in history if b["sym"] == ticker])
        engine = DataIngestionEngine(storage=url, message_bus=bus, indicators=SHORT, gap_fill=filler(rest.url))
        run = Running(engine, source(srv, TICKERS[:2]))
        wait_for(lambda: engine.fills, 30, what="the catch-up")
        srv.publish(live, per_frame=2)
        wait_for(lambda: engine.stats.published >= 120 + 2 * 5 - len(backfill) and not srv.pending(), 30,
                 what="the live bars")
        run.stop()
    engine.close()
    catch_up = engine.fills[0]
    assert catch_up.why == "catch-up" and catch_up.inserted == 2 * 60 and not catch_up.failed
    assert catch_up.start_ms == now - 60 * MIN
    assert_equal_to(stored(tmp_path / "live.duckdb"), final_frame(history + live))
