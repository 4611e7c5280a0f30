"""Batch engine: the indicator set as vectorised Polars expressions over symbol groups.

`enrich(bars, indicators, state)` computes every indicator for `bars` as if the symbol's whole history
were in the frame: `state` (what an earlier run left, see `colfill.indicators.state`) supplies the last
closes as context rows and the recursive values (EMA, Wilder averages, session sums) on the last
context row. That is why a backfill split into any number of files or runs gives the same numbers as
one run, and why the live engine can continue from it.

Rows are put in (ticker, ts) order first, whatever the input order. Rolling windows are computed over
the whole sorted column and masked by each row's position in its symbol (a window that would cross into
the previous symbol is exactly a warm-up row, which is null anyway); recursions run per symbol.
"""

from __future__ import annotations

import polars as pl

from colfill.indicators import state as st
from colfill.indicators.spec import EMA, MACD, RSI, SMA, VWAP, BBands, Indicator, IndicatorSet

NEW_YORK = "America/New_York"

_CTX = "__ctx"  # context row (from state) rather than a new bar
_LAST_CTX = "__last_ctx"  # the last context row: carries the recursive state values
_POS = "__pos"  # position of the row within its symbol in the combined frame
_IDX = "__idx"  # index of the bar in the symbol's whole history


def session_date(ts: pl.Expr) -> pl.Expr:
    """The New York trading date of a UTC timestamp: the VWAP session key."""
    return ts.dt.convert_time_zone(NEW_YORK).dt.date()


def _masked_rolling_mean(x: pl.Expr, n: int) -> pl.Expr:
    return pl.when(pl.col(_POS) >= n - 1).then(x.rolling_mean(n)).otherwise(None)


def _recursive(
    formula: pl.Expr, state_col: str | None, alpha: float
) -> pl.Expr:
    """Exponential recursion y = y_prev + alpha*(base - y_prev) per symbol, started from state when present.

    `formula` is the seed at the seed index and the input after it (null before). On context rows the
    base is the carried state value on the last context row and null elsewhere, so the recursion
    resumes from it; when the symbol was not yet seeded, state is null and the formula runs from index 0.
    """
    if state_col is None:
        base = formula
    else:
        seeded = pl.col(state_col).is_not_null() & pl.col(_CTX)
        base = (
            pl.when(seeded & pl.col(_LAST_CTX)).then(pl.col(state_col))
            .when(seeded).then(None)
            .otherwise(formula)
        )
    return base.ewm_mean(alpha=alpha, adjust=False).over("ticker")


def _exprs(ind: Indicator, has_state: bool) -> list[pl.Expr]:
    """Output columns, plus `{key}__{field}` columns that become the next state."""
    x = pl.col("close")
    idx = pl.col(_IDX)

    def sc(field: str) -> str | None:
        return f"{ind.key}__{field}" if has_state else None

    if isinstance(ind, SMA):
        return [_masked_rolling_mean(x, ind.n).alias(ind.key)]
    if isinstance(ind, EMA):
        n = ind.n
        formula = pl.when(idx == n - 1).then(x.rolling_mean(n)).when(idx >= n).then(x)
        return [_recursive(formula, sc("ema"), ind.alpha).alias(f"{ind.key}__ema")]
    if isinstance(ind, RSI):
        n = ind.n
        d = x.diff().over("ticker")
        out = []
        for field, part in (("avg_gain", d.clip(lower_bound=0.0)), ("avg_loss", (-d).clip(lower_bound=0.0))):
            formula = pl.when(idx == n).then(part.rolling_mean(n)).when(idx > n).then(part)
            out.append(_recursive(formula, sc(field), 1.0 / n).alias(f"{ind.key}__{field}"))
        return out
    if isinstance(ind, MACD):
        f, s, g = ind.fast, ind.slow, ind.signal
        fast = _recursive(
            pl.when(idx == s - 1).then(x.rolling_mean(f)).when(idx >= s).then(x), sc("fast"), 2.0 / (f + 1)
        )
        slow = _recursive(
            pl.when(idx == s - 1).then(x.rolling_mean(s)).when(idx >= s).then(x), sc("slow"), 2.0 / (s + 1)
        )
        return [fast.alias(f"{ind.key}__fast"), slow.alias(f"{ind.key}__slow")]
    if isinstance(ind, BBands):
        upper, middle, lower = ind.columns
        return [
            _masked_rolling_mean(x, ind.n).alias(middle),
            x.rolling_std(ind.n, ddof=0).alias(f"__{ind.key}_sd"),
        ]
    if isinstance(ind, VWAP):
        tp = (pl.col("high") + pl.col("low") + pl.col("close")) / 3.0
        carried_pv = pl.col("vwap__pv").fill_null(0.0) if has_state else pl.lit(0.0)
        carried_v = pl.col("vwap__v").fill_null(0.0) if has_state else pl.lit(0.0)
        pv = pl.when(pl.col(_LAST_CTX)).then(carried_pv).when(pl.col(_CTX)).then(0.0).otherwise(tp * pl.col("volume"))
        v = pl.when(pl.col(_LAST_CTX)).then(carried_v).when(pl.col(_CTX)).then(0.0).otherwise(pl.col("volume"))
        date = pl.when(pl.col(_CTX)).then(pl.col("vwap__date") if has_state else None).otherwise(
            session_date(pl.col("ts"))
        )
        return [
            date.alias("__vwap_date"),
            pv.alias("__vwap_pv"),
            v.alias("__vwap_v"),
        ]
    raise TypeError(f"no batch definition for {ind!r}")


