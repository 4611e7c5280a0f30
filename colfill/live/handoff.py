"""The hand-off from a backfill to the live engine: indicator state from a store, and saved into one.

A store's state for (timeframe, indicator set) is either saved (`colfill state import`, kept as the
Parquet bytes of the state table in `colfill_state`) or computed from its bars: the batch engine over the
stored history, one slice of (ticker, ts)-ordered rows at a time, each continuing from the state the
previous slice left. That is exact by construction (the batch engine's continuation is what backfills
rely on) and needs memory for one slice, not for the history.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from colfill.errors import InvalidArgument
from colfill.indicators.spec import IndicatorSet

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

TIMEFRAMES = {"bars_1m": "1m", "bars_1d": "1d"}
BAR_COLUMNS = ["ticker", "ts", "high", "low", "close", "volume"]


def timeframe_of(table: str) -> str:
    if table not in TIMEFRAMES:
        raise InvalidArgument(f"--table {table!r}: choose {' or '.join(TIMEFRAMES)}")
    return TIMEFRAMES[table]


def open_existing(url: str) -> Any:
    """The store at `url`; a DuckDB file must exist already (opening would create an empty one)."""
    from colfill.stores import open_store, redact_url

    if url.startswith("duckdb:"):
        from colfill.stores.duckdb import duckdb_path

        path = duckdb_path(url)
        if not path.exists():
            raise InvalidArgument(f"--store {redact_url(url)!r}: no DuckDB file at {path}. "
                                  "Hint: run `colfill run` first, or pass --data-dir/--store of the backfill.")
    return open_store(url, load_workers=1)


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
            state = st.normalise(state, indicators, timeframe)
    return state if state is not None else st.normalise(st.empty(indicators), indicators, timeframe)


def compute_state(store: Any, table: str, indicators: IndicatorSet) -> pl.DataFrame:
    return state_from_bars(store.read_bars(table, BAR_COLUMNS), indicators, timeframe_of(table))


def saved_state(store: Any, table: str, indicators: IndicatorSet) -> pl.DataFrame | None:
    import polars as pl

    blob = store.get_state(timeframe_of(table), indicators.token())
    return None if blob is None else pl.read_parquet(io.BytesIO(blob))


def load_state(url: str, table: str, indicators: IndicatorSet) -> pl.DataFrame:
    """The saved state of the store at `url` when there is one, else the state computed from its bars."""
    store = open_existing(url)
    try:
        saved = saved_state(store, table, indicators)
        return saved if saved is not None else compute_state(store, table, indicators)
    finally:
        store.close()


def save_state(url: str, state: pl.DataFrame, indicators: IndicatorSet) -> dict[str, int]:
    """Merge `state` into the store's saved state (its symbols replace theirs), per timeframe; rows per timeframe."""
    import polars as pl

    from colfill.indicators import state as st

    state = st.normalise(state, indicators)
    st.check(state, indicators)
    if state["timeframe"].null_count():
        raise InvalidArgument("the state has rows without a timeframe; colfill cannot tell which table they are for")
    store = open_existing(url)
    written = {}
    try:
        for (timeframe,), part in state.partition_by("timeframe", as_dict=True).items():
            token = indicators.token()
            blob = store.get_state(timeframe, token)
            if blob is not None:
                old = st.normalise(pl.read_parquet(io.BytesIO(blob)), indicators)
                part = pl.concat([old.join(part.select(["ticker"]), on="ticker", how="anti"), part]).sort("ticker")
            buf = io.BytesIO()
            part.write_parquet(buf, compression="zstd")
            store.put_state(str(timeframe), token, buf.getvalue(), part.height)
            written[str(timeframe)] = part.height
    finally:
        store.close()
    return written
