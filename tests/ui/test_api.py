"""The dashboard's API against the installed `colfill ui` on a real lake: answers, 4xx for bad input, hostile tickers
bound (never spliced into SQL), and no secret in any page or answer."""

from __future__ import annotations

import datetime as dt
import urllib.parse
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.helpers import wait_for
from tests.ui.conftest import BAD_DAY, REMOVED_DAY, Server, colfill, serving

HOSTILE = ["'; DROP TABLE bars_1m; --", "AAPL' OR '1'='1", 'x"; DROP VIEW bars_1d; --', "%' --", "🙂",
           "../../etc/passwd"]


def count(data: Path, sql: str) -> int:
    out = colfill("sql", sql, "--data-dir", str(data), "--format", "csv")
    assert out.returncode == 0, out.stderr
    return int(float(out.stdout.splitlines()[1]))


def q(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def test_banner_and_loopback(ui: Server) -> None:
    assert ui.banner.startswith("colfill ui: http://127.0.0.1:")
    status, body, headers = ui.get("/")
    assert status == 200 and "<title>colfill" in body
    assert "default-src 'self'" in headers["content-security-policy"]


def test_overview_matches_the_store(ui: Server, sample_data: Path) -> None:
    status, body, _ = ui.get("/api/overview")
    assert status == 200
    tables = {t["table"]: t for t in body["tables"]}
    assert tables["bars_1m"]["rows"] == count(sample_data, "SELECT count(*) FROM bars_1m")
    assert tables["bars_1d"]["tickers"] == count(sample_data, "SELECT count(DISTINCT ticker) FROM bars_1d")
    assert tables["bars_1d"]["first_day"] == "2024-01-02" and tables["bars_1d"]["last_day"] == "2024-02-09"
    assert tables["bars_1m"]["size_bytes"] > 0
    run = body["runs"][0]
    assert run["tables"]["bars_1m"]["rejected"] == 1 and run["tables"]["bars_1m"]["staged"] == 27
    (reject,) = [r for r in body["rejects"] if r["table"] == "bars_1m"]
    assert reject["rows"] == 1
    status, detail, _ = ui.get("/api/rejects?reason=" + q(reject["reason"]))
    assert status == 200
    (row,) = detail["rows"]
    assert row["file"].endswith(f"{BAD_DAY}.csv.gz") and row["line"] == 2


def test_coverage_marks_the_removed_day(ui: Server) -> None:
    status, body, _ = ui.get("/api/coverage?table=bars_1m&n=5")
    assert status == 200
    assert body["missing"] == [REMOVED_DAY]
    assert "2024-01-15" not in body["days"]  # Martin Luther King Jr. Day: a holiday, not a gap
    assert len(body["tickers"]) == 5 and len(body["z"]) == 5
    col = body["days"].index(REMOVED_DAY)
    assert body["totals"][col] == 0 and all(row[col] == 0 for row in body["z"])
    status, body, _ = ui.get("/api/coverage?table=bars_1m&n=100")
    assert len(body["tickers"]) == 8
    assert [body["days"][day] for _, day, _ in body["rejected"]] == [BAD_DAY]


def test_bars_resampled_and_exact(ui: Server, sample_data: Path) -> None:
    status, body, _ = ui.get("/api/bars/AAPL?tf=1d&start=2024-01-22&end=2024-01-31&indicators=sma_20,rsi_14")
    assert status == 200
    want = count(sample_data, "SELECT count(*) FROM bars_1d WHERE ticker = 'AAPL' AND "
                 "timezone('America/New_York', ts)::DATE BETWEEN DATE '2024-01-22' AND DATE '2024-01-31'")
    assert body["points"] == want == 8 and body["width"] == "1d"
    assert set(body["columns"]) >= {"t", "x", "open", "high", "low", "close", "volume", "sma_20", "rsi_14"}
    status, minute, _ = ui.get("/api/bars/AAPL?tf=1m&points=100")
    assert status == 200 and minute["points"] <= 100 and minute["bars_in"] == minute["total_bars"]
    total = count(sample_data, "SELECT sum(volume)::BIGINT FROM bars_1m WHERE ticker = 'AAPL'")
    assert sum(minute["columns"]["volume"]) == pytest.approx(total, abs=1)  # resampled, not dropped


@pytest.mark.parametrize("path, code, text", [
    ("/api/bars/NOPE?tf=1d", 404, "unknown ticker"),
    ("/api/bars/AAPL?tf=5m", 400, "timeframe"),
    ("/api/bars/AAPL?tf=1d&start=yesterday", 400, "not a date"),
    ("/api/bars/AAPL?tf=1d&start=2024-02-01&end=2024-01-01", 400, "before end"),
    ("/api/bars/AAPL?tf=1d&points=1", 400, "out of range"),
    ("/api/bars/AAPL?tf=1d&indicators=close;DROP", 400, "unknown indicator"),
    ("/api/bars/" + "A" * 40, 400, "characters"),
    ("/api/meta/NOPE", 404, "unknown ticker"),
    ("/api/coverage?table=bars_1s", 400, "bars_1m"),
    ("/api/coverage?n=0", 400, "out of range"),
    ("/api/rejects", 400, "reason"),
    ("/api/live/AAPL", 409, "--redis"),
    ("/api/nothing", 404, "no such"),
])
def test_bad_input_is_a_4xx_with_a_message(ui: Server, path: str, code: int, text: str) -> None:
    status, body, _ = ui.get(path)
    assert status == code, body
    assert text in body["error"]


def test_unknown_ticker_page_says_so(ui: Server) -> None:
    status, body, _ = ui.get("/ticker/NOPE")
    assert status == 404 and "unknown ticker &#x27;NOPE&#x27;" in body


@pytest.mark.parametrize("ticker", HOSTILE)
def test_hostile_tickers_are_bound(ui: Server, sample_data: Path, ticker: str) -> None:
    before = count(sample_data, "SELECT count(*) FROM bars_1m")
    for path in (f"/api/bars/{q(ticker)}?tf=1m", f"/api/meta/{q(ticker)}", f"/ticker/{q(ticker)}"):
        status, body, _ = ui.get(path)
        assert status == 404, (path, body)
    status, body, _ = ui.get(f"/api/coverage?search={q(ticker[:32])}")
    assert status == 200 and body["tickers"] == []
    status, body, _ = ui.get(f"/api/tickers?search={q(ticker[:32])}")
    assert status == 200 and body["tickers"] == []
    status, body, _ = ui.get(f"/api/rejects?reason={q(ticker)}")
    assert status == 200 and body["rows"] == []
    assert count(sample_data, "SELECT count(*) FROM bars_1m") == before


def test_no_secrets_in_pages_or_answers(sample_data: Path, tmp_path: Path) -> None:
    secret = "sEcReT-k3y-do-not-show"
    native = tmp_path / "native.duckdb"
    con = duckdb.connect(str(native))
    con.execute(f"CREATE TABLE bars_1d AS SELECT * FROM read_parquet('{sample_data}/lake/table=bars_1d/*/*.parquet')")
    con.close()
    env = {"POLYGON_API_KEY": secret, "COLFILL_S3_SECRET": secret}
    with serving("--data-dir", str(sample_data), "--db", f"duckdb:///{native}", env=env) as server:
        bodies = [server.get(p) for p in ("/", "/coverage", "/ticker/AAPL", "/api/overview", "/api/status",
                                          "/api/coverage", "/api/meta/AAPL", "/api/bars/AAPL?tf=1d",
                                          "/api/bars/NOPE?tf=1d")]
    assert bodies[3][1]["kind"] == "duckdb"
    assert bodies[7][0] == 200 and bodies[7][1]["points"] > 0
    for _status, body, headers in bodies:
        assert secret not in str(body) and secret not in str(headers)


def test_host_and_port_checks(sample_data: Path) -> None:
    proc = colfill("ui", "--data-dir", str(sample_data), "--port", "70000")
    assert proc.returncode == 2 and "--port" in proc.stderr
    proc = colfill("ui", "--help")
    assert proc.returncode == 0 and "127.0.0.1" in proc.stdout
    # An address of no interface here: the warning comes first, then binding fails (exit 3); nothing is sent.
    proc = colfill("ui", "--data-dir", str(sample_data), "--host", "192.0.2.1", "--port", "0")
    assert "warning:" in proc.stderr and "not a loopback address" in proc.stderr
    assert proc.returncode == 3 and "cannot listen" in proc.stderr
    assert dt.date.fromisoformat(REMOVED_DAY).weekday() < 5


def test_the_extra_is_lazy_and_named(sample_data: Path) -> None:
    import subprocess
    import sys

    code = ("import sys, colfill, colfill.cli; print(','.join(m for m in ('starlette', 'uvicorn', "
            "'lightweight_charts', 'webview', 'exchange_calendars', 'playwright', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
    hide = ("import sys; sys.modules['starlette'] = None; from colfill.cli import main; "
            f"main(['ui', '--data-dir', {str(sample_data)!r}, '--port', '0'])")
    proc = subprocess.run([sys.executable, "-c", hide], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "pip install 'colfill[ui]'" in proc.stderr


@pytest.mark.parametrize("sig, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_signals_stop_cleanly(sample_data: Path, sig: str, code: int) -> None:
    import signal

    server = Server("--data-dir", str(sample_data))
    assert server.get("/api/status")[0] == 200
    server.proc.send_signal(getattr(signal, sig))
    assert server.proc.wait(15) == code


def test_unreachable_store_and_empty_data_dir(tmp_path: Path) -> None:
    proc = colfill("ui", "--db", "postgresql://nobody:pw-secret-123@127.0.0.1:1/x", "--port", "0")
    assert proc.returncode == 3 and "cannot connect" in proc.stderr and "pw-secret-123" not in proc.stderr
    empty = tmp_path / "nothing-here"
    with serving("--data-dir", str(empty)) as server:
        status, body, _ = server.get("/api/overview")
        assert status == 200 and [t["rows"] for t in body["tables"]] == [0, 0] and body["runs"] == []
        assert server.get("/api/bars/AAPL")[0] == 404 and server.get("/api/coverage")[0] == 404
    assert not empty.exists()  # read-only: not even the data dir is made


@pytest.mark.parametrize("kind", ["lake", "duckdb"])
def test_the_dashboard_never_blocks_a_run(tmp_path: Path, kind: str) -> None:
    """DuckDB's file lock is per process: the dashboard must not hold the store file between requests, or the next
    `colfill run` could not open it for writing."""
    from tests.ui.conftest import sample_source

    src = sample_source(tmp_path / "src", "2024-01-02", "2024-01-12", tickers=3)
    data = tmp_path / "data"
    db = ["--db", f"duckdb:///{tmp_path / 'native.duckdb'}"] if kind == "duckdb" else []

    def run(end: str) -> None:
        proc = colfill("run", "--source", str(src), "--data-dir", str(data), "--start", "2024-01-02", "--end", end,
                       *db)
        assert proc.returncode == 0, proc.stderr

    run("2024-01-05")
    with serving("--data-dir", str(data), *db) as server:
        for path in ("/api/overview", "/api/coverage", "/api/bars/AAPL?tf=1m", "/api/meta/AAPL"):
            assert server.get(path)[0] == 200, path
        run("2024-01-12")  # while the dashboard is up, after it read everything

        def overview() -> dict[str, Any] | None:  # the dashboard checks for new data at most every second
            tables = {t["table"]: t for t in server.get("/api/overview")[1]["tables"]}
            return tables if tables["bars_1d"]["days"] == 9 else None

        tables = wait_for(overview, timeout=10, every=0.2, what="the second run's days in /api/overview")
        assert tables["bars_1d"]["last_day"] == "2024-01-12"
        status, bars, _ = server.get("/api/bars/AAPL?tf=1d")
        assert status == 200 and bars["points"] == 9


def test_split_adjusted_prices(tmp_path: Path) -> None:
    import datetime as dt

    import pyarrow as pa

    from colfill.bars import REFERENCE_TABLES, arrow_schema
    from colfill.calendar import trading_days
    from colfill.stores import open_store
    from tests.ui.conftest import sample_source

    src = sample_source(tmp_path / "src", "2024-01-02", "2024-01-12", tickers=3)
    data = tmp_path / "data"
    proc = colfill("run", "--source", str(src), "--data-dir", str(data), "--start", "2024-01-02", "--end",
                   "2024-01-12", "--skip-minute")
    assert proc.returncode == 0, proc.stderr
    days = trading_days(dt.date(2024, 1, 2), dt.date(2024, 1, 12))
    split_day = days[len(days) // 2]  # where the sample's AAPL drops 4:1 (colfill.sample)
    store = open_store(f"lake:///{data.resolve()}")
    splits = pa.Table.from_pylist([{"ticker": "AAPL", "execution_date": split_day, "split_from": 1.0,
                                    "split_to": 4.0, "id": "s1"}], schema=arrow_schema(REFERENCE_TABLES["splits"]))
    store.write_reference("splits", splits)
    store.close()
    with serving("--data-dir", str(data)) as server:
        status, meta, _ = server.get("/api/meta/AAPL")
        assert status == 200 and meta["timeframes"]["1d"]["adjusted"] is True
        raw = server.get("/api/bars/AAPL?tf=1d")[1]
        adj = server.get("/api/bars/AAPL?tf=1d&adjusted=1")[1]
    assert raw["adjusted"] is False and adj["adjusted"] is True and adj["table"] == "bars_1d_adjusted"
    cut = len(days) // 2
    for i, (r, a) in enumerate(zip(raw["columns"]["close"], adj["columns"]["close"])):
        assert a == pytest.approx(r / 4 if i < cut else r), i
    jumps = [b / a for a, b in zip(adj["columns"]["close"], adj["columns"]["close"][1:])]
    assert max(jumps) < 1.5 and min(jumps) > 0.67  # the 4:1 drop is gone from the adjusted series


def test_derived_timeframes_are_listed_and_read(sample_data: Path, tmp_path: Path) -> None:
    """A store holding `bars_5m` (and its regular-session `bars_5m_rth`): the meta lists them in menu order, and
    the chart's bars of 5m are that table's rows and indicators, not minute bars resampled."""
    native = tmp_path / "native.duckdb"
    lake = f"{sample_data}/lake"
    con = duckdb.connect(str(native))
    for table in ("bars_1m", "bars_1d"):
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM read_parquet('{lake}/table={table}/*/*.parquet')")
    five = ("SELECT ticker, time_bucket(INTERVAL 5 MINUTE, ts) AS ts, first(open ORDER BY ts) AS open, max(high) "
            "AS high, min(low) AS low, last(close ORDER BY ts) AS close, sum(volume) AS volume, NULL::DOUBLE AS vw, "
            "sum(transactions) AS transactions, {sma} AS sma_20 FROM bars_1m {where} GROUP BY ALL")
    con.execute("CREATE TABLE bars_5m AS " + five.format(sma="42.5::DOUBLE", where=""))
    con.execute("CREATE VIEW bars_5m_rth AS " + five.format(
        sma="7.25::DOUBLE", where="WHERE timezone('America/New_York', ts)::TIME BETWEEN '09:30' AND '15:59'"))
    n5 = con.execute("SELECT count(*) FROM bars_5m WHERE ticker = 'AAPL' AND ts >= '2024-01-24 14:30+00' "
                     "AND ts < '2024-01-24 16:30+00'").fetchone()[0]  # type: ignore[index]
    total5 = con.execute("SELECT count(*) FROM bars_5m").fetchone()[0]  # type: ignore[index]
    con.close()
    assert n5 == 24
    with serving("--data-dir", str(sample_data), "--db", f"duckdb:///{native}") as server:
        status, meta, _ = server.get("/api/meta/AAPL")
        assert status == 200
        assert meta["stored"] == ["1m", "5m", "1d", "5m:rth"]
        tables = {t["table"]: t["rows"] for t in server.get("/api/overview")[1]["tables"]}
        assert tables["bars_5m"] == total5 and "bars_5m_rth" in tables  # the overview's tables know them too
        assert list(meta["timeframes"]) == ["1m", "5m", "1d", "5m:rth"]
        assert meta["timeframes"]["5m"]["table"] == "bars_5m" and "sma_20" in meta["timeframes"]["5m"]["indicators"]
        window = "start=2024-01-24T09:30:00&end=2024-01-24T11:30:00&indicators=sma_20"
        status, five_m, _ = server.get(f"/api/bars/AAPL?tf=5m&{window}")
        assert status == 200 and five_m["table"] == "bars_5m" and five_m["width"] == "5m"
        assert five_m["points"] == five_m["bars_in"] == n5
        assert set(five_m["columns"]["sma_20"]) == {42.5}  # the 5-minute table's own indicator
        status, minute, _ = server.get(f"/api/bars/AAPL?tf=1m&{window}")
        assert status == 200 and minute["width"] == "1m" and 42.5 not in minute["columns"]["sma_20"]
        status, rth, _ = server.get(f"/api/bars/AAPL?tf={q('5m:rth')}&{window}")
        assert status == 200 and rth["table"] == "bars_5m_rth" and set(rth["columns"]["sma_20"]) == {7.25}
        status, whole, _ = server.get("/api/bars/AAPL?tf=5m&points=100")  # zoomed out: 5m bars resampled
        assert status == 200 and whole["table"] == "bars_5m" and whole["points"] <= 100
        assert whole["width"] not in ("1m", "2m", "5m") and whole["bars_in"] == meta["timeframes"]["5m"]["bars"]
        status, body, _ = server.get("/api/bars/AAPL?tf=15m")
        assert status == 400 and "5m:rth" in body["error"]
