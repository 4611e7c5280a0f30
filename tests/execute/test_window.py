"""The executors' shared scheduler: results in date order, never more than `depth` days in flight, the rest
cancelled when the consumer stops early."""

from __future__ import annotations

from colfill.execute import window


class Recorder:
    def __init__(self) -> None:
        self.in_flight: set[int] = set()
        self.most = 0
        self.cancelled: list[int] = []

    def submit(self, day: int) -> int:
        self.in_flight.add(day)
        self.most = max(self.most, len(self.in_flight))
        return day

    def collect(self, day: int) -> str:
        self.in_flight.remove(day)
        return f"day {day}"

    def cancel(self, day: int) -> None:
        self.cancelled.append(day)


def test_results_come_in_order_with_at_most_depth_days_in_flight() -> None:
    r = Recorder()
    out = list(window.in_order(range(10), 3, r.submit, r.collect, r.cancel))
    assert out == [f"day {d}" for d in range(10)]
    assert r.most == 3 and not r.in_flight and not r.cancelled


def test_stopping_early_cancels_the_days_still_in_the_window() -> None:
    r = Recorder()
    days = window.in_order(range(10), 3, r.submit, r.collect, r.cancel)
    assert next(days) == "day 0"
    days.close()
    assert r.cancelled == [1, 2, 3]
