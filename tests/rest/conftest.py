"""Fixtures of the REST tests: sample flat files, and the replay server serving the same bars as aggregates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

from colfill.sample import generate
from tests.polygon_server import PolygonServer
from tests.rest.test_rest_pipeline import END, KEY, START, TICKERS, read_all


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
            frame = read_all(flatfiles, dataset).select(
                "ticker", (pl.col("window_start") // 1_000_000).alias("t"), pl.col("open").alias("o"),
                pl.col("high").alias("h"), pl.col("low").alias("l"), pl.col("close").alias("c"),
                pl.col("volume").alias("v"), pl.lit(None).alias("vw"), pl.col("transactions").alias("n"))
            for (ticker,), part in frame.partition_by("ticker", as_dict=True).items():
                srv.add_aggs(str(ticker), part.drop("ticker").to_dicts(), timespan)
        yield srv
