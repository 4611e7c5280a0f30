"""The live engine's admission of socket rows: validation, duplicates and revisions, per ticker.

A row that fails the bar validation every source shares (`colfill.validate`) is counted in `stats.invalid`
and logged, never stored or published. Of the sane ones: a bar equal to one already received for the same
minute (a resend after a reconnect) is dropped; a different bar for the symbol's latest minute is a revision
(flagged when the earlier version was already published). A bar for an older minute that differs from what
was received, or was never received (a late correction: from a gap fill's REST bars, or on the socket), is
admitted as one of `Admitted.older`: the engine has the incremental processor restore the state before that
minute and replay the later bars (`IncrementalIndicatorProcessor.amend`), so its row and every later row of
the ticker are stored and published again, recomputed, as revisions. One older than the processor holds
(its last `keep` bars) is counted in `stats.late` and logged (`late`), not applied.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from colfill.validate import RowCheck

if TYPE_CHECKING:
    from colfill.live.stats import IngestStats

log = logging.getLogger("colfill.live")

RECENT = 16  # minutes remembered per ticker (a hash of their values) to recognise a resend of an older one


class _Seen:
    """Per ticker: the latest minute, the last published minute, and a hash of each of the last RECENT bars'
    values (a hash, not the values: a whole market of tickers is followed for days)."""

    __slots__ = ("last_t", "published_t", "recent")

    def __init__(self) -> None:
        self.last_t = -(2**62)
        self.published_t = -(2**62)
        self.recent: dict[int, int] = {}


@dataclass(frozen=True)
class Admitted:
    """A micro-batch's rows to process, one per (ticker, minute), with each row's (arrival, revision, end ms), and
    which of them are late corrections (older than their ticker's latest minute when they came)."""

    rows: list[tuple[Any, ...]]
    meta: list[tuple[float, bool, int]]
    index: dict[tuple[str, int], int]
    older: set[int]


class Tracker:
    """What has been received and published per ticker, deciding which rows of a micro-batch go on."""

    def __init__(self, stats: IngestStats) -> None:
        self.stats = stats
        self._seen: dict[str, _Seen] = {}
        self._check = RowCheck()

    def admit(self, chunks: list[tuple[float, list[tuple[Any, ...]]]]) -> Admitted:
        keep: dict[tuple[str, int], int] = {}
        rows: list[tuple[Any, ...]] = []
        meta: list[tuple[float, bool, int]] = []
        older: set[int] = set()
        stats, seen, check = self.stats, self._seen, self._check.reject_reason
        for received, chunk in chunks:
            stats.bars_in += len(chunk)
            for row in chunk:
                why = check(row)
                if why is not None:
                    self._invalid(row, why)
                    continue
                ticker, t = row[0], row[1]
                s = seen.get(ticker)
                if s is None:
                    s = seen[ticker] = _Seen()
                values = hash(row[2:9])
                late = published = False
                if t <= s.last_t:
                    had = s.recent.get(t)
                    if had == values:
                        stats.duplicates += 1
                        continue
                    if t < s.last_t:
                        late, published = True, had is not None
                    else:
                        stats.revisions += 1
                if t > s.last_t or (late and had is None):
                    s.last_t = max(s.last_t, t)
                    if len(s.recent) >= RECENT:
                        del s.recent[next(iter(s.recent))]
                s.recent[t] = values
                end = row[9] if len(row) > 9 else t + 60_000
                at = keep.get((ticker, t))
                if at is not None:  # a revision within the batch: the later version takes the earlier's place
                    rows[at] = row
                    meta[at] = (meta[at][0], meta[at][1], end)
                else:
                    keep[(ticker, t)] = len(rows)
                    if late:
                        older.add(len(rows))
                    rows.append(row)
                    meta.append((received, published if late else s.published_t == t, end))
        return Admitted(rows, meta, keep, older)

    def late(self, ticker: str, t: int) -> None:
        """A late correction the processor could not apply (older than the bars it holds): counted and logged;
        its minute is forgotten, so a resend of it is not taken for a duplicate of what was applied."""
        stats, s = self.stats, self._seen[ticker]
        s.recent.pop(t, None)
        stats.late += 1
        if stats.late <= 3 or stats.late % 1000 == 0:
            log.warning("late correction of %s at t=%d (latest t=%d) not applied: older than the bars whose state "
                        "is held (%d so far)", ticker, t, s.last_t, stats.late)

    def tickers(self) -> list[str]:
        """The tickers received so far, sorted (what `*` follows)."""
        return sorted(self._seen)

    def latest(self) -> int | None:
        """The latest minute received of any ticker (epoch ms), None before the first bar."""
        return max((s.last_t for s in self._seen.values()), default=None)

    def published(self, tickers: list[str], t_ms: list[int]) -> None:
        seen = self._seen
        for ticker, t in zip(tickers, t_ms):
            s = seen[ticker]
            if t > s.published_t:
                s.published_t = t

    def _invalid(self, row: tuple[Any, ...], why: str) -> None:
        stats = self.stats
        stats.invalid += 1
        if stats.invalid <= 3 or stats.invalid % 1000 == 0:
            log.warning("invalid bar of %r at t=%s not stored or published: %s (%d so far)",
                        row[0], row[1], why, stats.invalid)
