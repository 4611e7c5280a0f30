"""Exception types and the exit codes they end a command with.

The type decides two things: whether a failure is retried (`TransientError`: throttling, 5xx, dropped
connections; `TerminalError`: 403, bad schema, bad arguments) and which documented exit code the CLI
ends with (`EXIT_CODES`). Messages say what failed, show the offending value and end with a hint.
"""

from __future__ import annotations

# The documented exit codes of every `colfill` command (README and `colfill --help` show this table).
OK = 0
PARTIAL = 1  # a file failed or rows were rejected (the rest loaded), or a command failed
USAGE = 2  # bad usage or argument; nothing was changed
UNREACHABLE = 3  # a store or source cannot be reached, refuses us, or is busy with another run
NO_DATA = 4  # the source holds no file in the requested date range
INTERNAL = 70  # a bug in colfill (EX_SOFTWARE): --debug shows the traceback
INTERRUPTED = 130  # Ctrl-C (SIGINT), after a clean shutdown
TERMINATED = 143  # SIGTERM (what schedulers send), after a clean shutdown

EXIT_CODES: tuple[tuple[int, str], ...] = (
    (OK, "all good: everything asked for is loaded"),
    (PARTIAL, "a file failed or rows were rejected (the rest loaded), or a command failed"),
    (USAGE, "bad usage or argument; nothing was changed"),
    (UNREACHABLE, "a store or source is unreachable, refuses access, or is busy"),
    (NO_DATA, "no source file in the date range (the message names the dates held)"),
    (INTERNAL, "internal error (a bug): --debug shows the traceback"),
    (INTERRUPTED, "Ctrl-C: stopped cleanly, committed days kept; run again to continue"),
    (TERMINATED, "SIGTERM: stopped cleanly, committed days kept; run again to continue"),
)


class ColfillError(Exception):
    """Base of every error colfill raises on purpose; the CLI prints these without a traceback."""

    exit_code = PARTIAL


class TransientError(ColfillError):
    """Worth retrying: the same call may succeed later (a service is unreachable or throttling)."""

    exit_code = UNREACHABLE


class TerminalError(ColfillError):
    """Not worth retrying: something must change first."""


class InvalidArgument(TerminalError, ValueError):
    """A user-supplied argument is wrong; the message names it."""

    exit_code = USAGE


class NoData(TerminalError):
    """Nothing in the source matches the request (e.g. a date range outside the files)."""

    exit_code = NO_DATA


class SourceError(TerminalError):
    """A source object cannot be read (missing, forbidden, corrupt); the message names it."""


class SchemaMismatch(TerminalError):
    """An existing table or file has a schema we cannot load into; never fixed by dropping data."""


class StoreError(TerminalError):
    """The destination database refused a statement."""


class Unreachable(TerminalError):
    """A store or source cannot be reached or refuses access: a login, a permission, a host, a lock."""

    exit_code = UNREACHABLE


class StoreUnreachable(StoreError, Unreachable):
    """The destination database cannot be reached, refuses the login, or is in use by another run."""


class SourceUnreachable(SourceError, Unreachable):
    """The source as a whole cannot be reached or refuses access (not one bad file)."""


class MissingDependency(TerminalError, ImportError):
    """An optional backend's package is not installed; the message names the extra."""

    exit_code = USAGE


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived where no clean stop is possible; a BaseException, so nothing swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        import signal

        return TERMINATED if self.signum == signal.SIGTERM else INTERRUPTED
