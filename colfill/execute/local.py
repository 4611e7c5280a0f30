"""The stage graph on this machine's cores: days parse in parallel, shards' indicator chains run in parallel.

Two thread pools (Polars and the gzip reader release the GIL, so threads use every core without copying
frames between processes): `parse` reads and splits up to `depth` days ahead, `chain` runs each shard's
step for a day once its parse and the shard's previous day are done. A chain task waits only on tasks
submitted before it, and its pool takes tasks in submission order, so the oldest running task can always
finish: no deadlock, whatever the pool sizes. Memory follows `depth` days, not the backfill.

On a small machine one shard is fastest (a day's `enrich` already spreads ticker ranges over the cores);
more shards pay once the cores outnumber what one enrich keeps busy (see docs/scaling.md).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from colfill.execute import graph, window

if TYPE_CHECKING:
    import polars as pl

    from colfill.execute import PlannedDay
    from colfill.indicators.spec import IndicatorSet
    from colfill.sources.base import Source

_Out = tuple["pl.DataFrame | None", "pl.DataFrame | None"]
_Day = tuple["Future[list[object]]", "list[Future[_Out]]"]  # a day in flight: its parse and its shards' steps


def cores() -> int:
    """The cores this process may run on (its CPU affinity, as `taskset` or a container sets it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_shards(workers: int) -> int:
    """One shard up to 7 cores (one enrich keeps ~2 busy, the parse pool the rest), then one per 4 cores, at most 8
    (a step costs ~4 ms however small its shard, see docs/scaling.md)."""
    return max(1, min(8, workers // 4))


class LocalExecutor:
    name = "local"

    def __init__(self, workers: int | None = None, shards: int | None = None) -> None:
        self.workers = workers or cores()
        self.shards = shards or default_shards(self.workers)
        self.depth = max(2, min(self.workers, 16))  # days in flight: parsing, or waiting for their chains
        self._busy = 0
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"local executor ({self.workers} workers, {self.shards} shard(s))"

    def activity(self) -> str:
        return f"{self._busy}/{self.workers} workers busy" if self.workers > 1 else ""

    def _counted(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any) -> Any:
            with self._lock:
                self._busy += 1
            try:
                return fn(*args)
            finally:
                with self._lock:
                    self._busy -= 1
        return run

    def stage(
        self, source: Source, days: Sequence[PlannedDay], tickers: tuple[str, ...] | None,
        state: pl.DataFrame | None, indicators: IndicatorSet, timeframe: str,
    ) -> Generator[graph.Staged, None, None]:
        shards = self.shards
        parse = self._counted(graph.parse)

        def chain(parsed: Future[list[object]], k: int, prev: Future[_Out] | pl.DataFrame | None) -> _Out:
            parts = parsed.result()
            before = prev.result()[1] if isinstance(prev, Future) else prev
            return self._counted(graph.step)(parts[k + 1], before, indicators, timeframe)

        parsers = ThreadPoolExecutor(max(1, min(self.workers, self.depth)), thread_name_prefix="colfill-parse")
        chains = ThreadPoolExecutor(min(shards, self.workers), thread_name_prefix="colfill-chain")
        last: list[Future[_Out] | pl.DataFrame | None] = list(graph.split_state(state, shards))

        def submit(day: PlannedDay) -> _Day:
            parsed = parsers.submit(parse, source, day.obj, tickers, shards)
            steps = [chains.submit(chain, parsed, k, last[k]) for k in range(shards)]
            last[:] = steps
            return parsed, steps

        def collect(unit: _Day) -> graph.Staged:
            parsed, steps = unit
            meta = graph.checked(parsed.result()[0])
            return graph.assemble(meta, [s.result() for s in steps])

        def cancel(unit: _Day) -> None:
            parsed, steps = unit
            parsed.cancel()
            for s in steps:
                s.cancel()

        try:
            yield from window.in_order(days, self.depth, submit, collect, cancel)
        finally:
            parsers.shutdown(wait=True, cancel_futures=True)
            chains.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        pass
