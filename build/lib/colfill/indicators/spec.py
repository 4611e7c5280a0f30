"""The one definition of every indicator, consumed by the batch and the incremental engine.

Definitions are TA-Lib's (see docs/indicators.md in the README): an indicator is computed per
(ticker, timeframe) over that symbol's closes in time order, null during its warm-up.

An `Indicator` knows its output columns, when it first has a value (`first_valid`), how many past
closes it needs to continue (`lookback`) and which recursive values it carries from one bar to the
next (`state_fields`). Those three facts are what lets a backfill resume exactly where the last one
stopped, and what lets the live engine start from a backfill's state.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import ClassVar

from colfill.errors import InvalidArgument


def _num(k: float) -> str:
    """A factor as written in tokens and column names: short (`2`, `1.5`) but exact, so that two different
    factors never share a token (and so an id) or a column name (`f"{2.0000001:g}"` is `2`)."""
    short = f"{k:g}"
    return short if float(short) == k else repr(k)


@dataclass(frozen=True)
class Indicator:
    """Base of the indicator specs: a name, integer parameters, and derived facts."""

    kind: ClassVar[str] = ""

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


@dataclass(frozen=True)
class SMA(Indicator):
    """Mean of the last `n` closes."""

    n: int
    kind: ClassVar[str] = "sma"

    @property
    def columns(self) -> tuple[str, ...]:
        return (f"sma_{self.n}",)

    @property
    def first_valid(self) -> int:
        return self.n - 1

    def token(self) -> str:
        return f"sma:{self.n}"


@dataclass(frozen=True)
class EMA(Indicator):
    """Seeded with the SMA of the first `n` closes at index n-1, then ema += k*(x-ema), k=2/(n+1)."""

    n: int
    kind: ClassVar[str] = "ema"

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


@dataclass(frozen=True)
class RSI(Indicator):
    """Wilder's RSI: averages seeded with the mean gain/loss of the first `n` changes, then smoothed by 1/n."""

    n: int
    kind: ClassVar[str] = "rsi"

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


@dataclass(frozen=True)
class MACD(Indicator):
    """TA-Lib MACD: both EMAs seeded at index slow-1, signal = EMA of the line seeded at slow+signal-2."""

    fast: int = 12
    slow: int = 26
    signal: int = 9
    kind: ClassVar[str] = "macd"

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

    def token(self) -> str:
        return f"macd:{self.fast}:{self.slow}:{self.signal}"


@dataclass(frozen=True)
class BBands(Indicator):
    """Bollinger bands: sma_n ± k·(population standard deviation of the last n closes)."""

    n: int = 20
    k: float = 2.0
    kind: ClassVar[str] = "bb"

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


@dataclass(frozen=True)
class VWAP(Indicator):
    """Session VWAP of typical price (h+l+c)/3, reset at each New York trading date."""

    kind: ClassVar[str] = "vwap"

    @property
    def columns(self) -> tuple[str, ...]:
        return ("vwap",)

    @property
    def first_valid(self) -> int:
        return 0

    @property
    def lookback(self) -> int:
        return 1

    @property
    def state_fields(self) -> tuple[str, ...]:
        return ("date", "pv", "v")

    def token(self) -> str:
        return "vwap"


_KINDS: dict[str, tuple[type[Indicator], tuple[type, ...]]] = {
    "sma": (SMA, (int,)),
    "ema": (EMA, (int,)),
    "rsi": (RSI, (int,)),
    "macd": (MACD, (int, int, int)),
    "bb": (BBands, (int, float)),
    "vwap": (VWAP, ()),
}


@dataclass(frozen=True)
class IndicatorSet:
    """An ordered, de-duplicated set of indicators; its `id` names state and lineage."""

    indicators: tuple[Indicator, ...]

    def __post_init__(self) -> None:
        cols = [c for i in self.indicators for c in i.columns]
        dupes = sorted({c for c in cols if cols.count(c) > 1})
        if dupes:
            raise InvalidArgument(f"--indicators names the column(s) {', '.join(dupes)} twice")

    @classmethod
    def default(cls) -> IndicatorSet:
        return cls((SMA(20), SMA(50), EMA(20), RSI(14), MACD(), BBands(), VWAP()))

    @classmethod
    def parse(cls, text: str | None) -> IndicatorSet:
        """Parse `sma:10,ema:50,rsi:14,macd:12:26:9,bb:20:2,vwap`; empty or `default` gives the default set.

        >>> [i.columns[0] for i in IndicatorSet.parse("sma:10,ema:50").indicators]
        ['sma_10', 'ema_50']
        """
        if text is None or text.strip().lower() in ("", "default"):
            return cls.default()
        if text.strip().lower() == "none":
            return cls(())
        out: list[Indicator] = []
        for raw in text.split(","):
            token = raw.strip().lower()
            if not token:
                continue
            name, *args = token.split(":")
            if name not in _KINDS:
                raise InvalidArgument(
                    f"--indicators: unknown indicator {name!r} in {raw.strip()!r}. "
                    f"Hint: choose from {', '.join(_KINDS)}, e.g. sma:10,ema:50,rsi:14,macd:12:26:9,bb:20:2,vwap"
                )
            klass, types = _KINDS[name]
            if len(args) > len(types) or (not args and name in ("sma", "ema", "rsi")):
                raise InvalidArgument(
                    f"--indicators: {raw.strip()!r} takes {len(types)} parameter(s), e.g. {name}:"
                    + ":".join("20" if t is int else "2" for t in types)
                )
            try:
                values = [t(a) for t, a in zip(types, args)]
            except ValueError:
                raise InvalidArgument(f"--indicators: {raw.strip()!r} has a parameter that is not a number") from None
            if any(not math.isfinite(v) or v <= 0 for v in values) or (
                name in ("sma", "ema", "rsi", "bb") and values and values[0] < 2
            ):
                raise InvalidArgument(
                    f"--indicators: {raw.strip()!r} needs periods of at least 2 (and positive, finite factors)"
                )
            try:
                ind = klass(*values)
            except InvalidArgument as e:
                raise InvalidArgument(f"--indicators: {raw.strip()!r}: {e}. Hint: e.g. macd:12:26:9") from None
            if ind not in out:
                out.append(ind)
        return cls(tuple(out))

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(c for i in self.indicators for c in i.columns)

    @property
    def lookback(self) -> int:
        """Closes kept per symbol in state: enough for every rolling window and every warm-up."""
        return max([2, *(i.lookback for i in self.indicators)])

    @property
    def state_columns(self) -> tuple[str, ...]:
        return tuple(c for i in self.indicators for c in i.state_columns())

    def token(self) -> str:
        return ",".join(i.token() for i in self.indicators) or "none"

    @property
    def id(self) -> str:
        return hashlib.sha256(self.token().encode()).hexdigest()[:12]
