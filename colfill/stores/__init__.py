"""Stores by URL scheme: `lake:///data-dir` (the embedded default: the Parquet lake with a DuckDB catalogue),
`duckdb:///path/file.duckdb` (native DuckDB tables) or `postgresql://...`."""

from __future__ import annotations

import importlib
from pathlib import Path
from urllib.parse import urlsplit

from colfill.bars import BAR_TABLES
from colfill.errors import InvalidArgument
from colfill.stores.base import LoadBatch, Store

__all__ = ["BAR_TABLES", "LoadBatch", "Store", "open_store", "redact_url"]

# scheme -> (module, factory function); modules are imported only when used.
REGISTRY: dict[str, tuple[str, str]] = {
    "lake": ("colfill.stores.lake", "LakeStore"),
    "duckdb": ("colfill.stores.duckdb", "DuckDBStore"),
    "postgresql": ("colfill.stores.postgres", "PostgresStore"),
    "postgres": ("colfill.stores.postgres", "PostgresStore"),
}


def redact_url(url: str) -> str:
    """The URL with any password replaced by ***, for logs, errors and progress output."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def resolve_url(url: str | None, data_dir: Path) -> str:
    """A store URL from --db: None means the data dir's lake (the embedded default); a bare path means DuckDB."""
    if not url:
        return f"lake:///{data_dir.resolve().as_posix()}"
    if "://" not in url:
        return f"duckdb:///{Path(url).expanduser().resolve()}"
    return url


def open_store(url: str, **options: object) -> Store:
    """Open the store for `url`; options are passed to the backend (e.g. load_workers for PostgreSQL)."""
    scheme = urlsplit(url).scheme.split("+")[0]
    if scheme not in REGISTRY:
        raise InvalidArgument(
            f"--db {redact_url(url)!r}: unknown store scheme {scheme!r}. "
            "Hint: use a DuckDB path or duckdb:///path, or postgresql://user@host/db"
        )
    notices = []
    if scheme == "lake":
        from colfill.stores.lake import CATALOGUE, lake_dir, native_tables

        catalogue = lake_dir(url) / CATALOGUE
        tables = native_tables(catalogue)
        if tables:  # an earlier colfill's embedded store: keep loading into it, never drop it
            scheme, url = "duckdb", f"duckdb:///{catalogue.resolve()}"
            notices.append(f"{catalogue} holds native DuckDB tables ({', '.join(tables)}) from an earlier colfill: "
                           "loading into them. Hint: move that file away to make the Parquet lake the store "
                           "(each bar kept once), or pass --db duckdb:///... to keep this on purpose.")
    elif scheme == "duckdb":
        from colfill.stores.duckdb import duckdb_path
        from colfill.stores.lake import is_catalogue

        path = duckdb_path(url)
        if is_catalogue(path):  # the lake's catalogue: its views are the lake's
            scheme, url = "lake", f"lake:///{path.resolve().parent.as_posix()}"
    module, name = REGISTRY[scheme]
    factory = getattr(importlib.import_module(module), name)
    store: Store = factory(url, **options)
    if notices:
        store.notices = [*getattr(store, "notices", []), *notices]  # type: ignore[attr-defined]
    return store
