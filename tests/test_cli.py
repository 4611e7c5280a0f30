"""The CLI surface: help texts, secrets never shown, sql output formats, the light package import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from colfill.cli import app

runner = CliRunner()


COMMANDS = [[], ["run"], ["demo"], ["sample"], ["sql"], ["db"], ["db", "init"], ["state"], ["state", "export"],
            ["state", "import"]]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_explains_and_hides_secrets(command: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLFILL_DB_URL", "postgresql://user:hunter2-db@localhost/db")
    monkeypatch.setenv("COLFILL_S3_SECRET", "s3-hunter2")
    monkeypatch.setenv("POLYGON_API_KEY", "api-hunter2")
    res = runner.invoke(app, [*command, "--help"], terminal_width=200)
    assert res.exit_code == 0, res.output
    assert "hunter2" not in res.output
    assert "Usage" in res.output


def test_run_help_lists_the_original_options() -> None:
    res = runner.invoke(app, ["run", "--help"], terminal_width=200)
    for opt in ("--tickers", "--all", "--limit", "--years", "--start", "--end", "--skip-daily", "--skip-minute",
                "--source", "--db", "--store", "--data-dir", "--indicators"):
        assert opt in res.output


def test_bad_arguments_name_the_argument(tmp_path: Path) -> None:
    res = runner.invoke(app, ["run", "--start", "2024-13-01", "--data-dir", str(tmp_path)])
    assert res.exit_code != 0 and "--start '2024-13-01' is not a date" in str(res.exception)
    res = runner.invoke(app, ["run", "--indicators", "sma:x", "--data-dir", str(tmp_path)])
    assert "sma:x" in str(res.exception)


def test_sample_then_run_then_sql_formats(tmp_path: Path) -> None:
    src, data = tmp_path / "src", tmp_path / "data"
    res = runner.invoke(app, ["sample", "--out", str(src), "--start", "2024-01-02", "--end", "2024-01-10",
                              "--tickers", "6", "--no-minute"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["run", "--source", str(src), "--start", "2024-01-01", "--end", "2024-01-31",
                              "--skip-minute", "--data-dir", str(data)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["sql", "SELECT ticker, count(*) AS n FROM bars_1d GROUP BY ticker ORDER BY ticker",
                              "--data-dir", str(data), "--format", "json"])
    rows = json.loads(res.stdout)
    assert len(rows) == 6 and all(r["n"] == 7 for r in rows)  # 7 trading days
    res = runner.invoke(app, ["sql", "SELECT count(*) AS n FROM lake_bars_1d", "--data-dir", str(data),
                              "--format", "csv"])
    assert res.stdout.splitlines() == ["n", "42"]
    res = runner.invoke(app, ["sql", "SELECT sum(rows_out) AS n FROM manifest", "--data-dir", str(data),
                              "--format", "csv"])
    assert res.stdout.splitlines() == ["n", "42"]
    res = runner.invoke(app, ["sql", "SELECT * FROM nope", "--data-dir", str(data)])
    assert res.exit_code != 0 and "bars_1d" in str(res.exception)


def test_import_colfill_is_light() -> None:
    code = ("import sys, colfill; heavy = [m for m in ('polars', 'duckdb', 'pyarrow', 's3fs', 'adbc_driver_postgresql',"
            " 'polygon', 'redis', 'typer', 'rich') if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
