"""The chart's timeframes: which bars relations a store holds (`bars_1m`, `bars_5m`, `bars_1h_rth`, ...), named as the
chart names them (`1m`, `5m`, `1h:rth`), in the order a timeframe menu lists them.

Found by name in the store rather than from a fixed list, so tables that `colfill run --timeframes` adds show up
without the dashboard knowing them in advance.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

PATTERN = re.compile(r"^bars_(\d+)([mhd])(_rth)?$")
UNIT_MINUTES = {"m": 1, "h": 60, "d": 1440}
LABEL = re.compile(r"^(\d+)([mhd])(:rth)?$")


@dataclass(frozen=True)
class Timeframe:
    label: str  # "5m", "1h:rth"
    table: str  # "bars_5m", "bars_1h_rth"
    minutes: int  # bar size; 1440 for a day
    rth: bool

    @property
    def base(self) -> str:
        """The size without the session ("5m" of "5m:rth"): the width of one unaggregated candle."""
        return self.label.split(":")[0]


def of_table(name: str) -> Timeframe | None:
    m = PATTERN.match(name)
    if not m or int(m.group(1)) == 0:
        return None
    n, unit, rth = int(m.group(1)), m.group(2), bool(m.group(3))
    return Timeframe(f"{n}{unit}" + (":rth" if rth else ""), name, n * UNIT_MINUTES[unit], rth)


def of_label(label: str) -> Timeframe | None:
    m = LABEL.match(label)
    if not m:
        return None
    return of_table(f"bars_{m.group(1)}{m.group(2)}" + ("_rth" if m.group(3) else ""))


def stored(relations: Iterable[str]) -> list[Timeframe]:
    """The bars tables among `relations`, all sessions first, each group from the finest size."""
    found = [tf for tf in map(of_table, relations) if tf is not None]
    return sorted(found, key=lambda tf: (tf.rth, tf.minutes))
