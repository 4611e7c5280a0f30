"""A live session killed before it saved its indicator state leaves bars newer than the saved state in the
store: the next session replays them, so its indicators equal a batch recompute of every stored bar."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from colfill.indicators.batch import enrich
from colfill.indicators.spec import IndicatorSet
from colfill.live.engine import processors_for
from colfill.live.handoff import save_state
from colfill.live.stored_state import compute_state
from colfill.pipeline import BackfillJob, run
from colfill.sample import generate
from colfill.stores import open_store
from tests.live.conftest import flat_bars

IND = IndicatorSet.parse("sma:5,ema:4,rsi:3,macd:3:5:2,bb:4:2,vwap")
START, CUT, LAST = dt.date(2024, 3, 4), dt.date(2024, 3, 5), dt.date(2024, 3, 7)


@pytest.mark.parametrize("kind", ["lake", "duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_bars_stored_after_the_saved_state_are_replayed(kind: str, tmp_path: Path,
                                                        request: pytest.FixtureRequest) -> None:
    root = tmp_path / "ff"
    generate(root, START, LAST, tickers=3, seed=9, minute_fill=0.2, datasets=("minute_aggs_v1",))
    data = tmp_path / "data"
    url = {"lake": f"lake:///{data.resolve()}", "duckdb": f"duckdb:///{data / 'colfill.duckdb'}?index=all",
           "postgres": request.getfixturevalue("pg_url") if kind == "postgres" else ""}[kind]
    job = BackfillJob(source=str(root), start=START, end=CUT, data_dir=data, tables=("bars_1m",), indicators=IND)
    store = open_store(url)
    try:
        assert run(job, store).ok
    finally:
        store.close()
    store = open_store(url)
    try:
        saved = compute_state(store, "bars_1m", IND)
    finally:
        store.close()
    save_state(url, saved, IND)  # what a session (or `colfill state import`) saved
    everything = flat_bars(root)
    after = everything.filter(pl.col("ts").dt.convert_time_zone("America/New_York").dt.date() > CUT)
    enriched, _ = enrich(everything, IND)
    store = open_store(url)
    try:  # the killed session's bars: stored, its state never saved
        live = enriched.join(after.select("ticker", "ts"), on=["ticker", "ts"], how="semi")
        store.upsert_live("bars_1m", live.to_arrow())
        (proc,) = processors_for(store, "1m", IND)
    finally:
        store.close()
    _, want = enrich(everything, IND)
    got = proc.export_state().sort("ticker")  # type: ignore[attr-defined]
    want = want.sort("ticker")
    assert got["last_ts"].to_list() == want["last_ts"].to_list() != saved.sort("ticker")["last_ts"].to_list()
    assert got["n"].to_list() == want["n"].to_list()
    for col in ("ema_4__ema", "rsi_3__avg_gain", "macd_3_5_2__signal", "vwap__pv"):
        a, b = got[col].to_numpy(), want[col].to_numpy()
        assert abs(a - b).max() <= 1e-9 * abs(b).max(), col
