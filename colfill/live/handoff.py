"""The hand-off from a backfill to the live engine: a state checked against the engine, and saved into a store.

A timeframe's saved rows belong to one indicator set: state computed for another set would be silently
wrong, so it is never mixed in, and importing another set's state replaces them only when asked.
Reading a store's state is `colfill.live.stored_state`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from colfill.errors import InvalidArgument
from colfill.indicators.spec import IndicatorSet
from colfill.live.stored_state import TOKEN, open_existing, saved_sets

if TYPE_CHECKING:
    import polars as pl


def validate(state: pl.DataFrame, indicators: IndicatorSet) -> pl.DataFrame:
    """The state in canonical form, refused (naming the ticker) unless the live engine can continue from it:
    the indicator set's columns, `lookback` closes, the recursive values its bar count must have seeded."""
    from colfill.indicators import state as st
    from colfill.live.incremental import IncrementalIndicatorProcessor

    st.check(state, indicators)
    state = st.normalise(state, indicators)
    if state["timeframe"].null_count():
        raise InvalidArgument("the state has rows without a timeframe; colfill cannot tell which table they are for")
    IncrementalIndicatorProcessor(indicators).import_state(state)
    return state


def save_state(url: str, state: pl.DataFrame, indicators: IndicatorSet, replace: bool = False) -> dict[str, int]:
    """Upsert `state` into the store's `indicator_state` (its tickers replace theirs), per timeframe; rows
    written per timeframe. A timeframe whose saved rows are for another indicator set is refused unless
    `replace`, which deletes that timeframe's saved rows first."""
    import polars as pl

    from colfill.config import redact

    state = validate(state, indicators)
    token = indicators.token()
    store = open_existing(url)
    written = {}
    try:
        parts = state.partition_by("timeframe", as_dict=True)
        for (timeframe,), _ in parts.items():
            others = {k: v for k, v in saved_sets(store, str(timeframe)).items() if k != token}
            if others and not replace:
                other, rows = next(iter(others.items()))
                raise InvalidArgument(
                    f"--in: {redact(url)} holds the {timeframe} state of {rows:,} tickers for --indicators "
                    f"{other!r}; this state is for {token!r}. Hint: pass --replace to drop that saved state, or "
                    "--indicators with the set the file was exported for.")
        for (timeframe,), part in parts.items():
            rows = part.with_columns(pl.lit(token).alias(TOKEN)).to_arrow()
            written[str(timeframe)] = store.write_state(str(timeframe), rows, replace=replace)
    finally:
        store.close()
    return written
