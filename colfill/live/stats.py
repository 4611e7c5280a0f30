"""`IngestStats`: what the live engine did, shared by its tracker, writer and the CLI's summary."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

LATENCY_SAMPLES = 200_000


@dataclass
class IngestStats:
    """What the engine did; latencies are from a frame's arrival to its bars' publication, in ms."""

    bars_in: int = 0
    duplicates: int = 0
    revisions: int = 0
    late: int = 0  # corrections older than the bars whose state is held (not applied)
    recomputed: int = 0  # later rows a late correction recomputed and published again, as revisions
    invalid: int = 0  # failed the bar validation every source shares (colfill.validate): counted, never stored
    rejected: int = 0  # refused by a processor (older than the state it started from)
    stored: int = 0
    published: int = 0
    batches: int = 0
    fills: int = 0  # gap fills from REST (the start-up catch-up and one after each reconnect)
    filled: int = 0  # bars they inserted
    filled_revised: int = 0  # bars they revised
    unfilled: int = 0  # tickers a fill could not fetch (reported)
    derived: int = 0  # bars of derived timeframes published (revisions included)
    stored_derived: int = 0
    derived_late: int = 0  # minutes of a derived bucket no longer held, or a bucket its processor refused
    started: float = field(default_factory=time.time)
    last_publish: float = 0.0
    lag_ms: float = 0.0  # publication time minus the end of the latest bar published
    behind_ms: float = 0.0  # publication time minus the arrival of its frame (the engine's backlog)
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))
    _window: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=64))

    def bars_per_s(self, span: float = 5.0) -> float:
        """Bars published a second over the last `span` seconds."""
        now = time.time()
        recent = [(t, n) for t, n in self._window if now - t <= span]
        if not recent:
            return 0.0
        return sum(n for _, n in recent) / max(span if now - self.started > span else now - self.started, 1e-3)

    def percentile(self, q: float) -> float | None:
        if not self.latencies_ms:
            return None
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, int(q / 100 * len(data)))]
