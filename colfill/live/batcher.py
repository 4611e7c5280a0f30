"""Latency-adaptive micro-batches: a streaming source's chunks (one per WebSocket frame) grouped for one write.

A micro-batch is cut as soon as the source has nothing more queued (`adaptive`), or when it reaches
`batch_size` bars, or `flush_interval` seconds after its first bar, whichever comes first. Under light load
every frame is its own batch; under load, the bars that queued while the previous batch was written make the
next one, so per-batch costs are shared by more bars and throughput rises until the engine keeps up.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from colfill.bars import BAR_SCHEMA

Chunks = list[tuple[float, list[tuple[Any, ...]]]]  # (arrival, epoch s; socket rows) per frame


@dataclass(frozen=True)
class Batching:
    batch_size: int = 10_000
    flush_interval: float = 1.0
    adaptive: bool = True

    def fill(self, source: Any, chunks: Chunks) -> Chunks:
        """`chunks` (the first poll's) grown with what the source has until the batch is cut."""
        first, rows = time.monotonic(), sum(len(c[1]) for c in chunks)
        while rows < self.batch_size and (wait := self.flush_interval - (time.monotonic() - first)) > 0:
            more = source.poll(0 if self.adaptive else min(wait, 0.05), self.batch_size - rows)
            if not more:
                if self.adaptive or source.finished():
                    break
                continue
            chunks.extend(more)
            rows += sum(len(c[1]) for c in more)
        return chunks

    def slices(self, table: pa.Table, received: float) -> Iterator[Chunks]:
        """A batch source's table as micro-batches of socket rows (stream mode over a batch source)."""
        for offset in range(0, table.num_rows, self.batch_size):
            part = table.slice(offset, self.batch_size)
            t_ms = part["ts"].cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64()).to_pylist()
            rows = list(zip(part["ticker"].to_pylist(), t_ms,
                            *(part[c].to_pylist() for c in BAR_SCHEMA.names[2:]), [t + 60_000 for t in t_ms]))
            yield [(received, rows)]
