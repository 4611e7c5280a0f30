"""The split-adjusted views of flat-file bars equal what the REST API answers with `adjusted=true`.

Two checks: against the replay server, whose own arithmetic adjusts the same generated bars (the sample's AAPL
has a 4-for-1 split mid-range, plus a later 3-for-2 that happens after the range); and against a real recorded
Polygon answer (AAPL's days 2005-04-01 and 2005-04-04, adjusted), whose unadjusted trades are the cents and
shares that the two later AAPL splits (7-for-1 on 2014-06-09, 4-for-1 on 2020-08-31) restate to 1/28.
"""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from polygon import RESTClient

from colfill.calendar import NEW_YORK, trading_days
from colfill.indicators.spec import IndicatorSet
from colfill.pipeline import BackfillJob, run
from colfill.sample import SPLIT_RATIO, generate
from colfill.sources.rest import RestSettings
from colfill.stores import open_store
from tests.helpers import colfill, read_flat_files
from tests.polygon_server import PolygonServer

KEY = "adjusted-key-hunter2"
START, END = dt.date(2024, 3, 1), dt.date(2024, 4, 12)
SPLIT_DAY = trading_days(START, END)[len(trading_days(START, END)) // 2]
LATER = dt.date(2024, 6, 3)  # a split after the range: every bar of it is restated by 1.5 too


@pytest.fixture(scope="module")
def flatfiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("adj-ff")
    generate(root, START, END, tickers=3, seed=5, minute_fill=0.05)
    return root


def as_aggs(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select("ticker", (pl.col("window_start") // 1_000_000).alias("t"), pl.col("open").alias("o"),
                        pl.col("high").alias("h"), pl.col("low").alias("l"), pl.col("close").alias("c"),
                        pl.col("volume").alias("v"), pl.col("transactions").alias("n"))


def backfill(source: str, data: Path, settings: RestSettings, start: dt.date, end: dt.date,
             tables: tuple[str, ...]) -> None:
    job = BackfillJob(source=source, start=start, end=end, data_dir=data, tables=tables,
                      indicators=IndicatorSet.parse("sma:2"), rest=settings, phases=("corporate",))
    store = open_store(f"lake:///{data}")
    try:
        assert run(job, store).ok
    finally:
        store.close()


def rest_adjusted(url: str, ticker: str, timespan: str, start: dt.date, end: dt.date) -> pl.DataFrame:
    client = RESTClient(KEY, base=url, retries=0)
    rows = [{"t": a.timestamp, "open": a.open, "high": a.high, "low": a.low, "close": a.close, "volume": a.volume}
            for a in client.list_aggs(ticker, 1, timespan, start.isoformat(), end.isoformat(), adjusted=True,
                                      limit=50000)]
    return pl.DataFrame(rows).sort("t")


def view(data: Path, table: str, ticker: str) -> pl.DataFrame:
    con = duckdb.connect(str(data / "colfill.duckdb"), read_only=True)
    try:
        return con.sql(f"SELECT epoch_ms(ts) AS t, open, high, low, close, volume FROM {table}_adjusted "
                       "WHERE ticker = $1 ORDER BY ts", params=[ticker]).pl()
    finally:
        con.close()


def test_adjusted_views_equal_rest_adjusted_true(flatfiles: Path, tmp_path: Path) -> None:
    with PolygonServer(api_key=KEY) as srv:
        for dataset, timespan in (("minute_aggs_v1", "minute"), ("day_aggs_v1", "day")):
            aapl = as_aggs(read_flat_files(flatfiles, dataset)).filter(pl.col("ticker") == "AAPL").drop("ticker")
            srv.add_aggs("AAPL", aapl.to_dicts(), timespan)
        srv.add_reference("splits", [
            {"ticker": "AAPL", "execution_date": SPLIT_DAY.isoformat(), "split_from": 1, "split_to": SPLIT_RATIO,
             "id": "s1"},
            {"ticker": "AAPL", "execution_date": LATER.isoformat(), "split_from": 2, "split_to": 3, "id": "s2"}])
        settings = RestSettings.from_env(url=srv.url, api_key=KEY, rate="1000/s")
        backfill(str(flatfiles), tmp_path / "d", settings, START, END, ("bars_1d", "bars_1m"))
        for table, timespan in (("bars_1d", "day"), ("bars_1m", "minute")):
            ours, theirs = view(tmp_path / "d", table, "AAPL"), rest_adjusted(srv.url, "AAPL", timespan, START, END)
            assert ours.height == theirs.height > 0
            assert ours["t"].to_list() == theirs["t"].to_list()
            for c in ("open", "high", "low", "close", "volume"):
                a, b = ours[c].to_numpy(), theirs[c].to_numpy()
                assert abs(a - b).max() <= 1e-12 * abs(b).max(), (table, c)
            raw = rest_adjusted_false(srv.url, timespan)
            before = pl.Series([dt.datetime.fromtimestamp(t / 1000, dt.timezone.utc) for t in theirs["t"]]) \
                .dt.convert_time_zone("America/New_York").dt.date() < SPLIT_DAY
            ratio = (raw["close"] / theirs["close"]).to_numpy()
            assert abs(ratio[before.to_numpy()] - SPLIT_RATIO * 1.5).max() < 1e-9  # both splits restate them
            assert abs(ratio[~before.to_numpy()] - 1.5).max() < 1e-9  # only the later one


def rest_adjusted_false(url: str, timespan: str) -> pl.DataFrame:
    client = RESTClient(KEY, base=url, retries=0)
    return pl.DataFrame([{"close": a.close} for a in client.list_aggs(
        "AAPL", 1, timespan, START.isoformat(), END.isoformat(), adjusted=False, limit=50000)])


# AAPL as it traded (cents, shares) on two days of 2005; Polygon's recorded adjusted answer is these / 28.
AAPL_2005 = [
    (dt.date(2005, 4, 1), 42.09, 42.18, 40.57, 40.89, 22_951_657, 82_132),
    (dt.date(2005, 4, 4), 40.99, 41.31, 40.16, 41.09, 20_649_011, 65_543),
]


def write_day_files(root: Path) -> None:
    for day, o, h, lo, c, v, n in AAPL_2005:
        ns = int(dt.datetime(day.year, day.month, day.day, tzinfo=NEW_YORK).timestamp()) * 1_000_000_000
        path = root / "us_stocks_sip" / "day_aggs_v1" / f"{day:%Y}" / f"{day:%m}" / f"{day.isoformat()}.csv.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        body = "ticker,volume,open,close,high,low,window_start,transactions\n" f"AAPL,{v},{o},{c},{h},{lo},{ns},{n}\n"
        path.write_bytes(gzip.compress(body.encode()))


def test_adjusted_view_matches_a_recorded_polygon_answer(tmp_path: Path) -> None:
    write_day_files(tmp_path / "ff")
    with PolygonServer(api_key=KEY) as srv:
        srv.add_reference("splits", [
            {"ticker": "AAPL", "execution_date": "2014-06-09", "split_from": 1, "split_to": 7, "id": "a7"},
            {"ticker": "AAPL", "execution_date": "2020-08-31", "split_from": 1, "split_to": 4, "id": "a4"}])
        settings = RestSettings.from_env(url=srv.url, api_key=KEY, rate="1000/s")
        backfill(str(tmp_path / "ff"), tmp_path / "d", settings, dt.date(2005, 4, 1), dt.date(2005, 4, 4),
                 ("bars_1d",))
        recorded: list[Any] = list(RESTClient(KEY, base=srv.url, retries=0).list_aggs(
            "AAPL", 1, "day", "2005-04-01", "2005-04-04", adjusted=True))
    ours = view(tmp_path / "d", "bars_1d", "AAPL")
    assert ours["t"].to_list() == [a.timestamp for a in recorded]
    for row, a in zip(ours.iter_rows(named=True), recorded):
        for c in ("open", "high", "low", "close"):
            assert round(row[c], 4) == getattr(a, c)  # Polygon rounds adjusted prices to 4 decimals
        assert abs(row["volume"] - a.volume) <= 28  # shares restated by 28, recorded as a float


def test_installed_command_adjusts_for_dividends_when_asked(flatfiles: Path, tmp_path: Path) -> None:
    with PolygonServer(api_key=KEY) as srv:
        srv.add_reference("splits", [{"ticker": "AAPL", "execution_date": SPLIT_DAY.isoformat(), "split_from": 1,
                                      "split_to": SPLIT_RATIO, "id": "s1"}])
        srv.add_reference("dividends", [{"ticker": "AAPL", "ex_dividend_date": END.isoformat(), "cash_amount": 1.0,
                                         "currency": "USD", "dividend_type": "CD", "id": "d1"}])
        args = ["run", "--source", str(flatfiles), "--data-dir", str(tmp_path / "d"), "--start", str(START), "--end",
                str(END), "--skip-minute", "--indicators", "sma:2"]
        bad = colfill(*args, "--adjust", "bonus", COLFILL_REST_URL=srv.url, POLYGON_API_KEY=KEY)
        assert bad.returncode == 2 and "--adjust 'bonus': use splits or dividends" in bad.stderr
        ok = colfill(*args, "--adjust", "dividends", COLFILL_REST_URL=srv.url, POLYGON_API_KEY=KEY)
        assert ok.returncode == 0, ok.stderr
    con = duckdb.connect(str(tmp_path / "d" / "colfill.duckdb"), read_only=True)
    try:
        rows = con.execute(
            "SELECT a.close / b.close * (CASE WHEN timezone('America/New_York', b.ts)::DATE < ? THEN ? ELSE 1 END), "
            "timezone('America/New_York', b.ts)::DATE FROM bars_1d_adjusted a JOIN bars_1d b USING (ticker, ts) "
            "WHERE ticker = 'AAPL' ORDER BY b.ts", [SPLIT_DAY, SPLIT_RATIO]).fetchall()
        before = con.execute("SELECT close FROM bars_1d WHERE ticker = 'AAPL' ORDER BY ts DESC LIMIT 1 OFFSET 1"
                             ).fetchone()[0]  # type: ignore[index]
    finally:
        con.close()
    assert all(abs(r - (1 - 1.0 / before)) < 1e-12 for r, d in rows if d < END)  # the dividend's ratio
    assert [r for r, d in rows if d == END] == [1.0]  # its ex-date and after: no dividend factor
