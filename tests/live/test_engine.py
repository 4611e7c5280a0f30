"""The incremental engine's own contract: TA-Lib parity, revisions, late bars, sessions, drift, inputs."""

from __future__ import annotations

import datetime as dt
import logging
import math
import random

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colfill import IncrementalIndicatorProcessor
from colfill.errors import InvalidArgument, SchemaMismatch
from colfill.indicators.spec import IndicatorSet
from tests.indicators.conftest import assert_indicator_matches

from .conftest import MINUTE, outputs_frame

T0 = int(dt.datetime(2024, 3, 8, 14, 30, tzinfo=dt.timezone.utc).timestamp() * 1000)


def bar(t: int, c: float, symbol: str = "AAPL", v: float = 100.0, spread: float = 0.0) -> dict[str, object]:
    return {"symbol": symbol, "timeframe": "1m", "t": t, "o": c, "h": c + spread, "l": c - spread, "c": c, "v": v}


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32), st.integers(0, 400),
       st.sampled_from(["default", "sma:5,ema:9,rsi:7,macd:5:13:4,bb:10:1"]))
def test_matches_talib_and_numpy(seed: int, n: int, spec: str) -> None:
    """One symbol through process(): every column equals TA-Lib (numpy for Bollinger, Python for VWAP)."""
    rng = np.random.default_rng(seed)
    closes = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    closes[rng.random(n) < 0.2] = 50.0  # flat stretches
    closes = np.round(closes, 4)
    indicators = IndicatorSet.parse(spec)
    proc = IncrementalIndicatorProcessor(indicators)
    rows = [proc.process(bar(T0 + i * 7 * MINUTE, float(c), v=float(rng.integers(0, 3)) * 50, spread=0.01))
            for i, c in enumerate(closes)]
    got = outputs_frame(rows, indicators)  # type: ignore[arg-type]
    frame = pl.DataFrame({
        "ts": [dt.datetime.fromtimestamp(r["t"] / 1000, dt.timezone.utc) for r in rows],  # type: ignore[index]
        "high": closes + 0.01, "low": closes - 0.01, "close": closes,
        "volume": [r["v"] for r in rows],  # type: ignore[index]
    })
    for ind in indicators.indicators:
        assert_indicator_matches(got, ind, frame, what="incremental ")


def test_revision_replaces_the_last_bar() -> None:
    ind = IndicatorSet.parse("sma:3,ema:3,vwap")
    proc = IncrementalIndicatorProcessor(ind)
    for i, c in enumerate([10.0, 11.0, 12.0]):
        proc.process(bar(T0 + i * MINUTE, c))
    first = proc.process(bar(T0 + 3 * MINUTE, 20.0))
    revised = proc.process(bar(T0 + 3 * MINUTE, 14.0, v=300.0))
    again = proc.process(bar(T0 + 3 * MINUTE, 13.0))
    fresh = IncrementalIndicatorProcessor(ind)
    for i, c in enumerate([10.0, 11.0, 12.0, 13.0]):
        expect = fresh.process(bar(T0 + i * MINUTE, c))
    assert first and revised and again and expect
    assert first["sma_3"] == pytest.approx(43 / 3) and revised["sma_3"] == pytest.approx(37 / 3)
    assert {k: again[k] for k in ind.columns} == {k: expect[k] for k in ind.columns}
    assert proc.stats.revised == 2 and proc.stats.bars == 6 and proc.stats.rejected == 0


def test_older_bar_is_rejected_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    proc = IncrementalIndicatorProcessor("sma:2")
    proc.process(bar(T0, 10.0))
    proc.process(bar(T0 + 2 * MINUTE, 12.0))
    with caplog.at_level(logging.WARNING, logger="colfill.live"):
        assert proc.process(bar(T0 + MINUTE, 99.0)) is None
    assert proc.stats.rejected == 1 and "AAPL" in caplog.text and "older" in caplog.text
    after = proc.process(bar(T0 + 3 * MINUTE, 14.0))
    assert after and after["sma_2"] == 13.0  # the late bar was not applied
    assert proc.process(bar(T0 - MINUTE, 1.0, symbol="MSFT")) is not None  # other symbols are independent


