"""colfill.config.redact: the one scrubber of everything colfill shows (errors, progress, the dashboard)."""

from __future__ import annotations

import pytest

from colfill.config import API_KEY_VARIABLES, SECRET_VARIABLES, redact, url_secrets


@pytest.mark.parametrize(("text", "secrets", "shown"), [
    ("postgresql://me:hunter2@db:5432/prices", (), "postgresql://me:***@db:5432/prices"),
    ("cannot reach redis://:hunter2@localhost:6379/0: refused", (),
     "cannot reach redis://:***@localhost:6379/0: refused"),
    ("postgresql://me:hun%40ter2@db/p", (), "postgresql://me:***@db/p"),
    ("postgresql://me:hun@ter2@db/p", (), "postgresql://me:***@db/p"),  # a raw @: the host is after the last one
    ("libpq: host=db user=me password=hunter2 dbname=p", (), "libpq: host=db user=me password=*** dbname=p"),
    ("postgresql://db/p?sslmode=require&password=hunter2&x=1", (), "postgresql://db/p?sslmode=require&password=***&x=1"),
    ("GET https://api.massive.com/v2/aggs?apiKey=hunter2&limit=5 -> 401", (),
     "GET https://api.massive.com/v2/aggs?apiKey=***&limit=5 -> 401"),
    ("GET /v2/aggs?api_key=hunter2 failed", (), "GET /v2/aggs?api_key=*** failed"),
    ("FATAL: password authentication failed for 'hun@ter2'", url_secrets("postgresql://me:hun%40ter2@db/p"),
     "FATAL: password authentication failed for '***'"),
    ("auth_failed: key hunter2 refused", ("hunter2",), "auth_failed: key *** refused"),
    ("tokens hunter2 and hunter2-long", ("hunter2", "hunter2-long"), "tokens *** and ***"),
    ("http://localhost:8080/x@y and me@example.com", (), "http://localhost:8080/x@y and me@example.com"),
    ("postgresql://me@db/p?sslmode=require", (), "postgresql://me@db/p?sslmode=require"),
])
def test_redact(text: str, secrets: tuple[str, ...], shown: str) -> None:
    assert redact(text, secrets) == shown


@pytest.mark.parametrize("name", SECRET_VARIABLES)
def test_the_values_of_secret_variables_are_removed(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(name, "hunter2-env")
    assert redact("OSError: bad key 'hunter2-env' (400)") == "OSError: bad key '***' (400)"


def test_short_variable_values_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", "a")  # replacing every "a" would garble the message, not protect anything
    assert redact("a table") == "a table"


def test_url_secrets_are_the_password_both_ways_and_secret_parameters() -> None:
    assert set(url_secrets("postgresql://me:p%40ss@db/p?password=x&apiKey=k&sslmode=require")) == {
        "p%40ss", "p@ss", "x", "k"}
    assert url_secrets("postgresql://me@db/p") == ()


def test_the_api_key_comes_from_one_place(monkeypatch: pytest.MonkeyPatch) -> None:
    from colfill.config import api_key

    for name in API_KEY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert api_key() is None
    monkeypatch.setenv("MASSIVE_API_KEY", "massive-key")
    assert api_key().reveal() == "massive-key"  # type: ignore[union-attr]
    monkeypatch.setenv("POLYGON_API_KEY", "polygon-key")
    assert api_key().reveal() == "polygon-key"  # type: ignore[union-attr]
    assert api_key("flag-key").reveal() == "flag-key"  # type: ignore[union-attr]
