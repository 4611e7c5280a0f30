"""The incremental engine's speed (issue 3): bars/s on one core for a multi-symbol stream.

Stages, each in a fresh process on the same stream (BENCH_SYMBOLS symbols x BENCH_BARS bars, interleaved
minute by minute, default indicator set):

- `incremental_per_bar`: `IncrementalIndicatorProcessor.process(dict)`, one bar at a time;
- `incremental_columnar`, `incremental_columnar_50k`: `process_batch` on batches of BENCH_BATCH rows (default
  10 000) and of 50 000 rows, which run the batch engine (a fixed cost of ~15 ms per call in its Polars plans);
- `incremental_columnar_per_minute`: `process_batch` on one minute of all symbols at a time (BENCH_SYMBOLS
  rows, below `per_bar_below`, so through the per-bar step);
- `batch_engine_stream`: `colfill.indicators.batch.enrich` over the whole stream at once;
- `batch_engine_batches`: `enrich` over the same BENCH_BATCH-row batches as `incremental_columnar`, each
  continuing from the state the previous one returned (the batch engine's own cost at that granularity).

Baseline `naive_per_bar`: the original tool's way, one dict per bar and every indicator rebuilt from a
list of the symbol's last 200 closes each bar (EMA, Wilder and MACD restarted over those 200 closes,
VWAP summed over the session's bars so far). Targets: per bar >= 3x the naive baseline; columnar within
5x of the batch engine.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import record, show, timed  # noqa: E402
from _common import report_inner as _report_inner  # noqa: E402

SYMBOLS = int(os.environ.get("BENCH_SYMBOLS", "200"))
BARS = int(os.environ.get("BENCH_BARS", "2000"))
BATCH = int(os.environ.get("BENCH_BATCH", "10000"))
T0 = 1_709_906_400_000  # 2024-03-08 14:00 UTC
NAIVE_WINDOW = 200


def stream() -> list[dict[str, Any]]:
    import numpy as np

    rng = np.random.default_rng(5)
    prices = 20 + 200 * rng.random(SYMBOLS)
    steps = np.exp(rng.normal(0, 0.002, (BARS, SYMBOLS))).cumprod(axis=0) * prices
    out = []
    for i in range(BARS):
        t = T0 + i * 60_000
        for k in range(SYMBOLS):
            c = float(round(steps[i, k], 4))
            out.append({"symbol": f"S{k:04d}", "timeframe": "1m", "t": t, "o": c, "h": c * 1.001, "l": c * 0.999,
                        "c": c, "v": float(rng.integers(0, 5000))})
    return out


def stage_per_bar() -> int:
    from colfill import IncrementalIndicatorProcessor

    bars = stream()
    proc = IncrementalIndicatorProcessor()
    t0 = time.perf_counter()
    for b in bars:
        proc.process(b)
    _report_inner(len(bars), time.perf_counter() - t0)
    return len(bars)


def stage_columnar(rows_per_batch: int) -> int:
    import polars as pl

    from colfill import IncrementalIndicatorProcessor

    frame = pl.DataFrame(stream())
    batches = [frame.slice(i, rows_per_batch) for i in range(0, frame.height, rows_per_batch)]
    proc = IncrementalIndicatorProcessor()
    proc.process_batch(batches[0])  # warm-up of Polars' kernels and pyarrow's lazy imports; a fresh engine measures
    proc = IncrementalIndicatorProcessor()
    t0 = time.perf_counter()
    for b in batches:
        proc.process_batch(b)
    _report_inner(frame.height, time.perf_counter() - t0)
    return frame.height


def stage_batch() -> int:
    import polars as pl

    from colfill.indicators.batch import enrich
    from colfill.indicators.spec import IndicatorSet

    frame = pl.DataFrame(stream()).rename({"symbol": "ticker", "o": "open", "h": "high", "l": "low", "c": "close",
                                           "v": "volume"}).with_columns(
        pl.from_epoch("t", time_unit="ms").dt.replace_time_zone("UTC").dt.cast_time_unit("us").alias("ts"))
    enrich(frame.head(1000), IndicatorSet.default())
    t0 = time.perf_counter()
    enrich(frame, IndicatorSet.default())
    _report_inner(frame.height, time.perf_counter() - t0)
    return frame.height


def stage_batch_batches(rows_per_batch: int) -> int:
    import polars as pl

    from colfill.indicators.batch import enrich
    from colfill.indicators.spec import IndicatorSet

    frame = pl.DataFrame(stream()).rename({"symbol": "ticker", "o": "open", "h": "high", "l": "low", "c": "close",
                                           "v": "volume"}).with_columns(
        pl.from_epoch("t", time_unit="ms").dt.replace_time_zone("UTC").dt.cast_time_unit("us").alias("ts"))
    batches = [frame.slice(i, rows_per_batch) for i in range(0, frame.height, rows_per_batch)]
    ind = IndicatorSet.default()
    enrich(frame.head(1000), ind)
    state = None
    t0 = time.perf_counter()
    for b in batches:
        _, state = enrich(b, ind, state)
    _report_inner(frame.height, time.perf_counter() - t0)
    return frame.height


def _ema(xs: list[float], n: int) -> float | None:
    if len(xs) < n:
        return None
    e, k = sum(xs[:n]) / n, 2 / (n + 1)
    for x in xs[n:]:
        e += k * (x - e)
    return e


def naive_indicators(closes: list[float], session: list[tuple[float, float]]) -> dict[str, Any]:
    """Every default indicator rebuilt from lists, as the original per-bar processor did."""
    out: dict[str, Any] = {}
    for n in (20, 50):
        out[f"sma_{n}"] = sum(closes[-n:]) / n if len(closes) >= n else None
    out["ema_20"] = _ema(closes, 20)
    if len(closes) > 14:
        d = [b - a for a, b in zip(closes, closes[1:])]
        g = sum(x for x in d[:14] if x > 0) / 14
        lo = -sum(x for x in d[:14] if x < 0) / 14
        for x in d[14:]:
            g, lo = (g * 13 + max(x, 0)) / 14, (lo * 13 + max(-x, 0)) / 14
        out["rsi_14"] = 100 * g / (g + lo) if g + lo else 0.0
    if len(closes) >= 34:  # MACD 12/26/9 over the list, TA-Lib's seeds
        fast, slow = sum(closes[14:26]) / 12, sum(closes[:26]) / 26
        line = [fast - slow]
        for x in closes[26:]:
            fast, slow = fast + 2 / 13 * (x - fast), slow + 2 / 27 * (x - slow)
            line.append(fast - slow)
        sig = sum(line[:9]) / 9
        for x in line[9:]:
            sig += 2 / 10 * (x - sig)
        out["macd"], out["macd_signal"], out["macd_hist"] = line[-1], sig, line[-1] - sig
    if len(closes) >= 20:
        w = closes[-20:]
        m = sum(w) / 20
        sd = (sum((x - m) ** 2 for x in w) / 20) ** 0.5
        out["bb_upper"], out["bb_middle"], out["bb_lower"] = m + 2 * sd, m, m - 2 * sd
    pv = sum(p * v for p, v in session)
    vol = sum(v for _, v in session)
    out["vwap"] = pv / vol if vol else None
    return out


def baseline_naive(limit: int = 40_000) -> int:
    bars = stream()[:limit]
    hist: dict[str, list[float]] = {}
    sessions: dict[str, list[tuple[float, float]]] = {}
    t0 = time.perf_counter()
    for b in bars:
        closes = hist.setdefault(b["symbol"], [])
        closes.append(b["c"])
        del closes[:-NAIVE_WINDOW]
        session = sessions.setdefault(b["symbol"], [])
        session.append(((b["h"] + b["l"] + b["c"]) / 3, b["v"]))
        out = dict(b)
        out.update(naive_indicators(closes, session))
    _report_inner(len(bars), time.perf_counter() - t0)
    return len(bars)


def main() -> None:
    print(f"\nIncremental engine: {SYMBOLS} symbols x {BARS} bars = {SYMBOLS * BARS:,} bars, default indicators")
    stages = {
        "incremental_per_bar": timed(stage_per_bar),
        "incremental_columnar": timed(stage_columnar, BATCH),
        "incremental_columnar_50k": timed(stage_columnar, 50_000),
        "incremental_columnar_per_minute": timed(stage_columnar, SYMBOLS),
        "batch_engine_stream": timed(stage_batch),
        "batch_engine_batches": timed(stage_batch_batches, BATCH),
    }
    base = {"naive_per_bar": timed(baseline_naive)}
    record(stages=stages, baselines={k: v["rows_per_s"] for k, v in base.items()})
    show("incremental stages", [(k, v["rows_per_s"], v["peak_rss_mb"]) for k, v in stages.items()])
    show("incremental baseline (same run, same stream)", [(k, v["rows_per_s"], v["peak_rss_mb"])
                                                          for k, v in base.items()])
    per_bar, naive = stages["incremental_per_bar"]["rows_per_s"], base["naive_per_bar"]["rows_per_s"]
    bat = stages["batch_engine_stream"]["rows_per_s"]
    print("\ntargets")
    print(f"  per bar / naive per-bar        {per_bar / naive:6.1f}x  (target >= 3x)")
    for name, rows in (("incremental_columnar", BATCH), ("incremental_columnar_50k", 50_000)):
        ratio = bat / stages[name]["rows_per_s"]
        print(f"  batch engine / columnar        {ratio:6.1f}x  (target <= 5x; batches of {rows:,} rows)")
    same = stages["batch_engine_batches"]["rows_per_s"] / stages["incremental_columnar"]["rows_per_s"]
    print(f"  batch engine / columnar        {same:6.1f}x  (both in batches of {BATCH:,} rows)")


if __name__ == "__main__":
    main()
