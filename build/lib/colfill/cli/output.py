"""Rich progress and the end-of-run summary (the only place that draws on the terminal)."""

from __future__ import annotations

import time
from types import TracebackType
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from colfill.pipeline import RunResult


def console(stderr: bool = False) -> Console:
    """A Rich console; 120 columns when not a terminal (CI logs, pipes), so tables are not squeezed."""
    import os

    out = Console(stderr=stderr)
    if not out.is_terminal and not os.environ.get("COLUMNS"):
        out = Console(stderr=stderr, width=120)
    return out


class RichReporter:
    """Progress bar per table: days done, rows staged and rows/s."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]{task.fields[table]:<8}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("days"),
            TextColumn("{task.fields[rows]:>12,} rows"),
            TextColumn("{task.fields[rate]:>8.0f} rows/s"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[detail]}"),
            console=console,
            transient=False,
        )
        self.tasks: dict[str, tuple[TaskID, float, int]] = {}

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.progress.stop()

    def start(self, table: str, days: int) -> None:
        task = self.progress.add_task(table, total=days, table=table, rows=0, rate=0.0, detail="")
        self.tasks[table] = (task, time.perf_counter(), 0)

    def advance(self, table: str, rows: int, detail: str = "") -> None:
        task, t0, total = self.tasks[table]
        total += rows
        self.tasks[table] = (task, t0, total)
        rate = total / max(time.perf_counter() - t0, 1e-9)
        self.progress.update(task, advance=1, rows=total, rate=rate, detail=detail)

    def note(self, message: str) -> None:
        self.progress.console.print(message, highlight=False)


def summary(console: Console, result: RunResult, seconds: float) -> None:
    table = Table(title=f"colfill run → {result.store}", title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("table", "files", "staged", "skipped", "failed", "rows", "rejected", "loaded", "rows/s"):
        table.add_column(col, justify="left" if col == "table" else "right", no_wrap=True)
    for t in result.tables:
        rate = t.rows_out / t.seconds if t.seconds and t.rows_out else 0
        table.add_row(t.table, str(t.files), str(t.staged), str(t.skipped), str(t.failed), f"{t.rows_out:,}",
                      f"{t.rejected:,}", f"{t.loaded_rows:,}", f"{rate:,.0f}")
    console.print(table)
    console.print(f"lake: {result.lake}   time: {seconds:.1f} s", highlight=False)
    if result.reference:
        console.print("  reference data: " + ", ".join(f"{n:,} {t}" for t, n in result.reference.items()),
                      highlight=False)
    for line in result.reference_errors:
        console.print(f"  [red]not loaded[/] {line}", highlight=False, soft_wrap=True)
    for line in (n for t in result.tables for n in t.notes):
        console.print(f"  {line}", highlight=False, soft_wrap=True)
    problems = [e for t in result.tables for e in t.errors]
    if problems:
        console.print(f"[bold red]{len(problems)} problem(s):[/]")
        for line in problems[:20]:
            console.print(f"  [red]•[/] {line}", highlight=False, soft_wrap=True)
        if len(problems) > 20:
            console.print(f"  … and {len(problems) - 20} more")
