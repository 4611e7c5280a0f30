"""`colfill live`: WebSocket minute bars -> incremental indicators -> the store -> the bus, until stopped."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from colfill.cli.options import DEFAULT_DATA_DIR, DataDir, DbOpt

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from colfill.live.engine import DataIngestionEngine
    from colfill.sources.live import LiveDataSource


def live(
    tickers: Annotated[str, typer.Option(help="Comma-separated tickers to follow, e.g. AAPL,MSFT (* for all).",
                                         show_default=False)],
    db: DbOpt = None,
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
    redis: Annotated[str | None, typer.Option("--redis", envvar="COLFILL_REDIS_URL", show_envvar=True,
                                              help="Publish enriched bars and the `live` status on this Redis, "
                                              "e.g. redis://localhost:6379/0 (default: in this process only).")]
    = None,
    bus: Annotated[str | None, typer.Option("--bus", envvar="COLFILL_BUS_URL", show_default=False,
                                            help="Publish on this bus instead: memory://, redis://host:6379/0 or "
                                            "kafka://host:9092[,host:9092] (topics colfill.bars.1m, colfill.status; "
                                            "`colfill bridge` carries them on to Redis).")] = None,
    ws_url: Annotated[str | None, typer.Option(help="WebSocket URL, else COLFILL_WS_URL, else "
                                               "wss://socket.massive.com/stocks (real time).")] = None,
    delayed: Annotated[bool, typer.Option("--delayed", help="The 15-minute delayed feed "
                                          "(wss://delayed.massive.com/stocks).")] = False,
    api_key: Annotated[str | None, typer.Option(help="API key (better: POLYGON_API_KEY or MASSIVE_API_KEY); never "
                                                "printed.", show_default=False)] = None,
    indicators: Annotated[str | None, typer.Option(help="Indicator set; must be the backfill's to continue it "
                                                   "(default: the backfill's default set).")] = None,
    batch_size: Annotated[int, typer.Option(help="The most bars in one micro-batch (one store transaction).")]
    = 10_000,
    flush_interval: Annotated[float, typer.Option(help="The longest a bar waits for more bars, in seconds; a batch "
                                                  "is flushed sooner as soon as no more frames are queued.")] = 1.0,
    publish_first: Annotated[bool, typer.Option("--publish-first", help="Publish each micro-batch before it is "
                                                "stored (a thread of its own stores it right after): the lowest "
                                                "latency on the bus; a crash may leave the last bars published "
                                                "but not stored. Default: stored, then published.")] = False,
    rest_url: Annotated[str | None, typer.Option(envvar="COLFILL_REST_URL", show_envvar=True,
                                                 help="REST host the gaps are filled from (default "
                                                 "https://api.massive.com).")] = None,
    rate: Annotated[str | None, typer.Option(envvar="COLFILL_REST_RATE", show_envvar=True,
                                             help="REST requests allowed for the fills, e.g. 100/s (the default) "
                                             "or 5/min.")] = None,
    no_gap_fill: Annotated[bool, typer.Option("--no-gap-fill", help="Do not fill from REST: neither the minutes "
                                              "since the last stored bar at start nor those missed while "
                                              "disconnected.")] = False,
    timeframes: Annotated[str, typer.Option(help="1m and the timeframes to roll it up into, e.g. 1m,5m,15m,1h "
                                            "or 5m:rth (regular session); each bucket's bar, with its own "
                                            "indicators, is stored in bars_{tf} and published on the bus when "
                                            "the bucket closes (docs/timeframes.md).")] = "1m",
) -> None:
    """Follow live minute bars: indicators continue the backfill's, rows are upserted into the store
    (bars_1m; a revised minute replaces its row) and published on the bus. Runs until Ctrl-C or SIGTERM,
    then flushes everything received and exits 0. Exit 3: the key is refused or another connection took over.
    At start, and after every reconnect, the minutes the stream did not bring are filled from REST.
    """
    from colfill import interrupt
    from colfill.bus import open_bus
    from colfill.cli.output import console
    from colfill.config import redact
    from colfill.errors import InvalidArgument
    from colfill.live.engine import DataIngestionEngine
    from colfill.live.gapfill import GapFiller
    from colfill.live.rollup import live_timeframes
    from colfill.sources.live import LiveDataSource, LiveSettings
    from colfill.sources.rest import RestApi, RestSettings
    from colfill.stores import open_store
    from colfill.target import resolve

    if bus and redis:
        raise InvalidArgument("give --bus or --redis (its short form), not both")
    bus_url = bus or redis
    if batch_size < 1 or flush_interval <= 0:
        raise InvalidArgument("--batch-size must be at least 1 and --flush-interval above 0")
    chosen = live_timeframes(timeframes)
    settings = LiveSettings.from_env(tickers, url=ws_url, api_key=api_key, delayed=delayed)
    rest = None if no_gap_fill else RestApi(RestSettings.from_env(url=rest_url, api_key=api_key, rate=rate))
    err = console(stderr=True)
    store = open_store(resolve(db, data_dir), load_workers=1)
    try:
        message_bus = open_bus(bus_url)
        try:
            engine = DataIngestionEngine(storage=store, message_bus=message_bus, batch_size=batch_size,
                                         flush_interval=flush_interval, indicators=indicators, track_last=True,
                                         write_behind=publish_first, timeframes=[tf.name for tf in chosen],
                                         gap_fill=GapFiller(rest, rest.settings.workers) if rest else None)
            source = LiveDataSource(settings)
            err.print(f"colfill live: {source.describe()} → {store.describe()}, bus "
                      f"{redact(bus_url) if bus_url else 'in-process'}, gaps filled from "
                      f"{rest.settings.url if rest else 'nowhere (--no-gap-fill)'}", highlight=False)
            engine.prepare(source.timeframe, settings.tickers)
            for notice in engine.notices:
                err.print(f"  {notice}", highlight=False)
            engine.notices.clear()
            stop = interrupt.Stop()
            started = time.time()
            with LiveTable(err, engine, source) as view, interrupt.graceful(stop, view.stopping):
                engine.ingest(source, mode="stream", stop=stop)
            saved = engine.save_state()
        finally:
            message_bus.close()
    finally:
        store.close()
        if rest is not None:
            rest.close()
    _summary(err, engine, source, time.time() - started, saved)
    raise typer.Exit(0)


def _summary(err: Console, engine: DataIngestionEngine, source: LiveDataSource, seconds: float, saved: int) -> None:
    s, h = engine.stats, source.health
    err.print(f"colfill live: {s.bars_in:,} bars received, {s.published:,} published, {s.stored:,} stored; "
              f"{s.duplicates:,} duplicates dropped, {s.revisions:,} revisions ({s.recomputed:,} later rows "
              f"recomputed), {s.late:,} late corrections not applied,"
              f" {s.rejected:,} older than the backfill, {s.invalid:,} invalid (see the log); "
              f"{h.reconnects} reconnects in {seconds:.0f} s; {s.fills} gap fills from REST: {s.filled:,} bars "
              f"inserted, {s.filled_revised:,} revised, {s.unfilled:,} tickers' gaps not filled",
              highlight=False, soft_wrap=True)
    if engine.rollup is not None:
        err.print(f"  {', '.join(tf.name for tf in engine.timeframes[1:])}: {s.derived:,} bars published (revisions "
                  f"included), {s.stored_derived:,} stored, {s.derived_late:,} late minutes not applied",
                  highlight=False, soft_wrap=True)
    if saved:
        err.print(f"  saved the indicator state of {saved:,} tickers (indicator_state), so the next run continues it",
                  highlight=False)


class LiveTable:
    """The Rich view: one row per ticker (last bar and indicators) under a line of rates and health.
    Redrawn twice a second on a terminal; elsewhere (logs, pipes) notices only, and the summary at the end."""

    def __init__(self, console: Console, engine: DataIngestionEngine, source: LiveDataSource) -> None:
        from rich.live import Live

        self.console, self.engine, self.source = console, engine, source
        engine.on_notice = self.notice
        self.live = Live(get_renderable=self.render, console=console, refresh_per_second=2, transient=False,
                         auto_refresh=console.is_terminal, redirect_stderr=False)

    def __enter__(self) -> LiveTable:
        self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.stop()
        if not self.console.is_terminal:
            self.console.line()  # the last drawing ends without one

    def notice(self, message: str) -> None:
        self.live.console.print(f"  {message}", highlight=False, soft_wrap=True)

    def stopping(self, _: str) -> None:
        self.console.print("stopping: flushing every bar received, then exiting (Ctrl-C again stops at once)",
                           highlight=False)

    def render(self) -> RenderableType:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        engine, health = self.engine, self.source.health
        s = engine.stats
        state = "[green]connected[/]" if health.connected else "[yellow]connecting[/]"
        head = Text.from_markup(
            f"{state}  bars {s.published:,}  {s.bars_per_s():,.0f} bars/s  lag {_span(s.lag_ms / 1000)} behind the "
            f"bar's end  backlog {s.behind_ms:,.0f} ms  reconnects {health.reconnects}  duplicates {s.duplicates:,}  "
            f"revisions {s.revisions:,}  fills {s.fills} (+{s.filled:,} bars)")
        cols, room = [], self.console.width - 42  # what ticker, bar, close and volume leave
        for name in _indicator_columns(engine):  # as many indicators as fit, in the set's order
            room -= max(len(name), 8) + 2
            if room < 0:
                break
            cols.append(name)
        table = Table(box=None, header_style="bold", pad_edge=False)
        for name in ("ticker", "bar (UTC)", "close", "volume", *cols):
            table.add_column(name, justify="left" if name in ("ticker", "bar (UTC)") else "right", no_wrap=True)
        rows: list[tuple[str, dict[str, Any]]] = sorted(dict(engine.last).items())
        for ticker, row in rows[:40]:
            ts = row.get("ts")
            table.add_row(ticker, ts.strftime("%m-%d %H:%M") if ts is not None else "", _num(row.get("close")),
                          _num(row.get("volume"), 0), *(_num(row.get(c)) for c in cols))
        return Group(head, table)


def _indicator_columns(engine: DataIngestionEngine) -> list[str]:
    procs = engine.processors or []
    indicators = getattr(procs[0], "indicators", None) if procs else None
    return list(getattr(indicators, "columns", ()))


def _span(seconds: float) -> str:
    """`2.4 s`, `12 min`, `5.0 h`, `3.2 d`: a lag readable whether it is live or a replay of old bars."""
    for limit, unit, size in ((120, "s", 1), (7200, "min", 60), (172_800, "h", 3600)):
        if abs(seconds) < limit:
            return f"{seconds / size:,.1f} {unit}"
    return f"{seconds / 86_400:,.1f} d"


def _num(value: Any, digits: int = 2) -> str:
    return "" if value is None else f"{value:,.{digits}f}"
