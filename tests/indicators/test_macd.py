"""MACD (TA-Lib): fast and slow EMAs both seeded at index slow-1, the fast one with the mean of the `fast`
closes ending there; signal = EMA(signal) of the line seeded at slow+signal-2; all three null before that."""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from colfill.indicators.batch import enrich
from colfill.indicators.spec import MACD, IndicatorSet


def test_hand_computed(make, check):
    # fast 2 (k 2/3), slow 3 (k 1/2), signal 2 (k 2/3), closes 1 3 2 6 4.
    # Index 2: slow = mean(1,3,2) = 2, fast = mean(3,2) = 2.5, line 1/2 (not yet output).
    # Index 3: fast = 2.5 + 2/3·3.5 = 29/6, slow = 2 + 1/2·4 = 4, line 5/6; signal = mean(1/2, 5/6) = 2/3.
    # Index 4: fast = 29/6 + 2/3·(4 - 29/6) = 77/18, slow = 4, line 5/18; signal = 2/3 + 2/3·(5/18 - 2/3) = 11/27.
    out, state = enrich(make.bars("X", [1.0, 3.0, 2.0, 6.0, 4.0]), IndicatorSet.parse("macd:2:3:2"))
    nan = np.nan
    check.series(out["macd_2_3_2"], np.array([nan, nan, nan, 5 / 6, 5 / 18]))
    check.series(out["macd_signal_2_3_2"], np.array([nan, nan, nan, 2 / 3, 11 / 27]))
    check.series(out["macd_hist_2_3_2"], np.array([nan, nan, nan, 1 / 6, 5 / 18 - 11 / 27]))
    check.series(state["macd_2_3_2__fast"], np.array([77 / 18]))
    check.series(state["macd_2_3_2__slow"], np.array([4.0]))
    check.series(state["macd_2_3_2__signal"], np.array([11 / 27]))


def test_default_columns_and_warm_up(make):
    close = 100.0 + np.sin(np.arange(40))
    out, _ = enrich(make.bars("X", close), IndicatorSet.parse("macd:12:26:9"))
    for col in ("macd", "macd_signal", "macd_hist"):
        assert out[col].is_null().to_list() == [True] * 33 + [False] * 7, col


def test_flat_is_zero(make, check):
    out, _ = enrich(make.bars("X", [50.0] * 12), IndicatorSet.parse("macd:3:5:3"))
    for col in ("macd_3_5_3", "macd_signal_3_5_3", "macd_hist_3_5_3"):
        check.series(out[col], np.r_[np.full(6, np.nan), np.zeros(6)])


@settings(max_examples=60, deadline=None)
@given(data=st.data(), fast=st.integers(2, 14), extra=st.integers(1, 20), signal=st.integers(1, 12))
def test_matches_talib(data, fast, extra, signal, gen, make, ref, check):
    close = data.draw(gen.closes(0, 120), label="close")
    ind = MACD(fast, fast + extra, signal)
    out, _ = enrich(make.bars("X", close), IndicatorSet((ind,)))
    expected = ref.talib(ind, close)
    for col in ind.columns:
        check.series(out[col], expected[col], atol=check.price_atol(close))


@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_default_parameters_match_talib(data, gen, make, ref, check):
    close = data.draw(gen.closes(25, 120), label="close")
    ind = MACD()
    out, _ = enrich(make.bars("X", close), IndicatorSet((ind,)))
    expected = ref.talib(ind, close)
    for col in ("macd", "macd_signal", "macd_hist"):
        check.series(out[col], expected[col], atol=check.price_atol(close))


@settings(max_examples=25, deadline=None)
@given(data=st.data(), fast=st.integers(2, 5), extra=st.integers(1, 6), signal=st.integers(1, 5),
       seed=st.integers(0, 2**16))
def test_multi_ticker_equals_single_ticker(data, fast, extra, signal, seed, gen, ref, check):
    frames = data.draw(gen.histories(), label="frames")
    ind = MACD(fast, fast + extra, signal)
    out = check.multi_ticker(IndicatorSet((ind,)), frames, seed)
    for ticker, frame in frames.items():
        mine = out.filter(pl.col("ticker") == ticker)
        close = frame["close"].to_numpy()
        expected = ref.talib(ind, close)
        for col in ind.columns:
            check.series(mine[col], expected[col], atol=check.price_atol(close), what=f"{ticker} {col}")
