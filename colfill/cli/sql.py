"""`colfill sql`: DuckDB SQL over the embedded database and the staged Parquet lake."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from colfill.cli.options import DEFAULT_DATA_DIR, DataDir, DbOpt


def connect(data_dir: Path, db: str | None = None):  # type: ignore[no-untyped-def]
    """An in-memory DuckDB with views: the store's tables (read-only), `bars_*` of the lake store, `lake_<table>`
    (every staged file), `rejects`, `manifest`."""
    import duckdb

    from colfill.errors import InvalidArgument
    from colfill.stage.lake import Lake
    from colfill.stores.lake import CATALOGUE, MARKER, is_catalogue, lake_views_sql, side_views_sql
    from colfill.target import resolve

    target = resolve(db, data_dir)
    if target.path is None:
        raise InvalidArgument("colfill sql reads the embedded store (the lake, or a DuckDB file); for PostgreSQL use "
                              "psql")
    if target.kind == "lake":
        data_dir = target.path
        path = data_dir / CATALOGUE
    else:
        path = target.path
    con = duckdb.connect()
    lake = Lake(data_dir / "lake")
    tables: set[str] = set()
    if path.exists():
        con.execute(f"ATTACH '{path.as_posix().replace(chr(39), chr(39) * 2)}' AS store (READ_ONLY)")
        tables = {name for (name,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = 'store'").fetchall()} - {MARKER}
        for name in sorted(tables):
            con.execute(f'CREATE VIEW "{name}" AS SELECT * FROM store."{name}"')
    lake_store = target.kind == "lake" or is_catalogue(path)
    views = lake_views_sql(lake) if lake_store else side_views_sql(lake)
    for name, view in views.items():  # built from the lake now, so a moved data dir reads right too
        if view is not None and name not in tables:
            con.execute(f'CREATE VIEW "{name}" AS {view}')
    from colfill.adjust import adjusted_views, wants_dividends
    from colfill.dialect import DUCKDB

    have = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    kept = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE database_name = 'store'").fetchall()}
    for name, view in adjusted_views(DUCKDB, have, wants_dividends(kept)).items():  # adjusted views over these
        if view is not None and name not in tables:
            con.execute(f'CREATE VIEW "{name}" AS {view}')
    for table_dir in sorted(lake.root.glob("table=*")):
        table = table_dir.name.split("=", 1)[1]
        glob = (table_dir / "date=*" / "*.parquet").as_posix()
        con.execute(f"CREATE VIEW \"lake_{table}\" AS SELECT * FROM read_parquet('{glob}', hive_partitioning=true)")
    return con


def run_sql(query: str, data_dir: Path, db: str | None, fmt: str) -> None:
    import duckdb

    from colfill.errors import InvalidArgument

    con = connect(data_dir, db)
    try:
        rel = con.sql(query)
    except duckdb.Error as exc:
        views = [r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()]
        have = ", ".join(views) or "none yet (run first)"
        raise InvalidArgument(f"SQL error: {exc}\nHint: tables here: {have}") from None
    if rel is None:
        return
    frame = rel.pl()
    if fmt == "csv":
        sys.stdout.write(frame.write_csv())
    elif fmt == "json":
        sys.stdout.write(frame.write_json() + "\n")
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table()
        for c in frame.columns:
            table.add_column(c)
        for row in frame.iter_rows():
            table.add_row(*("" if v is None else str(v) for v in row))
        Console().print(table)


def sql(
    query: Annotated[str, typer.Argument(help="DuckDB SQL, e.g. \"SELECT * FROM bars_1d LIMIT 5\".")],
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
    db: DbOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
) -> None:
    """Query the embedded store (bars_1m, bars_1d, indicator_state) and the lake (lake_bars_1m, lake_bars_1d: every
    staged file; rejects, manifest) with DuckDB SQL."""
    from colfill.errors import InvalidArgument

    if fmt not in ("table", "csv", "json"):
        raise InvalidArgument(f"--format {fmt!r}: choose table, csv or json")
    run_sql(query, data_dir, db, fmt)
