"""Settings from the environment, typed so that secrets print as ***.

Precedence is: command-line flag, then `COLFILL_*` variable, then the ecosystem's own variable
(`AWS_ACCESS_KEY_ID`, `POLYGON_API_KEY`/`MASSIVE_API_KEY`), then the default.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

DEFAULT_S3_ENDPOINT = "https://files.massive.com"
DEFAULT_PREFIX = "us_stocks_sip"


class Secret:
    """A value that never shows itself in logs, reprs or tracebacks; `.reveal()` hands it to a client."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __bool__(self) -> bool:
        return bool(self._value)


def env(*names: str, default: str | None = None) -> str | None:
    """The first of `names` that is set and non-empty."""
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return default


def secret_env(*names: str) -> Secret | None:
    value = env(*names)
    return Secret(value) if value else None


@dataclass(frozen=True)
class S3Settings:
    """Where and how to reach the flat-files bucket (S3 keys from the Massive dashboard, not the API key)."""

    endpoint: str
    key_id: Secret | None
    secret: Secret | None

    @classmethod
    def from_env(cls, endpoint: str | None = None) -> S3Settings:
        return cls(
            endpoint=endpoint or env("COLFILL_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
            or DEFAULT_S3_ENDPOINT,
            key_id=secret_env("COLFILL_S3_KEY_ID", "AWS_ACCESS_KEY_ID"),
            secret=secret_env("COLFILL_S3_SECRET", "AWS_SECRET_ACCESS_KEY"),
        )

    def storage_options(self) -> dict[str, object]:
        opts: dict[str, object] = {
            "endpoint_url": self.endpoint,
            "client_kwargs": {"region_name": "us-east-1"},
            "config_kwargs": {"signature_version": "s3v4"},
        }
        if self.key_id and self.secret:
            opts["key"] = self.key_id.reveal()
            opts["secret"] = self.secret.reveal()
        else:
            opts["anon"] = True
        return opts


API_KEY_VARIABLES = ("POLYGON_API_KEY", "MASSIVE_API_KEY")  # the REST and WebSocket key, the first set wins
SECRET_VARIABLES = ("COLFILL_S3_SECRET", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", *API_KEY_VARIABLES,
                    "COLFILL_API_KEY", "PGPASSWORD")
# user:PASSWORD@ of a URL; the password runs to the last @ of the authority (as urlsplit reads it), so a raw @ in it
# leaks nothing
_URL_PASSWORD = re.compile(r"(\w://[^:/?#@\s]*:)[^/?#\s]*@")
_KEY_VALUE = re.compile(r"\b(password|api_?key)=[^&\s'\"]+", re.IGNORECASE)  # a DSN's or a query string's


def api_key(flag: str | None = None) -> Secret | None:
    """The API key of the REST API and the WebSocket feed: the --api-key flag, else the first variable set."""
    return Secret(flag) if flag else secret_env(*API_KEY_VARIABLES)


def url_secrets(url: str) -> tuple[str, ...]:
    """The secrets in `url` as a library may echo them: the password raw and percent-decoded, and the values of
    `password=`/`apiKey=` query parameters."""
    parts = urlsplit(url)
    found = [parts.password, unquote(parts.password)] if parts.password else []
    found += [v for k, v in parse_qsl(parts.query) if _KEY_VALUE.fullmatch(f"{k}=x")]
    return tuple(s for s in found if s)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` for people: URL passwords, `password=`/`apiKey=`/`api_key=` values, the given `secrets` and the
    values of the secret variables that are set (those of at least 4 characters) replaced by ***.

    >>> redact("postgresql://me:pw@db/prices?sslmode=require&password=pw2 said pw", ["pw"])
    'postgresql://me:***@db/prices?sslmode=require&password=*** said ***'
    """
    text = _URL_PASSWORD.sub(r"\1***@", text)
    text = _KEY_VALUE.sub(lambda m: m.group(0)[: m.group(0).index("=") + 1] + "***", text)
    values = {*secrets, *(v for v in map(os.environ.get, SECRET_VARIABLES) if v and len(v) >= 4)}
    for value in sorted(values - {""}, key=len, reverse=True):  # the longest first: no tail of one left behind
        text = text.replace(value, "***")
    return text
