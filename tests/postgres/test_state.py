"""The live hand-off on PostgreSQL: state computed from the stored bars (keyset pages), saved and read back."""

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
from colfill.stores.postgres import PostgresStore
from tests.live.conftest import flat_bars

pytestmark = [pytest.mark.postgres]
runner = CliRunner()


def test_state_from_postgres_and_back(pg_url: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    generate(src, dt.date(2024, 3, 1), dt.date(2024, 3, 8), tickers=5, seed=4, minute_fill=0.2,
             datasets=("minute_aggs_v1",))
    res = runner.invoke(app, ["run", "--source", str(src), "--start", "2024-03-01", "--end", "2024-03-08",
                              "--data-dir", str(tmp_path / "data"), "--db", pg_url, "--skip-daily"])
    assert res.exit_code == 0, res.output
    with PostgresStore(pg_url) as store:  # small pages: the keyset pagination crosses tickers and days
        pages = list(store.read_bars("bars_1m", ["ticker", "ts", "close"], batch_rows=997))
    assert len(pages) > 3 and sum(p.num_rows for p in pages) == flat_bars(src).height
    keys = pl.concat([pl.from_arrow(p) for p in pages])  # type: ignore[misc]
    assert keys.select("ticker", "ts").is_duplicated().sum() == 0 and keys.equals(keys.sort("ticker", "ts"))

    out = tmp_path / "state.parquet"
    res = runner.invoke(app, ["state", "export", "--store", pg_url, "--out", str(out)])
    assert res.exit_code == 0, res.output
    _, want = enrich(flat_bars(src), IndicatorSet.default())
    got = pl.read_parquet(out).sort("ticker")
    assert got["n"].to_list() == want.sort("ticker")["n"].to_list()
    assert got["closes"].to_list() == want.sort("ticker")["closes"].to_list()

    res = runner.invoke(app, ["state", "import", "--store", pg_url, "--in", str(out)])
    assert res.exit_code == 0, res.output
    proc = IncrementalIndicatorProcessor.from_store(pg_url)
    assert proc.export_state().drop("last_ts").equals(got.drop("last_ts"))
    assert (proc.export_state()["last_ts"].dt.epoch("us") == got["last_ts"].dt.epoch("us")).all()
