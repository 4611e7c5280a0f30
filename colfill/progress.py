"""Run progress for dashboards: `<data-dir>/progress/run.json` while `colfill run` works, and the run's record.

`ProgressFile` is a pipeline Reporter (see `colfill.pipeline.Reporter`): per table it counts days done of the
days planned and rows staged, and replaces `run.json` atomically (temp file + `os.replace`) at most every
`INTERVAL` seconds and at the end, so a reader never sees half a file and a backfill of years does not spend
its time writing progress. The JSON is the run status of the bus contract (`{"kind": "run", "tables": {...},
"updated_ms": ...}`) plus `pid`, `started_ms` and `finished`. With a Redis URL the same status is published
as `colfill:status:run` (SET with a 60 s expiry, and PUBLISH on `colfill:status`), which needs no data dir.

At the end `finish(result)` also writes `progress/runs/<started_ms>-<pid>.json`: files staged, skipped and
failed and rows rejected per table, and the first problem lines, for the dashboard's list of last runs.
`Tee` sends every Reporter call to several reporters (the Rich bar and the file).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from colfill import atomic

if TYPE_CHECKING:
    from colfill.pipeline import Reporter, RunResult

INTERVAL = 0.5  # seconds between two writes of run.json (the contract's "at most every 0.5 s")
STATUS_TTL = 60  # seconds a Redis status key lives: a dead run's status disappears on its own
RUNS_KEPT = 50  # run records kept under progress/runs/
RETRY_S = 10.0  # after a failed Redis publish, status updates skip Redis this long


def progress_dir(data_dir: Path) -> Path:
    return data_dir / "progress"


def _now_ms() -> float:
    return time.time() * 1000


class _Table:
    __slots__ = ("total", "done", "rows", "t0", "clock")

    def __init__(self, total: int, clock: Callable[[], float]) -> None:
        self.total, self.done, self.rows, self.t0, self.clock = total, 0, 0, clock(), clock

    def status(self) -> dict[str, Any]:
        elapsed = max(self.clock() - self.t0, 1e-9)
        rate = self.rows / elapsed
        per_day = elapsed / self.done if self.done else None
        left = max(self.total - self.done, 0)
        eta = round(per_day * left, 1) if per_day is not None else None
        return {"done": self.done, "total": self.total, "rows": self.rows, "rows_per_s": round(rate, 1),
                "eta_s": 0.0 if left == 0 else eta}


class ProgressFile:
    """Reporter that keeps `<data-dir>/progress/run.json` (and, with `redis_url`, the Redis run status) current."""

    def __init__(self, data_dir: Path, redis_url: str | None = None, interval: float = INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`clock`: seconds, for the throttle and the rates (a test passes its own)."""
        self.path = progress_dir(data_dir) / "run.json"
        self.interval = interval
        self.clock = clock
        self.started_ms = _now_ms()
        self.tables: dict[str, _Table] = {}
        self._lock = threading.Lock()
        self._written = 0.0
        self._publisher = _StatusPublisher(redis_url) if redis_url else None
        self.failed = False
        self.write(force=True)

    def status(self, finished: bool = False) -> dict[str, Any]:
        out = {"kind": "run", "tables": {t: s.status() for t, s in self.tables.items()},
               "updated_ms": round(_now_ms(), 1), "pid": os.getpid(), "started_ms": round(self.started_ms, 1),
               "finished": finished}
        if self.failed:
            out["failed"] = True  # ended by an error: no result
        return out

    def write(self, force: bool = False, finished: bool = False) -> None:
        now = self.clock()
        if not force and now - self._written < self.interval:
            return
        self._written = now
        status = self.status(finished)
        atomic.write_text(self.path, json.dumps(status))
        if self._publisher is not None:
            self._publisher.publish({k: v for k, v in status.items() if k not in ("pid", "started_ms")}, finished)

    def start(self, table: str, days: int) -> None:
        with self._lock:
            self.tables[table] = _Table(days, self.clock)
            self.write(force=True)

    def advance(self, table: str, rows: int, detail: str = "") -> None:
        with self._lock:
            t = self.tables.setdefault(table, _Table(0, self.clock))
            t.done += 1
            t.rows += rows
            self.write()

    def note(self, message: str) -> None:
        pass

    def finish(self, result: RunResult | None = None) -> None:
        """The last write (`finished: true`; `failed: true` without a result) and, given the result, the run's
        record under progress/runs/."""
        with self._lock:
            self.failed = result is None
            self.write(force=True, finished=True)
        if result is not None:
            record = run_record(result, self.started_ms)
            runs = self.path.parent / "runs"
            atomic.write_text(runs / f"{int(self.started_ms)}-{os.getpid()}.json", json.dumps(record))
            for old in sorted(runs.glob("*.json"))[:-RUNS_KEPT]:
                old.unlink(missing_ok=True)
        if self._publisher is not None:
            self._publisher.close()


