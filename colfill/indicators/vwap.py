"""Session VWAP: cumulative typical price (h+l+c)/3 times volume over cumulative volume, reset at each New
York trading date. Its state is the session (date, sums), carried from the first bar on, not seeded."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from colfill.calendar import session_dates, session_of_ms
from colfill.indicators.base import CTX, LAST_CTX, Indicator, Kernel

if TYPE_CHECKING:
    from collections import deque

    import polars as pl


@dataclass(frozen=True)
class VWAP(Indicator):
    """Session VWAP of typical price (h+l+c)/3, reset at each New York trading date."""

    kind: ClassVar[str] = "vwap"
    date_fields: ClassVar[frozenset[str]] = frozenset({"date"})
    seeded_state: ClassVar[bool] = False
    slot_count: ClassVar[int] = 4  # date ordinal, pv, v, and a cache of the last bar's session bounds

    @property
    def columns(self) -> tuple[str, ...]:
        return ("vwap",)

    @property
    def first_valid(self) -> int:
        return 0

    @property
    def lookback(self) -> int:
        return 1

    @property
    def state_fields(self) -> tuple[str, ...]:
        return ("date", "pv", "v")

    def token(self) -> str:
        return "vwap"

    def batch_frame(self, frame: pl.DataFrame, has_state: bool) -> pl.DataFrame:
        """Cumulative sums over contiguous (ticker, New York date) runs, carried state included: in (ticker, ts)
        order a session is a run, so the sums group by a sorted run id."""
        import polars as pl

        ctx, last = pl.col(CTX), pl.col(LAST_CTX)
        tp = (pl.col("high") + pl.col("low") + pl.col("close")) / 3.0
        carried_pv = pl.col("vwap__pv").fill_null(0.0) if has_state else pl.lit(0.0)
        carried_v = pl.col("vwap__v").fill_null(0.0) if has_state else pl.lit(0.0)
        dates = session_dates(frame["ts"])
        if has_state:
            dates = frame.select(pl.when(ctx).then(pl.col("vwap__date")).otherwise(dates)).to_series()
        frame = frame.with_columns(
            dates.alias("__vwap_date"),
            pl.when(last).then(carried_pv).when(ctx).then(0.0).otherwise(tp * pl.col("volume")).alias("__pv"),
            pl.when(last).then(carried_v).when(ctx).then(0.0).otherwise(pl.col("volume")).alias("__v"),
        )
        new_run = (pl.col("ticker") != pl.col("ticker").shift()) | pl.col("__vwap_date").ne_missing(
            pl.col("__vwap_date").shift())
        frame = frame.with_columns(new_run.fill_null(True).cum_sum().set_sorted().alias("__run"))
        cpv, cv = pl.col("__pv").cum_sum().over("__run"), pl.col("__v").cum_sum().over("__run")
        return frame.with_columns(
            cpv.alias("vwap__pv"), cv.alias("vwap__v"), pl.col("__vwap_date").alias("vwap__date"),
        )

    def batch_outputs(self) -> list[pl.Expr]:
        import polars as pl

        return [pl.when(pl.col("vwap__v") > 0).then(pl.col("vwap__pv") / pl.col("vwap__v")).otherwise(None)
                .alias("vwap")]

    def kernel(self, k: int, windows: Mapping[int, int]) -> Kernel:
        def vwap(closes: deque[float], v: list[Any], idx: int, x: float, prev: float, high: float, low: float,
                 volume: float, t: int, out: dict[str, Any]) -> None:
            sess = v[k + 3]
            if sess is None or not sess[0] <= t < sess[1]:
                sess = v[k + 3] = session_of_ms(t)
            if v[k] != sess[2]:
                v[k], v[k + 1], v[k + 2] = sess[2], 0.0, 0.0
            v[k + 1] += (high + low + x) / 3.0 * volume
            v[k + 2] += volume
            out["vwap"] = v[k + 1] / v[k + 2] if v[k + 2] > 0 else None

        return vwap
