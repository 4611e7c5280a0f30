"""`colfill state export` and `colfill state import`: the indicator state a live session starts from."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from colfill.cli.options import DEFAULT_DATA_DIR, DataDir, DbOpt

app = typer.Typer(
    name="state",
    help="Export and import the indicator state: where each ticker's indicators stand after its last stored bar "
    "(the hand-off from a backfill to the live engine, IncrementalIndicatorProcessor).",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

IndicatorsOpt = Annotated[
    str | None,
    typer.Option(help="The indicator set, as for `colfill run`, e.g. sma:10,ema:50,rsi:14,macd:12:26:9,bb:20:2,vwap "
                 "(state is tied to it). Default: the default set."),
]


@app.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", help="Parquet file to write the state table to.")],
    store: DbOpt = None,
    table: Annotated[str, typer.Option(help="bars_1m (timeframe 1m) or bars_1d (1d).")] = "bars_1m",
    indicators: IndicatorsOpt = None,
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
    recompute: Annotated[bool, typer.Option("--recompute", help="Compute from the stored bars even when the "
                                            "store's indicator_state holds this set's state.")] = False,
) -> None:
    """Write the state after the last stored bar of every ticker of TABLE, one row per ticker (the schema of
    colfill.indicators.state): the rows saved by `colfill state import` when the store's indicator_state has
    them for this timeframe and indicator set, else computed from the stored bars (exact: the batch engine
    over the whole history, read in slices so memory stays bounded)."""
    from colfill.cli.output import console as make_console
    from colfill.indicators.spec import IndicatorSet
    from colfill.live import stored_state
    from colfill.target import resolve

    console = make_console(stderr=True)
    ind = IndicatorSet.parse(indicators)
    timeframe = stored_state.timeframe_of(table)
    target = resolve(store, data_dir)
    db = stored_state.open_existing(target.url)
    try:
        saved = None if recompute else stored_state.saved_state(db, table, ind)
        others = {} if saved is not None or recompute else stored_state.saved_sets(db, timeframe)
        if saved is None:
            with console.status(f"computing the state of {table} from {target.display}"):
                state = stored_state.compute_state(db, table, ind)
        else:
            state = saved
    finally:
        db.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    state.write_parquet(out, compression="zstd")
    how = "saved state" if saved is not None else "computed from the stored bars"
    if others:
        how += f"; the saved {timeframe} state is for --indicators {', '.join(map(repr, others))}"
    console.print(f"wrote the state of {state.height:,} tickers ({table}, {how}) to {out}", highlight=False)


@app.command("import")
def import_(
    in_: Annotated[Path, typer.Option("--in", help="Parquet state table (from `colfill state export` or "
                                      "IncrementalIndicatorProcessor.export_state()).")],
    store: DbOpt = None,
    indicators: IndicatorsOpt = None,
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
    replace: Annotated[bool, typer.Option("--replace", help="Delete the timeframe's saved state first (needed "
                                          "when it was saved for another indicator set).")] = False,
) -> None:
    """Save a state table into the store's indicator_state table, one row per (ticker, timeframe), where the
    live engine (IncrementalIndicatorProcessor.from_store) and `colfill state export` find it. The file's
    tickers replace theirs; the others are kept (unless --replace)."""
    import polars as pl

    from colfill.cli.output import console as make_console
    from colfill.errors import InvalidArgument, SchemaMismatch
    from colfill.indicators.spec import IndicatorSet
    from colfill.live import handoff
    from colfill.target import resolve

    if not in_.exists():
        raise InvalidArgument(f"--in {in_}: no such file. Hint: write one with `colfill state export --out`.")
    try:
        state = pl.read_parquet(in_)
    except Exception as exc:
        raise InvalidArgument(f"--in {in_}: not a readable Parquet state table ({exc})") from None
    ind = IndicatorSet.parse(indicators)
    target = resolve(store, data_dir)
    try:
        written = handoff.save_state(target.url, state, ind, replace=replace)
    except SchemaMismatch as exc:
        raise SchemaMismatch(f"--in {in_}: {exc}") from None
    parts = ", ".join(f"{rows:,} tickers for {tf}" for tf, rows in written.items()) or "no tickers"
    make_console(stderr=True).print(f"saved the state of {parts} into indicator_state of {target.display}",
                               highlight=False)
