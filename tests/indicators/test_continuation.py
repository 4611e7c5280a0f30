"""Continuation: enriching a history chunk after chunk, passing the state on, gives the rows and the final state of
one call over the whole history (within 1e-9 relative, identical nulls), wherever the cuts fall."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colfill.indicators.batch import enrich
from colfill.indicators.spec import IndicatorSet

CUSTOM = IndicatorSet.parse("sma:5,ema:3,rsi:2,macd:3:6:2,bb:4:1.5,vwap")
SETS = {"default": IndicatorSet.default(), "custom": CUSTOM}


def in_chunks(chunks: list[pl.DataFrame], indicators: IndicatorSet,
              shuffle_seed: int | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Enrich chunk after chunk, passing the state on; with a seed, the rows of every chunk and of every
    state handed back in are shuffled (neither order may matter)."""
    state = None
    outs = []
    for chunk in chunks:
        if shuffle_seed is not None:
            chunk = chunk.sample(fraction=1.0, shuffle=True, seed=shuffle_seed)
            state = None if state is None else state.sample(fraction=1.0, shuffle=True, seed=shuffle_seed)
        out, state = enrich(chunk, indicators, state)
        outs.append(out)
    assert state is not None
    return pl.concat(outs).sort("ticker", "ts"), state


def split(frames: dict[str, pl.DataFrame], cuts: dict[str, list[int]]) -> list[pl.DataFrame]:
    """Chunk j holds rows cuts[t][j-1]:cuts[t][j] of each symbol t (cuts without the 0 and the end)."""
    n_chunks = len(next(iter(cuts.values()))) + 1
    chunks = []
    for j in range(n_chunks):
        parts = []
        for ticker, frame in frames.items():
            bounds = [0, *cuts[ticker], frame.height]
            parts.append(frame.slice(bounds[j], bounds[j + 1] - bounds[j]))
        chunks.append(pl.concat(parts))
    return chunks


def assert_continues(frames: dict[str, pl.DataFrame], cuts: dict[str, list[int]], indicators: IndicatorSet,
                     check, shuffle_seed: int | None = None) -> None:
    whole = pl.concat(list(frames.values()))
    expected, expected_state = enrich(whole, indicators)
    for ticker, frame in frames.items():  # the one-call result is itself right
        for ind in indicators.indicators:
            check.indicator(expected.filter(pl.col("ticker") == ticker), ind, frame, what=f"{ticker}: ")
    got, got_state = in_chunks(split(frames, cuts), indicators, shuffle_seed)
    check.frames(got, expected, indicators.columns)
    check.states(got_state, expected_state)


def every_37_minutes(n: int) -> list[dt.datetime]:
    """From 21:00 UTC on 2024-03-09 across New York midnight, the DST change and two more dates."""
    start = dt.datetime(2024, 3, 9, 21, 0, tzinfo=dt.timezone.utc)
    return [start + dt.timedelta(minutes=37 * i) for i in range(n)]


@pytest.mark.parametrize("name", SETS)
def test_cuts_inside_every_warm_up(name, make, check):
    # Cut just before, at and just after every indicator's first valid index and lookback (default: sma 19/49,
    # ema 19, rsi 14, macd 33, bb 19; custom: 4, 2, 2, 6, 3), so every warm-up is interrupted somewhere.
    indicators = SETS[name]
    rng = np.random.default_rng(7)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, 80)))
    frame = make.bars("BRK.A", close, ts=every_37_minutes(80), volume=rng.integers(0, 5, 80).astype(float))
    marks = {i.first_valid for i in indicators.indicators} | {i.lookback for i in indicators.indicators}
    cuts = sorted({c for m in marks for c in (m - 1, m, m + 1) if 0 < c < 80})
    assert_continues({"BRK.A": frame}, {"BRK.A": cuts}, indicators, check)


def test_one_bar_at_a_time(make, check):
    rng = np.random.default_rng(3)
    frames = {}
    for t, scale in (("BRK.A", 612_000.0), ("NA", 0.0007), ("NULL", 35.0)):
        close = scale * np.exp(np.cumsum(rng.normal(0, 0.02, 24)))
        close[8:14] = close[7]  # a flat run inside the warm-ups
        frames[t] = make.bars(t, close, ts=every_37_minutes(24), volume=rng.integers(0, 3, 24).astype(float))
    cuts = {t: list(range(1, 24)) for t in frames}
    assert_continues(frames, cuts, CUSTOM, check)


@pytest.mark.parametrize("name", SETS)
def test_late_and_missing_symbols(name, make, check):
    rng = np.random.default_rng(11)
    frames = {
        t: make.bars(t, 20.0 * np.exp(np.cumsum(rng.normal(0, 0.02, 70))), ts=every_37_minutes(70),
                     volume=rng.integers(0, 9, 70).astype(float))
        for t in ("A", "EARLY", "GAP", "LATE")
    }
    cuts = {
        "A": [10, 30, 50],
        "EARLY": [40, 70, 70],  # gone after the second chunk: its state must come back unchanged, last_ts included
        "GAP": [20, 20, 45],  # absent from the second chunk
        "LATE": [0, 0, 40],  # first seen in the third chunk
    }
    assert_continues(frames, cuts, SETS[name], check)


