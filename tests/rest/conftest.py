"""Fixtures and helpers of the REST tests: sample flat files, the replay server serving the same bars as aggregates,
a backfill of them, and counting requests in a window."""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from colfill.indicators.spec import IndicatorSet
from colfill.pipeline import BackfillJob, run
from colfill.sample import generate
from colfill.sources.rest import RestSettings
from colfill.stores import open_store
from tests.helpers import read_flat_files
from tests.polygon_server import PolygonServer

KEY = "rest-key-hunter2"
START, END = dt.date(2024, 3, 1), dt.date(2024, 3, 15)  # spans the DST change of 2024-03-10
TICKERS = 6


def backfill(source: str, data: Path, tickers: tuple[str, ...] | None, rest: RestSettings | None = None,
             tables: tuple[str, ...] = ("bars_1d", "bars_1m")) -> Any:
    job = BackfillJob(source=source, start=START, end=END, data_dir=data, tables=tables, tickers=tickers,
                      indicators=IndicatorSet.default(), rest=rest)
    store = open_store(f"lake:///{data}")
    try:
        return run(job, store)
    finally:
        store.close()


def most_in_any_window(times: list[float], window: float) -> int:
    """The largest number of times in any half-open window [t, t + window) (its start at one of the times)."""
    times = sorted(times)
    return max((bisect_left(times, t + window) - i for i, t in enumerate(times)), default=0)


@pytest.fixture(scope="module")
def flatfiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rest-ff")
    generate(root, START, END, tickers=TICKERS, seed=4)
    return root


@pytest.fixture
def server(flatfiles: Path) -> Any:
    """The flat files' bars, served as REST aggregates (window_start ns -> t ms; no vw in flat files)."""
    with PolygonServer(api_key=KEY) as srv:
        for dataset, timespan in (("minute_aggs_v1", "minute"), ("day_aggs_v1", "day")):
            frame = read_flat_files(flatfiles, dataset).select(
                "ticker", (pl.col("window_start") // 1_000_000).alias("t"), pl.col("open").alias("o"),
                pl.col("high").alias("h"), pl.col("low").alias("l"), pl.col("close").alias("c"),
                pl.col("volume").alias("v"), pl.lit(None).alias("vw"), pl.col("transactions").alias("n"))
            for (ticker,), part in frame.partition_by("ticker", as_dict=True).items():
                srv.add_aggs(str(ticker), part.drop("ticker").to_dicts(), timespan)
        yield srv
