"""EMA: seeded with the mean of the first n closes at index n-1, then ema += k·(close - ema), k = 2/(n+1)."""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from colfill.indicators.batch import enrich
from colfill.indicators.spec import EMA, IndicatorSet


def test_hand_computed(make, check):
    # n=3, k=0.5: seed mean(2, 4, 6) = 4; then 4 + 0.5·(1 - 4) = 2.5; then 2.5 + 0.5·(10 - 2.5) = 6.25.
    out, state = enrich(make.bars("X", [2.0, 4.0, 6.0, 1.0, 10.0]), IndicatorSet.parse("ema:3"))
    check.series(out["ema_3"], np.array([np.nan, np.nan, 4.0, 2.5, 6.25]))
    check.series(state["ema_3__ema"], np.array([6.25]))


def test_hand_computed_n4(make, check):
    # n=4, k=0.4: seed mean(1, 2, 3, 6) = 3; then 3 + 0.4·(8 - 3) = 5.
    out, _ = enrich(make.bars("X", [1.0, 2.0, 3.0, 6.0, 8.0]), IndicatorSet.parse("ema:4"))
    check.series(out["ema_4"], np.array([np.nan, np.nan, np.nan, 3.0, 5.0]))


def test_short_and_flat(make, check):
    out, state = enrich(make.bars("X", [7.0] * 4), IndicatorSet.parse("ema:5,ema:2"))
    assert out["ema_5"].to_list() == [None] * 4
    assert state["ema_5__ema"].to_list() == [None]  # not seeded yet: nothing to carry
    check.series(out["ema_2"], np.array([np.nan, 7.0, 7.0, 7.0]))


@settings(max_examples=60, deadline=None)
@given(data=st.data(), n=st.integers(2, 40))
def test_matches_talib(data, n, gen, make, ref, check):
    close = data.draw(gen.closes(0, 120), label="close")
    ind = EMA(n)
    out, state = enrich(make.bars("X", close), IndicatorSet((ind,)))
    expected = ref.talib(ind, close)[ind.key]
    check.series(out[ind.key], expected, atol=0.0)
    if len(close):
        last = expected[-1]
        check.series(state[f"{ind.key}__ema"], np.array([last]), atol=0.0, what="carried ema")


@settings(max_examples=25, deadline=None)
@given(data=st.data(), n=st.integers(2, 12), seed=st.integers(0, 2**16))
def test_multi_ticker_equals_single_ticker(data, n, seed, gen, ref, check):
    frames = data.draw(gen.histories(), label="frames")
    ind = EMA(n)
    out = check.multi_ticker(IndicatorSet((ind,)), frames, seed)
    for ticker, frame in frames.items():
        mine = out.filter(pl.col("ticker") == ticker)
        check.series(mine[ind.key], ref.talib(ind, frame["close"].to_numpy())[ind.key], atol=0.0, what=ticker)
