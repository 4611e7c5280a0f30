"""Bollinger bands: sma_n ± k·(population standard deviation of the last n closes). The middle band is the
same rolling mean (batch) and running window sum (incremental) as an SMA of the same n, computed once."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any, ClassVar

from colfill.indicators.base import Indicator, Kernel, mean_window, sd_window

if TYPE_CHECKING:
    from collections import deque

    import polars as pl


def _num(k: float) -> str:
    """A factor as written in tokens and column names: short (`2`, `1.5`) but exact, so that two different
    factors never share a token (and so an id) or a column name (`f"{2.0000001:g}"` is `2`)."""
    short = f"{k:g}"
    return short if float(short) == k else repr(k)


@dataclass(frozen=True)
class BBands(Indicator):
    """Bollinger bands: sma_n ± k·(population standard deviation of the last n closes)."""

    n: int = 20
    k: float = 2.0
    kind: ClassVar[str] = "bb"
    params: ClassVar[tuple[type, ...]] = (int, float)

    @property
    def _suffix(self) -> str:
        return "" if (self.n, self.k) == (20, 2.0) else f"_{self.n}_{_num(self.k)}".replace(".", "p")

    @property
    def columns(self) -> tuple[str, ...]:
        s = self._suffix
        return (f"bb_upper{s}", f"bb_middle{s}", f"bb_lower{s}")

    @property
    def first_valid(self) -> int:
        return self.n - 1

    def token(self) -> str:
        return f"bb:{self.n}:{_num(self.k)}"

    def batch_windows(self) -> dict[str, pl.Expr]:
        return dict([mean_window(self.n), sd_window(self.n)])

    def batch_outputs(self) -> list[pl.Expr]:
        import polars as pl

        upper, middle, lower = self.columns
        mid, sd = pl.col(mean_window(self.n)[0]), pl.col(sd_window(self.n)[0])
        return [(mid + self.k * sd).alias(upper), mid.alias(middle), (mid - self.k * sd).alias(lower)]

    @property
    def window_periods(self) -> tuple[int, ...]:
        return (self.n,)

    def kernel(self, k: int, windows: Mapping[int, int]) -> Kernel:
        """Its deviation is a two-pass over the window of n closes (n fixed by the spec), because a running sum
        of squares loses half its digits after a price jump. The squares are all >= 0, so a plain loop sums them
        to within n ulps (no cancellation left for `math.fsum` to save), at half its cost a bar."""
        upper, middle, lower = self.columns
        n, w, width, sqrt = self.n, windows[self.n], self.k, math.sqrt

        def bb(closes: deque[float], v: list[Any], idx: int, x: float, prev: float, high: float, low: float,
               volume: float, t: int, out: dict[str, Any]) -> None:
            if idx >= n - 1:
                mid = v[w] / n
                squares = 0.0
                for y in islice(closes, len(closes) - n, None):
                    d = y - mid
                    squares += d * d
                sd = width * sqrt(squares / n)
                out[upper], out[middle], out[lower] = mid + sd, mid, mid - sd
            else:
                out[upper] = out[middle] = out[lower] = None

        return bb
