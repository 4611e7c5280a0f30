"""What a `--db` value means, decided in one place for every command (run, live, state, sql, ui, db).

None is the data dir's Parquet lake (`lake:///<data-dir>`, the embedded default); a value without `://` is a
DuckDB file; otherwise the scheme says: `lake://`, `duckdb://`, `postgresql[+driver]://` (or `postgres://`).
Paths in URLs read as SQLAlchemy reads sqlite URLs: `duckdb:///rel.duckdb` is relative to the working
directory, `duckdb:////abs.duckdb` absolute. Only the text is read, never a file: whether a DuckDB file is the
lake's catalogue, or a lake's catalogue holds an earlier colfill's native tables, is for the opener to look at.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from colfill.config import redact
from colfill.errors import InvalidArgument

Kind = Literal["lake", "duckdb", "postgres"]
KINDS: dict[str, Kind] = {"lake": "lake", "duckdb": "duckdb", "postgresql": "postgres", "postgres": "postgres"}


@dataclass(frozen=True)
class StoreTarget:
    """A store named by `--db`: its kind, the URL its backend opens, and the path of an embedded one."""

    kind: Kind
    url: str  # what the backend is opened with (a PostgreSQL URL as given: driver, schema and password kept)
    path: Path | None  # the lake's data dir, or the DuckDB file; None for PostgreSQL

    @property
    def display(self) -> str:
        """The URL for people: never a password."""
        return redact(self.url)


def lake_at(data_dir: Path) -> StoreTarget:
    """The lake in `data_dir` (made absolute, so a worker in another directory finds it too)."""
    path = _absolute(data_dir)
    return StoreTarget("lake", f"lake:///{path.as_posix()}", path)


def duckdb_at(path: Path) -> StoreTarget:
    """The native DuckDB file at `path` (made absolute)."""
    path = _absolute(path)
    return StoreTarget("duckdb", f"duckdb:///{path.as_posix()}", path)


def resolve(url: str | None, data_dir: Path) -> StoreTarget:
    """The store `--db url` names; `data_dir` is where the default lake lives.

    >>> resolve("postgresql+psycopg://me:pw@db/prices?schema=bars", Path("/srv")).display
    'postgresql+psycopg://me:***@db/prices?schema=bars'
    >>> resolve("duckdb:////srv/x.duckdb", Path("/srv")).path
    PosixPath('/srv/x.duckdb')
    >>> resolve(None, Path("/srv/colfill-data")).url
    'lake:////srv/colfill-data'
    """
    if not url:
        return lake_at(data_dir)
    if "://" not in url:
        return duckdb_at(Path(url))
    scheme = urlsplit(url).scheme.split("+")[0]
    kind = KINDS.get(scheme)
    if kind is None:
        raise InvalidArgument(f"--db {redact(url)!r}: unknown store scheme {scheme!r}. Hint: a DuckDB path or "
                              "duckdb:///path, lake:///data-dir, or postgresql://user@host/db")
    if kind == "postgres":
        return StoreTarget(kind, url, None)
    path = url_path(url)
    if not path.parts:
        raise InvalidArgument(f"--db {redact(url)!r}: no path. Hint: e.g. lake:///colfill-data or "
                              "duckdb:///colfill-data/store.duckdb")
    return StoreTarget(kind, url, path)


def url_path(url: str) -> Path:
    """The path of a `lake://` or `duckdb://` URL: after `scheme://`, one slash opens the path."""
    path = urlsplit(url).path
    return Path(path[1:] if path.startswith("/") else path)


def _absolute(path: Path) -> Path:
    """Absolute without touching the file system (no symlink resolved): `~` expanded, `..` folded."""
    return Path(os.path.abspath(path.expanduser()))
