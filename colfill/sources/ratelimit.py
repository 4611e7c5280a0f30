"""A rate limiter that keeps its promise: never more than N requests in any window of W seconds.

A classic token bucket refilled continuously lets a full bucket burst and then refill within the same
window, so a `100/s` bucket can send ~200 requests in one second. Here a token is held while its request
is in flight and comes back exactly one window after the request's answer (or failure) arrives. Counting
from the grant instead is not enough where the server counts: a request granted early can arrive late and
bunch with the next window's (measured: 23 arrivals within one second at `20/s`). A request reaches the
server between its grant and its answer, so every request arriving in a window [a, a + W) is, at its end,
either in flight or answered within the window; the limiter grants only while those number fewer than N,
so no window at the server, wherever it starts, holds more than N requests.
Polygon's free plan is `5/min`; paid plans are unlimited but should stay under
~100 requests/s (`DEFAULT_RATE`). Every HTTP attempt, retries included, takes a token, which is why the
REST source does its own retries instead of the client's (those would bypass the limiter).
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from colfill.errors import InvalidArgument

DEFAULT_RATE = "100/s"
EPSILON = 1e-9  # seconds: a token due back at `now` is back (float sums of a clock and a window round)
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
    """Thread-safe; `slot()` (or `acquire()` ... `release()`) around each request (see the module docstring)."""

    def __init__(self, rate: Rate, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = rate
        self._clock, self._sleep = clock, sleep
        self._returned: deque[float] = deque()  # when the tokens of answered requests come back, ascending
        self._in_flight = 0
        self._cond = threading.Condition()

    @contextmanager
    def slot(self) -> Iterator[float]:
        """Hold a token for the request made inside the block; yields the seconds waited for it."""
        waited = self.acquire()
        try:
            yield waited
        finally:
            self.release()

    def acquire(self) -> float:
        """Take a token for one request (blocking until one is free); returns the seconds waited. Every call
        needs its `release()` once the request's answer or failure is in."""
        waited = 0.0
        limit = self.rate.count
        while True:
            with self._cond:
                now = self._clock()
                while self._returned and self._returned[0] <= now + EPSILON:
                    self._returned.popleft()
                if self._in_flight + len(self._returned) < limit:
                    self._in_flight += 1
                    return waited
                if not self._returned:  # all N in flight: the earliest a token frees is a window after an answer
                    self._cond.wait()
                    waited += self._clock() - now
                    continue
                delay = self._returned[0] - now
            self._sleep(delay)
            waited += delay

    def release(self) -> None:
        """The request's answer (or failure) is in: its token returns one window from now."""
        with self._cond:
            self._in_flight -= 1
            self._returned.append(self._clock() + self.rate.seconds)
            self._cond.notify_all()
