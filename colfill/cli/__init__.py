"""Command line: `colfill run | demo | sample | sql`, and the `db` and `state` groups.

`main` is the one error boundary of the installed `colfill` command, and the only place that decides
exit codes (`colfill.errors.EXIT_CODES`): a short red message for expected failures, Click's own usage
message for bad usage, one line for an interrupt. `--debug` (or COLFILL_DEBUG=1) shows tracebacks.
"""

from __future__ import annotations

import os
import sys

import typer

from colfill.cli import db, state
from colfill.cli.bridge import bridge
from colfill.cli.live import live
from colfill.cli.run import demo, run, sample
from colfill.cli.sql import sql
from colfill.cli.tail import tail
from colfill.cli.ui import ui
from colfill.errors import EXIT_CODES


def _exit_code_help() -> str:
    rows = "\n\n".join(f"{code:>3}  {meaning}" for code, meaning in EXIT_CODES)
    return f"Exit codes:\n\n{rows}"


app = typer.Typer(
    name="colfill",
    help="Backfill US stock bars (Polygon/Massive flat files) with exact technical indicators into a Parquet lake "
    "with a DuckDB catalogue (the default), DuckDB, "
    "PostgreSQL or TimescaleDB. Start with `colfill demo`.",
    epilog=_exit_code_help(),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command()(run)
app.command()(demo)
app.command()(live)
app.command()(sample)
app.command()(sql)
app.command()(tail)
app.command()(bridge)
app.command()(ui)
app.add_typer(db.app, name="db", help="PostgreSQL/TimescaleDB schema and status.")
app.add_typer(state.app, name="state", help="Export and import the indicator state (live engine hand-off).")


def _is_usage_error(exc: BaseException) -> bool:
    """Click's exceptions, wherever the installed typer keeps Click (`click` or its vendored `typer._click`):
    recognised by the class name and the `show`/`exit_code` protocol they all share, not by import path."""
    return (any(c.__name__ == "ClickException" for c in type(exc).__mro__)
            and callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int))


def _is_abort(exc: BaseException) -> bool:
    return any(c.__name__ == "Abort" for c in type(exc).__mro__) and type(exc).__module__.endswith("exceptions")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `colfill` console script; exits with a documented code, never a stray traceback."""
    from colfill import errors, interrupt

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("COLFILL_DEBUG") == "1"
    args = [a for a in args if a != "--debug"]
    interrupt.install()
    err = _Stderr()
    try:
        code = app(args=args, prog_name="colfill", standalone_mode=False)
    except errors.ColfillError as exc:
        if debug:
            raise
        from colfill.config import redact

        err.error("error", redact(str(exc)))
        code = exc.exit_code
    except errors.Interrupted as exc:
        err.print("interrupted", highlight=False)
        code = exc.exit_code
    except KeyboardInterrupt:
        err.print("interrupted", highlight=False)
        code = errors.INTERRUPTED
    except Exception as exc:
        cause = exc.__cause__ or exc.__context__
        if _is_usage_error(exc):
            exc.show()  # type: ignore[attr-defined]
            code = exc.exit_code  # type: ignore[attr-defined]
        elif _is_abort(exc):
            err.print("interrupted", highlight=False)
            code = cause.exit_code if isinstance(cause, errors.Interrupted) else errors.INTERRUPTED
        elif debug:
            raise
        else:
            from colfill.config import redact

            err.error("internal error", f"{type(exc).__name__}: {redact(str(exc))[:500]}")
            err.print("Hint: this is a bug in colfill; run again with --debug for the traceback and report it.",
                      highlight=False)
            code = errors.INTERNAL
    sys.exit(code if isinstance(code, int) else errors.OK)


class _Stderr:
    """The error console, made only when there is something to print (keeps `--help` start-up light)."""

    def print(self, message: str, **kwargs: object) -> None:
        from colfill.cli.output import console

        console(stderr=True).print(message, markup=False, **kwargs)  # type: ignore[arg-type]

    def error(self, label: str, message: str) -> None:
        """`label:` in bold red, then the message as plain text (brackets in it are not markup)."""
        from rich.text import Text

        from colfill.cli.output import console

        console(stderr=True).print(Text.assemble((f"{label}: ", "bold red"), message), soft_wrap=True)
