"""A real Ray cluster for the session: a head node (2 CPUs) and a second node process (1 CPU), on 127.0.0.1.

Started with Ray's own `cluster_utils.Cluster` (a GCS and one raylet per node, each a process of its own, as
`ray start --head` and `ray start --address` make them), once per test session, only when a test asks for it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from colfill.execute import open_executor
from colfill.pipeline import BackfillJob, run
from colfill.stores import open_store
from tests.conftest import need_service
from tests.pipeline.conftest import assert_frames_close

# Before ray is imported: nodes on loopback (Ray's single-machine mode), so no test traffic leaves 127.0.0.1.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

START, END = dt.date(2024, 3, 1), dt.date(2024, 3, 28)  # 19 trading days (Good Friday is 03-29)
MIDDLE = dt.date(2024, 3, 14)


def backfill(src: Path, data: Path, executor: str = "local", start: dt.date = START, end: dt.date = END, **kw: object):
    job = BackfillJob(source=str(src), start=start, end=end, data_dir=data)
    store = open_store(f"lake:///{data.resolve()}")
    runner = open_executor(executor, **kw)  # type: ignore[arg-type]
    try:
        return run(job, store, executor=runner)
    finally:
        runner.close()
        store.close()


@pytest.fixture(scope="session")
def ray_address() -> Iterator[str]:
    try:
        from ray.cluster_utils import Cluster
    except ImportError:
        need_service("Ray", "ray is not installed (it is in the dev extra: pip install -e '.[dev]')")

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        yield cluster.address
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()


@pytest.fixture(scope="session")
def flatfiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from colfill.sample import generate

    root = tmp_path_factory.mktemp("ray-flatfiles")
    generate(root, START, END, tickers=9, seed=5, minute_fill=0.15)
    return root


def lake_contents(data_dir: Path) -> dict[str, object]:
    """Every file of the lake by its path: Parquet as frames, manifest entries without their commit time."""
    out: dict[str, object] = {}
    lake = data_dir / "lake"
    for path in sorted(lake.rglob("*")):
        rel = path.relative_to(lake).as_posix()
        if path.suffix == ".parquet" and not path.name.startswith("."):
            out[rel] = pl.read_parquet(path)
        elif path.suffix == ".json":
            entry = json.loads(path.read_text())
            entry.pop("staged_at")
            out[rel] = entry
    return out


def assert_same_lake(a: Path, b: Path) -> None:
    x, y = lake_contents(a), lake_contents(b)
    assert sorted(x) == sorted(y)
    assert any(k.startswith("_state/") for k in x) and any(k.startswith("table=bars_1m/") for k in x)
    for key in x:
        if isinstance(x[key], pl.DataFrame):  # floats within 1e-12: where a row falls in Polars' SIMD lanes can
            assert_frames_close(x[key], y[key], rel=1e-12)  # type: ignore[arg-type]  # move a division by 1 ulp
        else:
            assert x[key] == y[key], key
