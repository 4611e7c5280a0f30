"""The incremental step: an `IndicatorSet` compiled to slots and kernels, one bar in O(1) of the history.

Per (symbol, timeframe) a `Sym` keeps a ring buffer of the last `IndicatorSet.lookback` closes and a flat
list of scalars: a running window sum per period that SMAs and Bollinger bands read (one per period, shared),
then each indicator's own slots (`Indicator.slot_count`: EMA values, Wilder averages, MACD's EMAs and
signal, the VWAP session's sums). Each indicator's `kernel` reads a fixed number of them, so a bar costs the
same after a million bars as after fifty. `colfill.live.incremental.IncrementalIndicatorProcessor` runs it.

Floating-point drift: the recursions (EMA, Wilder, MACD) contract errors by (1-alpha) every bar, so
they cannot drift. A running window sum can: every addition or subtraction rounds, by at most
u = 2^-53 times its result, and those errors add up, each as large as the sum itself in the worst case.
So the plan keeps a bound with the sum, `mag`: the |result| of every operation since the sum was last
computed exactly (where it starts as |sum|), which makes u*mag a rigorous bound on the sum's error. Once
mag exceeds 2^19 times the current |sum| (error bound 2^-34 = 5.8e-11 relative), the sum is recomputed
with `math.fsum` over the ring, exactly rounded. With steady prices that is every ~260 000 bars (one
fsum of n closes); after a collapse from 500 to 0.5 it is at once. SMA and Bollinger's middle are then
within 1e-10 of exact, far inside the 1e-9 parity with the batch engine over any number of bars.

State: each indicator's `state_slots` say which of its slots hold its `state_fields`, so `export` and
`load` map slots to the state table's columns (`colfill.indicators.state`) in one place; dates are kept as
ordinals here and as dates there.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import deque
from collections.abc import Mapping, Sequence
from itertools import islice
from typing import Any

from colfill.errors import SchemaMismatch
from colfill.indicators.base import Indicator
from colfill.indicators.spec import IndicatorSet

DRIFT_GUARD = float(2**19)  # recompute a window sum once its error bound u*mag could exceed 2^-34 of it
EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()  # state tables hold dates; the engine, ordinals


class Sym:
    """One (symbol, timeframe): bars seen, last time, the closes ring, the scalars, the undo records of its last
    bars (kept by the live processor, `colfill.live.incremental`)."""

    __slots__ = ("n", "last_t", "closes", "v", "undo")

    def __init__(self, lookback: int, slots: int) -> None:
        self.n = 0
        self.last_t = -(2**62)
        self.closes: deque[float] = deque(maxlen=lookback)
        self.v: list[Any] = [None] * slots
        self.undo: deque[tuple[Any, ...]] | None = None


class Plan:
    """The IndicatorSet compiled to slot numbers and an update step."""

    def __init__(self, indicators: IndicatorSet) -> None:
        self.indicators = indicators
        self.lookback = indicators.lookback
        self.windows: dict[int, int] = {}  # period -> slot of [sum, mag]
        for ind in indicators.indicators:
            for n in ind.window_periods:
                self.windows.setdefault(n, 2 * len(self.windows))
        self.slot: dict[Indicator, int] = {}
        slots = 2 * len(self.windows)
        for ind in indicators.indicators:
            self.slot[ind] = slots
            slots += ind.slot_count
        self.slots = slots
        self.kernels = [ind.kernel(self.slot[ind], self.windows) for ind in indicators.indicators]
        # (indicator, its state columns, the slots holding them) for the state table's recursive values
        self.layout = [(ind, ind.state_columns(), [self.slot[ind] + i for i in ind.state_slots])
                       for ind in indicators.indicators if ind.state_fields]
        self.date_columns = [c for ind, names, _ in self.layout
                             for f, c in zip(ind.state_fields, names) if f in ind.date_fields]
        # the last first-valid index among the seeded indicators: past it, a state row is fully seeded
        self.seeded_at = max([-1, *(ind.first_valid for ind, _, _ in self.layout if ind.seeded_state)])

    def new(self) -> Sym:
        return Sym(self.lookback, self.slots)

    def step(self, s: Sym, x: float, high: float, low: float, volume: float, t: int, out: dict[str, Any]) -> None:
        """Apply a bar to `s` and write the indicator values into `out`."""
        closes, v, idx = s.closes, s.v, s.n
        prev = closes[-1] if closes else x
        if self.windows:
            size = len(closes)
            leaving = [(w, k, closes[-w] if size >= w else None) for w, k in self.windows.items()]
            closes.append(x)
            for w, k, o in leaving:
                if idx == 0:
                    total, mag = x, abs(x)
                elif o is None:
                    total = v[k] + x
                    mag = v[k + 1] + abs(total)
                else:
                    part = v[k] + x
                    total = part - o
                    mag = v[k + 1] + abs(part) + abs(total)
                if mag > DRIFT_GUARD * abs(total):
                    total = math.fsum(islice(closes, max(0, len(closes) - w), None))
                    mag = abs(total)
                v[k], v[k + 1] = total, mag
        else:
            closes.append(x)
        for kernel in self.kernels:
            kernel(closes, v, idx, x, prev, high, low, volume, t, out)
        s.n = idx + 1
        s.last_t = t

    def replay(self, closes: Sequence[float]) -> Sym:
        """A symbol's recursions recomputed from its whole (short) history of closes."""
        s, out = self.new(), {}  # type: ignore[var-annotated]
        for i, c in enumerate(closes):
            self.step(s, c, c, c, 0.0, i, out)
        return s

    # -- state ----------------------------------------------------------------------------------------

    def export(self, syms: Sequence[Sym]) -> dict[str, list[Any]]:
        """The state table's recursive-value columns of `syms` (dates as days since the epoch); a seeded
        indicator's values are null before its first valid bar."""
        cols: dict[str, list[Any]] = {}
        for ind, names, slots in self.layout:
            fv = ind.first_valid if ind.seeded_state else -1
            for field, name, k in zip(ind.state_fields, names, slots):
                values = [s.v[k] if s.n - 1 >= fv else None for s in syms]
                if field in ind.date_fields:
                    values = [None if x is None else x - EPOCH_ORDINAL for x in values]
                cols[name] = values
        return cols

    def load(self, cols: Mapping[str, list[Any]], i: int, where: str) -> Sym:
        """One symbol's state from row `i` of a state table (as column lists, dates as ordinals).

        Seeded values are taken as they are. A symbol whose indicators are not all seeded yet has its whole
        history in `closes` (n <= lookback), and its recursions are replayed from them.
        """
        n, closes = int(cols["n"][i]), list(cols["closes"][i] or [])
        if len(closes) != min(n, self.lookback):
            raise SchemaMismatch(f"the {where} holds {len(closes)} closes for n={n}; expected "
                                 f"{min(n, self.lookback)} (the indicator set's lookback). Hint: rebuild it from the "
                                 "stored bars with the same --indicators.")
        last_t = cols["last_ts"][i]
        if n and last_t is None:
            raise SchemaMismatch(f"the {where} has {n} bars but no last_ts")
        replayed = len(closes) == n and n - 1 < self.seeded_at
        s = self.replay(closes) if replayed else self.new()
        s.n = n
        if n:
            s.last_t = int(last_t)
        s.closes.clear()
        s.closes.extend(closes)
        v = s.v
        for w, k in self.windows.items():
            total = math.fsum(closes[-w:]) if closes else None
            v[k], v[k + 1] = total, None if total is None else abs(total)
        for ind, names, slots in self.layout:
            values = [cols[c][i] for c in names]
            if not ind.seeded_state or all(x is not None for x in values):
                for k, x in zip(slots, values):
                    v[k] = x
            elif n - 1 >= ind.first_valid and not replayed:
                raise SchemaMismatch(f"the {where} lacks {', '.join(names)}, which its {n} bars should have "
                                     "seeded. Hint: rebuild it from the stored bars.")
        return s
