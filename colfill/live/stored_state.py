"""Indicator state held by a store: saved rows of `indicator_state`, or computed from the stored bars.

A store's state for a timeframe is either saved (`colfill state import`: rows of the `indicator_state`
table, keyed by (ticker, timeframe), each stamped with the token of the indicator set it was computed
for) or computed from its bars: the batch engine over the stored history, one slice of (ticker,
ts)-ordered rows at a time, each continuing from the state the previous slice left. That is exact by
construction (the batch engine's continuation is what backfills rely on) and needs memory for one slice
plus one state row per ticker, not for the history; a slice may cut a ticker's history anywhere.

Reading only, below the live engine: its `from_store` starts here, and `colfill.live.handoff` (which
checks a state against the engine before saving it) builds on both, so no import goes in a circle.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from colfill.bars import timeframe_of
from colfill.errors import InvalidArgument
from colfill.indicators.spec import IndicatorSet

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

BAR_COLUMNS = ["ticker", "ts", "high", "low", "close", "volume"]
TOKEN = "indicators"  # column of indicator_state naming the IndicatorSet (its token) a row was computed for


def open_existing(url: str) -> Any:
    """The store at `url`; an embedded one must exist already (opening would create an empty one)."""
    from colfill.stores import open_store
    from colfill.target import resolve

    target = resolve(url, Path())
    if target.kind == "duckdb" and target.path is not None and not target.path.exists():
        raise InvalidArgument(f"--store {target.display!r}: no DuckDB file at {target.path}. "
                              "Hint: run `colfill run` first, or pass --data-dir/--store of the backfill.")
    if target.kind == "lake" and target.path is not None and not (target.path / "lake" / "_manifest").exists():
        raise InvalidArgument(f"--data-dir {target.path}: no backfill there (no lake/ with a manifest). "
                              "Hint: run `colfill run` first, or pass the --data-dir/--store of the backfill.")
    return open_store(target, load_workers=1)


def state_from_bars(slices: Iterable[pa.Table], indicators: IndicatorSet, timeframe: str) -> pl.DataFrame:
    """The state after the last bar of every ticker in `slices` (rows in (ticker, ts) order)."""
    import polars as pl

    from colfill.indicators import state as st
    from colfill.indicators.batch import enrich

    state: pl.DataFrame | None = None
    for table in slices:
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        if frame.height:
            _, state = enrich(frame, indicators, state)
    if state is None:
        return st.normalise(st.empty(indicators), indicators, timeframe)
    return st.normalise(state, indicators, timeframe).sort("ticker")


def compute_state(store: Any, table: str, indicators: IndicatorSet, before: dict[str, int] | None = None
                  ) -> pl.DataFrame:
    """The state after the stored bars; with `before` (ticker -> epoch ms), a ticker's only up to that time: the
    state before a bucket the live rollup resumes (`colfill.live.rollup`)."""
    slices = store.read_bars(table, BAR_COLUMNS)
    return state_from_bars((_before(s, before) for s in slices) if before else slices, indicators,
                           timeframe_of(table))


def _before(bars: Any, before: dict[str, int]) -> Any:
    """`bars` (an Arrow table or a Polars frame) without each ticker's bars at or after its time in `before`."""
    import polars as pl

    frame = pl.from_arrow(bars) if not isinstance(bars, pl.DataFrame) else bars
    assert isinstance(frame, pl.DataFrame)
    limit = pl.col("ticker").replace_strict(before, default=None, return_dtype=pl.Int64)
    kept = frame.filter(limit.is_null() | (pl.col("ts").dt.epoch("ms") < limit))
    return kept if isinstance(bars, pl.DataFrame) else kept.to_arrow()


def saved_sets(store: Any, timeframe: str) -> dict[str, int]:
    """Rows of `indicator_state` for `timeframe` by indicator set token (empty when nothing is saved)."""
    rows = store.read_state(timeframe)
    if rows is None or rows.num_rows == 0:
        return {}
    import pyarrow.compute as pc

    counts = pc.value_counts(rows.column(TOKEN)).to_pylist()
    return {c["values"]: c["counts"] for c in counts}


def saved_state(store: Any, table: str, indicators: IndicatorSet) -> pl.DataFrame | None:
    """The saved state of `table`'s timeframe for exactly this indicator set, or None."""
    import polars as pl

    from colfill.indicators import state as st

    rows = store.read_state(timeframe_of(table))
    if rows is None or rows.num_rows == 0:
        return None
    frame = pl.from_arrow(rows)
    assert isinstance(frame, pl.DataFrame)
    frame = frame.filter(pl.col(TOKEN) == indicators.token())
    return st.normalise(frame, indicators).sort("ticker") if frame.height else None


def caught_up(store: Any, table: str, indicators: IndicatorSet, state: pl.DataFrame,
              before: dict[str, int] | None = None) -> pl.DataFrame:
    """`state` with the bars stored after it replayed (a live session killed before it saved its state leaves
    bars newer than the saved state): each ticker's bars after its `last_ts` (and before its time in `before`,
    as `compute_state`), through the batch engine."""
    import polars as pl

    from colfill.indicators import state as st
    from colfill.indicators.batch import enrich

    if not state.height or state["last_ts"].null_count() == state.height:
        return state
    last = state.select("ticker", pl.col("last_ts").dt.convert_time_zone("UTC").alias("__last"))
    for table_slice in store.read_bars(table, BAR_COLUMNS, since=state["last_ts"].min()):
        frame = pl.from_arrow(table_slice)
        assert isinstance(frame, pl.DataFrame)
        frame = frame.with_columns(pl.col("ts").dt.convert_time_zone("UTC"))  # DuckDB says Etc/UTC
        newer = frame.join(last, on="ticker", how="inner").filter(pl.col("ts") > pl.col("__last")).drop("__last")
        newer = _before(newer, before) if before else newer
        if newer.height:
            _, state = enrich(newer, indicators, state)
    return st.normalise(state, indicators, timeframe_of(table)).sort("ticker")


def load_state(url: str, table: str, indicators: IndicatorSet) -> pl.DataFrame:
    """The saved state of the store at `url` when there is one for this set (caught up with bars stored after it),
    else the state computed from its bars."""
    store = open_existing(url)
    try:
        saved = saved_state(store, table, indicators)
        return caught_up(store, table, indicators, saved) if saved is not None else compute_state(
            store, table, indicators)
    finally:
        store.close()
