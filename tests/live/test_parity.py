"""The incremental engine against the batch engine: every indicator, every bar, within 1e-9 relative."""

from __future__ import annotations

import random

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from colfill import IncrementalIndicatorProcessor
from colfill.indicators.batch import enrich

from .conftest import SETS, accepted, assert_parity, batch, make_stream, outputs_frame, to_frame

streams = st.tuples(st.integers(0, 2**32), st.integers(0, 500), st.integers(1, 4), st.sampled_from(sorted(SETS)))


@settings(max_examples=40, deadline=None)
@given(streams)
def test_per_bar_equals_batch(case: tuple[int, int, int, str]) -> None:
    seed, n, symbols, name = case
    indicators = SETS[name]
    stream = make_stream(seed, n, symbols)
    proc = IncrementalIndicatorProcessor(indicators)
    rows = [r for r in map(proc.process, stream) if r is not None]
    want, _ = batch(accepted(stream), indicators)
    assert_parity(outputs_frame(rows, indicators), want, indicators)
    assert proc.stats.bars == len(rows)
    assert proc.stats.bars - proc.stats.revised == want.height


@settings(max_examples=30, deadline=None)
@given(streams, st.floats(0, 1))
def test_state_hand_off_at_any_cut(case: tuple[int, int, int, str], where: float) -> None:
    """Cut the stream anywhere; continue from the exported state in a new engine, from the batch engine's
    state, and the batch engine from the incremental engine's export: all give the uncut numbers."""
    seed, n, symbols, name = case
    indicators = SETS[name]
    stream = accepted(make_stream(seed, n, symbols))  # revisions across a cut need the undo record: tested below
    cut = int(len(stream) * where)
    head, tail = stream[:cut], stream[cut:]
    want, _ = batch(stream, indicators)

    first = IncrementalIndicatorProcessor(indicators)
    rows = [first.process(b) for b in head]
    exported = first.export_state()
    second = IncrementalIndicatorProcessor(indicators)
    second.import_state(exported)
    rows += [second.process(b) for b in tail]
    assert_parity(outputs_frame(rows, indicators), want, indicators)  # type: ignore[arg-type]

    head_batch, batch_state = batch(head, indicators)
    third = IncrementalIndicatorProcessor(indicators)
    third.import_state(batch_state)
    tail_rows = [third.process(b) for b in tail]
    want_tail = want.join(head_batch.select("ticker", "t"), on=["ticker", "t"], how="anti")
    assert_parity(outputs_frame(tail_rows, indicators), want_tail, indicators)  # type: ignore[arg-type]
    assert_parity(outputs_frame([r for r in rows if r], indicators), want, indicators)

    if tail:
        continued, _ = enrich(to_frame(tail), indicators, exported)
        assert_parity(continued.sort("ticker", "t"), want_tail, indicators)


@settings(max_examples=30, deadline=None)
@given(streams, st.lists(st.integers(1, 200), min_size=1, max_size=8), st.sampled_from([0, 60, 10**9]))
def test_columnar_equals_per_bar(case: tuple[int, int, int, str], sizes: list[int], per_bar_below: int) -> None:
    """process_batch over any chunking of the stream (revisions and late bars included), through the batch
    engine, the per-bar step or both, gives the per-bar engine's final numbers and counts, and continues with
    the per-bar engine across chunks."""
    seed, n, symbols, name = case
    indicators = SETS[name]
    stream = make_stream(seed, n, symbols)
    per_bar = IncrementalIndicatorProcessor(indicators)
    want = outputs_frame([r for r in map(per_bar.process, stream) if r is not None], indicators)

    columnar = IncrementalIndicatorProcessor(indicators)
    columnar.per_bar_below = per_bar_below
    frames, i, k = [], 0, 0
    while i < len(stream):
        chunk = stream[i:i + sizes[k % len(sizes)]]
        i, k = i + len(chunk), k + 1
        if k % 3 == 0:  # now and then a single bar through the per-bar entry point
            frames.append(pl.DataFrame([r for r in map(columnar.process, chunk) if r is not None],
                                       infer_schema_length=None))
        else:
            frames.append(columnar.process_batch(pl.DataFrame(chunk, infer_schema_length=None)))
    rows = [r for f in frames if f.height for r in f.to_dicts()]
    assert_parity(outputs_frame(rows, indicators), want, indicators)
    assert columnar.stats.rejected == per_bar.stats.rejected
    assert columnar.stats.bars - columnar.stats.revised == per_bar.stats.bars - per_bar.stats.revised


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32), st.integers(0, 300), st.sampled_from([0, 10**9]))
def test_timeframes_are_separate_symbols(seed: int, n: int, per_bar_below: int) -> None:
    """The same tickers in 1m and 1d bars, interleaved, in one engine whose default timeframe is 1m: each
    timeframe equals the batch engine over that timeframe's bars alone, per bar and columnar."""
    indicators = SETS["short"]
    rng = random.Random(seed)
    minute = make_stream(seed, n, 2)
    daily = [dict(b, timeframe="1d") for b in make_stream(seed + 1, n // 2, 2)]
    stream, i, j = [], 0, 0
    while i < len(minute) or j < len(daily):
        if j == len(daily) or (i < len(minute) and rng.random() < 0.6):
            stream.append(minute[i])
            i += 1
        else:
            stream.append(daily[j])
            j += 1
    per_bar = IncrementalIndicatorProcessor(indicators)
    rows = [r for r in map(per_bar.process, stream) if r is not None]
    columnar = IncrementalIndicatorProcessor(indicators)
    columnar.per_bar_below = per_bar_below
    got = columnar.process_batch(pl.DataFrame(stream, infer_schema_length=None)) if stream else pl.DataFrame()
    for timeframe, part in (("1m", minute), ("1d", daily)):
        want, _ = batch(accepted(part), indicators)
        assert_parity(outputs_frame([r for r in rows if r["timeframe"] == timeframe], indicators), want, indicators)
        if got.height:
            mine = got.filter(pl.col("timeframe") == timeframe).to_dicts()
            assert_parity(outputs_frame(mine, indicators), want, indicators)
    assert sorted(columnar.export_state()["timeframe"].unique()) == sorted(per_bar.export_state()["timeframe"].unique())
