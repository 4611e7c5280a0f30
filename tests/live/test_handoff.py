"""From a backfill to live: `colfill state export/import` and `from_store`, on stores filled by `colfill run`.

The live engine started from a store continues exactly where the backfill ended: the next day's bars,
fed live, get the numbers a backfill of all the days gives them. Expected values come from the flat
files themselves (read here, not through colfill's reader) and the batch engine.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest
from typer.testing import CliRunner

from colfill import IncrementalIndicatorProcessor
from colfill.cli import app
from colfill.indicators.batch import enrich
from colfill.indicators.spec import IndicatorSet
from colfill.live.stored_state import BAR_COLUMNS, state_from_bars
from colfill.sample import generate
from colfill.stores.duckdb import DuckDBStore

from .conftest import assert_parity, flat_bars

START, CUT, END = dt.date(2024, 3, 1), dt.date(2024, 3, 13), dt.date(2024, 3, 14)
runner = CliRunner()
IND = IndicatorSet.default()
SHORT = "sma:3,ema:5"


def colfill(*args: str) -> str:
    """Run the CLI; its output (stderr included) when it succeeds."""
    res = runner.invoke(app, list(args))
    assert res.exit_code == 0, f"{args}: {res.output} {res.exception!r}"
    return res.output


def failure(*args: str) -> str:
    """Run the CLI expecting an error; its message."""
    res = runner.invoke(app, list(args))
    assert res.exit_code != 0, res.output
    return f"{res.output} {res.exception}"


def backfill(src: Path, data_dir: Path, end: dt.date) -> Path:
    colfill("run", "--source", str(src), "--start", START.isoformat(), "--end", end.isoformat(),
            "--data-dir", str(data_dir))
    return data_dir


def stored(data_dir: Path, sql: str) -> pl.DataFrame:
    con = duckdb.connect(str(data_dir / "colfill.duckdb"), read_only=True)
    try:
        return con.sql(sql).pl()
    finally:
        con.close()


def url(data_dir: Path) -> str:
    return f"duckdb:///{data_dir / 'colfill.duckdb'}"


@pytest.fixture(scope="module")
def flatfiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("live-flatfiles")
    generate(root, START, END, tickers=6, seed=21, minute_fill=0.2)
    return root


@pytest.fixture(scope="module")
def backfilled(flatfiles: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir backfilled up to CUT (not written to by the tests: see `fresh`)."""
    return backfill(flatfiles, tmp_path_factory.mktemp("backfill"), CUT)


@pytest.fixture
def fresh(backfilled: Path, tmp_path: Path) -> Path:
    """A copy of the backfilled store that a test may import state into."""
    data_dir = tmp_path / "data"
    shutil.copytree(backfilled, data_dir)  # the lake is the store: the whole data dir (moved, too)
    return data_dir


def assert_same_state(got: pl.DataFrame, want: pl.DataFrame, indicators: IndicatorSet) -> None:
    got, want = got.sort("ticker"), want.sort("ticker")
    for col in ("ticker", "n", "closes"):
        assert got[col].to_list() == want[col].to_list(), col
    assert got["last_ts"].dt.epoch("us").to_list() == want["last_ts"].dt.epoch("us").to_list()
    for col in indicators.state_columns:
        a, b = got[col], want[col]
        assert a.null_count() == b.null_count(), col
        if a.dtype == pl.Float64:
            assert ((a - b).abs() <= 1e-9 * b.abs()).all(), col
        else:
            assert a.to_list() == b.to_list(), col


@pytest.mark.parametrize(("table", "timeframe"), [("bars_1m", "1m"), ("bars_1d", "1d")])
def test_export_is_the_state_after_the_backfill(flatfiles: Path, backfilled: Path, tmp_path: Path, table: str,
                                                timeframe: str) -> None:
    out = tmp_path / "state.parquet"
    output = colfill("state", "export", "--data-dir", str(backfilled), "--table", table, "--out", str(out))
    assert "computed from the stored bars" in output
    got = pl.read_parquet(out)
    _, want = enrich(flat_bars(flatfiles, CUT, table), IND)  # independent: the flat files, not the store
    assert (got["timeframe"] == timeframe).all()
    assert_same_state(got, want, IND)


