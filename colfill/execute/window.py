"""The executors' scheduler: a window of days in flight, their results handed on in date order.

Up to `depth` days are submitted ahead of the one the driver waits for; each result taken lets one more
day in, so memory follows the window, not the backfill. What a submitted day is (futures on thread pools,
Ray object refs) is the executor's: it passes in how to submit a day, how to wait for one and turn it into
its result, and how to cancel one. Closing the generator early (a stop, an error) cancels the days still
in the window.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterable
from itertools import islice
from typing import TypeVar

Day = TypeVar("Day")
Unit = TypeVar("Unit")
Result = TypeVar("Result")


def in_order(
    days: Iterable[Day], depth: int, submit: Callable[[Day], Unit], collect: Callable[[Unit], Result],
    cancel: Callable[[Unit], None],
) -> Generator[Result, None, None]:
    """`collect` of each day's `submit`, in the order of `days`, with at most `depth` days submitted and not yet
    collected."""
    window: deque[Unit] = deque()
    it = iter(days)
    try:
        window.extend(submit(day) for day in islice(it, depth))
        while window:
            unit = window.popleft()
            result = collect(unit)
            del unit  # the day's futures or object refs go before the next day comes in
            window.extend(submit(day) for day in islice(it, 1))
            yield result
    finally:
        for unit in window:
            cancel(unit)
