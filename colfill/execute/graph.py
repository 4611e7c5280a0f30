"""The stage graph of a table's backfill, as plain functions that any executor can schedule.

    parse(day)  ──►  shard 0 of day ──► step(shard 0, state 0 after day-1) ──► state 0 after day ─► ...
                ├─►  shard 1 of day ──► step(shard 1, state 1 after day-1) ──► ...
                └─►  meta (rows in, rejects, error)
    assemble(every shard's step of the day) ──► the day's bars and state, in the order one enrich of it gives

Indicators are exact because each ticker's chain is sequential in time and no indicator looks across
tickers: a shard (the tickers whose stable hash falls in it) carries its own slice of the state from day
to day, and the day's shards are independent. Parsing has no state at all, so days parse in any order on
any worker. `assemble` puts the shards back in (ticker, ts) order and the state in ticker order, which is
how `enrich` of the whole day leaves them, so the lake's files do not depend on the executor or the number
of shards.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from colfill.bars import ParsedFile, SourceObject
from colfill.errors import ColfillError, Unreachable
from colfill.indicators.batch import enrich
from colfill.indicators.spec import IndicatorSet
from colfill.indicators.state import normalise

if TYPE_CHECKING:
    from colfill.sources.base import Source

_SHARD = "__shard"


@dataclass(frozen=True)
class DayMeta:
    """What a parse tells the driver besides the bars: rows read, rejected rows, or why the day failed."""

    rows_in: int
    rejects: pl.DataFrame | None
    error: ColfillError | None = None


@dataclass(frozen=True)
class Staged:
    """One staged day as the pipeline commits it: `parsed` is None when the day failed (`error` says why);
    `state` is the indicator state after the day (passed through unchanged by a failed day)."""

    parsed: ParsedFile | None
    error: str | None
    bars: pl.DataFrame | None
    state: pl.DataFrame | None
    raised: ColfillError | None = None  # the failure itself, so an Unreachable source can stop the run


def shard_of(ticker: str, shards: int) -> int:
    """A ticker's shard: CRC-32 of its UTF-8 bytes, stable across processes, machines and versions."""
    return zlib.crc32(ticker.encode()) % shards


def split(frame: pl.DataFrame, shards: int) -> list[pl.DataFrame]:
    """`frame` (with a `ticker` column) as `shards` frames by `shard_of`, each keeping the rows' order."""
    if shards == 1:
        return [frame]
    tickers = frame["ticker"].unique()
    ids = pl.DataFrame({"ticker": tickers,
                        _SHARD: pl.Series([shard_of(t, shards) for t in tickers.to_list()], dtype=pl.UInt32)})
    tagged = frame.join(ids, on="ticker", how="left", maintain_order="left")
    parts = tagged.partition_by(_SHARD, as_dict=True, include_key=False, maintain_order=True)
    empty = frame.clear()
    return [parts.get((k,), empty) for k in range(shards)]


def parse(source: Source, obj: SourceObject, tickers: tuple[str, ...] | None, shards: int) -> list[object]:
    """[DayMeta, shard 0 bars, ..., shard n-1 bars]; a day that cannot be read gives its error and no bars.

    A list (not a tuple of two) so a distributed executor can return each shard as an object of its own."""
    try:
        parsed = source.read(obj, tickers)
    except ColfillError as exc:
        return [DayMeta(0, None, exc), *([None] * shards)]
    return [DayMeta(parsed.rows_in, parsed.rejects), *split(parsed.bars, shards)]


def step(
    bars: pl.DataFrame | None, state: pl.DataFrame | None, indicators: IndicatorSet, timeframe: str
) -> tuple[pl.DataFrame | None, pl.DataFrame | None]:
    """One shard's indicators over one day from the state after the previous day: (bars, state after it).
    A failed day (`bars` None) passes the state through."""
    if bars is None:
        return None, state
    out, after = enrich(bars, indicators, state)
    return out, normalise(after, indicators, timeframe)


def split_state(state: pl.DataFrame | None, shards: int) -> list[pl.DataFrame | None]:
    return [None] * shards if state is None else list(split(state, shards))


def checked(meta: object) -> DayMeta:
    """The parse's DayMeta, or its error raised when the source refused (a key or plan every other day would fail
    on the same way): the run stops rather than failing day after day."""
    assert isinstance(meta, DayMeta)
    if isinstance(meta.error, Unreachable):
        raise meta.error
    return meta


def assemble(meta: DayMeta, outputs: list[tuple[pl.DataFrame | None, pl.DataFrame | None]]) -> Staged:
    """The day's shards as one day: bars in (ticker, ts) order, state in ticker order."""
    states = [s for _, s in outputs if s is not None]
    state = _concat(states).sort("ticker") if states else None
    if meta.error is not None:
        return Staged(None, str(meta.error), None, state, meta.error)
    parts = [b for b, _ in outputs if b is not None]
    bars = parts[0] if len(parts) == 1 else pl.concat(parts).sort("ticker", maintain_order=True)
    assert meta.rejects is not None
    return Staged(ParsedFile(bars=bars, rejects=meta.rejects, rows_in=meta.rows_in), None, bars, state)


def _concat(frames: list[pl.DataFrame]) -> pl.DataFrame:
    return frames[0] if len(frames) == 1 else pl.concat(frames)