def test_history_read_in_small_slices_gives_the_same_state(backfilled: Path) -> None:
    """Slices cut tickers' histories anywhere (before and after seeding); each continues from the last."""
    store = DuckDBStore(url(backfilled))
    try:
        whole = state_from_bars(store.read_bars("bars_1m", BAR_COLUMNS, batch_rows=10**9), IND, "1m")
        slices = list(store.read_bars("bars_1m", BAR_COLUMNS, batch_rows=29))
        sliced = state_from_bars(slices, IND, "1m")
    finally:
        store.close()
    assert len(slices) > 100
    assert_same_state(sliced, whole, IND)


def test_live_session_continues_the_backfill_exactly(flatfiles: Path, backfilled: Path, tmp_path: Path) -> None:
    """from_store (state computed from the stored bars), then the next day's bars live, in a columnar batch
    and bar by bar: the same numbers as a backfill of every day."""
    proc = IncrementalIndicatorProcessor.from_store(url(backfilled), "bars_1m")
    last = stored(backfilled, "SELECT max(ts) AS ts FROM bars_1m")["ts"].dt.epoch("us").item()
    nxt = flat_bars(flatfiles).filter(pl.col("ts").dt.epoch("us") > last)
    assert nxt.height > 100
    live = nxt.sort("ts").select(
        pl.col("ticker").alias("symbol"), pl.lit("1m").alias("timeframe"),
        (pl.col("ts").dt.epoch("ms")).alias("t"), pl.col("open").alias("o"), pl.col("high").alias("h"),
        pl.col("low").alias("l"), pl.col("close").alias("c"), pl.col("volume").alias("v"))
    half = live.height // 2
    proc.per_bar_below = 0  # the first half through the batch engine, however small
    first = proc.process_batch(live.head(half))
    rest = [proc.process(r) for r in live.tail(live.height - half).to_dicts()]
    schema = first.select(live.columns + list(IND.columns)).schema
    got = pl.concat([first.select(list(schema)), pl.DataFrame(rest, schema=schema)])
    got = got.rename({"symbol": "ticker", "c": "close"}).sort("ticker", "t")

    everything = backfill(flatfiles, tmp_path / "all", END)
    want = stored(everything, "SELECT * FROM bars_1m ORDER BY ticker, ts").with_columns(
        pl.col("ts").dt.epoch("ms").alias("t"))
    want = want.join(got.select("ticker", "t"), on=["ticker", "t"], how="semi").sort("ticker", "t")
    assert want.height == got.height == live.height
    assert_parity(got, want, IND)


def test_import_saves_rows_that_from_store_and_export_use(fresh: Path, tmp_path: Path) -> None:
    out, part = tmp_path / "state.parquet", tmp_path / "part.parquet"
    colfill("state", "export", "--data-dir", str(fresh), "--out", str(out))
    full = pl.read_parquet(out)
    two = full["ticker"].head(2).to_list()
    full.filter(pl.col("ticker").is_in(two)).write_parquet(part)
    assert "2 tickers for 1m" in colfill("state", "import", "--data-dir", str(fresh), "--in", str(part))
    rows = stored(fresh, "SELECT ticker, timeframe, indicators, n FROM indicator_state ORDER BY ticker")
    assert rows["ticker"].to_list() == two and (rows["timeframe"] == "1m").all()
    assert (rows["indicators"] == IND.token()).all()

    proc = IncrementalIndicatorProcessor.from_store(url(fresh))
    assert_same_state(proc.export_state(), full.filter(pl.col("ticker").is_in(two)), IND)  # the saved rows won
    again = tmp_path / "again.parquet"
    assert "saved state" in colfill("state", "export", "--data-dir", str(fresh), "--out", str(again))
    assert pl.read_parquet(again).equals(pl.read_parquet(part))

    assert f"{full.height} tickers" in colfill("state", "import", "--data-dir", str(fresh), "--in", str(out))
    assert stored(fresh, "SELECT count(*) AS n FROM indicator_state")["n"].item() == full.height  # upserted
    recomputed = tmp_path / "recomputed.parquet"
    output = colfill("state", "export", "--data-dir", str(fresh), "--out", str(recomputed), "--recompute")
    assert "computed from the stored bars" in output
    assert_same_state(pl.read_parquet(recomputed), full, IND)


