"""Shared fixtures: sample flat files and service URLs.

Services come from `make test` (scripts/services.sh writes their URLs); under CI=true a missing
service fails the test instead of skipping it.
"""

from __future__ import annotations

import os

import pytest


def need_service(name: str, reason: str) -> None:
    """Fail under CI, skip elsewhere: a service the test needs is not there."""
    message = f"{name} is not available: {reason}. Run `make test` (it starts PostgreSQL and Redis)."
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