def run_record(result: RunResult, started_ms: float) -> dict[str, Any]:
    """What the dashboard lists of a finished run (no secrets: the store is `describe()`d, errors are scrubbed)."""
    from colfill.config import redact

    return {
        "started_ms": round(started_ms, 1), "finished_ms": round(_now_ms(), 1), "store": result.store,
        "ok": result.ok, "interrupted": result.interrupted,
        "tables": {t.table: {"files": t.files, "staged": t.staged, "skipped": t.skipped, "failed": t.failed,
                             "rows": t.rows_out, "rejected": t.rejected, "loaded_rows": t.loaded_rows,
                             "seconds": round(t.seconds, 2)} for t in result.tables},
        "problems": [redact(e) for t in result.tables for e in t.errors][:20],
    }


class _StatusPublisher:
    """The run status on Redis per the bus contract; through `colfill.bus` when it is there, else redis-py."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._bus: Any = None
        self._client: Any = None
        self._retry_at = 0.0
        try:
            from colfill.bus import open_bus  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            from colfill._lazy import require

            self._client = require("redis", "redis").Redis.from_url(url, socket_timeout=2)
            return
        try:
            self._bus = open_bus(url)
        except Exception:  # unreachable now: the run goes on, its status stays in the progress file
            self._client = None

    def publish(self, status: dict[str, Any], final: bool = False) -> None:
        if self._bus is None and self._client is None:
            return
        if not final and time.monotonic() < self._retry_at:
            return  # Redis failed a moment ago: do not hold the backfill up with each write
        try:
            if self._bus is not None:
                self._bus.publish_status("run", status)
            else:
                payload = json.dumps(status)
                self._client.set("colfill:status:run", payload, ex=STATUS_TTL)
                self._client.publish("colfill:status", json.dumps({"name": "run", **status}))
        except Exception:  # progress must never stop a backfill: a Redis outage only loses status updates
            self._retry_at = time.monotonic() + RETRY_S

    def close(self) -> None:
        try:
            if self._bus is not None or self._client is not None:
                (self._bus or self._client).close()
        except Exception:
            pass


class Tee:
    """Reporter that forwards every call to each of `reporters` in order."""

    def __init__(self, *reporters: Reporter) -> None:
        self.reporters = reporters

    def start(self, table: str, days: int) -> None:
        for r in self.reporters:
            r.start(table, days)

    def advance(self, table: str, rows: int, detail: str = "") -> None:
        for r in self.reporters:
            r.advance(table, rows, detail)

    def note(self, message: str) -> None:
        for r in self.reporters:
            r.note(message)


def read_progress(data_dir: Path) -> dict[str, Any] | None:
    """run.json, with `alive` (its pid still runs) and `stale` (not finished and its process is gone); None if
    there is none or it cannot be read."""
    path = progress_dir(data_dir) / "run.json"
    try:
        status = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    pid = status.get("pid")
    alive = False
    if isinstance(pid, int):
        try:
            os.kill(pid, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        except PermissionError:
            alive = True
    status["alive"] = alive
    status["stale"] = not status.get("finished") and not alive
    return status


def read_runs(data_dir: Path, last: int = 10) -> list[dict[str, Any]]:
    """The last `last` run records, newest first."""
    runs = progress_dir(data_dir) / "runs"
    out = []
    for path in sorted(runs.glob("*.json"), reverse=True)[:last]:
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return out
