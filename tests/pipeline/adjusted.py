"""The split and dividend records the adjusted-view tests load, and the adjustment's definition computed by hand,
shared by the embedded stores' tests (test_adjusted) and PostgreSQL's (tests/postgres/test_adjusted_pg)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest

from colfill.bars import REFERENCE_TABLES, to_table
from colfill.calendar import trading_days
from colfill.sample import SPLIT_RATIO, generate
from colfill.stores import open_store

START, END = dt.date(2024, 3, 1), dt.date(2024, 4, 30)
SPLIT_DAY = trading_days(START, END)[len(trading_days(START, END)) // 2]  # where the sample's AAPL drops


def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Flat files whose AAPL drops by the split ratio on SPLIT_DAY (for a module-scoped fixture)."""
    root = tmp_path_factory.mktemp("adjusted")
    generate(root, START, END, tickers=5, seed=3, minute_fill=0.1)
    return root


def add_splits(url: str) -> None:
    splits = [SimpleNamespace(ticker="AAPL", execution_date=SPLIT_DAY.isoformat(), split_from=1, split_to=SPLIT_RATIO,
                              id="a"),
              SimpleNamespace(ticker="AAPL", execution_date="2024-04-29", split_from=2, split_to=3, id="b"),
              SimpleNamespace(ticker="MSFT", execution_date="2030-01-02", split_from=1, split_to=2, id="c")]
    store = open_store(url)
    try:
        store.write_reference("splits", to_table(REFERENCE_TABLES["splits"], splits))
        for table in ("bars_1d", "bars_1m"):
            store.finish(table)
    finally:
        store.close()


def expected(raw: pl.DataFrame) -> pl.DataFrame:
    """The definition, by hand: divide by the ratios of the splits after the bar's New York date."""
    date = pl.col("ts").dt.convert_time_zone("America/New_York").dt.date()
    aapl = pl.col("ticker") == "AAPL"
    factor = (pl.when(aapl & (date < SPLIT_DAY)).then(SPLIT_RATIO * 1.5)
              .when(aapl & (date < dt.date(2024, 4, 29))).then(1.5)
              .when(pl.col("ticker") == "MSFT").then(2.0).otherwise(1.0))
    return raw.with_columns(*(pl.col(c) / factor for c in ("open", "high", "low", "close", "vw")),
                            pl.col("volume") * factor)


def add_dividends(url: str, dividends: bool | None) -> None:
    days = trading_days(START, END)
    rows = [SimpleNamespace(ticker="AAPL", ex_dividend_date=days[5].isoformat(), cash_amount=0.5, currency="USD",
                            dividend_type="CD", id="d1"),
            SimpleNamespace(ticker="AAPL", ex_dividend_date=days[5].isoformat(), cash_amount=0.25, currency="USD",
                            dividend_type="SC", id="d2"),  # a special on the same ex-date: cash adds up
            SimpleNamespace(ticker="AAPL", ex_dividend_date=days[-3].isoformat(), cash_amount=0.2, currency=None,
                            dividend_type="CD", id="d3"),
            SimpleNamespace(ticker="AAPL", ex_dividend_date=START.isoformat(), cash_amount=0.3, currency="USD",
                            dividend_type="CD", id="d4"),  # no day bar before it: skipped
            SimpleNamespace(ticker="MSFT", ex_dividend_date=days[10].isoformat(), cash_amount=1.0, currency="CAD",
                            dividend_type="CD", id="d5")]  # not USD: skipped
    store = open_store(url)
    try:
        store.write_reference("dividends", to_table(REFERENCE_TABLES["dividends"], rows))
        store.adjusted_views(dividends=dividends)
    finally:
        store.close()


def dividend_factor(daily: pl.DataFrame, ticker: str, day: dt.date) -> float:
    """The definition by hand, a loop over the ticker's ex-dates after `day`."""
    closes = {r["d"]: r["close"] for r in daily.filter(pl.col("ticker") == ticker).iter_rows(named=True)}
    cash = {"AAPL": {trading_days(START, END)[5]: 0.75, trading_days(START, END)[-3]: 0.2, START: 0.3}}.get(ticker, {})
    factor = 1.0
    for ex, amount in cash.items():
        before = [d for d in closes if d < ex]
        if ex > day and before and closes[max(before)] > amount:
            factor *= 1 - amount / closes[max(before)]
    return factor
