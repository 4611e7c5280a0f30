"""Split-adjusted views in PostgreSQL follow the same definition as the embedded stores' (colfill.adjust)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from colfill.indicators.spec import IndicatorSet
from colfill.pipeline import BackfillJob, run
from colfill.stores.postgres import PostgresStore
from tests.pipeline.test_adjusted import END, START, add_splits, expected, src  # noqa: F401 - src is a fixture
from tests.postgres.conftest import Db

pytestmark = pytest.mark.postgres


def test_adjusted_views_follow_the_definition(src: Path, pg_url: str, tmp_path: Path) -> None:  # noqa: F811
    store = PostgresStore(pg_url, load_workers=1)
    try:
        job = BackfillJob(source=str(src), start=START, end=END, data_dir=tmp_path, indicators=IndicatorSet.default())
        assert run(job, store).ok
    finally:
        store.close()
    add_splits(pg_url)
    db = Db(pg_url)
    try:
        for table in ("bars_1d", "bars_1m"):
            cols = [r[0] for r in db.rows("SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
                                          "AND table_name = %s ORDER BY ordinal_position", [db.schema, table])]
            raw = pl.DataFrame(db.rows(f"SELECT * FROM {db.rel(table)} ORDER BY ticker, ts"), schema=cols, orient="row")
            adj = pl.DataFrame(db.rows(f"SELECT * FROM {db.rel(table + '_adjusted')} ORDER BY ticker, ts"), schema=cols,
                               orient="row")
            assert adj.height == raw.height > 0
            raw = raw.with_columns(pl.col("ts").dt.convert_time_zone("UTC"))
            want = expected(raw)
            for c in ("open", "high", "low", "close", "volume", "rsi_14"):
                assert (adj[c] - want[c]).abs().max() <= 1e-12 * want[c].abs().max(), (table, c)  # type: ignore[operator]
    finally:
        db.con.close()
