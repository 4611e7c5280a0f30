"""What an indicator is to both engines: the base class every indicator file (`sma.py`, `macd.py`, ...) extends.

An `Indicator` is a frozen spec (its parameters) that knows four things about itself:

- its facts: output columns, when it first has a value (`first_valid`), how many past closes it needs to
  continue (`lookback`) and which recursive values it carries from bar to bar (`state_fields`), the facts
  that let a backfill resume exactly and the live engine start from a backfill's state;
- its batch contributions (`colfill.indicators.batch`): named rolling windows, which the plan computes once
  however many indicators name them (`sma_20` and `bb_middle` share `__mean_20`), recursions by dependency
  level, an optional whole-frame step, and its output expressions;
- its incremental step (`colfill.indicators.incremental`): how many scalar slots it keeps, which running
  window sums it reads, and a kernel updating those slots for one bar;
- its state layout: which of its slots hold `state_fields`, so the slot <-> column mapping is written once.

Polars is imported inside the batch methods: specs are parsed on the CLI's light start-up path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from collections import deque

    import polars as pl

# Columns of the batch engine's working frame that indicators read.
CTX = "__ctx"  # context row (from state) rather than a new bar
LAST_CTX = "__last_ctx"  # the last context row: carries the recursive state values
POS = "__pos"  # position of the row within its symbol in the combined frame
IDX = "__idx"  # index of the bar in the symbol's whole history
DIFF = "__diff"  # close - previous close of the same symbol
SYM = "__sym"  # symbol number in (ticker, ts) order: a sorted key, much cheaper to window over than ticker

# One recursion of the batch plan: y = y_prev + alpha*(input - y_prev) per symbol, from its first non-null input.
Recursion = tuple["pl.Expr", float]
# The incremental update of one indicator: (closes ring with this bar's close appended, slots, bar index, close,
# previous close, high, low, volume, t epoch ms, output dict) -> None. A closure with its constants bound.
Kernel = Callable[["deque[float]", list[Any], int, float, float, float, float, float, int, dict[str, Any]], None]


@dataclass(frozen=True)
class Indicator:
    """Base of the indicator specs: a kind, parameters, derived facts, and the hooks of both engines."""

    kind: ClassVar[str] = ""
    params: ClassVar[tuple[type, ...]] = ()  # parameter types of `kind:p1:p2` in `--indicators`
    min_first: ClassVar[int] = 2  # smallest first parameter (a window period) `--indicators` accepts
    date_fields: ClassVar[frozenset[str]] = frozenset()  # state fields that are dates (others are Float64)
    seeded_state: ClassVar[bool] = True  # state values are null until first_valid, and set from it on
    slot_count: ClassVar[int] = 0  # scalars the incremental engine keeps per symbol

    # -- facts ----------------------------------------------------------------------------------------

    @property
    def columns(self) -> tuple[str, ...]:
        raise NotImplementedError

    @property
    def first_valid(self) -> int:
        """Index (0-based, per symbol) of the first bar with a non-null value."""
        raise NotImplementedError

    @property
    def lookback(self) -> int:
        """How many of the most recent closes must be kept to continue from state."""
        return self.first_valid + 1

    @property
    def state_fields(self) -> tuple[str, ...]:
        """Recursive values carried from bar to bar, named `{key}__{field}` in state tables."""
        return ()

    @property
    def key(self) -> str:
        return self.columns[0]

    def state_columns(self) -> tuple[str, ...]:
        return tuple(f"{self.key}__{f}" for f in self.state_fields)

    def token(self) -> str:
        raise NotImplementedError

    # -- batch (colfill.indicators.batch) -------------------------------------------------------------

    def batch_windows(self) -> dict[str, pl.Expr]:
        """Rolling windows by name; a name given by several indicators is computed once."""
        return {}

    def batch_recursions(self, has_state: bool) -> tuple[dict[str, Recursion], ...]:
        """Recursions by dependency level (level i may read level i-1's results), each named for its column."""
        return ()

    def batch_frame(self, frame: pl.DataFrame, has_state: bool) -> pl.DataFrame:
        """A whole-frame step after the recursions, for what is not a window or a recursion (VWAP's sessions)."""
        return frame

    def batch_outputs(self) -> list[pl.Expr]:
        """The output columns from the recursions, windows and frame step."""
        raise NotImplementedError

    def state_input(self, formula: pl.Expr, field: str, has_state: bool) -> pl.Expr:
        """Input of a recursion: the carried state value on the last context row (null on the other context
        rows) when the symbol was seeded, else the formula (seed at the seed index, inputs after, null before)."""
        import polars as pl

        if not has_state:
            return formula
        col = f"{self.key}__{field}"
        seeded = pl.col(col).is_not_null() & pl.col(CTX)
        return pl.when(seeded & pl.col(LAST_CTX)).then(pl.col(col)).when(seeded).then(None).otherwise(formula)

    # -- incremental (colfill.indicators.incremental) -------------------------------------------------

    @property
    def window_periods(self) -> tuple[int, ...]:
        """Periods of the running window sums it reads (shared with every indicator of the same period)."""
        return ()

    @property
    def state_slots(self) -> tuple[int, ...]:
        """Offsets, within its slots, of its `state_fields`, in order."""
        return tuple(range(len(self.state_fields)))

    def kernel(self, k: int, windows: Mapping[int, int]) -> Kernel:
        """Its update for one bar: its slots start at `k`; `windows[n]` is the slot of the [sum, mag] of the
        last n closes, already updated for this bar."""
        raise NotImplementedError


def mean_window(n: int) -> tuple[str, pl.Expr]:
    """The mean of the last n closes, null before the symbol's n-th row in the frame."""
    import polars as pl

    mean = pl.col("close").rolling_mean(n).over(SYM)
    return f"__mean_{n}", pl.when(pl.col(POS) >= n - 1).then(mean).otherwise(None)


def sd_window(n: int) -> tuple[str, pl.Expr]:
    """The population standard deviation of the last n closes."""
    import polars as pl

    return f"__sd_{n}", pl.col("close").rolling_std(n, ddof=0).over(SYM)
