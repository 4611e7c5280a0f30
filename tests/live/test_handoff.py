"""From a backfill to live: `colfill state export/import` and `from_store`, on stores filled by the pipeline.

The live engine started from a store continues exactly where the backfill ended: the next day's bars,
fed live, get the numbers a backfill of all the days gives them.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from colfill import IncrementalIndicatorProcessor
from colfill.cli import app
from colfill.indicators.batch import enrich
from colfill.indicators.spec import IndicatorSet
from colfill.sample import generate
from tests.pipeline.conftest import backfill, read_source, stored

from .conftest import assert_parity

START, CUT, END = dt.date(2024, 3, 1), dt.date(2024, 3, 13), dt.date(2024, 3, 14)
runner = CliRunner()
IND = IndicatorSet.default()


@pytest.fixture(scope="module")
def flatfiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("live-flatfiles")
    generate(root, START, END, tickers=6, seed=21, minute_fill=0.2)
    return root


@pytest.fixture(scope="module")
def backfilled(flatfiles: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir backfilled up to CUT."""
    data_dir = tmp_path_factory.mktemp("backfill")
    assert backfill(flatfiles, data_dir, START, CUT).ok
    return data_dir


def source_bars(root: Path, until: dt.date | None = None) -> pl.DataFrame:
    raw = read_source(root, "bars_1m", until)
    return raw.select(
        "ticker",
        pl.from_epoch("window_start", time_unit="ns").dt.replace_time_zone("UTC").dt.cast_time_unit("us").alias("ts"),
        "open", "high", "low", "close", "volume",
    )


def test_export_is_the_state_after_the_backfill(flatfiles: Path, backfilled: Path, tmp_path: Path) -> None:
    out = tmp_path / "state.parquet"
    res = runner.invoke(app, ["state", "export", "--data-dir", str(backfilled), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "computed from the stored bars" in res.output
    got = pl.read_parquet(out).sort("ticker")
    _, want = enrich(source_bars(flatfiles, CUT), IND)  # independent: the flat files, not the store
    want = want.sort("ticker")
    assert got["ticker"].to_list() == want["ticker"].to_list()
    assert got["n"].to_list() == want["n"].to_list()
    assert got["closes"].to_list() == want["closes"].to_list()
    assert (got["timeframe"] == "1m").all()
    for col in IND.state_columns:
        a, b = got[col], want[col]
        assert a.null_count() == b.null_count(), col
        if a.dtype == pl.Float64:
            assert ((a - b).abs() <= 1e-9 * b.abs()).all(), col
        else:
            assert a.to_list() == b.to_list(), col


def test_live_session_continues_the_backfill_exactly(flatfiles: Path, backfilled: Path, tmp_path: Path) -> None:
    """from_store (state computed from the stored bars), then the next day's bars live, in small batches
    and bar by bar: the same numbers as a backfill of every day."""
    proc = IncrementalIndicatorProcessor.from_store(f"duckdb:///{backfilled / 'colfill.duckdb'}", "bars_1m")
    last = stored(backfilled, "bars_1m")["ts"].dt.epoch("us").max()
    nxt = source_bars(flatfiles).filter(pl.col("ts").dt.epoch("us") > last)
    assert nxt.height > 100
    live = nxt.sort("ts").select(
        pl.col("ticker").alias("symbol"), pl.lit("1m").alias("timeframe"),
        (pl.col("ts").dt.epoch("ms")).alias("t"), pl.col("open").alias("o"), pl.col("high").alias("h"),
        pl.col("low").alias("l"), pl.col("close").alias("c"), pl.col("volume").alias("v"))
    half = live.height // 2
    first = proc.process_batch(live.head(half))
    rest = [proc.process(r) for r in live.tail(live.height - half).to_dicts()]
    got = pl.concat([first.select(live.columns + list(IND.columns)),
                     pl.DataFrame(rest, schema=first.select(live.columns + list(IND.columns)).schema)])
    got = got.rename({"symbol": "ticker", "c": "close"}).sort("ticker", "t")

    everything = tmp_path / "all"
    assert backfill(flatfiles, everything, START, END).ok
    want = stored(everything, "bars_1m").with_columns(pl.col("ts").dt.epoch("ms").alias("t"))
    want = want.join(got.select("ticker", "t"), on=["ticker", "t"], how="semi").sort("ticker", "t")
    assert want.height == got.height == live.height
    assert_parity(got, want, IND)


def test_import_saves_state_that_from_store_and_export_use(backfilled: Path, tmp_path: Path) -> None:
    out, part = tmp_path / "state.parquet", tmp_path / "part.parquet"
    assert runner.invoke(app, ["state", "export", "--data-dir", str(backfilled), "--out", str(out)]).exit_code == 0
    full = pl.read_parquet(out)
    full.filter(pl.col("ticker").is_in(full["ticker"].head(2).to_list())).write_parquet(part)
    res = runner.invoke(app, ["state", "import", "--data-dir", str(backfilled), "--in", str(part)])
    assert res.exit_code == 0, res.output
    assert "2 tickers for 1m" in res.output
    proc = IncrementalIndicatorProcessor.from_store(f"duckdb:///{backfilled / 'colfill.duckdb'}")
    assert proc.export_state()["ticker"].to_list() == full["ticker"].head(2).to_list()  # the saved state won
    again = tmp_path / "again.parquet"
    res = runner.invoke(app, ["state", "export", "--data-dir", str(backfilled), "--out", str(again)])
    assert res.exit_code == 0 and "saved state" in res.output
    assert pl.read_parquet(again).equals(pl.read_parquet(part))
    res = runner.invoke(app, ["state", "import", "--data-dir", str(backfilled), "--in", str(out)])  # merge: all
    assert res.exit_code == 0 and f"{full.height} tickers" in res.output
    recomputed = tmp_path / "recomputed.parquet"
    res = runner.invoke(app, ["state", "export", "--data-dir", str(backfilled), "--out", str(recomputed),
                              "--recompute"])
    assert res.exit_code == 0 and pl.read_parquet(recomputed).height == full.height


def test_state_commands_name_bad_arguments(backfilled: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["state", "export", "--data-dir", str(tmp_path / "nothing"), "--out", "x.parquet"])
    assert res.exit_code != 0 and "no DuckDB file" in str(res.exception)
    res = runner.invoke(app, ["state", "export", "--data-dir", str(backfilled), "--table", "bars_5m",
                              "--out", str(tmp_path / "x.parquet")])
    assert res.exit_code != 0 and "bars_5m" in str(res.exception)
    res = runner.invoke(app, ["state", "import", "--data-dir", str(backfilled), "--in", str(tmp_path / "no.parquet")])
    assert res.exit_code != 0 and "no.parquet" in str(res.exception)
    (tmp_path / "junk.parquet").write_text("not parquet")
    res = runner.invoke(app, ["state", "import", "--data-dir", str(backfilled), "--in", str(tmp_path / "junk.parquet")])
    assert res.exit_code != 0 and "junk.parquet" in str(res.exception)
