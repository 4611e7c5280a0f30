"""Shared fixtures: sample flat files and service URLs.

Services come from `make test` (scripts/services.sh writes their URLs); under CI=true a missing
service fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest


def need_service(name: str, reason: str) -> None:
    """Fail under CI, skip elsewhere: a service the test needs is not there."""
    message = f"{name} is not available: {reason}. Run `make test` (it starts PostgreSQL, Redis and Kafka)."
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The redis-server of COLFILL_TEST_REDIS_URL (started by `make test`), checked reachable."""
    url = os.environ.get("COLFILL_TEST_REDIS_URL")
    if not url:
        need_service("Redis", "COLFILL_TEST_REDIS_URL is not set")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except Exception as exc:
        need_service("Redis", f"cannot reach COLFILL_TEST_REDIS_URL: {exc}")
    return url  # type: ignore[return-value]


@pytest.fixture(scope="session")
def kafka_url() -> str:
    """The Kafka broker of COLFILL_TEST_KAFKA_URL (kafka://host:port, a Tansu started by `make test`), checked
    reachable."""
    url = os.environ.get("COLFILL_TEST_KAFKA_URL")
    if not url:
        need_service("Kafka", "COLFILL_TEST_KAFKA_URL is not set")
    pytest.importorskip("confluent_kafka")
    from confluent_kafka.admin import AdminClient

    try:
        AdminClient({"bootstrap.servers": url.removeprefix("kafka://")}).list_topics(timeout=5)  # type: ignore[union-attr]
    except Exception as exc:
        need_service("Kafka", f"cannot reach COLFILL_TEST_KAFKA_URL: {exc}")
    return url  # type: ignore[return-value]


# -- PostgreSQL ---------------------------------------------------------------------------------------------

PG_ENV = "COLFILL_TEST_PG_URL"


def with_query(url: str, **params: str) -> str:
    """`url` with query parameters set (replacing ones of the same name)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query += list(params.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query, safe="/:"), ""))


def with_database(url: str, name: str) -> str:
    """`url` naming database `name` instead of its own."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))


def schema_of(url: str) -> str:
    return dict(parse_qsl(urlsplit(url).query))["schema"]


def plain_url(url: str) -> str:
    """The URL libpq/psycopg understand: without colfill's `schema=` and `+driver`."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "schema"]
    return urlunsplit((parts.scheme.split("+")[0], parts.netloc, parts.path, urlencode(query, safe="/:"), ""))


def drop_schema(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(plain_url(url), autocommit=True) as con:
        con.execute('DROP SCHEMA IF EXISTS "{}" CASCADE'.format(schema.replace('"', '""')))


def timescale_loaded(url: str) -> bool:
    """TimescaleDB usable on the server: installed and loaded by shared_preload_libraries (its own, non-placeholder
    settings exist only then)."""
    import psycopg

    with psycopg.connect(plain_url(url)) as con:
        return bool(con.execute("SELECT count(*) FROM pg_settings WHERE name = 'timescaledb.max_background_workers'")
                    .fetchone()[0])  # type: ignore[index]


def create_database(server_url: str, prefix: str) -> str:
    """A new database on the server of `server_url`, made from template0 (so without any extension the server's
    template1 may carry); its URL."""
    import psycopg

    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(plain_url(server_url), autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    return with_database(server_url, name)


def drop_database(url: str) -> None:
    """Drop the database `url` names, ending its connections, from the server's `postgres` database."""
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(plain_url(with_database(url, "postgres")), autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def scratch_database(server_url: str, prefix: str) -> Iterator[str]:
    """`create_database` for the length of a block."""
    url = create_database(server_url, prefix)
    try:
        yield url
    finally:
        drop_database(url)


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A database of the session's own on the server of COLFILL_TEST_PG_URL, dropped at the end.

    Its own, made from template0, so the plain-PostgreSQL tests find plain tables whatever the server has (a
    server with TimescaleDB preloaded included: the extension is per database, and no test enables it here) and
    nothing a run creates outlives it. A role that may not create databases uses the URL's database as it is.
    """
    url = os.environ.get(PG_ENV)
    if not url:
        need_service("PostgreSQL", f"{PG_ENV} is not set")
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=5).close()
    except Exception as exc:  # any failure to reach it is "not available"
        need_service("PostgreSQL", f"cannot connect with {PG_ENV}: {str(exc).strip()}")
    try:
        own = create_database(url, "colfill_test")  # type: ignore[arg-type]
    except psycopg.errors.InsufficientPrivilege:
        yield url  # type: ignore[misc]
        return
    try:
        yield own
    finally:
        drop_database(own)


@pytest.fixture
def pg_url(pg_server_url: str) -> Iterator[str]:
    """A URL with a fresh schema of its own; the schema is dropped after the test."""
    schema = f"colfill_test_{uuid.uuid4().hex[:12]}"
    yield with_query(pg_server_url, schema=schema)
    drop_schema(pg_server_url, schema)


@pytest.fixture(scope="session")
def ts_server() -> Iterator[str]:
    """A database of the session's own with TimescaleDB enabled in it, on COLFILL_TEST_TIMESCALE_URL's server (else
    COLFILL_TEST_PG_URL's, when it loads TimescaleDB), dropped at the end: the extension is per database, so the
    plain-PostgreSQL tests' database never gets it. Skips where no server has it (CI's PostgreSQL has none); a
    COLFILL_TEST_TIMESCALE_URL that is set but unreachable fails under CI=true."""
    import psycopg

    env = "COLFILL_TEST_TIMESCALE_URL"
    url = os.environ.get(env) or os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"no PostgreSQL to look for TimescaleDB on ({env} is not set)")
    try:
        psycopg.connect(plain_url(url), connect_timeout=5).close()
    except Exception as exc:
        if os.environ.get(env):
            need_service("TimescaleDB", f"cannot connect with {env}: {str(exc).strip()}")
        pytest.skip(f"cannot connect: {exc}")
    if not timescale_loaded(url):
        pytest.skip(f"TimescaleDB is not loaded on this server (CI has none; set {env})")
    with scratch_database(url, "colfill_ts") as own:
        with psycopg.connect(plain_url(own), autocommit=True) as con:
            con.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        yield own
