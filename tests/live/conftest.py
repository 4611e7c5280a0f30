"""Streams of live bars and the comparison of the incremental engine with the batch engine.

`make_stream` draws a multi-symbol stream the way a live feed delivers it: symbols interleaved, gaps
(across New York dates and DST changes), flat runs, zero volume, revisions of a symbol's last bar and,
now and then, an older bar that must be rejected. `accepted` is what the batch engine must be given to
compute the same history: the last version of each accepted bar.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from colfill.indicators.batch import enrich
from colfill.indicators.spec import IndicatorSet
from tests.helpers import read_flat_files

SETS = {
    "default": IndicatorSet.default(),
    "short": IndicatorSet.parse("sma:3,ema:4,rsi:3,macd:3:5:2,bb:4:1.5,vwap"),
    "mixed": IndicatorSet.parse("ema:2,sma:7,rsi:5,bb:7:3"),
}
STARTS = [  # just before DST starts, just before it ends, an ordinary summer day (all 13:00 UTC)
    dt.datetime(2024, 3, 8, 13, tzinfo=dt.timezone.utc),
    dt.datetime(2024, 11, 1, 13, tzinfo=dt.timezone.utc),
    dt.datetime(2024, 6, 3, 13, tzinfo=dt.timezone.utc),
]
SYMBOLS = ["AAPL", "NA", "BRK.A", "T"]
MINUTE = 60_000
DATASETS = {"bars_1m": "minute_aggs_v1", "bars_1d": "day_aggs_v1"}


def flat_bars(root: Path, until: dt.date | None = None, table: str = "bars_1m") -> pl.DataFrame:
    """Every bar of the sample's flat files up to `until`, read here (not by colfill's reader), in the bar schema,
    by (ticker, ts)."""
    return read_flat_files(root, DATASETS[table], until).with_columns(
        pl.from_epoch("window_start", time_unit="ns").dt.replace_time_zone("UTC").dt.cast_time_unit("us").alias("ts"),
    ).select("ticker", "ts", "open", "high", "low", "close", "volume", "transactions").sort("ticker", "ts")


def make_stream(seed: int, n: int, symbols: int = 3, revise: float = 0.05, older: float = 0.03) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    start = int(rng.choice(STARTS).timestamp() * 1000)
    names = SYMBOLS[:symbols]
    t = dict.fromkeys(names, start)
    price = {s: rng.choice([0.5, 20.0, 150.0, 600_000.0]) for s in names}
    last: dict[str, dict[str, Any]] = {}
    out = []
    for _ in range(n):
        s = rng.choice(names)
        r = rng.random()
        if s in last and r < revise:  # the current minute, revised
            bar = dict(last[s])
            bar["c"] = round(bar["c"] * (1 + rng.gauss(0, 0.002)), 4)
            bar["h"], bar["l"] = max(bar["h"], bar["c"]), min(bar["l"], bar["c"])
            bar["v"] = bar["v"] + rng.choice([0.0, 100.0, 0.5])
        elif s in last and r < revise + older:  # late delivery of an older minute
            bar = dict(last[s], t=last[s]["t"] - MINUTE * rng.randint(1, 5))
        else:
            gap = rng.choices([1, 2, 7, 600, 60 * 24, 60 * 24 * 3], [70, 10, 5, 5, 5, 5])[0]
            t[s] += gap * MINUTE
            flat = rng.random() < 0.25
            c = price[s] if flat else round(price[s] * math.exp(rng.gauss(0, 0.003)), 4)
            price[s] = c
            spread = 0.0 if flat else abs(rng.gauss(0, 0.002)) * c
            bar = {"symbol": s, "timeframe": "1m", "t": t[s], "o": c, "h": c + spread, "l": c - spread, "c": c,
                   "v": rng.choice([0.0, 0.0, 100.0, 2500.0, 17.25]), "vw": c}
        if s not in last or bar["t"] >= last[s]["t"]:
            last[s] = bar
        out.append(bar)
    return out


def accepted(stream: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The bars the engine applies, last version of each (symbol, t), in arrival order of that version."""
    latest: dict[str, int] = {}
    final: dict[tuple[str, int], dict[str, Any]] = {}
    for bar in stream:
        s, t = bar["symbol"], bar["t"]
        if s in latest and t < latest[s]:
            continue
        latest[s] = t
        final.pop((s, t), None)
        final[(s, t)] = bar
    return list(final.values())


def to_frame(bars: list[dict[str, Any]]) -> pl.DataFrame:
    """Bars of the original shape as the batch engine's columns."""
    frame = pl.DataFrame(bars, schema={"symbol": pl.Utf8, "timeframe": pl.Utf8, "t": pl.Int64, "o": pl.Float64,
                                       "h": pl.Float64, "l": pl.Float64, "c": pl.Float64, "v": pl.Float64,
                                       "vw": pl.Float64})
    return frame.rename({"symbol": "ticker", "o": "open", "h": "high", "l": "low", "c": "close",
                         "v": "volume"}).with_columns(
        pl.from_epoch("t", time_unit="ms").dt.replace_time_zone("UTC").dt.cast_time_unit("us").alias("ts"))


def batch(bars: list[dict[str, Any]], indicators: IndicatorSet, state: pl.DataFrame | None = None
          ) -> tuple[pl.DataFrame, pl.DataFrame]:
    out, new_state = enrich(to_frame(bars), indicators, state)
    return out.sort("ticker", "t"), new_state


def outputs_frame(rows: list[dict[str, Any]], indicators: IndicatorSet) -> pl.DataFrame:
    """Incremental outputs, the last version of each (symbol, t), in (symbol, t) order."""
    final: dict[tuple[str, int], dict[str, Any]] = {}
    for r in rows:
        final[(r["symbol"], r["t"])] = r
    schema = {"ticker": pl.Utf8, "t": pl.Int64, "close": pl.Float64, **dict.fromkeys(indicators.columns, pl.Float64)}
    data = [{"ticker": r["symbol"], "t": r["t"], "close": r["c"], **{c: r[c] for c in indicators.columns}}
            for r in final.values()]
    return pl.DataFrame(data, schema=schema).sort("ticker", "t")


def assert_parity(got: pl.DataFrame, want: pl.DataFrame, indicators: IndicatorSet, rel: float = 1e-9) -> None:
    """Same rows, same nulls, values within `rel` relative. MACD values are differences of two averages of
    the price, so their error is measured against the price (they may be ~0 where the price is not)."""
    assert got.select("ticker", "t").equals(want.select("ticker", "t"))
    scale = np.abs(want["close"].to_numpy())
    for col in indicators.columns:
        a, b = got[col], want[col]
        bad = (a.is_null() != b.is_null()).arg_true()
        assert bad.len() == 0, f"{col}: null in one engine only at rows {bad.head(5).to_list()}"
        x, y = a.fill_null(0.0).to_numpy(), b.fill_null(0.0).to_numpy()
        ref = np.maximum(np.abs(y), scale) if col.startswith("macd") else np.abs(y)
        err = np.abs(x - y)
        worst = int(np.argmax(err - rel * ref)) if len(err) else 0
        relative = err[worst] / max(ref[worst], 1e-300) if len(err) else 0.0
        assert np.all(err <= rel * ref + 1e-300), (
            f"{col}: {x[worst]!r} vs {y[worst]!r} at {want.row(worst)[:2]} (relative {relative:.2e})")
