"""The indicator registry as a seam: a new indicator is one subclass and one `KINDS` entry, and both engines,
the state table and `--indicators` take it with no other change; rolling windows stay shared."""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import polars as pl
import pytest

from colfill import IncrementalIndicatorProcessor
from colfill.indicators.base import IDX, SYM, Indicator, Kernel
from colfill.indicators.batch import _windows, enrich
from colfill.indicators.spec import KINDS, IndicatorSet


@dataclass(frozen=True)
class Momentum(Indicator):
    """close - close n bars ago: needs n+1 past closes, no recursive state."""

    n: int
    kind: ClassVar[str] = "mom"
    params: ClassVar[tuple[type, ...]] = (int,)

    @property
    def columns(self) -> tuple[str, ...]:
        return (f"mom_{self.n}",)

    @property
    def first_valid(self) -> int:
        return self.n

    def token(self) -> str:
        return f"mom:{self.n}"

    def batch_outputs(self) -> list[pl.Expr]:
        x = pl.col("close")
        return [pl.when(pl.col(IDX) >= self.n).then(x - x.shift(self.n).over(SYM)).alias(self.key)]

    def kernel(self, k: int, windows: Mapping[int, int]) -> Kernel:
        col, n = self.key, self.n

        def mom(closes: deque[float], v: list[Any], idx: int, x: float, prev: float, high: float, low: float,
                volume: float, t: int, out: dict[str, Any]) -> None:
            out[col] = x - closes[-n - 1] if idx >= n else None

        return mom


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> IndicatorSet:
    monkeypatch.setitem(KINDS, "mom", Momentum)
    return IndicatorSet.parse("mom:5,ema:3,vwap")


def bars(n: int = 60) -> pl.DataFrame:
    rng = np.random.default_rng(7)
    t0 = dt.datetime(2024, 3, 8, 20, 30, tzinfo=dt.UTC)  # the New York date changes inside the frame
    return pl.DataFrame({
        "ticker": ["A"] * n + ["B"] * n,
        "ts": [t0 + dt.timedelta(minutes=7 * i) for i in range(n)] * 2,
        "high": 101.0 + rng.random(2 * n), "low": 99.0 - rng.random(2 * n),
        "close": 100.0 + rng.standard_normal(2 * n).cumsum(), "volume": rng.integers(1, 1000, 2 * n).astype(float),
    })


def test_a_registered_kind_parses_and_names_its_columns(registered: IndicatorSet) -> None:
    assert registered.indicators[0] == Momentum(5)
    assert registered.columns == ("mom_5", "ema_3", "vwap")
    assert registered.lookback == 6


def test_a_registered_kind_runs_the_same_in_both_engines_and_across_a_split(registered: IndicatorSet) -> None:
    frame = bars()
    whole, state = enrich(frame, registered)
    assert whole["mom_5"].null_count() == 10
    expected = frame["close"] - frame.group_by("ticker", maintain_order=True).agg(
        pl.col("close").shift(5)).explode("close")["close"]
    assert np.allclose(whole["mom_5"].drop_nulls().to_numpy(), expected.drop_nulls().to_numpy(), rtol=0, atol=1e-12)

    cut = frame.filter(pl.col("ts") < frame["ts"][23])
    head, head_state = enrich(cut, registered)
    tail, tail_state = enrich(frame.join(cut, on=["ticker", "ts"], how="anti"), registered, head_state)
    assert pl.concat([head, tail]).sort("ticker", "ts").equals(whole)
    assert tail_state.equals(state)

    proc = IncrementalIndicatorProcessor(registered)
    proc.import_state(head_state)
    rows = [proc.process({"symbol": r["ticker"], "t": int(r["ts"].timestamp() * 1000), "o": r["close"],
                          "h": r["high"], "l": r["low"], "c": r["close"], "v": r["volume"]})
            for r in frame.join(cut, on=["ticker", "ts"], how="anti").iter_rows(named=True)]
    for col in registered.columns:
        got = np.array([r[col] for r in rows if r is not None], dtype=float)
        assert np.allclose(got, tail[col].to_numpy(), rtol=1e-12, atol=0, equal_nan=True), col


def test_rolling_windows_are_computed_once_per_period() -> None:
    names = [e.meta.output_name() for e in _windows(IndicatorSet.parse("sma:20,bb:20:2,bb:20:3,sma:50"))]
    assert sorted(names) == ["__mean_20", "__mean_50", "__sd_20"]


def test_every_kind_round_trips_through_its_token() -> None:
    for ind in IndicatorSet.default().indicators:
        assert KINDS[ind.kind] is type(ind)
        assert IndicatorSet.parse(ind.token()).indicators == (ind,)
