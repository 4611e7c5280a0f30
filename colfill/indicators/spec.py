"""The indicator set and its registry: which indicators `--indicators` can name, parsed into one spec object
that the batch engine (`colfill.indicators.batch`) and the incremental engine (`colfill.indicators.incremental`)
both run.

Definitions are TA-Lib's (see docs/indicators.md): an indicator is computed per (ticker, timeframe) over that
symbol's closes in time order, null during its warm-up. Each indicator is one file (`sma.py`, `macd.py`, ...)
holding its spec, its batch contributions, its incremental step and its state layout (see
`colfill.indicators.base`); `KINDS` below is the one line that makes it known.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import MISSING, dataclass, fields

from colfill.errors import InvalidArgument
from colfill.indicators.base import Indicator
from colfill.indicators.bollinger import BBands
from colfill.indicators.ema import EMA
from colfill.indicators.macd import MACD
from colfill.indicators.rsi import RSI
from colfill.indicators.sma import SMA
from colfill.indicators.vwap import VWAP

__all__ = ["EMA", "KINDS", "MACD", "RSI", "SMA", "VWAP", "BBands", "Indicator", "IndicatorSet"]

KINDS: dict[str, type[Indicator]] = {c.kind: c for c in (SMA, EMA, RSI, MACD, BBands, VWAP)}


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
            if name not in KINDS:
                raise InvalidArgument(
                    f"--indicators: unknown indicator {name!r} in {raw.strip()!r}. "
                    f"Hint: choose from {', '.join(KINDS)}, e.g. sma:10,ema:50,rsi:14,macd:12:26:9,bb:20:2,vwap"
                )
            klass = KINDS[name]
            types = klass.params
            if len(args) > len(types) or (not args and any(f.default is MISSING for f in fields(klass))):
                raise InvalidArgument(
                    f"--indicators: {raw.strip()!r} takes {len(types)} parameter(s), e.g. {name}:"
                    + ":".join("20" if t is int else "2" for t in types)
                )
            try:
                values = [t(a) for t, a in zip(types, args)]
            except ValueError:
                raise InvalidArgument(f"--indicators: {raw.strip()!r} has a parameter that is not a number") from None
            if any(not math.isfinite(v) or v <= 0 for v in values) or (values and values[0] < klass.min_first):
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