def test_another_indicator_set_replaces_the_saved_state_only_when_asked(fresh: Path, tmp_path: Path) -> None:
    default, short = tmp_path / "default.parquet", tmp_path / "short.parquet"
    colfill("state", "export", "--data-dir", str(fresh), "--out", str(default))
    colfill("state", "import", "--data-dir", str(fresh), "--in", str(default))
    colfill("state", "export", "--data-dir", str(fresh), "--out", str(short), "--indicators", SHORT)
    message = failure("state", "import", "--data-dir", str(fresh), "--in", str(short), "--indicators", SHORT)
    assert "--replace" in message and IND.token() in message
    colfill("state", "import", "--data-dir", str(fresh), "--in", str(short), "--indicators", SHORT, "--replace")
    tokens = stored(fresh, "SELECT DISTINCT indicators FROM indicator_state")["indicators"].to_list()
    assert tokens == [IndicatorSet.parse(SHORT).token()]

    proc = IncrementalIndicatorProcessor.from_store(url(fresh), indicators=SHORT)
    assert_same_state(proc.export_state(), pl.read_parquet(short), IndicatorSet.parse(SHORT))
    again = tmp_path / "again.parquet"
    output = colfill("state", "export", "--data-dir", str(fresh), "--out", str(again))  # the default set
    assert "computed from the stored bars" in output and "sma:3,ema:5" in output
    assert_same_state(pl.read_parquet(again), pl.read_parquet(default), IND)


def test_import_refuses_state_that_does_not_fit(fresh: Path, tmp_path: Path) -> None:
    short, broken = tmp_path / "short.parquet", tmp_path / "broken.parquet"
    colfill("state", "export", "--data-dir", str(fresh), "--out", str(short), "--indicators", SHORT)
    message = failure("state", "import", "--data-dir", str(fresh), "--in", str(short))  # default set
    assert str(short) in message and "ema_20__ema" in message
    state = pl.read_parquet(short)
    state.with_columns(pl.col("closes").list.head(1)).write_parquet(broken)
    message = failure("state", "import", "--data-dir", str(fresh), "--in", str(broken), "--indicators", SHORT)
    assert state["ticker"][0] in message and "closes" in message
    assert not stored(fresh, "SELECT table_name FROM information_schema.tables WHERE table_name = 'indicator_state'"
                      ).height  # nothing was written


def test_state_commands_name_bad_arguments(backfilled: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "x.parquet")
    assert "no backfill there" in failure("state", "export", "--data-dir", str(tmp_path / "nothing"), "--out", out)
    assert "bars_5m" in failure("state", "export", "--data-dir", str(backfilled), "--table", "bars_5m", "--out", out)
    assert "no.parquet" in failure("state", "import", "--data-dir", str(backfilled), "--in",
                                   str(tmp_path / "no.parquet"))
    (tmp_path / "junk.parquet").write_text("not parquet")
    assert "junk.parquet" in failure("state", "import", "--data-dir", str(backfilled), "--in",
                                     str(tmp_path / "junk.parquet"))
    assert "sma:x" in failure("state", "export", "--data-dir", str(backfilled), "--out", out, "--indicators", "sma:x")
    message = failure("state", "export", "--store", "postgresql://me:s3cret-pw@127.0.0.1:9/market", "--out", out)
    assert "s3cret-pw" not in message and "127.0.0.1" in message


def test_help_explains_the_commands() -> None:
    text = colfill("state", "--help")
    assert "export" in text and "import" in text and "live engine" in text
    assert "indicator_state" in colfill("state", "import", "--help")
