"""Split-adjusted views in PostgreSQL follow the same definition as the embedded stores' (colfill.adjust)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from colfill.indicators.spec import IndicatorSet
from colfill.pipeline import BackfillJob, run
from colfill.stores.postgres import PostgresStore
from tests.pipeline.adjusted import END, START, add_dividends, add_splits, dividend_factor, expected, sample
from tests.postgres.conftest import Db

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample(tmp_path_factory)


def frames(db: Db, table: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    cols = [r[0] for r in db.rows("SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
                                  "AND table_name = %s ORDER BY ordinal_position", [db.schema, table])]
    raw = pl.DataFrame(db.rows(f"SELECT * FROM {db.rel(table)} ORDER BY ticker, ts"), schema=cols, orient="row")
    adj = pl.DataFrame(db.rows(f"SELECT * FROM {db.rel(table + '_adjusted')} ORDER BY ticker, ts"), schema=cols,
                       orient="row")
    assert adj.height == raw.height > 0
    return raw.with_columns(pl.col("ts").dt.convert_time_zone("UTC")), adj


def test_adjusted_views_follow_the_definition(src: Path, pg_url: str, tmp_path: Path) -> None:
    store = PostgresStore(pg_url, load_workers=1)
    try:
        job = BackfillJob(source=str(src), start=START, end=END, data_dir=tmp_path, indicators=IndicatorSet.default(),
                          timeframes=("1m", "1h", "1d:rth", "1d"))  # derived tables have their adjusted views too
        assert run(job, store).ok
    finally:
        store.close()
    add_splits(pg_url)
    db = Db(pg_url)
    try:
        for table in ("bars_1d", "bars_1m", "bars_1h", "bars_1d_rth"):
            raw, adj = frames(db, table)
            want = expected(raw)
            for c in ("open", "high", "low", "close", "volume", "rsi_14"):
                assert (adj[c] - want[c]).abs().max() <= 1e-12 * want[c].abs().max(), (table, c)  # type: ignore[operator]
            assert (adj["close"] != raw["close"]).any(), table  # the bars before a split are restated
        add_dividends(pg_url, dividends=True)
        store = PostgresStore(pg_url, load_workers=1)
        try:
            store.finish("bars_1d")  # keeps the choice
        finally:
            store.close()
        date = pl.col("ts").dt.convert_time_zone("America/New_York").dt.date().alias("d")
        daily = frames(db, "bars_1d")[0].with_columns(date)
        for table in ("bars_1d", "bars_1m"):
            raw, adj = frames(db, table)
            factors = pl.Series([dividend_factor(daily, t, d) for t, d in
                                 raw.with_columns(date).select("ticker", "d").iter_rows()])
            assert factors.min() < 0.999  # type: ignore[operator]
            want = expected(raw)
            for c in ("open", "high", "low", "close"):
                assert (adj[c] - want[c] * factors).abs().max() <= 1e-12 * want[c].abs().max(), (table, c)  # type: ignore[operator]
            assert (adj["volume"] - want["volume"]).abs().max() <= 1e-9  # type: ignore[operator]
    finally:
        db.con.close()