@pytest.mark.parametrize("back", [1, 3, 7])
def test_a_correction_of_an_older_minute_equals_the_corrected_series_from_scratch(back: int) -> None:
    """Minute m-back of 80 (a symbol's last bars held: `keep`) corrected: the returned rows of m-back..m, and the
    next bar's, equal a fresh processor's over the corrected series bit for bit, and the batch engine's, for
    every indicator of the default set; another symbol is untouched. Older than the held bars: refused."""
    rng = random.Random(back)
    closes = [round(50 * math.exp(rng.gauss(0, 0.01) * i ** 0.5), 4) for i in range(80)]
    bars = [bar(T0 + i * MINUTE, c, v=float(rng.randint(0, 900)), spread=0.05) for i, c in enumerate(closes)]
    proc = IncrementalIndicatorProcessor()
    for b in bars:
        proc.process(b)
        proc.process({**b, "symbol": "MSFT"})
    m = len(bars) - 1
    fixed = bar(T0 + (m - back) * MINUTE, closes[m - back] * 1.03, v=4321.0, spread=0.2)
    rows = proc.correct(fixed)
    final = bars[:m - back] + [fixed] + bars[m - back + 1:] + [bar(T0 + (m + 1) * MINUTE, 51.0, v=10.0)]
    assert rows is not None and [r["t"] for r in rows] == [b["t"] for b in final[m - back:m + 1]]
    rows.append(proc.process(final[-1]))  # type: ignore[arg-type]
    fresh = IncrementalIndicatorProcessor()
    want = [fresh.process(b) for b in final]
    columns = fresh.indicators.columns
    assert [{c: r[c] for c in columns} for r in rows] == [{c: w[c] for c in columns} for w in want[m - back:]]  # type: ignore[index]
    batch = outputs_frame(want, fresh.indicators)  # type: ignore[arg-type]
    frame = pl.DataFrame({"ts": [dt.datetime.fromtimestamp(b["t"] / 1000, dt.timezone.utc) for b in final],  # type: ignore[operator]
                          "high": [b["h"] for b in final], "low": [b["l"] for b in final],
                          "close": [b["c"] for b in final], "volume": [b["v"] for b in final]})
    for ind in fresh.indicators.indicators:
        assert_indicator_matches(batch, ind, frame, what="corrected ")
    assert proc.stats.revised == 1
    other = proc.process(bar(T0 + (m + 1) * MINUTE, 51.0, symbol="MSFT", v=10.0))
    untouched = IncrementalIndicatorProcessor()
    for b in bars:
        untouched.process(b)
    assert other and other["sma_20"] == untouched.process(final[-1])["sma_20"]  # type: ignore[index]
    assert proc.correct(bar(T0 + (m + 1 - proc.keep - 1) * MINUTE, 1.0)) is None and proc.stats.rejected == 1


def test_a_missing_older_minute_is_inserted() -> None:
    proc, fresh = (IncrementalIndicatorProcessor("sma:3,ema:3,rsi:2,vwap") for _ in range(2))
    for i in (0, 1, 3, 4):
        proc.process(bar(T0 + i * MINUTE, 10.0 + i))
    rows = proc.correct(bar(T0 + 2 * MINUTE, 20.0))
    want = [fresh.process(bar(T0 + i * MINUTE, 20.0 if i == 2 else 10.0 + i)) for i in range(5)]
    assert rows == want[2:] and proc.stats.revised == 0


def test_vwap_resets_on_each_new_york_date() -> None:
    """Sessions are New York dates: 23:59 and 00:01 New York are different sessions, 03:00 and 23:00 UTC of
    the same UTC day can be the same one."""
    proc = IncrementalIndicatorProcessor("vwap")
    ny = dt.timezone(dt.timedelta(hours=-5))  # 2024-01: EST

    def t(h: int, m: int, day: int = 2) -> int:
        return int(dt.datetime(2024, 1, day, h, m, tzinfo=ny).timestamp() * 1000)

    a = proc.process(bar(t(23, 58), 10.0, v=100.0))
    b = proc.process(bar(t(23, 59), 20.0, v=100.0))
    c = proc.process(bar(t(0, 1, day=3), 30.0, v=100.0))
    d = proc.process(bar(t(0, 2, day=3), 40.0, v=0.0))
    assert a and b and c and d
    assert (a["vwap"], b["vwap"], c["vwap"], d["vwap"]) == (10.0, 15.0, 30.0, 30.0)
    zero = IncrementalIndicatorProcessor("vwap").process(bar(t(9, 30), 10.0, v=0.0))
    assert zero and zero["vwap"] is None


