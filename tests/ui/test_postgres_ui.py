"""The dashboard on a PostgreSQL/TimescaleDB store (tests/postgres fixtures: a schema of its own): the overview's
tables, the chart's bars, coverage, and no password in any answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ui.conftest import END, START, Browser, colfill, sample_source, serving, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
PASSWORD = "hunter2-never-shown"


def with_password(url: str) -> str:
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{PASSWORD}@{host}"


def test_overview_on_postgres(pg_url: str, tmp_path: Path, browser: Browser) -> None:  # noqa: F811
    src = sample_source(tmp_path / "src", START, "2024-01-12", tickers=4)
    data = tmp_path / "data"
    proc = colfill("run", "--source", str(src), "--data-dir", str(data), "--start", START, "--end", END,
                   "--db", pg_url, "--load-workers", "1")
    assert proc.returncode == 0, proc.stderr
    url = with_password(pg_url)
    with serving("--data-dir", str(data), "--db", url) as server:
        assert PASSWORD not in server.banner and "***" in server.banner
        status, body, _ = server.get("/api/overview")
        assert status == 200, body
        assert body["kind"] == "postgresql"
        tables = {t["table"]: t for t in body["tables"]}
        assert tables["bars_1d"]["rows"] == 4 * 9 and tables["bars_1d"]["tickers"] == 4
        assert tables["bars_1m"]["rows"] > 0 and tables["bars_1m"]["first_day"] == START
        assert tables["bars_1m"]["last_day"] == "2024-01-12" and tables["bars_1m"]["size_bytes"] > 0
        status, bars, _ = server.get("/api/bars/AAPL?tf=1d&indicators=sma_20,rsi_14")
        assert status == 200 and bars["points"] == 9
        # minute bars are aggregated inside PostgreSQL: the same candles as the lake's (resampled in Polars)
        with serving("--data-dir", str(data)) as lake:
            for query in ("tf=1m&points=50&indicators=sma_20,vwap", "tf=1m&points=200&start=2024-01-08&end=2024-01-09"):
                pg_bars, lake_bars = server.get("/api/bars/MSFT?" + query)[1], lake.get("/api/bars/MSFT?" + query)[1]
                assert pg_bars["width"] == lake_bars["width"] != "1m"
                assert pg_bars["bars_in"] == lake_bars["bars_in"] > 0
                for name, values in lake_bars["columns"].items():
                    assert pg_bars["columns"][name] == pytest.approx(values, rel=1e-9), name
        status, cov, _ = server.get("/api/coverage?table=bars_1d")
        assert status == 200 and cov["missing"] == [] and len(cov["tickers"]) == 4
        status, bad, _ = server.get("/api/bars/%27%3B%20DROP%20TABLE%20bars_1m%3B%20--?tf=1m")
        assert status == 404
        assert server.get("/api/overview")[1]["tables"][0]["rows"] == tables["bars_1m"]["rows"]
        for path in ("/", "/api/overview", "/api/status", "/api/bars/NOPE?tf=1d", "/ticker/AAPL"):
            assert PASSWORD not in str(server.get(path)[1])
        browser.page.goto(server.url + "/")
        browser.page.wait_for_selector("#tables tbody tr[data-table=bars_1m]")
        assert "PostgreSQL" in browser.page.inner_text("#store")
        browser.shot("overview-postgres")
        browser.page.goto(server.url + "/ticker/AAPL?tf=1d")
        assert wait_for(lambda: browser.page.evaluate("window.__chart && window.__chart.renders"))
        assert browser.page.evaluate("window.__chart.candles") == 9
    assert browser.errors == []
