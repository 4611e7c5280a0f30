"""Day bars from flat files, with the trading days they lack filled from REST grouped daily.

Phase 3 of the original tool: day bars from flat files, else from REST. A day file can be missing from the
bucket (late, or never published) while REST has the day; with an API key set, such a trading day inside
the flat files' span (or after their last file, up to yesterday) is listed as a REST partition, so the chain
of indicators has no hole. The days filled are named in the summary. When the flat file appears later, its
identity differs from the REST day's, so the next run replaces that day from the file (and the days after it
re-chain: their indicators are recomputed, and equal, because REST and flat-file bars are the same bars).
Minute bars are not filled: REST minutes need tickers, one request each, and a whole-market gap is what
the flat files are for.
"""

from __future__ import annotations

import builtins
import datetime as dt
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from colfill.bars import ParsedFile, SourceObject
    from colfill.sources.base import Source
    from colfill.sources.rest_bars import RestBars

FILLED = ("bars_1d",)


class GapFilled:
    """`primary` (flat files) with its missing trading days of `FILLED` tables read from `rest`."""

    def __init__(self, primary: Source, rest: RestBars) -> None:
        self.primary = primary
        self.rest = rest
        self._filled: dict[str, builtins.list[dt.date]] = {}

    def describe(self) -> str:
        return self.primary.describe()

    def list(self, table: str, start: dt.date, end: dt.date) -> builtins.list[SourceObject]:
        objs = self.primary.list(table, start, end)
        if table not in FILLED or not objs:  # no file at all in the range: not a gap, a wrong range or source
            return objs
        have = {o.date for o in objs}
        first = min(have)
        gaps = [o for o in self.rest.list(table, first, end) if o.date not in have]
        self._filled[table] = [o.date for o in gaps]
        return sorted(objs + gaps, key=lambda o: o.date)

    def read(self, obj: SourceObject, tickers: tuple[str, ...] | None = None) -> ParsedFile:
        if obj.key.startswith("rest/"):
            return self.rest.read(obj, tickers)
        return self.primary.read(obj, tickers)

    def span(self, table: str) -> tuple[dt.date, dt.date] | None:
        return self.primary.span(table)

    def notes(self, table: str) -> builtins.list[str]:
        days = self._filled.get(table, [])
        lines = self.primary.notes(table)
        if days:
            shown = ", ".join(d.isoformat() for d in days[:10]) + (f" (+{len(days) - 10} more)" if len(days) > 10
                                                                   else "")
            lines.append(f"{table}: {len(days)} trading day(s) missing from the flat files filled from "
                         f"{self.rest.describe()}: {shown}")
            lines += self.rest.notes(table)
        return lines
