from __future__ import annotations

import datetime as dt
import gzip
import os
import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest

from colfill.bars import CSV_SCHEMA
from colfill.indicators.spec import IndicatorSet
from colfill.pipeline import BackfillJob, run
from colfill.sample import generate
from colfill.stores import open_store

START = dt.date(2024, 3, 1)
END = dt.date(2024, 4, 30)  # 41 trading days, a month boundary and Good Friday (2024-03-29)
TICKERS = 8


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("flatfiles")
    generate(root, START, END, tickers=TICKERS, seed=11, minute_fill=0.15)
    return root


@pytest.fixture
def source(sample_root: Path, tmp_path: Path) -> Path:
    """A private copy of the sample files, safe to modify."""
    dst = tmp_path / "src"
    shutil.copytree(sample_root, dst)
    return dst


def files(root: Path, table: str) -> list[Path]:
    dataset = {"bars_1m": "minute_aggs_v1", "bars_1d": "day_aggs_v1"}[table]
    return sorted((root / "us_stocks_sip" / dataset).rglob("*.csv.gz"))


def read_source(root: Path, table: str, until: dt.date | None = None) -> pl.DataFrame:
    """Every row of the source files, read independently of colfill's reader."""
    frames = []
    for p in files(root, table):
        if until and dt.date.fromisoformat(p.name[:10]) > until:
            continue
        frames.append(pl.read_csv(gzip.decompress(p.read_bytes()), schema=CSV_SCHEMA, null_values=None))
    return pl.concat(frames)


STORE = "lake"  # the store `backfill` loads into: "lake" (the embedded default) or "duckdb" (native tables)


def store_url(data_dir: Path, query: str = "") -> str:
    if query or STORE == "duckdb":
        return f"duckdb:///{data_dir / 'colfill.duckdb'}{query}"
    return f"lake:///{data_dir.resolve()}"


def backfill(src: Path, data_dir: Path, start: dt.date = START, end: dt.date = END, query: str = "", **kw: object):
    job = BackfillJob(source=str(src), start=start, end=end, data_dir=data_dir,
                      indicators=kw.pop("indicators", IndicatorSet.default()), **kw)  # type: ignore[arg-type]
    store = open_store(store_url(data_dir, query))
    try:
        return run(job, store)
    finally:
        store.close()


def stored(data_dir: Path, table: str) -> pl.DataFrame:
    import duckdb

    con = duckdb.connect(str(data_dir / "colfill.duckdb"), read_only=True)
    try:
        return con.sql(f"SELECT * FROM {table} ORDER BY ticker, ts").pl()
    finally:
        con.close()


def assert_frames_close(a: pl.DataFrame, b: pl.DataFrame, rel: float = 1e-9) -> None:
    assert a.columns == b.columns
    assert a.height == b.height
    for col in a.columns:
        x, y = a[col], b[col]
        assert (x.is_null() == y.is_null()).all(), col
        if x.dtype.is_float():
            xv, yv = x.drop_nulls().to_numpy(), y.drop_nulls().to_numpy()
            import numpy as np

            assert np.allclose(xv, yv, rtol=rel, atol=1e-12), col
        else:
            assert x.equals(y), col


def primary_keys(data_dir: Path) -> dict[str, list[str]]:
    con = duckdb.connect(str(data_dir / "colfill.duckdb"), read_only=True)
    try:
        rows = con.sql("SELECT table_name, constraint_column_names FROM duckdb_constraints() "
                       "WHERE constraint_type = 'PRIMARY KEY' AND table_name LIKE 'bars_%'").fetchall()
    finally:
        con.close()
    return {t: list(c) for t, c in rows}


def rewrite(path: Path, change) -> None:  # type: ignore[no-untyped-def]
    frame = pl.read_csv(gzip.decompress(path.read_bytes()), schema=CSV_SCHEMA, null_values=None)
    path.write_bytes(gzip.compress(change(frame).write_csv().encode()))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
