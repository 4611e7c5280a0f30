"""RSI: Wilder's, averages seeded with the mean gain/loss of the first `n` changes, then smoothed by 1/n."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any, ClassVar

from colfill.indicators.base import DIFF, IDX, SYM, Indicator, Kernel, Recursion

if TYPE_CHECKING:
    from collections import deque

    import polars as pl


@dataclass(frozen=True)
class RSI(Indicator):
    """Wilder's RSI: averages seeded with the mean gain/loss of the first `n` changes, then smoothed by 1/n."""

    n: int
    kind: ClassVar[str] = "rsi"
    params: ClassVar[tuple[type, ...]] = (int,)
    slot_count: ClassVar[int] = 2  # avg_gain, avg_loss

    @property
    def columns(self) -> tuple[str, ...]:
        return (f"rsi_{self.n}",)

    @property
    def first_valid(self) -> int:
        return self.n

    @property
    def state_fields(self) -> tuple[str, ...]:
        return ("avg_gain", "avg_loss")

    def token(self) -> str:
        return f"rsi:{self.n}"

    def batch_recursions(self, has_state: bool) -> tuple[dict[str, Recursion], ...]:
        import polars as pl

        n, idx, d = self.n, pl.col(IDX), pl.col(DIFF)
        out = {}
        for field, part in (("avg_gain", d.clip(lower_bound=0.0)), ("avg_loss", (-d).clip(lower_bound=0.0))):
            formula = pl.when(idx == n).then(part.rolling_mean(n).over(SYM)).when(idx > n).then(part)
            out[f"{self.key}__{field}"] = (self.state_input(formula, field, has_state), 1.0 / n)
        return (out,)

    def batch_outputs(self) -> list[pl.Expr]:
        import polars as pl

        g, l_ = pl.col(f"{self.key}__avg_gain"), pl.col(f"{self.key}__avg_loss")
        total = g + l_
        return [pl.when(total == 0).then(0.0).otherwise(100.0 * g / total).alias(self.key)]

    def kernel(self, k: int, windows: Mapping[int, int]) -> Kernel:
        col, n, a, fsum = self.key, self.n, 1.0 / self.n, math.fsum

        def rsi(closes: deque[float], v: list[Any], idx: int, x: float, prev: float, high: float, low: float,
                volume: float, t: int, out: dict[str, Any]) -> None:
            if idx > n:
                d = x - prev
                v[k] = (1.0 - a) * v[k] + a * (d if d > 0 else 0.0)
                v[k + 1] = (1.0 - a) * v[k + 1] + a * (-d if d < 0 else 0.0)
            elif idx == n:
                c = list(islice(closes, len(closes) - n - 1, None))
                diffs = [y - w for w, y in zip(c, c[1:])]
                v[k] = fsum(d for d in diffs if d > 0) / n
                v[k + 1] = fsum(-d for d in diffs if d < 0) / n
            if idx >= n:
                g, lo = v[k], v[k + 1]
                out[col] = 0.0 if g + lo == 0 else 100.0 * g / (g + lo)
            else:
                out[col] = None

        return rsi
