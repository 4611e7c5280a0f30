"""Command line: `colfill run | demo | sample | sql`, and the `db` and `state` groups.

One error boundary (`main`) prints a short red message for expected failures and exits non-zero;
`--debug` (or COLFILL_DEBUG=1) shows the traceback instead.
"""

from __future__ import annotations

import os
import sys

import typer

from colfill.cli import db, state
from colfill.cli.run import demo, run, sample
from colfill.cli.sql import sql

app = typer.Typer(
    name="colfill",
    help="Backfill US stock bars (Polygon/Massive flat files) with exact technical indicators into DuckDB, "
    "PostgreSQL or TimescaleDB. Start with `colfill demo`.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command()(run)
app.command()(demo)
app.command()(sample)
app.command()(sql)
app.add_typer(db.app, name="db", help="PostgreSQL/TimescaleDB schema and status.")
app.add_typer(state.app, name="state", help="Export and import the indicator state (live engine hand-off).")


def main() -> None:
    """Entry point with the error boundary."""
    from colfill.errors import ColfillError

    debug = "--debug" in sys.argv or os.environ.get("COLFILL_DEBUG") == "1"
    if "--debug" in sys.argv:
        sys.argv.remove("--debug")
    try:
        app(standalone_mode=False)
    except ColfillError as exc:
        if debug:
            raise
        from rich.console import Console

        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
