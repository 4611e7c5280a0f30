"""SMA: the mean of the last `n` closes, from a running window sum shared with Bollinger bands of the same n."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from colfill.indicators.base import Indicator, Kernel, mean_window

if TYPE_CHECKING:
    from collections import deque

    import polars as pl


@dataclass(frozen=True)
class SMA(Indicator):
    """Mean of the last `n` closes."""

    n: int
    kind: ClassVar[str] = "sma"
    params: ClassVar[tuple[type, ...]] = (int,)

    @property
    def columns(self) -> tuple[str, ...]:
        return (f"sma_{self.n}",)

    @property
    def first_valid(self) -> int:
        return self.n - 1

    def token(self) -> str:
        return f"sma:{self.n}"

    def batch_windows(self) -> dict[str, pl.Expr]:
        return dict([mean_window(self.n)])

    def batch_outputs(self) -> list[pl.Expr]:
        import polars as pl

        return [pl.col(mean_window(self.n)[0]).alias(self.key)]

    @property
    def window_periods(self) -> tuple[int, ...]:
        return (self.n,)

    def kernel(self, k: int, windows: Mapping[int, int]) -> Kernel:
        col, n, w = self.key, self.n, windows[self.n]

        def sma(closes: deque[float], v: list[Any], idx: int, x: float, prev: float, high: float, low: float,
                volume: float, t: int, out: dict[str, Any]) -> None:
            out[col] = v[w] / n if idx >= n - 1 else None

        return sma
