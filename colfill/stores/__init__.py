"""Stores by URL scheme: `lake:///data-dir` (the embedded default: the Parquet lake with a DuckDB catalogue),
`duckdb:///path/file.duckdb` (native DuckDB tables) or `postgresql://...`."""

from __future__ import annotations

import importlib
from pathlib import Path

from colfill.bars import BAR_TABLES
from colfill.stores.base import LoadBatch, Store
from colfill.target import Kind, StoreTarget, duckdb_at, lake_at, resolve

__all__ = ["BAR_TABLES", "LoadBatch", "Store", "open_store"]

# kind (colfill.target) -> (module, factory function); modules are imported only when used.
REGISTRY: dict[Kind, tuple[str, str]] = {
    "lake": ("colfill.stores.lake", "LakeStore"),
    "duckdb": ("colfill.stores.duckdb", "DuckDBStore"),
    "postgres": ("colfill.stores.postgres", "PostgresStore"),
}


def open_store(target: StoreTarget | str, **options: object) -> Store:
    """Open the store `target` names (a URL is resolved first, see colfill.target); options are passed to the
    backend (e.g. load_workers for PostgreSQL)."""
    if isinstance(target, str):
        target = resolve(target, Path())
    notices = []
    if target.kind == "lake":
        from colfill.stores.lake import CATALOGUE, native_tables

        assert target.path is not None
        catalogue = target.path / CATALOGUE
        tables = native_tables(catalogue)
        if tables:  # an earlier colfill's embedded store: keep loading into it, never drop it
            target = duckdb_at(catalogue)
            notices.append(f"{catalogue} holds native DuckDB tables ({', '.join(tables)}) from an earlier colfill: "
                           "loading into them. Hint: move that file away to make the Parquet lake the store "
                           "(each bar kept once), or pass --db duckdb:///... to keep this on purpose.")
    elif target.kind == "duckdb":
        from colfill.stores.lake import is_catalogue

        assert target.path is not None
        if is_catalogue(target.path):  # the lake's catalogue: its views are the lake's
            target = lake_at(target.path.parent)
    module, name = REGISTRY[target.kind]
    factory = getattr(importlib.import_module(module), name)
    store: Store = factory(target.url, **options)
    if notices:
        store.notices = [*getattr(store, "notices", []), *notices]  # type: ignore[attr-defined]
    return store
