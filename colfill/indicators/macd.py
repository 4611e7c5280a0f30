"""MACD as TA-Lib computes it: both EMAs seeded at index slow-1, the signal an EMA of the line seeded at
slow+signal-2. The EMAs are MACD's own (the fast one is seeded later than an `ema:fast` would be), so they
are not shared with EMA indicators."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any, ClassVar

from colfill.errors import InvalidArgument
from colfill.indicators.base import IDX, SYM, Indicator, Kernel, Recursion

if TYPE_CHECKING:
    from collections import deque

    import polars as pl


@dataclass(frozen=True)
class MACD(Indicator):
    """TA-Lib MACD: both EMAs seeded at index slow-1, signal = EMA of the line seeded at slow+signal-2."""

    fast: int = 12
    slow: int = 26
    signal: int = 9
    kind: ClassVar[str] = "macd"
    params: ClassVar[tuple[type, ...]] = (int, int, int)
    min_first: ClassVar[int] = 1
    slot_count: ClassVar[int] = 4  # fast, slow, sum of the signal's seed lines, signal

    def __post_init__(self) -> None:
        if self.fast >= self.slow:
            raise InvalidArgument(f"macd fast period {self.fast} must be below the slow period {self.slow}")

    @property
    def _suffix(self) -> str:
        return "" if (self.fast, self.slow, self.signal) == (12, 26, 9) else f"_{self.fast}_{self.slow}_{self.signal}"

    @property
    def columns(self) -> tuple[str, ...]:
        s = self._suffix
        return (f"macd{s}", f"macd_signal{s}", f"macd_hist{s}")

    @property
    def first_valid(self) -> int:
        return self.slow + self.signal - 2

    @property
    def state_fields(self) -> tuple[str, ...]:
        return ("fast", "slow", "signal")

    @property
    def state_slots(self) -> tuple[int, ...]:
        return (0, 1, 3)

    def token(self) -> str:
        return f"macd:{self.fast}:{self.slow}:{self.signal}"

    def batch_recursions(self, has_state: bool) -> tuple[dict[str, Recursion], ...]:
        import polars as pl

        f, s, key = self.fast, self.slow, self.key
        x, idx = pl.col("close"), pl.col(IDX)
        fast = pl.when(idx == s - 1).then(x.rolling_mean(f).over(SYM)).when(idx >= s).then(x)
        slow = pl.when(idx == s - 1).then(x.rolling_mean(s).over(SYM)).when(idx >= s).then(x)
        line = pl.col(f"{key}__fast") - pl.col(f"{key}__slow")
        seed_at = self.first_valid
        signal = pl.when(idx == seed_at).then(line.rolling_mean(self.signal).over(SYM)).when(idx > seed_at).then(line)
        return (
            {f"{key}__fast": (self.state_input(fast, "fast", has_state), 2.0 / (f + 1)),
             f"{key}__slow": (self.state_input(slow, "slow", has_state), 2.0 / (s + 1))},
            {f"{key}__signal": (self.state_input(signal, "signal", has_state), 2.0 / (self.signal + 1))},
        )

    def batch_outputs(self) -> list[pl.Expr]:
        import polars as pl

        line_col, signal_col, hist_col = self.columns
        line = pl.col(f"{self.key}__fast") - pl.col(f"{self.key}__slow")
        signal = pl.col(f"{self.key}__signal")
        valid = pl.col(IDX) >= self.first_valid
        return [pl.when(valid).then(line).alias(line_col), signal.alias(signal_col),
                pl.when(valid).then(line - signal).alias(hist_col)]

    def kernel(self, k: int, windows: Mapping[int, int]) -> Kernel:
        line_col, signal_col, hist_col = self.columns
        f, sl, m, fsum = self.fast, self.slow, self.signal, math.fsum
        af, asl, am = 2.0 / (f + 1), 2.0 / (sl + 1), 2.0 / (m + 1)
        seed_at = self.first_valid

        def macd(closes: deque[float], v: list[Any], idx: int, x: float, prev: float, high: float, low: float,
                 volume: float, t: int, out: dict[str, Any]) -> None:
            if idx >= sl:
                v[k] = (1.0 - af) * v[k] + af * x
                v[k + 1] = (1.0 - asl) * v[k + 1] + asl * x
            elif idx == sl - 1:
                v[k] = fsum(islice(closes, len(closes) - f, None)) / f
                v[k + 1] = fsum(islice(closes, len(closes) - sl, None)) / sl
                v[k + 2] = 0.0
            else:
                out[line_col] = out[signal_col] = out[hist_col] = None
                return
            line = v[k] - v[k + 1]
            if idx > seed_at:
                v[k + 3] = (1.0 - am) * v[k + 3] + am * line
            else:
                v[k + 2] += line
                if idx < seed_at:
                    out[line_col] = out[signal_col] = out[hist_col] = None
                    return
                v[k + 3] = v[k + 2] / m
            out[line_col], out[signal_col], out[hist_col] = line, v[k + 3], line - v[k + 3]

        return macd
