"""Stores by URL scheme: `duckdb:///path/colfill.duckdb` (the embedded default) or `postgresql://...`."""

from __future__ import annotations

import importlib
from pathlib import Path
from urllib.parse import urlsplit

from colfill.errors import InvalidArgument
from colfill.stores.base import BAR_TABLES, LoadBatch, Store

__all__ = ["BAR_TABLES", "LoadBatch", "Store", "open_store", "redact_url"]

# scheme -> (module, factory function); modules are imported only when used.
REGISTRY: dict[str, tuple[str, str]] = {
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
    """A store URL from --db: None means the embedded DuckDB file in the data dir; a bare path means DuckDB."""
    if not url:
        return f"duckdb:///{(data_dir / 'colfill.duckdb').resolve()}"
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
    module, name = REGISTRY[scheme]
    factory = getattr(importlib.import_module(module), name)
    store: Store = factory(url, **options)
    return store