def test_empty_chunk_keeps_the_state(make, check):
    frame = make.bars("X", np.linspace(10.0, 20.0, 12))
    _, state = enrich(frame, CUSTOM)
    out, again = enrich(frame.clear(), CUSTOM, state)
    assert out.height == 0
    assert out.columns == [*frame.columns, *CUSTOM.columns]
    check.states(again, state)


def draw_cuts(data: st.DataObject, n: int, n_cuts: int) -> list[int]:
    """`n_cuts` cut points in 0..n for one symbol, which is cut freely, joins late, or skips a middle chunk."""
    pattern = data.draw(st.sampled_from(["free", "free", "late", "gap"]), label="pattern")
    cuts = sorted(data.draw(st.lists(st.integers(0, n), min_size=n_cuts, max_size=n_cuts), label="cuts"))
    if pattern == "late":
        cuts[0] = 0  # absent from the first chunk
    elif pattern == "gap" and n_cuts >= 2:
        cuts[1] = cuts[0]  # absent from the second chunk
    return cuts


@pytest.mark.parametrize(("name", "max_size"), [("default", 90), ("custom", 40)])
@settings(max_examples=30, deadline=None)
@given(data=st.data(), n_cuts=st.integers(1, 4), shuffle=st.none() | st.integers(0, 2**16))
def test_any_split_gives_the_one_call_result(name, max_size, data, n_cuts, shuffle, gen, check):
    frames = data.draw(gen.histories(min_tickers=1, max_tickers=4, max_size=max_size), label="frames")
    cuts = {t: draw_cuts(data, f.height, n_cuts) for t, f in frames.items()}
    assert_continues(frames, cuts, SETS[name], check, shuffle_seed=shuffle)


def test_symbols_without_new_bars_keep_their_state_row(make):
    # A day file without a symbol must not touch that symbol's state (it once lost its last_ts).
    _, state = enrich(make.concat([make.bars("A", [1.0, 2.0, 3.0]), make.bars("B", [4.0, 5.0])]), CUSTOM)
    _, after = enrich(make.bars("A", [4.0], start=dt.datetime(2024, 3, 11, 14, 30, tzinfo=dt.timezone.utc)),
                      CUSTOM, state)
    assert after.filter(pl.col("ticker") == "B").to_dicts() == state.filter(pl.col("ticker") == "B").to_dicts()
    assert after["n"].to_list() == [4, 2]


def test_row_order_does_not_matter_whole_days_or_shuffled() -> None:
    """Days of files concatenated (each in (ticker, ts) order, the whole not) take the cheap stable sort by
    ticker; any other order the full sort: the rows are the same as for the sorted input."""
    rng = np.random.default_rng(5)
    start = dt.datetime(2024, 3, 4, 14, 30, tzinfo=dt.timezone.utc)
    days = []
    for d in range(3):
        ts = [start + dt.timedelta(days=d, minutes=m) for m in range(40)]
        days.append(pl.DataFrame({"ticker": np.repeat(["B", "A", "C"], 40), "ts": ts * 3,
                                  "close": rng.uniform(10, 11, 120)}).sort("ticker", "ts"))
    frame = pl.concat(days).with_columns(pl.col("close").alias("high"), pl.col("close").alias("low"),
                                         pl.lit(100.0).alias("volume"))
    want, _ = enrich(frame.sort("ticker", "ts"), IndicatorSet.default())
    for bars in (frame, frame.sample(fraction=1.0, shuffle=True, seed=1)):
        got, _ = enrich(bars, IndicatorSet.default())
        assert got.equals(want)


@pytest.mark.parametrize("rows", [1, 17, 60])
def test_large_frames_in_ticker_ranges_give_identical_rows_and_state(rows, make, monkeypatch):
    """A frame over 2 x CHUNK_ROWS is enriched one ticker range at a time: every symbol's values are computed
    independently of the others, so rows and state are bit for bit those of one pass, including symbols of the
    state with no new bars before, between and after the ranges."""
    from colfill.indicators import batch

    rng = np.random.default_rng(3)
    names = [f"T{i:02d}" for i in range(12)]
    frames = {t: make.bars(t, 20.0 * np.exp(np.cumsum(rng.normal(0, 0.02, 30 + 3 * i))),
                           ts=every_37_minutes(30 + 3 * i), volume=rng.integers(0, 9, 30 + 3 * i).astype(float))
              for i, t in enumerate(names)}
    first = pl.concat([f.head(12) for f in frames.values()])
    second = pl.concat([f.slice(12) for t, f in frames.items() if t not in ("T00", "T05", "T06", "T11")])
    _, state = enrich(first, CUSTOM)
    want, want_state = enrich(second, CUSTOM, state)
    monkeypatch.setattr(batch, "CHUNK_ROWS", rows)
    assert len(batch._ticker_cuts(second.sort("ticker", "ts"), rows)) > 1
    got, got_state = enrich(second, CUSTOM, state)
    assert got.equals(want)
    assert got_state.equals(want_state)
    assert got_state["ticker"].to_list() == names
