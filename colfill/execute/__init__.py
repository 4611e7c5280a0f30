"""Executors: where a table's stage graph (`colfill.execute.graph`) runs.

The pipeline plans the days and commits them (lake files, manifest, store loads) in the driver, in date
order, exactly as before; an executor only turns the planned days into staged days (parsed, validated and
enriched, with the indicator state after each), yielded in date order. So the lake, its fingerprints and
the stores are the same whichever executor staged a day, and a run of one resumes a run of the other.

- `local` (the default): the graph on thread pools of this machine (Polars releases the GIL), every core.
- `ray`: the graph as Ray tasks on a cluster (`pip install 'colfill[ray]'`), see `colfill.execute.ray`.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Protocol

from colfill.errors import InvalidArgument

if TYPE_CHECKING:
    import polars as pl

    from colfill.bars import SourceObject
    from colfill.execute.graph import Staged
    from colfill.indicators.spec import IndicatorSet
    from colfill.sources.base import Source

EXECUTORS = ("local", "ray")


class PlannedDay(Protocol):
    """A day of the pipeline's plan, as far as an executor needs it."""

    @property
    def obj(self) -> SourceObject: ...


class Executor(Protocol):
    name: str

    def describe(self) -> str:
        """The executor for people: kind, workers, cluster address (never a secret)."""
        ...

    def stage(
        self, source: Source, days: Sequence[PlannedDay], tickers: tuple[str, ...] | None,
        state: pl.DataFrame | None, indicators: IndicatorSet, timeframe: str,
    ) -> Generator[Staged, None, None]:
        """Each of `days` staged, in order, starting from `state` (the state before the first day). Closing the
        iterator early (a stop) abandons the days not yet yielded; raises `Unreachable` when the source refuses."""
        ...

    def activity(self) -> str:
        """Workers busy, for the progress line."""
        ...

    def close(self) -> None: ...


def open_executor(kind: str = "local", *, address: str | None = None, workers: int | None = None,
                  shards: int | None = None) -> Executor:
    """`local` or `ray` (with `address`: `auto`, `ray://host:10001`, or None for a Ray instance of this run)."""
    if workers is not None and workers < 1:
        raise InvalidArgument(f"--workers {workers} must be at least 1")
    if shards is not None and shards < 1:
        raise InvalidArgument(f"--shards {shards} must be at least 1")
    if kind == "local":
        if address:
            raise InvalidArgument("--ray-address needs --executor ray")
        from colfill.execute.local import LocalExecutor

        return LocalExecutor(workers=workers, shards=shards)
    if kind == "ray":
        from colfill.execute.ray import RayExecutor

        return RayExecutor(address=address, workers=workers, shards=shards)
    raise InvalidArgument(f"--executor {kind!r}: choose one of {', '.join(EXECUTORS)}")
