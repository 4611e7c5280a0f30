"""Bad input at the connection: unreachable server, refused login, missing database (and --create-db); the
password never shows in any error text, whichever driver."""

from __future__ import annotations

import datetime as dt
import traceback
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest

from colfill.errors import StoreError
from colfill.stores.postgres import PostgresStore, parse_url
from tests.postgres.conftest import SECRET, batch, make_day, plain_url, with_password, with_query

pytestmark = pytest.mark.postgres

DAY = dt.date(2024, 3, 7)


def every_text(exc: BaseException) -> str:
    """All text an error could show: message, repr, the formatted traceback, and every exception chained to it
    (even a suppressed __context__)."""
    texts, seen = [], exc
    while seen is not None:
        texts += [str(seen), repr(seen), *traceback.format_exception(seen)]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(texts)


@pytest.mark.parametrize("driver", ["psycopg", "adbc"])
def test_unreachable_server_is_a_clear_error(driver: str) -> None:
    url = f"postgresql+{driver}://colfill:{SECRET}@127.0.0.1:1/colfill?connect_timeout=3"
    with pytest.raises(StoreError) as err:
        PostgresStore(url)
    text = every_text(err.value)
    assert "cannot connect to PostgreSQL at" in str(err.value) and "127.0.0.1" in str(err.value)
    assert "Hint: is the server running" in str(err.value)
    assert SECRET not in text and ":***@" in str(err.value)


@pytest.mark.parametrize("driver", ["psycopg", "adbc"])
def test_bad_credentials_are_a_clear_error(pg_url: str, driver: str) -> None:
    parts = urlsplit(plain_url(pg_url))
    host = parts.hostname or "127.0.0.1"  # a Unix-socket URL: the same server over TCP, where it asks passwords
    url = with_password(pg_url, SECRET, host=host, port=parts.port or 5432, user=f"nobody_{uuid.uuid4().hex[:6]}")
    url = with_query(url, host=host).replace("postgresql://", f"postgresql+{driver}://", 1)
    with pytest.raises(StoreError) as err:
        PostgresStore(url)
    if "refused the login" not in str(err.value):
        pytest.skip(f"the test server does not ask for passwords over TCP: {err.value}")
    assert "check the user and password" in str(err.value)
    assert SECRET not in every_text(err.value)


@pytest.mark.parametrize("driver", ["psycopg", "adbc"])
def test_missing_database_offers_create_db(pg_url: str, driver: str) -> None:
    name = f"colfill_missing_{uuid.uuid4().hex[:8]}"
    parts = urlsplit(pg_url.replace("postgresql://", f"postgresql+{driver}://", 1))
    url = urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))
    with pytest.raises(StoreError, match=rf"database '{name}' does not exist .* Hint: pass --create-db"):
        PostgresStore(url)
    import psycopg

    admin = plain_url(pg_url)
    try:
        with PostgresStore(url, create_db=True) as s:
            s.load(batch(make_day(DAY, ["AAPL"], seed=1), DAY))
        with PostgresStore(url, create_db=True) as s:  # exists now: nothing to create
            assert s.database == name
    finally:
        with psycopg.connect(admin, autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}"')


def test_password_never_in_errors_or_descriptions(pg_url: str) -> None:
    """A password in the URL (ignored by the local peer login) never reaches messages, whatever fails."""
    import pyarrow as pa

    url = with_password(pg_url, SECRET)
    with PostgresStore(url) as s:
        assert SECRET not in s.describe() and SECRET not in repr(s.target.display)
        day = make_day(DAY, ["AAPL", "MSFT"], seed=1)
        bad = day.set_column(0, "ticker", pa.array(day["ticker"].to_pylist()[:-1] + [None], pa.large_string()))
        with pytest.raises(StoreError) as err:
            s.load(batch(bad, DAY))
        assert SECRET not in every_text(err.value) and "***" in str(err.value)
    target = parse_url(with_query(pg_url, password=SECRET + "x"))  # libpq also takes ?password=
    assert SECRET not in target.display
    assert SECRET not in target.scrub(f"libpq said: {target.dsn} and {SECRET}x")
