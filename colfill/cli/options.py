"""Options shared by several commands (one definition, so their help reads the same everywhere)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DEFAULT_DATA_DIR = "colfill-data"

DataDir = Annotated[
    Path,
    typer.Option("--data-dir", envvar="COLFILL_DATA_DIR",
                 help="Where the Parquet lake (the embedded store) and its DuckDB catalogue colfill.duckdb live."),
]
DbOpt = Annotated[  # what the value means: colfill.target.resolve
    str | None,
    typer.Option("--db", "--store", envvar="COLFILL_DB_URL", show_envvar=True, show_default=False,
                 help="The store: lake:///data-dir (the Parquet lake), a DuckDB file path or duckdb:///path, or "
                 "postgresql://user@host/db, optionally ?schema=NAME (or COLFILL_DB_SCHEMA); the password is never "
                 "printed. Default: the lake in --data-dir (`colfill db` needs a postgresql:// one)."),
]
