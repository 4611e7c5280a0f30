"""`colfill db init` and `colfill db status` through Typer's CliRunner, on a local app that mounts the group."""

from __future__ import annotations

import datetime as dt

import pytest
import typer
from typer.testing import CliRunner

from colfill.cli.db import app as db_app
from colfill.errors import InvalidArgument, StoreError
from colfill.stores.postgres import PostgresStore
from tests.postgres.conftest import SECRET, Db, batch, make_day, with_password

pytestmark = pytest.mark.postgres

app = typer.Typer()
app.add_typer(db_app, name="db")
runner = CliRunner()


def test_init_then_status(pg_url: str, db: Db) -> None:
    res = runner.invoke(app, ["db", "init", "--db", pg_url, "--indicators", "sma:10,rsi:14,macd"])
    assert res.exit_code == 0, res.output
    assert "schema" in res.output and db.schema in res.output
    for table in ("bars_1m", "bars_1d", "tickers", "splits", "dividends", "colfill_files"):
        assert table in res.output
    cols = [r[0] for r in db.rows("SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
                                  "AND table_name = 'bars_1m' ORDER BY ordinal_position", [db.schema])]
    assert cols[-5:] == ["sma_10", "rsi_14", "macd", "macd_signal", "macd_hist"]
    with PostgresStore(pg_url) as s:
        s.load(batch(make_day(dt.date(2024, 3, 7), ["AAPL", "MSFT", "TSLA"], minutes=40, seed=1),
                     dt.date(2024, 3, 7)))
    res = runner.invoke(app, ["db", "status"], env={"COLFILL_DB_URL": pg_url})
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if x.strip().startswith("bars_1m"))
    assert "120" in line and "2024-03-07 14:30" in line and "2024-03-07 15:09" in line
    assert line.split()[-4:-2] == ["3", "1"]  # tickers, days


def test_plain_path_notice_is_printed(pg_url: str) -> None:
    """Whatever the server has, a database without the extension gets plain tables and a notice saying why."""
    with PostgresStore(pg_url) as s:
        installed, loaded = s.ts_available, s.ts_preloaded
    res = runner.invoke(app, ["db", "init", "--db", pg_url])
    assert res.exit_code == 0
    said = ("is available but not enabled in database" if installed and loaded
            else "it is not in shared_preload_libraries" if installed
            else "TimescaleDB is not installed on this server")
    assert said in " ".join(res.output.split()) and "bars tables are plain" in " ".join(res.output.split())
    if not loaded:  # where it is loaded, --timescale would enable it: tests/postgres/test_timescale_server.py
        res = runner.invoke(app, ["db", "init", "--db", pg_url, "--timescale"])
        assert isinstance(res.exception, StoreError) and "TimescaleDB" in str(res.exception)


def test_password_stays_hidden(pg_url: str) -> None:
    url = with_password(pg_url, SECRET)
    for args in (["db", "init", "--db", url], ["db", "status", "--db", url], ["db", "status", "--help"]):
        res = runner.invoke(app, args, env={"COLFILL_DB_URL": url})
        assert res.exit_code == 0, res.output
        assert SECRET not in res.output
    res = runner.invoke(app, ["db", "status", "--db", url.replace("schema=", "dbname=nowhere&schema=")
                              .replace("/colfill_test", "/nowhere_db")])
    assert isinstance(res.exception, StoreError) and SECRET not in str(res.exception)
    assert "--create-db" in str(res.exception)


def test_bad_db_arguments() -> None:
    res = runner.invoke(app, ["db", "status"], env={"COLFILL_DB_URL": ""})
    assert isinstance(res.exception, InvalidArgument) and "--db" in str(res.exception)
    res = runner.invoke(app, ["db", "init", "--db", "duckdb:///tmp/x.duckdb"])
    assert isinstance(res.exception, InvalidArgument) and "PostgreSQL" in str(res.exception)
    res = runner.invoke(app, ["db", "init", "--db", "postgresql://u@h/db", "--indicators", "sma:x"])
    assert isinstance(res.exception, InvalidArgument) and "sma:x" in str(res.exception)


def test_status_of_a_large_day_partitioned_table(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the exact-count size, rows come from the partitions' statistics and tickers from the last day."""
    from colfill.stores.postgres import status as pg_status

    with PostgresStore(pg_url) as s:
        s.load(batch(make_day(dt.date(2024, 3, 7), ["AAPL", "MSFT", "TSLA"], minutes=40, seed=1), dt.date(2024, 3, 7)))
        s.load(batch(make_day(dt.date(2024, 3, 8), ["AAPL", "MSFT"], minutes=30, seed=2), dt.date(2024, 3, 8)))
        monkeypatch.setattr(pg_status, "EXACT_COUNT_BELOW", 1)
        st = {t.table: t for t in s.status()}["bars_1m"]
    assert st.kind == "table, 2 day partitions"
    assert (st.rows, st.rows_exact, st.tickers, st.tickers_last_day, st.days) == (180, False, 2, True, 2)
    assert (st.first_ts.isoformat(), st.last_ts.isoformat()) == ("2024-03-07T14:30:00+00:00",
                                                                  "2024-03-08T14:59:00+00:00")
    assert st.size_bytes and st.size_bytes > 0
