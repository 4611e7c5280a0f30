"""A flat-files source whose read of one day waits to be killed: the victim of the worker-kill test.

Its first read of `victim` writes the worker's pid to `<marks>/pid` and sleeps; the test kills that process
(SIGKILL, from outside). Ray's retry of the task reads again, writes `<marks>/retry` and reads normally.
Sent to the workers by value (the test registers this module with Ray's cloudpickle), so they need not import it.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

from colfill.bars import ParsedFile, SourceObject
from colfill.sources.flatfiles import FlatFiles


class SlowFlatFiles(FlatFiles):
    def __init__(self, root: str, marks: Path, victim: dt.date) -> None:
        super().__init__(root)
        self.marks, self.victim = marks, victim

    def read(self, obj: SourceObject, tickers: tuple[str, ...] | None = None) -> ParsedFile:
        if obj.date == self.victim:
            pid = self.marks / "pid"
            if not pid.exists():
                pid.write_text(str(os.getpid()))
                time.sleep(60)  # killed long before this ends
            else:
                (self.marks / "retry").write_text(str(os.getpid()))
        return super().read(obj, tickers)
