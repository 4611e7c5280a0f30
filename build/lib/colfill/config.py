"""Settings from the environment, typed so that secrets print as ***.

Precedence is: command-line flag, then `COLFILL_*` variable, then the ecosystem's own variable
(`AWS_ACCESS_KEY_ID`, `POLYGON_API_KEY`/`MASSIVE_API_KEY`), then the default.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

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


SECRET_VARIABLES = ("COLFILL_S3_SECRET", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "POLYGON_API_KEY",
                    "MASSIVE_API_KEY", "COLFILL_API_KEY", "PGPASSWORD")
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@/\s]+@")


def scrub_secrets(text: str) -> str:
    """`text` with URL passwords and the values of the secret variables that are set replaced by ***."""
    text = _URL_PASSWORD.sub(r"\1***@", text)
    for name in SECRET_VARIABLES:
        value = os.environ.get(name)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return text
