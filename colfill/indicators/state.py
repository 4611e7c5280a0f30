"""The indicator state table: what both engines need to continue a symbol's indicators exactly.

One row per symbol (and timeframe, when several are kept together):

- `ticker` Utf8, `timeframe` Utf8 (`1m`, `1d`)
- `n` Int64: bars seen so far (the next bar's index in the symbol's history)
- `last_ts` Datetime(us, UTC): time of the last bar
- `closes` List(Float64): the last `IndicatorSet.lookback` closes, oldest first (all of them while fewer)
- `{key}__{field}` for every recursive value of every indicator (`ema_20__ema`, `rsi_14__avg_gain`,
  `macd__fast`, ..., `vwap__date` Date, `vwap__pv`, `vwap__v`), null until that indicator is seeded.

The batch engine writes it after every day it stages; the live engine imports and exports it
(`colfill state export/import`). A symbol whose indicator is not yet seeded is recomputed from its
closes, which then hold its whole history.
"""

from __future__ import annotations

import polars as pl

from colfill.errors import SchemaMismatch
from colfill.indicators.base import CTX, LAST_CTX
from colfill.indicators.spec import IndicatorSet

TS = pl.Datetime("us", "UTC")


def schema(indicators: IndicatorSet) -> dict[str, pl.DataType]:
    out: dict[str, pl.DataType] = {
        "ticker": pl.Utf8(),
        "timeframe": pl.Utf8(),
        "n": pl.Int64(),
        "last_ts": TS,
        "closes": pl.List(pl.Float64()),
    }
    for ind in indicators.indicators:
        for field, col in zip(ind.state_fields, ind.state_columns()):
            out[col] = pl.Date() if field in ind.date_fields else pl.Float64()
    return out


def empty(indicators: IndicatorSet) -> pl.DataFrame:
    return pl.DataFrame(schema=schema(indicators))


def normalise(state: pl.DataFrame, indicators: IndicatorSet, timeframe: str | None = None) -> pl.DataFrame:
    """Cast to the canonical schema and column order (missing `timeframe` filled in)."""
    if "timeframe" not in state.columns:
        state = state.with_columns(pl.lit(timeframe, dtype=pl.Utf8).alias("timeframe"))
    elif timeframe is not None:
        state = state.with_columns(pl.col("timeframe").fill_null(timeframe))
    sch = schema(indicators)
    return state.select([pl.col(c).cast(t) for c, t in sch.items()])


def check(state: pl.DataFrame, indicators: IndicatorSet) -> None:
    """Refuse a state table made for another indicator set: its values would silently be wrong."""
    missing = [c for c in schema(indicators) if c not in state.columns]
    if missing:
        raise SchemaMismatch(
            f"the indicator state lacks column(s) {', '.join(missing)} needed by indicators {indicators.token()}. "
            "Hint: state is tied to its indicator set; rebuild it from the stored bars with the same --indicators."
        )
    dupes = state.group_by("ticker", "timeframe").len().filter(pl.col("len") > 1)
    if dupes.height:
        raise SchemaMismatch(
            f"the indicator state has {dupes.height} duplicated symbol(s), e.g. {dupes['ticker'][0]!r}"
        )


def context_rows(state: pl.DataFrame, indicators: IndicatorSet) -> pl.DataFrame:
    """One row per remembered close, state values on every row, `__last_ctx` marking the last one."""
    cols = ["ticker", "closes", *indicators.state_columns]
    rows = (
        state.select(cols)
        .with_columns(pl.col("closes").list.len().alias("__len"))
        .filter(pl.col("__len") > 0)
        .explode("closes")
        .rename({"closes": "close"})
        .with_columns(
            pl.lit(True).alias(CTX),
            (pl.int_range(pl.len()).over("ticker") == pl.col("__len") - 1).alias(LAST_CTX),
        )
        .drop("__len")
    )
    return rows