def test_running_sums_do_not_drift_after_a_collapse() -> None:
    """A price falling six orders of magnitude, then 300 k bars (past a periodic exact recomputation): the window
    sums stay within 1e-9 of exact."""
    proc = IncrementalIndicatorProcessor("sma:20,sma:50,bb:20:2")
    rng = random.Random(3)
    history: list[float] = []
    worst = 0.0
    for i in range(300_000):
        c = (600_000.0 if i < 100 else 0.6) * (1 + rng.uniform(-0.01, 0.01))
        history.append(c)
        out = proc.process(bar(T0 + i * MINUTE, c))
        assert out
        if i >= 49:
            for n in (20, 50):
                exact = math.fsum(history[-n:]) / n
                worst = max(worst, abs(out[f"sma_{n}"] - exact) / exact)
            del history[:-60]
    assert worst < 1e-10, worst  # the bound kept is 5.8e-11 (see the module docstring)


def test_columnar_accepts_both_column_conventions() -> None:
    """The original's short names or the stores' names; an Arrow table in, an Arrow table out."""
    ind = IndicatorSet.parse("sma:2,vwap")
    rows = [bar(T0 + i * MINUTE, 10.0 + i, symbol=s) for i in range(4) for s in ("A", "B")]
    short = IncrementalIndicatorProcessor(ind).process_batch(pa.Table.from_pylist(rows))
    assert isinstance(short, pa.Table)
    assert short.column_names[:3] == ["symbol", "timeframe", "t"]
    assert short.column("sma_2").to_pylist()[-2:] == [12.5, 12.5]
    long = pl.DataFrame(rows).rename({"symbol": "ticker", "o": "open", "h": "high", "l": "low", "c": "close",
                                      "v": "volume"}).with_columns(
        pl.from_epoch("t", time_unit="ms").dt.replace_time_zone("UTC").alias("ts")).drop("t", "timeframe")
    out = IncrementalIndicatorProcessor(ind).process_batch(long)
    assert out["sma_2"].to_list() == short.column("sma_2").to_pylist() and "ticker" in out.columns
    with pytest.raises(InvalidArgument, match="lack column"):
        IncrementalIndicatorProcessor(ind).process_batch(pl.DataFrame({"symbol": ["A"], "t": [1]}))


def test_bad_bars_and_bad_state_are_named() -> None:
    proc = IncrementalIndicatorProcessor()
    with pytest.raises(InvalidArgument, match="'c'"):
        proc.process({"symbol": "A", "t": T0, "o": 1, "h": 1, "l": 1, "v": 1})
    with pytest.raises(InvalidArgument, match="not a number"):
        proc.process({"symbol": "A", "t": T0, "o": 1, "h": 1, "l": 1, "c": "x", "v": 1})
    other = IncrementalIndicatorProcessor("sma:5")
    other.process(bar(T0, 1.0))
    with pytest.raises(SchemaMismatch, match="lacks column"):
        proc.import_state(other.export_state())  # state of another indicator set
    state = IncrementalIndicatorProcessor("sma:5")
    for i in range(8):
        state.process(bar(T0 + i * MINUTE, 1.0 + i))
    broken = state.export_state().with_columns(pl.col("closes").list.head(2))
    with pytest.raises(SchemaMismatch, match="'AAPL'"):
        IncrementalIndicatorProcessor("sma:5").import_state(broken)


def test_revision_right_after_an_import_is_rejected_not_guessed() -> None:
    proc = IncrementalIndicatorProcessor("sma:2")
    proc.process(bar(T0, 10.0))
    proc.process(bar(T0 + MINUTE, 12.0))
    live = IncrementalIndicatorProcessor("sma:2")
    live.import_state(proc.export_state())
    assert live.process(bar(T0 + MINUTE, 11.0)) is None and live.stats.rejected == 1
    nxt = live.process(bar(T0 + 2 * MINUTE, 14.0))
    assert nxt and nxt["sma_2"] == 13.0
