"""Helpers of the live engine's tests: a WebSocket source of the replay server, a run until a condition holds,
the stored rows of any store kind."""

from __future__ import annotations

import threading
import time
from typing import Any

import duckdb
import polars as pl

from colfill.indicators.spec import IndicatorSet
from colfill.interrupt import Stop
from colfill.live.engine import DataIngestionEngine
from colfill.sources.live import LiveDataSource, LiveSettings
from colfill.stores import open_store
from tests.polygon_ws_server import PolygonWsServer

KEY = "engine-test-key"
T0 = 1_704_205_800_000  # 2024-01-02 14:30 UTC
MIN = 60_000
SHORT = IndicatorSet.parse("sma:3,ema:4,rsi:3,vwap")


def live_source(srv: PolygonWsServer, tickers: tuple[str, ...]) -> LiveDataSource:
    return LiveDataSource(LiveSettings(url=srv.url, api_key=LiveSettings.from_env("X", api_key=KEY).api_key,
                                       tickers=tickers, backoff_base=0.05))


def run_until(engine: DataIngestionEngine, src: LiveDataSource, done: Any, timeout: float = 20.0) -> None:
    """Ingest in a thread until `done()` holds (or the timeout), then stop the way SIGTERM does."""
    stop = Stop()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            engine.ingest(src, mode="stream", stop=stop)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.02)
    stop.request()
    thread.join(15)
    if errors:
        raise errors[0]


def rows_of(url: str, table: str = "bars_1m") -> pl.DataFrame:
    if url.startswith("postgresql"):
        store = open_store(url, load_workers=1)
        try:
            frames = [pl.from_arrow(t) for t in store.read_bars(table, ["ticker", "ts", "close", "volume",
                                                                        "sma_3", "rsi_3", "vwap"])]
        finally:
            store.close()
        return pl.concat(frames).sort("ticker", "ts")  # type: ignore[arg-type]
    path = url.split(":///", 1)[1]
    db = path if path.endswith(".duckdb") else f"{path}/colfill.duckdb"
    con = duckdb.connect(db, read_only=True)
    try:
        return con.sql(f"SELECT ticker, ts, close, volume, sma_3, rsi_3, vwap FROM {table} ORDER BY ticker, ts").pl()
    finally:
        con.close()
