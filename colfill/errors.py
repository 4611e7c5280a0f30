"""Exception types: the type decides whether a failure is retried.

`TransientError` (throttling, 5xx, dropped connections) is retried with backoff; `TerminalError`
(403, bad schema, bad arguments) is not. Messages say what failed, show the offending value and
end with a hint.
"""

from __future__ import annotations


class ColfillError(Exception):
    """Base of every error colfill raises on purpose; the CLI prints these without a traceback."""

    exit_code = 1


class TransientError(ColfillError):
    """Worth retrying: the same call may succeed later."""


class TerminalError(ColfillError):
    """Not worth retrying: something must change first."""


class InvalidArgument(TerminalError, ValueError):
    """A user-supplied argument is wrong; the message names it."""

    exit_code = 2


class SourceError(TerminalError):
    """A source object cannot be read (missing, forbidden, corrupt); the message names it."""


class SchemaMismatch(TerminalError):
    """An existing table or file has a schema we cannot load into; never fixed by dropping data."""


class StoreError(TerminalError):
    """The destination database refused or could not be reached."""


class MissingDependency(TerminalError, ImportError):
    """An optional backend's package is not installed; the message names the extra."""
