"""The stage graph as Ray tasks: parse on any worker, shards' indicator chains in parallel, the driver commits.

Each day is one `parse` task (read from S3 or the folder, validate, split by ticker shard: one object per
shard) and one `step` task per shard, which takes the shard's bars and the shard's state after the
previous day (an ObjectRef, so the chain is Ray's dependency, not a loop of ours). The driver asks for a
day's results in date order, puts the shards back together (`graph.assemble`) and hands the day to the
pipeline, which writes the lake and loads the store exactly as the local executor's days (one transaction
per day, `--load-workers` connections). Only `depth` days are submitted ahead, so the object store and
each worker hold a few days' shards, not the backfill.

Faults: tasks are retried by Ray when their worker dies (`max_retries`); a task is a pure function of
its inputs, so a retry gives the same objects. A dead driver takes its tasks with it (Ray's ownership);
what it had committed stays committed, and the next run, local or Ray, resumes from the lake.

Every node needs colfill installed (same version) in the Python that runs its Ray workers; the data dir
only needs to be on the driver. Sources that cannot be sent to workers (the REST source, with its rate
limiter) are read on the driver and their shards put into the object store.
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
import time
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

from colfill._lazy import require
from colfill.errors import ColfillError, TransientError, Unreachable
from colfill.execute import graph, window

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

    from colfill.bars import SourceObject
    from colfill.execute import PlannedDay
    from colfill.indicators.spec import IndicatorSet
    from colfill.sources.base import Source

# Ray's switch for single-machine instances (its default on macOS/Windows): nodes use 127.0.0.1, not the host's IP.
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
MAX_RETRIES = 3  # per task, when its worker process or node dies
# A step costs ~4 ms however small its shard (Polars' plan for the indicator set), so shards beyond the cores do
# not pay; 8 chains already outrun what one driver commits (docs/scaling.md).
MAX_SHARDS = 8
MAX_DEPTH = 16  # days in flight: enough parses to keep the driver busy, memory of 16 days' shards at most
# One Polars thread per task: Ray already runs a task per CPU, and more threads per task only contend.
WORKER_ENV = {"POLARS_MAX_THREADS": "1"}


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None, shards: int | None = None) -> None:
        if not address:  # read when ray is imported: a run's private instance on 127.0.0.1, listening on no network
            os.environ.setdefault(LOOPBACK_ENV, "0")
        self.ray = require("ray", "ray")
        self.address = address
        options: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                                       runtime_env={"env_vars": WORKER_ENV})
        try:
            if address:
                _reachable(address)
                self.ray.init(address=address, **options)
            else:
                # "local": a new instance, even where `ray start` left one to join (that is --ray-address auto)
                self.ray.init(address="local", num_cpus=workers, **options)
        except (ConnectionError, RuntimeError, ValueError, OSError) as exc:
            where = f"the Ray cluster at {address}" if address else "a local Ray instance"
            hint = ("`ray start --head` on the head node, then --ray-address auto (on a node of it) or "
                    "ray://HEAD:10001.")
            if address and address.startswith("ray://"):  # Ray Client: its own package, and no token (Ray 2.60)
                hint = ("ray:// (Ray Client) needs `pip install 'ray[client]'` here and a cluster started with "
                        "RAY_AUTH_MODE=disabled (Ray Client sends no auth token); or run colfill on a node of the "
                        "cluster with --ray-address auto.")
            raise Unreachable(f"cannot start or join {where}: {str(exc).strip()[:300]}. Hint: {hint}") from exc
        self.cpus = max(1, int(self.ray.cluster_resources().get("CPU", 1)))
        self.shards = shards or min(self.cpus, MAX_SHARDS)
        self.depth = max(2, min(self.cpus, MAX_DEPTH))  # days submitted ahead of the one the driver commits
        remote = self.ray.remote
        self._parse = remote(max_retries=MAX_RETRIES, num_cpus=1)(_parse)
        self._step = remote(max_retries=MAX_RETRIES, num_cpus=1, num_returns=2)(_step)
        self._seen = (0.0, "")

    def describe(self) -> str:
        where = self.address or "local instance"
        return f"Ray ({where}: {self.cpus} CPUs, {self.shards} shard(s))"

    def activity(self) -> str:
        """CPUs busy across the cluster (Ray's resource view), at most once a second."""
        at, text = self._seen
        if time.monotonic() - at >= 1.0:
            busy = self.cpus - int(self.ray.available_resources().get("CPU", self.cpus))
            text = f"ray: {busy}/{self.cpus} CPUs busy"
            self._seen = (time.monotonic(), text)
        return text

    def _get(self, refs: Any) -> Any:
        """ray.get, with colfill's own errors raised as themselves (their message, their exit code)."""
        try:
            return self.ray.get(refs)
        except self.ray.exceptions.RayTaskError as exc:
            if isinstance(exc.cause, ColfillError):
                raise exc.cause from None
            raise
        except self.ray.exceptions.RayError as exc:  # a node or object lost beyond Ray's retries
            raise TransientError(f"Ray lost work of this run: {str(exc).strip()[:300]}. Hint: the committed days "
                                 "are kept; run again to continue.") from exc

    def stage(
        self, source: Source, days: Sequence[PlannedDay], tickers: tuple[str, ...] | None,
        state: pl.DataFrame | None, indicators: IndicatorSet, timeframe: str,
    ) -> Generator[graph.Staged, None, None]:
        ray, shards = self.ray, self.shards
        remote_source = _shippable(source)
        src = ray.put(source) if remote_source else None
        ticks, inds = ray.put(tickers), ray.put(indicators)
        parse = self._parse.options(num_returns=shards + 1)
        last = [ray.put(_arrow(s)) for s in graph.split_state(state, shards)]

        def submit(day: PlannedDay) -> tuple[Any, list[Any]]:
            """The day's meta ref and each shard's (bars, state) refs."""
            if remote_source:
                refs = parse.remote(src, day.obj, ticks, shards)
            else:
                refs = [ray.put(x) for x in _parse(source, day.obj, tickers, shards)]
            steps = [self._step.remote(refs[k + 1], last[k], inds, timeframe) for k in range(shards)]
            last[:] = [s[1] for s in steps]
            return refs[0], steps

        def collect(unit: tuple[Any, list[Any]]) -> graph.Staged:
            meta_ref, steps = unit
            meta = graph.checked(self._get(meta_ref))
            outs = [_polars(x) for x in self._get([r for s in steps for r in s])]
            return graph.assemble(meta, list(zip(outs[0::2], outs[1::2])))

        def cancel(unit: tuple[Any, list[Any]]) -> None:
            for s in unit[1]:
                ray.cancel(s[0])

        yield from window.in_order(days, self.depth, submit, collect, cancel)

    def close(self) -> None:
        """Leave the cluster; a local instance started for this run stops with it."""
        if self.ray.is_initialized():
            self.ray.shutdown()


# Frames cross task boundaries as Arrow tables: Ray stores their buffers as they are (a day's enriched shard in ~4 ms
# there and back), where pickling a Polars frame costs ~0.3 us a row.

def _arrow(frame: pl.DataFrame | None) -> pa.Table | None:
    return None if frame is None else frame.to_arrow()


def _polars(table: pa.Table | None) -> pl.DataFrame | None:
    import polars as pl

    if table is None:
        return None
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def _parse(source: Source, obj: SourceObject, tickers: tuple[str, ...] | None, shards: int) -> list[object]:
    """`graph.parse`, its shards as Arrow."""
    meta, *parts = graph.parse(source, obj, tickers, shards)
    return [meta, *(_arrow(p) for p in parts)]  # type: ignore[arg-type]


def _step(bars: pa.Table | None, state: pa.Table | None, indicators: IndicatorSet,
          timeframe: str) -> tuple[pa.Table | None, pa.Table | None]:
    """`graph.step` from and to Arrow."""
    out, after = graph.step(_polars(bars), _polars(state), indicators, timeframe)
    return _arrow(out), _arrow(after)


def _reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast on a HOST:PORT nobody listens at (Ray itself retries the GCS for minutes); `auto` is Ray's to find."""
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if address == "auto" or not host or not port.isdigit():
        return
    with socket.create_connection((host, int(port)), timeout=timeout):
        pass


def _shippable(source: Source) -> bool:
    """Can the source go to the workers (flat files on S3 or a folder can; a rate-limited REST client cannot)?"""
    from ray import cloudpickle

    try:
        cloudpickle.dumps(source)
        return True
    except (TypeError, pickle.PicklingError, AttributeError):
        return False
