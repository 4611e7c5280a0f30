"""`--limit N`: which tickers a run covers when it is not told, the N most traded.

"Most traded" is the median daily dollar volume (close x volume of the day bar) over the last
`WINDOW_DAYS` day files (`day_aggs_v1`) up to the run's end date. A ticker missing from one of those
files traded nothing that day and counts 0 for it, so a ticker listed two days ago with two big days
does not outrank one that trades every day. Ties break by ticker, so the ranking is a pure function
of the files.

The chosen list is recorded under `<data-dir>/selections/`, keyed by the source, prefix and N, not by
the dates: a rerun, or a run extended with a later `--end`, keeps the same tickers (and so the same
lineages and indicator chains) until `--rerank` ranks again at that run's end date.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from colfill import atomic
from colfill.errors import NoData

if TYPE_CHECKING:
    from colfill.sources.base import Source

WINDOW_DAYS = 20
LOOKBACK = dt.timedelta(days=120)  # calendar days listed to find the last WINDOW_DAYS day files


@dataclass(frozen=True)
class Selection:
    """A recorded --limit choice: the tickers, best first, and what they were ranked on."""

    limit: int
    tickers: tuple[str, ...]
    dollar_volume: tuple[float, ...]  # median daily close x volume of each ticker, same order
    first: dt.date  # first and last day file of the ranking window
    last: dt.date
    files: int
    source: str

    def to_json(self) -> str:
        d = asdict(self)
        d.update(first=self.first.isoformat(), last=self.last.isoformat())
        return json.dumps(d, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Selection:
        d = json.loads(text)
        return cls(limit=d["limit"], tickers=tuple(d["tickers"]), dollar_volume=tuple(d["dollar_volume"]),
                   first=dt.date.fromisoformat(d["first"]), last=dt.date.fromisoformat(d["last"]),
                   files=d["files"], source=d["source"])

    def describe(self, show: int = 10) -> str:
        names = ", ".join(f"{t} (${v / 1e6:,.1f}M)" for t, v in zip(self.tickers[:show], self.dollar_volume))
        more = f", ... (+{len(self.tickers) - show} more)" if len(self.tickers) > show else ""
        return (f"--limit {self.limit}: the {len(self.tickers)} most traded tickers by median daily dollar volume "
                f"over {self.files} day files {self.first}..{self.last}: {names}{more}")


def rank(source: Source, end: dt.date, limit: int, window: int = WINDOW_DAYS, allowed: set[str] | None = None
         ) -> Selection:
    """The `limit` tickers of highest median daily dollar volume over the last `window` day files up to `end`;
    only `allowed` ones (common stocks, once reference data is loaded) when given."""
    import polars as pl

    listed = source.list("bars_1d", end - LOOKBACK, end)
    if len(listed) < window:
        listed = source.list("bars_1d", dt.date(1990, 1, 1), end)
    days = listed[-window:]
    if not days:
        raise NoData(f"--limit ranks tickers by their day files (day_aggs_v1), and {source.describe()} has none "
                     f"up to {end}. Hint: pick tickers with --tickers, or an --end within the files.")
    per_day = [source.read(obj).bars.select("ticker", (pl.col("close") * pl.col("volume")).alias("dv"))
               for obj in days]
    frame = pl.concat([f.with_columns(pl.lit(i).alias("day")) for i, f in enumerate(per_day)])
    sums = frame.group_by("ticker", "day").agg(pl.col("dv").sum())
    tickers = sums.select("ticker").unique()
    grid = tickers.join(pl.DataFrame({"day": list(range(len(days)))}), how="cross")
    full = grid.join(sums, on=["ticker", "day"], how="left").with_columns(pl.col("dv").fill_null(0.0))
    medians = full.group_by("ticker").agg(pl.col("dv").median().alias("median"))
    if allowed is not None:
        medians = medians.filter(pl.col("ticker").is_in(sorted(allowed)))
    top = medians.sort(["median", "ticker"], descending=[True, False]).head(limit)
    return Selection(limit=limit, tickers=tuple(top["ticker"].to_list()), dollar_volume=tuple(top["median"].to_list()),
                     first=days[0].date, last=days[-1].date, files=len(days), source=source.describe())


def selection_path(data_dir: Path, source: Source, limit: int) -> Path:
    key = hashlib.sha256(f"{source.describe()}|{limit}".encode()).hexdigest()[:12]
    return data_dir / "selections" / f"limit-{limit}-{key}.json"


def choose(source: Source, data_dir: Path, end: dt.date, limit: int, rerank: bool = False,
           allowed: set[str] | None = None) -> tuple[Selection, bool]:
    """The recorded selection for (source, limit), or a new ranking at `end` (recorded); True when ranked now."""
    path = selection_path(data_dir, source, limit)
    if path.exists() and not rerank:
        return Selection.from_json(path.read_text()), False
    chosen = rank(source, end, limit, allowed=allowed)
    atomic.write_text(path, chosen.to_json())
    return chosen, True
