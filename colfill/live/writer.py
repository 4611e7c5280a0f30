"""Write-behind for `colfill live --publish-first`: published micro-batches upserted by a thread of their own."""

from __future__ import annotations

import queue
import threading
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    from colfill.live.stats import IngestStats
    from colfill.stores.base import Store


class WriteBehind:
    """Micro-batches already published are upserted by a thread of their own, the tables queued meanwhile in one
    transaction, in order (so a revision still lands after the bar it replaces). `close()` writes what is queued
    and re-raises a failed write."""

    def __init__(self, store: Store, table: str, stats: IngestStats) -> None:
        self.store, self.table, self.stats = store, table, stats
        self.queue: queue.SimpleQueue[pa.Table | None] = queue.SimpleQueue()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="colfill-live-writer", daemon=True)
        self.thread.start()

    def put(self, rows: pa.Table) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(rows)

    def _run(self) -> None:
        done = False
        while not done:
            parts = [self.queue.get()]
            while True:
                try:
                    parts.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            done = parts[-1] is None
            tables = [p for p in parts if p is not None]
            if not tables or self.error is not None:
                continue
            try:
                rows = pa.concat_tables(tables, promote_options="permissive")
                self.stats.stored += self.store.upsert_live(self.table, rows)
            except BaseException as exc:  # kept, and raised in the engine's thread
                self.error = exc

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error
