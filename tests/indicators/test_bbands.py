"""Bollinger bands: middle = SMA(n), upper/lower = middle ± k·(population standard deviation of the last n closes).

The reference is numpy's two-pass `np.std(window, ddof=0)`. TA-Lib's BBANDS is only a secondary reference: it
computes the variance as E[x²] - E[x]² (cancellation on near-flat windows) and zeroes variances below 1e-8, so
it is consulted only on windows whose variance is at least 1e-6 and whose standard deviation is at least 1e-5 of
the mean, where its own error stays far below 1e-9 of the price.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from colfill.indicators.batch import enrich
from colfill.indicators.spec import BBands, IndicatorSet


def test_hand_computed(make, check):
    # Window [1, 2, 3]: mean 2, population variance 2/3; [2, 3, 4]: mean 3, same variance.
    out, _ = enrich(make.bars("X", [1.0, 2.0, 3.0, 4.0]), IndicatorSet.parse("bb:3:2"))
    sd = math.sqrt(2.0 / 3.0)
    nan = np.nan
    check.series(out["bb_middle_3_2"], np.array([nan, nan, 2.0, 3.0]))
    check.series(out["bb_upper_3_2"], np.array([nan, nan, 2.0 + 2 * sd, 3.0 + 2 * sd]))
    check.series(out["bb_lower_3_2"], np.array([nan, nan, 2.0 - 2 * sd, 3.0 - 2 * sd]))


def test_hand_computed_fractional_k(make, check):
    # Window [2, 4, 4, 6]: mean 4, deviations -2 0 0 2, population variance 2 (not the sample variance 8/3).
    out, _ = enrich(make.bars("X", [2.0, 4.0, 4.0, 6.0]), IndicatorSet.parse("bb:4:1.5"))
    sd = math.sqrt(2.0)
    assert out.columns[-3:] == ["bb_upper_4_1p5", "bb_middle_4_1p5", "bb_lower_4_1p5"]
    check.series(out["bb_upper_4_1p5"], np.array([np.nan] * 3 + [4.0 + 1.5 * sd]))
    check.series(out["bb_lower_4_1p5"], np.array([np.nan] * 3 + [4.0 - 1.5 * sd]))


def test_flat_window_has_zero_width(make):
    # A flat window after a volatile one: the exact standard deviation is 0, so the bands collapse exactly.
    close = [250.1, 0.1, 9000.0, 0.1, 0.1, 0.1, 0.1]
    out, _ = enrich(make.bars("X", close), IndicatorSet.parse("bb:3:2"))
    assert out["bb_upper_3_2"].is_null().to_list() == [True, True] + [False] * 5
    assert out["bb_upper_3_2"].to_list()[-2:] == out["bb_lower_3_2"].to_list()[-2:]
    assert out["bb_upper_3_2"].to_list()[-2:] == out["bb_middle_3_2"].to_list()[-2:]
    assert abs(out["bb_middle_3_2"][-1] - 0.1) < 1e-15


def test_short_series_is_all_null(make):
    out, _ = enrich(make.bars("X", [1.0, 2.0]), IndicatorSet.parse("bb:20:2"))
    for col in ("bb_upper", "bb_middle", "bb_lower"):
        assert out[col].to_list() == [None, None]


def _windows_flat(close: np.ndarray, n: int) -> np.ndarray:
    """Rows whose window of n closes is exactly constant."""
    flat = np.zeros(len(close), dtype=bool)
    for i in range(n - 1, len(close)):
        flat[i] = np.all(close[i - n + 1: i + 1] == close[i])
    return flat


@settings(max_examples=60, deadline=None)
@given(data=st.data(), n=st.integers(2, 30), k=st.sampled_from([2.0, 1.0, 1.5, 0.5, 3.25]))
def test_matches_numpy(data, n, k, gen, make, ref, check):
    close = data.draw(gen.closes(0, 120), label="close")
    ind = BBands(n, k)
    out, _ = enrich(make.bars("X", close), IndicatorSet((ind,)))
    upper, middle, lower, sd = ref.bbands(close, n, k)
    up_col, mid_col, lo_col = ind.columns
    check.series(out[up_col], upper, atol=0.0)
    check.series(out[mid_col], middle, atol=0.0)
    check.series(out[lo_col], lower, atol=0.0)
    # Stricter than the bands: the half-width itself is numpy's standard deviation within 1e-9 relative, down
    # to 1e-13 of the price (below which a standard deviation of prices is rounding noise).
    width = ((out[up_col] - out[lo_col]) / (2 * k)).fill_null(float("nan")).to_numpy()
    valid = ~np.isnan(sd)
    err = np.abs(width[valid] - sd[valid])
    assert (err <= np.maximum(1e-9 * sd[valid], 1e-13 * np.abs(middle[valid]))).all(), err.max()
    flat = _windows_flat(close, n)
    assert (width[flat] == 0.0).all(), "a constant window must have exactly zero width"


@settings(max_examples=40, deadline=None)
@given(data=st.data(), n=st.integers(2, 30), k=st.sampled_from([2.0, 1.0, 1.5]))
def test_matches_talib_on_non_flat_windows(data, n, k, gen, make, ref, check):
    close = data.draw(gen.closes(0, 120), label="close")
    ind = BBands(n, k)
    out, _ = enrich(make.bars("X", close), IndicatorSet((ind,)))
    expected = ref.talib(ind, close)
    _, middle, _, sd = ref.bbands(close, n, k)
    trusted = (sd**2 >= 1e-6) & (sd >= 1e-5 * np.abs(middle))  # NaN (warm-up) compares False
    for col in ind.columns:
        got = out[col].fill_null(float("nan")).to_numpy()
        if col == ind.columns[1]:  # the middle band is an SMA: TA-Lib is exact enough on every row
            check.series(out[col], expected[col], atol=0.0)
        else:  # middle ± k·sd: near 0 a band is the difference of two near-equal numbers, exact relative to them
            scale = (np.abs(middle) + k * sd)[trusted]
            check.series(pl.Series(col, got[trusted]), expected[col][trusted], atol=1e-9 * scale)


def test_default_set_uses_20_and_2(make, ref, check):
    close = 100.0 + np.cumsum(np.sin(np.arange(45)) * 0.7)
    out, _ = enrich(make.bars("X", close), IndicatorSet.default())
    upper, middle, lower, _ = ref.bbands(close, 20, 2.0)
    check.series(out["bb_upper"], upper, atol=0.0)
    check.series(out["bb_middle"], middle, atol=0.0)
    check.series(out["bb_lower"], lower, atol=0.0)
    check.series(out["bb_middle"], out["sma_20"].fill_null(float("nan")).to_numpy(), atol=0.0)


@settings(max_examples=25, deadline=None)
@given(data=st.data(), n=st.integers(2, 12), seed=st.integers(0, 2**16))
def test_multi_ticker_equals_single_ticker(data, n, seed, gen, ref, check):
    frames = data.draw(gen.histories(), label="frames")
    ind = BBands(n, 2.0)
    out = check.multi_ticker(IndicatorSet((ind,)), frames, seed)
    for ticker, frame in frames.items():
        mine = out.filter(pl.col("ticker") == ticker)
        expected = ref.bbands(frame["close"].to_numpy(), n, 2.0)
        for col, want in zip(ind.columns, expected):
            check.series(mine[col], want, atol=0.0, what=f"{ticker} {col}")
