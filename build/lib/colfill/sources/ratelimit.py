"""A rate limiter that keeps its promise: never more than N requests in any window of W seconds.

A classic token bucket refilled continuously lets a full bucket burst and then refill within the same
window, so a `100/s` bucket can send ~200 requests in one second. Here each token comes back exactly
one window after it was taken (a sliding-window log): any window of W seconds, wherever it starts, holds
at most N acquisitions. Polygon's free plan is `5/min`; paid plans are unlimited but should stay under
~100 requests/s (`DEFAULT_RATE`). Every HTTP attempt, retries included, takes a token, which is why the
REST source does its own retries instead of the client's (those would bypass the limiter).
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from colfill.errors import InvalidArgument

DEFAULT_RATE = "100/s"
_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0, "h": 3600.0, "hour": 3600.0}


@dataclass(frozen=True)
class Rate:
    """`count` requests per `seconds`."""

    count: int
    seconds: float

    @classmethod
    def parse(cls, text: str, arg: str = "--rate") -> Rate:
        """`100/s`, `5/min`, `1000/h` (also `5/60s`)."""
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d*\.?\d*)\s*([a-z]+)\s*", text.lower())
        if not m or m[3] not in _UNITS or int(m[1]) < 1:
            raise InvalidArgument(f"{arg} {text!r} is not a rate. Hint: e.g. 100/s (paid plans) or 5/min (free plan)")
        per = float(m[2]) if m[2] else 1.0
        if per <= 0:
            raise InvalidArgument(f"{arg} {text!r}: the window must be longer than 0")
        return cls(int(m[1]), per * _UNITS[m[3]])

    def __str__(self) -> str:
        return f"{self.count}/{self.seconds:g}s"


class RateLimiter:
    """Thread-safe; `acquire()` blocks until a request may start (see the module docstring)."""

    def __init__(self, rate: Rate, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = rate
        self._clock, self._sleep = clock, sleep
        self._taken: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take a token; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                while self._taken and self._taken[0] <= now - self.rate.seconds:
                    self._taken.popleft()
                if len(self._taken) < self.rate.count:
                    self._taken.append(now)
                    return waited
                delay = self._taken[0] + self.rate.seconds - now
            self._sleep(delay)
            waited += delay
