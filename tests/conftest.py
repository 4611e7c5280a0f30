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
