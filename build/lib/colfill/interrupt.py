"""Clean stops on SIGINT and SIGTERM.

A scheduler's SIGTERM or a user's Ctrl-C must not leave half a day behind or exit 0. Long work (a
backfill) runs inside `graceful(stop)`: the first signal only sets `stop`, and the pipeline finishes the
days already in flight (their transactions commit), starts no new one, and returns; the command then
exits 130 (SIGINT) or 143 (SIGTERM). A second signal during that wait ends the process at once: every
commit is atomic, so what was in flight is simply redone by the next run. Outside such a scope a signal
raises `Interrupted` in the main thread, which the CLI's error boundary turns into the same exit codes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType

from colfill.errors import INTERRUPTED, TERMINATED, Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stop:
    """A stop request, shared between the signal handler and the threads that poll it between units of work."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signum: int | None = None

    def request(self, signum: int = signal.SIGINT) -> None:
        if self.signum is None:
            self.signum = signum
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    @property
    def exit_code(self) -> int:
        return TERMINATED if self.signum == signal.SIGTERM else INTERRUPTED

    @property
    def name(self) -> str:
        return "SIGTERM" if self.signum == signal.SIGTERM else "Ctrl-C"


_active: Stop | None = None
_announce: Callable[[str], None] | None = None


def _handler(signum: int, frame: FrameType | None) -> None:
    stop = _active
    if stop is None:
        raise Interrupted(signum)
    if not stop.is_set():
        stop.request(signum)
        if _announce is not None:
            _announce(f"{stop.name}: finishing the days in flight, then stopping "
                      "(press Ctrl-C again to stop at once)")
        return
    sys.stderr.write("stopped at once; days not committed are redone by the next run\n")
    sys.stderr.flush()
    os._exit(stop.exit_code)


def install() -> None:
    """Route SIGINT and SIGTERM through `_handler` (main thread only, as Python requires)."""
    if threading.current_thread() is threading.main_thread():
        for sig in SIGNALS:
            signal.signal(sig, _handler)


@contextlib.contextmanager
def graceful(stop: Stop, announce: Callable[[str], None] | None = None) -> Iterator[Stop]:
    """Within this scope the first signal sets `stop` instead of raising (see the module docstring)."""
    global _active, _announce
    previous = (_active, _announce)
    if threading.current_thread() is threading.main_thread():
        install()
        _active, _announce = stop, announce
    try:
        yield stop
    finally:
        _active, _announce = previous
