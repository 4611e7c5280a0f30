"""`colfill ui`: serve the monitoring dashboard (see colfill.ui)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from colfill.cli.options import DEFAULT_DATA_DIR, DataDir, DbOpt


def ui(
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
    db: DbOpt = None,
    redis: Annotated[str | None, typer.Option("--redis", envvar="COLFILL_REDIS_URL", show_default=False,
                                              help="Redis of `colfill live` and `colfill run --redis`: live bars on "
                                              "open charts, live tickers, bars/s, lag (redis://host:port/db).")]
    = None,
    host: Annotated[str, typer.Option(help="Address to listen on. Only this machine by default; another address "
                                      "shows the dashboard to your network (a warning is printed).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: any free one).")] = 8050,
) -> None:
    """Serve the dashboard: store overview and run progress, a coverage heatmap, and charts of candles with
    indicators (live with --redis). Reads any store kind, read-only. Needs the extra `ui`."""
    from colfill.cli.output import console
    from colfill.ui.server import is_loopback, serve

    if not is_loopback(host):
        console(stderr=True).print(
            f"[yellow]warning:[/] --host {host} is not a loopback address: anyone who can reach this machine can "
            "read the dashboard (it has no login). Use 127.0.0.1 unless you mean it.", highlight=False)
    serve(data_dir, db, redis, host, port)
