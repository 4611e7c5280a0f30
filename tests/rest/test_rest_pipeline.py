"""REST-sourced days go through the same stages as flat-file days: the same bars served by the replay server and
read from flat files end as the same stored rows, indicators included; refusals stop the installed command."""

from __future__ import annotations

import shutil
from pathlib import Path

from colfill.pipeline import BackfillJob, run
from colfill.sources.rest import RestSettings
from colfill.stores import open_store
from tests.helpers import colfill, read_flat_files
from tests.pipeline.conftest import assert_frames_close, stored
from tests.polygon_server import PolygonServer
from tests.rest.conftest import END, KEY, START, TICKERS, backfill


def test_rest_days_equal_flat_file_days(server: PolygonServer, flatfiles: Path, tmp_path: Path) -> None:
    tickers = tuple(sorted(read_flat_files(flatfiles, "day_aggs_v1")["ticker"].unique().to_list()))
    settings = RestSettings.from_env(url=server.url, api_key=KEY, rate="1000/s", workers=4)
    result = backfill("rest", tmp_path / "rest", tickers, settings)
    assert result.ok, [t.errors for t in result.tables]
    backfill(str(flatfiles), tmp_path / "ff", tickers)
    for table in ("bars_1d", "bars_1m"):
        got, want = stored(tmp_path / "rest", table), stored(tmp_path / "ff", table)
        assert got.height >= TICKERS * 11  # 11 trading days
        assert_frames_close(got, want, rel=0)
    minute_requests = [p for _, p in server.requests if "/range/1/minute/" in p]
    assert len(minute_requests) == len(tickers)  # 11 trading days fit one window: one request per ticker


def test_grouped_daily_fills_every_ticker_restamped_to_new_york_midnight(server: PolygonServer, flatfiles: Path,
                                                                         tmp_path: Path) -> None:
    settings = RestSettings.from_env(url=server.url, api_key=KEY, rate="1000/s")
    assert backfill("rest", tmp_path / "rest", None, settings, tables=("bars_1d",)).ok
    backfill(str(flatfiles), tmp_path / "ff", None, tables=("bars_1d",))
    assert_frames_close(stored(tmp_path / "rest", "bars_1d"), stored(tmp_path / "ff", "bars_1d"), rel=0)
    bars = [p for _, p in server.requests if p.startswith("/v2/aggs/")]
    assert len(bars) == 11 and all(p.startswith("/v2/aggs/grouped/") for p in bars)  # one request a day


def test_reference_and_corporate_phases_load_every_page_once(server: PolygonServer, tmp_path: Path) -> None:
    import duckdb

    settings = RestSettings.from_env(url=server.url, api_key=KEY, rate="1000/s")
    data = tmp_path / "rest"
    result = backfill("rest", data, ("AAPL",), settings, tables=("bars_1d",))
    assert result.ok and result.reference["tickers"] == 4  # two recorded pages of two
    asked = len([p for _, p in server.requests if p.startswith("/v3/reference/")])
    assert backfill("rest", data, ("AAPL",), settings, tables=("bars_1d",)).reference == {}  # loaded today: kept
    assert len([p for _, p in server.requests if p.startswith("/v3/reference/")]) == asked
    shutil.rmtree(data / "reference")  # a day later (no record): fetched again, replacing rows, never adding
    result = backfill("rest", data, ("AAPL",), settings, tables=("bars_1d",))
    assert result.ok and result.reference["tickers"] == 4
    con = duckdb.connect(str(data / "colfill.duckdb"), read_only=True)
    tickers = con.execute("SELECT ticker, type, active, cik FROM tickers ORDER BY ticker").fetchall()
    splits = con.execute("SELECT count(*), count(DISTINCT (ticker, execution_date)) FROM splits").fetchone()
    divs = con.execute("SELECT count(*), min(ex_dividend_date) FROM dividends").fetchone()
    con.close()
    assert tickers[0] == ("A", "CS", True, "0001090872") and len(tickers) == 4
    assert splits is not None and splits[0] == splits[1] == result.reference["splits"] > 0
    assert divs is not None and divs[0] == result.reference["dividends"] > 0
    skipped = tmp_path / "skipped"
    job = BackfillJob(source="rest", start=START, end=END, data_dir=skipped, tables=("bars_1d",), tickers=("AAPL",),
                      rest=settings, phases=())
    store = open_store(f"lake:///{skipped}")
    try:
        assert run(job, store).reference == {} and store.read_reference("tickers") is None
    finally:
        store.close()


def test_installed_command_from_rest_and_a_refused_key(server: PolygonServer, tmp_path: Path) -> None:
    args = ["run", "--source", "rest", "--tickers", "AAPL,MSFT,NOSUCH", "--start", str(START), "--end", str(END),
            "--data-dir", str(tmp_path / "d"), "--skip-minute"]
    ok = colfill(*args, COLFILL_REST_URL=server.url, POLYGON_API_KEY=KEY)
    assert ok.returncode == 0, ok.stderr
    assert f"REST {server.url}" in ok.stderr and KEY not in ok.stderr + ok.stdout
    assert "bars_1d: REST had no bars of NOSUCH: unknown tickers" in " ".join(ok.stderr.split())
    refused = colfill(*args, "--data-dir", str(tmp_path / "e"), COLFILL_REST_URL=server.url,
                      MASSIVE_API_KEY="wrong-key-hunter2")
    assert refused.returncode == 3, refused.stderr
    assert "refused the API key (401)" in refused.stderr and "hunter2" not in refused.stderr + refused.stdout


def test_no_source_says_what_to_set(tmp_path: Path) -> None:
    proc = colfill("run", "--data-dir", str(tmp_path))
    assert proc.returncode == 2
    assert "set COLFILL_S3_KEY_ID and COLFILL_S3_SECRET for flat files, or POLYGON_API_KEY" in " ".join(
        proc.stderr.split())


def test_the_original_python_api(server: PolygonServer, flatfiles: Path, tmp_path: Path) -> None:
    from colfill import BackfillOrchestrator

    orch = BackfillOrchestrator(polygon_api_key=KEY, db_writer=f"lake:///{tmp_path / 'o'}", years_back=1,
                                data_dir=tmp_path / "o", rest_url=server.url, rate="1000/s", start=START, end=END)
    try:
        summary = orch.run_full_backfill(["AAPL", "MSFT"])
    finally:
        orch.close()
    assert summary["reference"] == {"tickers": 4} and summary["corporate"]["splits"] > 0
    assert summary["daily"]["staged"] == summary["minute"]["staged"] == 11
    assert summary["minute"]["errors"] == [] and summary["minute"]["rows"] == stored(tmp_path / "o", "bars_1m").height
    assert set(stored(tmp_path / "o", "bars_1d")["ticker"]) == {"AAPL", "MSFT"}
