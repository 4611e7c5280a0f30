"""The limiter's promise, checked on every window: at most N acquisitions in any W seconds, from many threads."""

from __future__ import annotations

import threading
import time

import pytest

from colfill.errors import InvalidArgument
from colfill.sources.ratelimit import Rate, RateLimiter
from tests.rest.conftest import most_in_any_window


@pytest.mark.parametrize(("text", "count", "seconds"), [
    ("100/s", 100, 1.0), ("5/min", 5, 60.0), ("1000/h", 1000, 3600.0), ("5/60s", 5, 60.0), (" 7 / 2 sec ", 7, 2.0)])
def test_parse(text: str, count: int, seconds: float) -> None:
    assert Rate.parse(text) == Rate(count, seconds)


@pytest.mark.parametrize("text", ["fast", "0/s", "5/fortnight", "5/0s", "-1/s"])
def test_bad_rates_name_the_argument(text: str) -> None:
    with pytest.raises(InvalidArgument, match="--rate"):
        Rate.parse(text)


def test_never_more_than_n_in_any_window_on_a_fake_clock() -> None:
    now = [0.0]
    limiter = RateLimiter(Rate(5, 60.0), clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    times = []
    for i in range(23):
        with limiter.slot():
            times.append(now[0])
        now[0] += 0.7 * (i % 3)  # uneven gaps between callers
    assert most_in_any_window(times, 60.0) == 5
    assert times[5] == pytest.approx(times[0] + 60.0)  # the sixth waits exactly one window after the first


def test_threads_share_the_limit_on_the_real_clock() -> None:
    """The promise is about the moments tokens are granted: the real clock's reading each grant was made on
    (a time taken after acquire() returns would add the thread's scheduling delay, and a loaded machine's
    delays put 21 stamps in a window the limiter never granted)."""
    seen = threading.local()

    def clock() -> float:
        seen.now = time.monotonic()
        return seen.now  # type: ignore[no-any-return]

    limiter = RateLimiter(Rate(20, 0.25), clock=clock)
    times: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(12):
            with limiter.slot():
                with lock:
                    times.append(seen.now)  # the reading the grant was made on, in this thread

    threads = [threading.Thread(target=worker) for _ in range(8)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(times) == 96
    assert most_in_any_window(times, 0.25) <= 20
    assert time.monotonic() - t0 >= 4 * 0.25 - 0.01  # 96 tokens at 20 a window need at least 4 more windows


def test_a_token_returns_one_window_after_the_answer_not_the_grant() -> None:
    """A request granted at 0 and answered at 0.9 s frees its token at 1.9 s: granted at 1.0 s instead, the next
    request could reach the server at 1.0 s beside one that reached it late, at 0.9 s."""
    now = [0.0]
    limiter = RateLimiter(Rate(1, 1.0), clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    with limiter.slot():
        now[0] = 0.9  # the answer takes 0.9 s
    assert limiter.acquire() == pytest.approx(1.0) and now[0] == pytest.approx(1.9)
    limiter.release()


def test_a_failed_request_returns_its_token_too() -> None:
    now = [0.0]
    limiter = RateLimiter(Rate(2, 1.0), clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    with pytest.raises(OSError), limiter.slot():
        now[0] = 0.5
        raise OSError("connection dropped")
    with limiter.slot():  # granted at once, answered at 0.5 s too
        pass
    assert limiter.acquire() == pytest.approx(1.0) and now[0] == pytest.approx(1.5)  # both back at 1.5 s


def test_requests_in_flight_hold_their_tokens() -> None:
    """N requests in flight: the next waits for an answer, then one window more."""
    limiter = RateLimiter(Rate(2, 0.2))
    limiter.acquire()
    limiter.acquire()
    got: list[float] = []
    waiter = threading.Thread(target=lambda: got.append(limiter.acquire()))
    waiter.start()
    waiter.join(0.4)
    assert waiter.is_alive()  # two in flight for 0.4 s: nothing granted, whatever the window
    t0 = time.monotonic()
    limiter.release()
    waiter.join(5)
    assert not waiter.is_alive() and time.monotonic() - t0 >= 0.2 - 0.01
