"""EMA: seeded with the SMA of the first `n` closes at index n-1, then ema += k*(x-ema), k = 2/(n+1)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any, ClassVar

from colfill.indicators.base import IDX, SYM, Indicator, Kernel, Recursion

if TYPE_CHECKING:
    from collections import deque

    import polars as pl


@dataclass(frozen=True)
class EMA(Indicator):
    """Seeded with the SMA of the first `n` closes at index n-1, then ema += k*(x-ema), k=2/(n+1)."""

    n: int
    kind: ClassVar[str] = "ema"
    params: ClassVar[tuple[type, ...]] = (int,)
    slot_count: ClassVar[int] = 1  # ema

    @property
    def columns(self) -> tuple[str, ...]:
        return (f"ema_{self.n}",)

    @property
    def first_valid(self) -> int:
        return self.n - 1

    @property
    def state_fields(self) -> tuple[str, ...]:
        return ("ema",)

    @property
    def alpha(self) -> float:
        return 2.0 / (self.n + 1)

    def token(self) -> str:
        return f"ema:{self.n}"

    def batch_recursions(self, has_state: bool) -> tuple[dict[str, Recursion], ...]:
        import polars as pl

        n, x, idx = self.n, pl.col("close"), pl.col(IDX)
        formula = pl.when(idx == n - 1).then(x.rolling_mean(n).over(SYM)).when(idx >= n).then(x)
        return ({f"{self.key}__ema": (self.state_input(formula, "ema", has_state), self.alpha)},)

    def batch_outputs(self) -> list[pl.Expr]:
        import polars as pl

        return [pl.col(f"{self.key}__ema").alias(self.key)]

    def kernel(self, k: int, windows: Mapping[int, int]) -> Kernel:
        col, n, a, fsum = self.key, self.n, self.alpha, math.fsum

        def ema(closes: deque[float], v: list[Any], idx: int, x: float, prev: float, high: float, low: float,
                volume: float, t: int, out: dict[str, Any]) -> None:
            if idx >= n:
                v[k] = (1.0 - a) * v[k] + a * x
            elif idx == n - 1:
                v[k] = fsum(islice(closes, len(closes) - n, None)) / n
            out[col] = v[k] if idx >= n - 1 else None

        return ema
