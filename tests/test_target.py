"""colfill.target.resolve: what every command makes of `--db`, read from the text alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from colfill.errors import InvalidArgument
from colfill.target import StoreTarget, resolve

DATA = Path("/srv/colfill-data")


@pytest.mark.parametrize(("db", "kind", "url", "path"), [
    (None, "lake", "lake:////srv/colfill-data", DATA),
    ("", "lake", "lake:////srv/colfill-data", DATA),
    ("/srv/x/store.duckdb", "duckdb", "duckdb:////srv/x/store.duckdb", Path("/srv/x/store.duckdb")),
    ("/srv/x/../y/store.duckdb", "duckdb", "duckdb:////srv/y/store.duckdb", Path("/srv/y/store.duckdb")),
    ("duckdb:////srv/x/store.duckdb?index=all", "duckdb", "duckdb:////srv/x/store.duckdb?index=all",
     Path("/srv/x/store.duckdb")),
    ("duckdb:///rel/store.duckdb", "duckdb", "duckdb:///rel/store.duckdb", Path("rel/store.duckdb")),
    ("lake:////srv/other", "lake", "lake:////srv/other", Path("/srv/other")),
    ("lake:///colfill-data", "lake", "lake:///colfill-data", Path("colfill-data")),
    ("postgresql://me:pw@db/prices?schema=bars", "postgres", "postgresql://me:pw@db/prices?schema=bars", None),
    ("postgresql+adbc://me@db/prices", "postgres", "postgresql+adbc://me@db/prices", None),
    ("postgres://db/prices", "postgres", "postgres://db/prices", None),
])
def test_resolve(db: str | None, kind: str, url: str, path: Path | None) -> None:
    assert resolve(db, DATA) == StoreTarget(kind, url, path)  # type: ignore[arg-type]


def test_relative_defaults_are_made_absolute_against_the_working_directory() -> None:
    assert resolve(None, Path("data")).path == Path.cwd() / "data"
    assert resolve("x.duckdb", DATA).url == f"duckdb:///{(Path.cwd() / 'x.duckdb').as_posix()}"
    assert resolve("~/x.duckdb", DATA).path == Path.home() / "x.duckdb"


def test_resolving_a_resolved_url_changes_nothing() -> None:
    for db in (None, "x.duckdb", "lake:///d", "postgresql://db/p"):
        once = resolve(db, DATA)
        assert resolve(once.url, Path("/elsewhere")) == once


def test_display_hides_the_password() -> None:
    assert resolve("postgresql://me:s3cret@db/p?password=s3cret2", DATA).display == (
        "postgresql://me:***@db/p?password=***")


@pytest.mark.parametrize(("db", "says"), [
    ("redis://me:s3cret@host/0", "unknown store scheme 'redis'"),
    ("sqlite:///x.db", "unknown store scheme 'sqlite'"),
    ("lake:///", "no path"),
    ("duckdb://", "no path"),
])
def test_bad_urls_are_refused_without_their_password(db: str, says: str) -> None:
    with pytest.raises(InvalidArgument, match=says) as err:
        resolve(db, DATA)
    assert "s3cret" not in str(err.value)
