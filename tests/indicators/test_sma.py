"""SMA: mean of the last n closes, null for the first n-1 bars of each symbol."""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from colfill.indicators.batch import enrich
from colfill.indicators.spec import SMA, IndicatorSet


def test_hand_computed(make, check):
    out, _ = enrich(make.bars("X", [1.0, 2.0, 3.0, 4.0]), IndicatorSet.parse("sma:3,sma:2"))
    assert out["sma_3"].to_list() == [None, None, 2.0, 3.0]
    check.series(out["sma_2"], np.array([np.nan, 1.5, 2.5, 3.5]))


def test_shorter_than_window_is_all_null(make):
    out, state = enrich(make.bars("X", [5.0, 6.0, 7.0, 8.0]), IndicatorSet.parse("sma:5"))
    assert out["sma_5"].dtype == pl.Float64
    assert out["sma_5"].null_count() == 4
    assert state["n"].to_list() == [4]
    assert state["closes"].to_list() == [[5.0, 6.0, 7.0, 8.0]]


def test_flat_closes_give_the_close(make, check):
    out, _ = enrich(make.bars("X", [12.34] * 30), IndicatorSet.parse("sma:20"))
    check.series(out["sma_20"], np.r_[np.full(19, np.nan), np.full(11, 12.34)])


def test_window_does_not_reach_into_the_previous_symbol(make, check):
    # BRK.A sorts right before NA: NA's windows must see neither its prices nor the rounding residue they leave
    # in a running window sum (the engine once gave 0.00080000008 here).
    frame = make.concat([
        make.bars("BRK.A", [546454.35, 1129537.76, 743035.02, 746690.89]),
        make.bars("NA", [0.0007, 0.0009, 0.0008, 0.0007]),
    ])
    out, _ = enrich(frame, IndicatorSet.parse("sma:3"))
    na = out.filter(pl.col("ticker") == "NA")["sma_3"]
    check.series(na, np.array([np.nan, np.nan, 0.0024 / 3, 0.0024 / 3]), atol=0.0)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), n=st.integers(2, 40))
def test_matches_talib(data, n, gen, make, ref, check):
    close = data.draw(gen.closes(0, 120), label="close")
    ind = SMA(n)
    out, _ = enrich(make.bars("X", close), IndicatorSet((ind,)))
    check.series(out[ind.key], ref.talib(ind, close)[ind.key], atol=0.0)


@settings(max_examples=25, deadline=None)
@given(data=st.data(), n=st.integers(2, 12), seed=st.integers(0, 2**16))
def test_multi_ticker_equals_single_ticker(data, n, seed, gen, ref, check):
    frames = data.draw(gen.histories(), label="frames")
    ind = SMA(n)
    out = check.multi_ticker(IndicatorSet((ind,)), frames, seed)
    for ticker, frame in frames.items():
        mine = out.filter(pl.col("ticker") == ticker)
        check.series(mine[ind.key], ref.talib(ind, frame["close"].to_numpy())[ind.key], atol=0.0, what=ticker)
