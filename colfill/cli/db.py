"""`colfill db init` and `colfill db status`: the PostgreSQL/TimescaleDB schema, and what it holds."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from colfill.cli.options import DbOpt

if TYPE_CHECKING:
    from rich.console import Console

    from colfill.stores.postgres import PostgresStore, TableStatus

app = typer.Typer(
    name="db",
    help="PostgreSQL/TimescaleDB schema and status.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

TimescaleOpt = Annotated[
    bool | None,
    typer.Option("--timescale/--no-timescale", show_default=False,
                 help="Bars tables as TimescaleDB hypertables: --timescale creates the extension when the server "
                 "has it, --no-timescale makes plain tables. Default: hypertables when the extension exists."),
]
CreateDbOpt = Annotated[bool, typer.Option("--create-db", help="Create the database if it does not exist.")]


def _open(db: str | None, timescale: bool | None = None, create_db: bool = False) -> PostgresStore:
    from colfill.errors import InvalidArgument
    from colfill.target import resolve

    if not db:
        raise InvalidArgument("--db (or COLFILL_DB_URL) is needed. Hint: --db postgresql://user@host/dbname")
    target = resolve(db, Path())
    if target.kind != "postgres":
        raise InvalidArgument(
            f"--db {target.display!r}: `colfill db` manages PostgreSQL/TimescaleDB (postgresql://...). "
            "Hint: the embedded store needs no init; query it with `colfill sql`."
        )
    from colfill.stores.postgres import PostgresStore

    return PostgresStore(target.url, load_workers=1, timescale=timescale, create_db=create_db)


@app.command()
def init(
    db: DbOpt = None,
    timescale: TimescaleOpt = None,
    create_db: CreateDbOpt = False,
    indicators: Annotated[
        str | None,
        typer.Option(help="Indicator columns of the bars tables, as for `colfill run` (default set when omitted). "
                     "Missing columns are added to existing tables; none is ever dropped."),
    ] = None,
    daily_cagg: Annotated[
        bool,
        typer.Option("--daily-cagg", help="Also create bars_1d_cagg, a TimescaleDB continuous aggregate of New "
                     "York day bars (OHLCV) from bars_1m."),
    ] = False,
) -> None:
    """Create the schema: bars_1m and bars_1d (key (ticker, ts)), tickers, splits, dividends, colfill_files.

    With TimescaleDB the bars tables are hypertables with compression (segment by ticker, order by ts) and a
    compression policy. Safe to rerun: existing tables are checked, never dropped.
    """
    from colfill.cli.output import console as make_console
    from colfill.indicators.spec import IndicatorSet

    columns = IndicatorSet.parse(indicators).columns
    console = make_console()
    store = _open(db, timescale, create_db)
    try:
        report = store.init(columns, daily_cagg=daily_cagg)
        for notice in report.notices:
            console.print(f"[yellow]notice:[/] {notice}", highlight=False, soft_wrap=True)
        kind = f"TimescaleDB {report.timescale_version} hypertables" if report.hypertables else "plain tables"
        console.print(f"colfill db init → {store.describe()}: schema {report.schema!r} ready ({kind})",
                      highlight=False, soft_wrap=True)
        _print_status(console, store.status())
    finally:
        store.close()


@app.command()
def status(db: DbOpt = None) -> None:
    """Per table: rows, time range, tickers, days loaded; for TimescaleDB, chunks and compression ratio."""
    from colfill.cli.output import console as make_console

    console = make_console()
    store = _open(db)
    try:
        console.print(f"colfill db status → {store.describe()}", highlight=False, soft_wrap=True)
        _print_status(console, store.status())
    finally:
        store.close()


def _print_status(console: Console, tables: list[TableStatus]) -> None:
    from rich import box
    from rich.table import Table

    from colfill.stores.base import human_bytes

    hyper = any(t.chunks is not None for t in tables)
    out = Table(box=box.SIMPLE_HEAD)
    columns = ["table", "kind", "rows", "first (UTC)", "last (UTC)", "tickers", "days", "size"]
    columns += ["compressed chunks", "ratio"] if hyper else []
    for col in columns:
        out.add_column(col, justify="left" if col in ("table", "kind") or "UTC" in col else "right")
    for t in tables:
        rows = "" if t.rows is None else f"{t.rows:,}" if t.rows_exact else f"~{t.rows:,}"
        tickers = _num(t.tickers) + (" (last day)" if t.tickers_last_day else "")
        cells = [t.table, t.kind, rows, _when(t.first_ts), _when(t.last_ts), tickers, _num(t.days),
                 human_bytes(t.size_bytes)]
        if hyper:
            cells += ["" if t.chunks is None else f"{t.compressed_chunks or 0}/{t.chunks}",
                      f"{t.compression_ratio:.1f}x" if t.compression_ratio else ""]
        out.add_row(*cells)
    console.print(out)
    for t in tables:
        if t.uniqueness:
            console.print(f"{t.table}: one row per (ticker, ts): {t.uniqueness}", highlight=False, soft_wrap=True)


def _when(ts: dt.datetime | None) -> str:
    return ts.strftime("%Y-%m-%d %H:%M") if ts else ""


def _num(n: int | None) -> str:
    return "" if n is None else f"{n:,}"
