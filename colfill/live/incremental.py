"""The incremental engine: one bar at a time, O(1) in the history length, the batch engine's numbers.

`IncrementalIndicatorProcessor.process(bar)` takes the original tool's bar shape (`symbol, timeframe, t`
epoch ms, `o, h, l, c, v`, optional `vw`) and returns it with the indicator columns of its
`IndicatorSet`, the same spec object the batch engine (`colfill.indicators.batch`) runs, so
`--indicators` means the same in both. `process_batch(frame)` is the columnar entry point.

Per (symbol, timeframe) it keeps the incremental plan's state (`colfill.indicators.incremental`: the last
closes and a flat list of scalars, each indicator's step from its own file), so a bar costs the same after a
million bars as after fifty.

Revisions and disorder: a bar with the symbol's last `t` replaces that bar; `process` rejects an older bar
(counted in `stats` and logged, not applied); a bar on a new New York date starts a new VWAP session.
`amend`/`correct` apply a correction (or a missing bar) of an older minute exactly: per symbol the inputs and
the state before each of its last `keep` bars are held (the undo records, a copy of the scalars each, which
the per-bar step made for a revision of the last bar anyway), so the state before that minute is restored
and the later bars replayed, their rows returned recomputed. Older than those, or a bar whose row is not held
(applied by the batch engine in `process_batch`), and it is refused. A revision of a symbol's last bar right
after `import_state` is rejected too: a state table does not hold that bar's high, low and volume.

State: `export_state()`/`import_state()` use the batch engine's state table (`colfill.indicators.state`),
so a live session continues from a backfill's state, and a backfill from a live session's, exactly.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, overload

from colfill.errors import InvalidArgument
from colfill.indicators.incremental import EPOCH_ORDINAL, Plan, Sym
from colfill.indicators.spec import IndicatorSet

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

log = logging.getLogger("colfill.live")

_NONE = object()


@dataclass
class Stats:
    """What the engine did: bars applied, revisions applied, older bars rejected."""

    bars: int = 0
    revised: int = 0
    rejected: int = 0
    rejected_keys: dict[tuple[str, str], int] = field(default_factory=dict)


_SHORT = {"symbol": "ticker", "o": "open", "h": "high", "l": "low", "c": "close", "v": "volume"}
_KEYS = ["ticker", "timeframe"]


class IncrementalIndicatorProcessor:
    """Live indicators, bar by bar or batch by batch, equal to the batch engine's (see the module docstring).

    >>> p = IncrementalIndicatorProcessor("sma:2")
    >>> [p.process({"symbol": "A", "timeframe": "1m", "t": t, "o": c, "h": c, "l": c, "c": c, "v": 1.0})["sma_2"]
    ...  for t, c in ((60_000, 10.0), (120_000, 12.0))]
    [None, 11.0]
    """

    per_bar_below = 3_000  # process_batch: rows under which the per-bar step beats the batch engine's fixed cost
    keep = 8  # bars per symbol whose state is held for a correction (a gap fill goes back 3 minutes)

    def __init__(self, indicators: IndicatorSet | str | None = None, timeframe: str = "1m") -> None:
        self.indicators = indicators if isinstance(indicators, IndicatorSet) else IndicatorSet.parse(indicators)
        self.timeframe = timeframe
        self._plan = Plan(self.indicators)
        self._syms: dict[tuple[str, str], Sym] = {}
        self.stats = Stats()

    # -- one bar --------------------------------------------------------------------------------------

    def process(self, bar: Mapping[str, Any]) -> dict[str, Any] | None:
        """The bar enriched with the indicator columns; None when it is older than the symbol's last bar."""
        try:
            symbol, t = bar["symbol"], int(bar["t"])
            close, high, low, volume = float(bar["c"]), float(bar["h"]), float(bar["l"]), float(bar["v"])
        except KeyError as exc:
            raise InvalidArgument(f"bar {dict(bar)!r} lacks the field {exc.args[0]!r} "
                                  "(symbol, t in epoch ms, o, h, l, c, v)") from None
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(f"bar {dict(bar)!r} has a field that is not a number: {exc}") from None
        out = dict(bar)
        if self._apply((symbol, bar.get("timeframe") or self.timeframe), t, close, high, low, volume, out, bar):
            return out
        return None

    def correct(self, bar: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        """`process` that also applies a bar older than the symbol's last (within its last `keep` bars): the
        rows of that minute and of every later one, recomputed, in time order; None when refused."""
        symbol, t = bar["symbol"], int(bar["t"])
        done = self.amend(symbol, bar.get("timeframe") or self.timeframe, t, float(bar["c"]), float(bar["h"]),
                          float(bar["l"]), float(bar["v"]), bar)
        return None if done is None else [dict(payload) | values for _, payload, values in done]

    def apply(self, symbol: str, timeframe: str, t: int, close: float, high: float, low: float, volume: float,
              payload: Any) -> dict[str, Any] | None:
        """`process` of a bar's values: its indicator values, or None when rejected. `payload` (the caller's row)
        is held with the bar and handed back by a later `amend` that recomputes it."""
        out: dict[str, Any] = {}
        return out if self._apply((symbol, timeframe), t, close, high, low, volume, out, payload) else None

    def amend(self, symbol: str, timeframe: str, t: int, close: float, high: float, low: float, volume: float,
              payload: Any) -> list[tuple[int, Any, dict[str, Any]]] | None:
        """A bar of any minute after the state the symbol's held bars start from: (t, payload, indicator values)
        of it and of every later bar, recomputed, in time order; None (refused, counted and logged) when it is
        older than that, or a later bar's payload is not held."""
        key = (symbol, timeframe)
        s = self._syms.get(key)
        if s is None or t >= s.last_t:
            out = self.apply(symbol, timeframe, t, close, high, low, volume, payload)
            return None if out is None else [(t, payload, out)]
        undo = s.undo or deque()
        first = len(undo)
        while first and undo[first - 1][0] >= t:
            first -= 1
        replaced = first < len(undo) and undo[first][0] == t
        later = list(undo)[first + replaced:]
        if first == len(undo) or undo[first][7] >= t or any(e[5] is None for e in later):
            self._reject(key, t, s.last_t, 1)
            return None
        while len(undo) > first:
            self._restore(s)
        done: list[tuple[int, Any, dict[str, Any]]] = [(t, payload, {})]
        self._step(s, t, close, high, low, volume, done[0][2], payload)
        for bt, bc, bh, bl, bv, bp, *_ in later:
            done.append((bt, bp, {}))
            self._step(s, bt, bc, bh, bl, bv, done[-1][2], bp)
        self.stats.bars += 1
        self.stats.revised += replaced
        return done

    def _apply(self, key: tuple[str, str], t: int, close: float, high: float, low: float, volume: float,
               out: dict[str, Any], payload: Any = None) -> bool:
        """One bar of `key` at `t` (epoch ms): applied (indicators written into `out`), a revision of the last
        bar (that bar undone first), or rejected as older (False, counted and logged)."""
        s = self._syms.get(key)
        if s is None:
            s = self._syms[key] = self._plan.new()
        elif t <= s.last_t:
            if t < s.last_t or not s.undo:
                self._reject(key, t, s.last_t, 1)
                return False
            self._restore(s)
            self.stats.revised += 1
        self._step(s, t, close, high, low, volume, out, payload)
        self.stats.bars += 1
        return True

    def _step(self, s: Sym, t: int, close: float, high: float, low: float, volume: float,
              out: dict[str, Any], payload: Any = None) -> None:
        """Apply a bar, keeping its inputs and what undoing it takes (a revision or correction may follow)."""
        closes, undo = s.closes, s.undo
        if undo is None:
            undo = s.undo = deque(maxlen=self.keep)
        undo.append((t, close, high, low, volume, payload, s.n, s.last_t, s.v.copy(),
                     closes[0] if len(closes) == closes.maxlen else _NONE))
        self._plan.step(s, close, high, low, volume, t, out)

    @staticmethod
    def _restore(s: Sym) -> None:
        """Undo the last bar (it is being revised, or an older one corrected)."""
        assert s.undo
        *_, s.n, s.last_t, s.v, evicted = s.undo.pop()
        s.closes.pop()
        if evicted is not _NONE:
            s.closes.appendleft(evicted)

    def _reject(self, key: tuple[str, str], t: int, last_t: int, count: int) -> None:
        self.stats.rejected += count
        seen = self.stats.rejected_keys.get(key, 0)
        self.stats.rejected_keys[key] = seen + count
        if seen < 3 or (seen + count) // 1000 > seen // 1000:
            why = "older than" if t < last_t else "a revision of (whose prior state is not held)"
            log.warning("rejected %d bar(s) of %s %s: t=%d is %s its last bar t=%d (%d rejected so far)",
                        count, key[0], key[1], t, why, last_t, self.stats.rejected)

    # -- many bars --------------------------------------------------------------------------------------

    @overload
    def process_batch(self, bars: pl.DataFrame) -> pl.DataFrame: ...

    @overload
    def process_batch(self, bars: pa.Table) -> pa.Table: ...

    def process_batch(self, bars: pl.DataFrame | pa.Table) -> pl.DataFrame | pa.Table:
        """The columnar entry point: the batch's bars enriched, one row per (symbol, timeframe, time), as a
        Polars frame for a Polars frame and an Arrow table for an Arrow table.

        Columns are the original's (`symbol, timeframe, t, o, h, l, c, v`, ...) or the stores'
        (`ticker, timeframe, ts, open, high, low, close, volume`, ...); `timeframe` may be absent. Rows are
        taken in the order given, with the same rules as `process`: a later row with the same time
        replaces an earlier one (only the last version is returned), an older row is rejected. The result
        is in the order of the returned rows' arrival.

        A batch of at least `per_bar_below` rows is the batch engine's work, continued from this engine's
        state; only each symbol's last bar goes through the per-bar step, to keep the state needed for a
        revision of it. A smaller batch (a live minute of a few hundred symbols) goes through the per-bar
        step row by row: the batch engine's fixed cost per call (~15 ms) would exceed it.
        """
        import polars as pl

        frame = bars if isinstance(bars, pl.DataFrame) else pl.from_arrow(bars)
        assert isinstance(frame, pl.DataFrame)
        short = "symbol" in frame.columns
        rename = {k: v for k, v in _SHORT.items() if k in frame.columns} if short else {}
        need = ["symbol", "t", "o", "h", "l", "c", "v"] if short else ["ticker", "ts", "open", "high", "low", "close",
                                                                     "volume"]
        missing = [c for c in need if c not in frame.columns]
        if missing:
            raise InvalidArgument(f"process_batch: the bars lack column(s) {', '.join(missing)} (have "
                                  f"{', '.join(frame.columns)})")
        original = frame.columns
        work = frame.rename(rename).with_row_index("__row")
        if short:
            work = work.with_columns(pl.col("t").cast(pl.Int64).alias("__t"),
                                     pl.from_epoch(pl.col("t").cast(pl.Int64), time_unit="ms")
                                     .dt.replace_time_zone("UTC").dt.cast_time_unit("us").alias("ts"))
        else:
            work = work.with_columns(pl.col("ts").dt.convert_time_zone("UTC").dt.cast_time_unit("us"))
            work = work.with_columns((pl.col("ts").dt.epoch("us") // 1000).alias("__t"))
        if "timeframe" not in work.columns:
            work = work.with_columns(pl.lit(self.timeframe).alias("timeframe"))
        work = work.with_columns(pl.col("timeframe").cast(pl.Utf8).fill_null(self.timeframe),
                                 *(pl.col(c).cast(pl.Float64) for c in ("open", "high", "low", "close", "volume")))

        result = self._rows_per_bar(work) if work.height < self.per_bar_below else self._rows_columnar(work)
        cols = self.indicators.columns
        result = result.rename({v: k for k, v in rename.items()})
        keep = [c for c in original if c not in cols] + list(cols)
        if "timeframe" not in keep:
            keep.insert(1, "timeframe")
        return result.select(keep) if isinstance(bars, pl.DataFrame) else result.select(keep).to_arrow()

    def _rows_per_bar(self, work: pl.DataFrame) -> pl.DataFrame:
        """`process_batch` through the per-bar step (`work` as prepared there)."""
        import polars as pl

        names = ("__row", "ticker", "timeframe", "__t", "close", "high", "low", "volume")
        latest: dict[tuple[str, str, int], tuple[int, dict[str, Any]]] = {}
        apply = self._apply
        for row, ticker, timeframe, t, close, high, low, volume in zip(*(work[c].to_list() for c in names)):
            out: dict[str, Any] = {}
            if apply((ticker, timeframe), t, close, high, low, volume, out):
                key = (ticker, timeframe, t)
                latest.pop(key, None)  # a revision: only its last version is returned, where it arrived
                latest[key] = (row, out)
        rows = [row for row, _ in latest.values()]
        outs = [out for _, out in latest.values()]
        return work.select(pl.all().gather(rows)).with_columns(
            pl.Series(c, [o[c] for o in outs], dtype=pl.Float64) for c in self.indicators.columns)

    def _rows_columnar(self, work: pl.DataFrame) -> pl.DataFrame:
        """`process_batch` through the batch engine (`work` as prepared there)."""
        import polars as pl

        from colfill.indicators.batch import enrich

        known = [(k, s.last_t) for k, s in self._syms.items()]
        last = pl.DataFrame({"ticker": [k[0] for k, _ in known], "timeframe": [k[1] for k, _ in known],
                             "__last": [t for _, t in known]}, schema={"ticker": pl.Utf8, "timeframe": pl.Utf8,
                                                                       "__last": pl.Int64})
        work = work.join(last, on=_KEYS, how="left", maintain_order="left")
        prior = pl.max_horizontal(pl.col("__t").cum_max().shift(1).over(_KEYS), pl.col("__last"))
        work = work.with_columns(prior.alias("__prior")).with_columns(
            (pl.col("__t") < pl.col("__prior")).fill_null(False).alias("__rejected"))
        for row in work.filter("__rejected").group_by(_KEYS).agg(pl.len(), pl.col("__t").first(),
                                                                 pl.col("__prior").first()).iter_rows():
            self._reject((row[0], row[1]), row[3], row[4], row[2])
        accepted = work.filter(~pl.col("__rejected"))
        kept = accepted.unique(subset=[*_KEYS, "__t"], keep="last", maintain_order=True).sort("__row")
        applied = accepted.height

        # A batch that opens by revising a symbol's last bar starts from the state before that bar.
        for ticker, timeframe in kept.filter(pl.col("__t") == pl.col("__last")).select(_KEYS).iter_rows():
            s = self._syms[(ticker, timeframe)]
            if not s.undo:  # imported state: the bar before is not held, so the revision cannot apply
                same = (pl.col("ticker") == ticker) & (pl.col("timeframe") == timeframe) & (pl.col("__t") == s.last_t)
                count = accepted.filter(same).height
                self._reject((ticker, timeframe), s.last_t, s.last_t, count)
                kept, applied = kept.filter(~same), applied - count
            else:
                self._restore(s)
        self.stats.revised += applied - kept.height + kept.filter(pl.col("__t") == pl.col("__last")).height

        is_last = pl.col("__row") == pl.col("__row").max().over(_KEYS)
        head, tail = kept.filter(~is_last), kept.filter(is_last)
        parts = []
        for (timeframe,), part in head.partition_by("timeframe", as_dict=True).items():
            tickers = part["ticker"].unique().to_list()
            state = self.export_state([(t, timeframe) for t in tickers if (t, timeframe) in self._syms])
            enriched, new_state = enrich(part, self.indicators, state if state.height else None)
            # the batch engine keys state by ticker alone: this part's timeframe is put back
            self._load(new_state.with_columns(pl.lit(timeframe, dtype=pl.Utf8).alias("timeframe")))
            parts.append(enriched)

        outs: list[dict[str, Any]] = []
        for ticker, timeframe, t, close, high, low, volume in tail.select(
                "ticker", "timeframe", "__t", "close", "high", "low", "volume").iter_rows():
            sym = self._syms.get((ticker, timeframe))
            if sym is None:
                sym = self._syms[(ticker, timeframe)] = self._plan.new()
            out: dict[str, Any] = {}
            self._step(sym, t, close, high, low, volume, out)
            outs.append(out)
        cols = self.indicators.columns
        parts.append(tail.with_columns(pl.Series(c, [o[c] for o in outs], dtype=pl.Float64) for c in cols))
        self.stats.bars += applied
        return pl.concat(parts, how="diagonal_relaxed").sort("__row")

    # -- state ------------------------------------------------------------------------------------------

    def last_times(self, timeframe: str | None = None) -> dict[str, int]:
        """Each ticker's last bar start (epoch ms) in `timeframe` (this engine's by default): where a catch-up
        of the store's backfill starts."""
        tf = timeframe or self.timeframe
        return {k[0]: s.last_t for k, s in self._syms.items() if k[1] == tf and s.n}

    def correctable_after(self, symbol: str, timeframe: str | None = None) -> int | None:
        """The bar start (epoch ms) after which `amend` can still correct `symbol`: that of the bar before its
        oldest held one; None when it holds none."""
        s = self._syms.get((symbol, timeframe or self.timeframe))
        return s.undo[0][7] if s is not None and s.undo else None

    def export_state(self, keys: Iterable[tuple[str, str]] | None = None) -> pl.DataFrame:
        """The state table (`colfill.indicators.state`) of every symbol, or of `keys`, sorted."""
        import polars as pl
        import pyarrow as pa

        from colfill.indicators import state as st

        chosen = sorted(self._syms if keys is None else keys)
        syms = [self._syms[key] for key in chosen]

        lengths = [len(s.closes) for s in syms]
        offsets = [0]
        for length in lengths:
            offsets.append(offsets[-1] + length)
        flat = pa.array([c for s in syms for c in s.closes], pa.float64())
        cols: dict[str, Any] = {
            "ticker": [k[0] for k in chosen],
            "timeframe": [k[1] for k in chosen],
            "n": [s.n for s in syms],
            "last_ts": [s.last_t * 1000 if s.n else None for s in syms],
        }
        cols.update(self._plan.export(syms))
        schema = st.schema(self.indicators)
        dates = self._plan.date_columns
        types = {**schema, "last_ts": pl.Int64(), **{c: pl.Int32() for c in dates}}
        frame = pl.DataFrame(cols, schema={c: types[c] for c in schema if c != "closes"})
        closes = pl.Series("closes", pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), flat))
        casts = [closes, pl.col("last_ts").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
                 *(pl.col(c).cast(pl.Date) for c in dates)]
        return frame.with_columns(casts).select(list(schema))

    def import_state(self, state: pl.DataFrame | pa.Table) -> None:
        """Take over symbols' state from a state table (the batch engine's, or an export); replaces them."""
        import polars as pl

        from colfill.indicators import state as st

        frame = state if isinstance(state, pl.DataFrame) else pl.from_arrow(state)
        assert isinstance(frame, pl.DataFrame)
        if "timeframe" not in frame.columns:
            frame = frame.with_columns(pl.lit(self.timeframe).alias("timeframe"))
        st.check(frame, self.indicators)
        self._load(st.normalise(frame, self.indicators, self.timeframe))

    def _load(self, frame: pl.DataFrame) -> None:
        """`import_state` of a table already checked and in the canonical schema."""
        import polars as pl

        frame = frame.with_columns(pl.col("last_ts").dt.epoch("ms"),
                                   *(pl.col(c).cast(pl.Int32) + EPOCH_ORDINAL for c in self._plan.date_columns))
        cols = {c: frame[c].to_list() for c in frame.columns}
        for i in range(frame.height):
            key = (cols["ticker"][i], cols["timeframe"][i])
            self._syms[key] = self._plan.load(cols, i, f"state of {key[0]!r} ({key[1]})")

    # -- stores -----------------------------------------------------------------------------------------

    @classmethod
    def from_store(cls, url: str, table: str = "bars_1m", indicators: IndicatorSet | str | None = None
                   ) -> IncrementalIndicatorProcessor:
        """An engine that continues from a store's backfill: the saved state of `colfill state import` for
        this table's timeframe and indicator set when there is one, else the state computed from the stored
        bars (exact: the batch engine over the whole history, read in slices)."""
        from colfill.bars import timeframe_of
        from colfill.live.stored_state import load_state

        proc = cls(indicators, timeframe=timeframe_of(table))
        proc.import_state(load_state(url, table, proc.indicators))
        return proc