def _second_pass(ind: Indicator, has_state: bool) -> list[pl.Expr]:
    """Columns that depend on the first pass (RSI ratio, MACD signal, VWAP cumulation)."""
    idx = pl.col(_IDX)
    if isinstance(ind, EMA):
        return [pl.col(f"{ind.key}__ema").alias(ind.key)]
    if isinstance(ind, BBands):
        upper, middle, lower = ind.columns
        sd = pl.col(f"__{ind.key}_sd")
        return [(pl.col(middle) + ind.k * sd).alias(upper), (pl.col(middle) - ind.k * sd).alias(lower)]
    if isinstance(ind, RSI):
        g, l_ = pl.col(f"{ind.key}__avg_gain"), pl.col(f"{ind.key}__avg_loss")
        total = g + l_
        return [pl.when(total == 0).then(0.0).otherwise(100.0 * g / total).alias(ind.key)]
    if isinstance(ind, MACD):
        s, g = ind.slow, ind.signal
        line_col, signal_col, hist_col = ind.columns
        line = pl.col(f"{ind.key}__fast") - pl.col(f"{ind.key}__slow")
        seed_at = s + g - 2
        formula = pl.when(idx == seed_at).then(line.rolling_mean(g)).when(idx > seed_at).then(line)
        signal = _recursive(formula, f"{ind.key}__signal" if has_state else None, 2.0 / (g + 1))
        return [
            pl.when(idx >= seed_at).then(line).alias(line_col),
            signal.alias(f"{ind.key}__signal"),
        ]
    if isinstance(ind, VWAP):
        keys = ["ticker", "__vwap_date"]
        cpv = pl.col("__vwap_pv").cum_sum().over(keys)
        cv = pl.col("__vwap_v").cum_sum().over(keys)
        return [
            cpv.alias("vwap__pv"),
            cv.alias("vwap__v"),
            pl.col("__vwap_date").alias("vwap__date"),
            pl.when(cv > 0).then(cpv / cv).otherwise(None).alias("vwap"),
        ]
    return []


def _third_pass(ind: Indicator) -> list[pl.Expr]:
    if isinstance(ind, MACD):
        line_col, signal_col, hist_col = ind.columns
        return [
            pl.col(f"{ind.key}__signal").alias(signal_col),
            (pl.col(line_col) - pl.col(f"{ind.key}__signal")).alias(hist_col),
        ]
    return []


def enrich(
    bars: pl.DataFrame,
    indicators: IndicatorSet,
    state: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return (bars with indicator columns in (ticker, ts) order, the state after the last bar of each symbol).

    `bars` needs `ticker, ts, high, low, close, volume` (ts: Datetime UTC) and may hold any other columns,
    which pass through. `state` is the state table an earlier call returned (or None for a fresh start);
    symbols of `state` that have no new bars are carried over unchanged.
    """
    bars = bars.sort("ticker", "ts")
    lookback = indicators.lookback
    has_state = state is not None and state.height > 0
    n_before: pl.Expr
    if has_state:
        assert state is not None
        st.check(state, indicators)
        ctx = st.context_rows(state, indicators)
        combined = pl.concat(
            [ctx, bars.with_columns(pl.lit(False).alias(_CTX), pl.lit(False).alias(_LAST_CTX))],
            how="diagonal_relaxed",
        )
        # Stable sort by ticker only: context rows keep their place before the new bars.
        combined = combined.sort("ticker", maintain_order=True)
        counts = state.select("ticker", pl.col("n").alias("__n_before"), pl.col("closes").list.len().alias("__n_ctx"))
        combined = combined.join(counts, on="ticker", how="left", maintain_order="left")
        n_before = pl.col("__n_before").fill_null(0) - pl.col("__n_ctx").fill_null(0)
    else:
        combined = bars.with_columns(pl.lit(False).alias(_CTX), pl.lit(False).alias(_LAST_CTX))
        n_before = pl.lit(0, dtype=pl.Int64)

    pos = pl.int_range(pl.len(), dtype=pl.Int64).over("ticker")
    combined = combined.with_columns(pos.alias(_POS)).with_columns((pl.col(_POS) + n_before).alias(_IDX))

    inds = indicators.indicators
    combined = combined.with_columns([e for i in inds for e in _exprs(i, has_state)])
    second = [e for i in inds for e in _second_pass(i, has_state)]
    if second:
        combined = combined.with_columns(second)
    third = [e for i in inds for e in _third_pass(i)]
    if third:
        combined = combined.with_columns(third)

    new_state = _next_state(combined, indicators, lookback)
    if has_state:
        assert state is not None
        untouched = state.join(new_state.select("ticker"), on="ticker", how="anti")
        new_state = pl.concat([untouched, new_state.select(untouched.columns)]).sort("ticker")

    keep = [c for c in bars.columns] + [c for c in indicators.columns if c not in bars.columns]
    out = combined.filter(~pl.col(_CTX)).select(keep)
    return out, new_state


def _next_state(combined: pl.DataFrame, indicators: IndicatorSet, lookback: int) -> pl.DataFrame:
    """State after each symbol's last row: counts, last closes, and seeded recursive values (null if not)."""
    last = pl.col(_IDX).last()
    aggs: list[pl.Expr] = [
        (last + 1).alias("n"),
        pl.col("ts").drop_nulls().last().alias("last_ts"),
        pl.col("close").tail(lookback).alias("closes"),
    ]
    for ind in indicators.indicators:
        for col in ind.state_columns():
            if col == "vwap__date":
                aggs.append(pl.col(col).last().alias(col))
            else:
                seeded = last >= ind.first_valid
                aggs.append(pl.when(seeded).then(pl.col(col).last()).otherwise(None).cast(pl.Float64).alias(col))
    state = combined.group_by("ticker", maintain_order=True).agg(aggs)
    return st.normalise(state, indicators)
