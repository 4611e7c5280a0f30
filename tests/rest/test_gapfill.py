"""Phase 3's fallback: trading days the flat files lack come from REST grouped daily, and the file replaces its
REST day once it appears; either way the stored day bars equal those of the complete flat files."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from colfill.sample import generate
from colfill.sources.flatfiles import FlatFiles
from colfill.sources.gapfill import GapFilled
from colfill.sources.rest import RestApi, RestSettings
from colfill.sources.rest_bars import RestBars
from tests.helpers import BIN, colfill
from tests.pipeline.conftest import assert_frames_close, stored
from tests.polygon_server import PolygonServer
from tests.rest.conftest import END, KEY, START, backfill


def test_missing_day_files_are_filled_from_rest_then_replaced(server: PolygonServer, flatfiles: Path,
                                                              tmp_path: Path) -> None:
    holey = tmp_path / "holey"
    shutil.copytree(flatfiles, holey)
    files = sorted((holey / "us_stocks_sip" / "day_aggs_v1").rglob("*.csv.gz"))
    gone = [files[3], files[-1]]  # a gap inside the span, and the last day (not published yet)
    kept = {f: f.read_bytes() for f in gone}
    for f in gone:
        f.unlink()
    settings = RestSettings.from_env(url=server.url, api_key=KEY, rate="1000/s")
    backfill(str(flatfiles), tmp_path / "complete", None, tables=("bars_1d",))
    result = backfill(str(holey), tmp_path / "d", None, settings, tables=("bars_1d",))
    assert result.ok and result.tables[0].staged == len(files)
    notes = " ".join(" ".join(t.notes) for t in result.tables)
    days = [f.name[:10] for f in gone]
    assert f"2 trading day(s) missing from the flat files filled from REST {server.url}: {', '.join(days)}" in notes
    grouped = [p for _, p in server.requests if p.startswith("/v2/aggs/grouped/")]
    assert sorted(p.split("/")[-1].split("?")[0] for p in grouped) == days  # only the missing days
    assert_frames_close(stored(tmp_path / "d", "bars_1d"), stored(tmp_path / "complete", "bars_1d"), rel=0)
    for f, body in kept.items():  # the files arrive: they replace their REST days, nothing doubles
        f.write_bytes(body)
    again = backfill(str(holey), tmp_path / "d", None, settings, tables=("bars_1d",))
    assert again.ok and again.tables[0].staged >= 2
    assert_frames_close(stored(tmp_path / "d", "bars_1d"), stored(tmp_path / "complete", "bars_1d"), rel=0)


def test_an_interrupted_rest_run_restarted_ends_with_the_same_rows(server: PolygonServer, flatfiles: Path,
                                                                  tmp_path: Path) -> None:
    backfill(str(flatfiles), tmp_path / "complete", None, tables=("bars_1d",))
    args = ["run", "--source", "rest", "--start", str(START), "--end", str(END), "--data-dir", str(tmp_path / "d"),
            "--skip-minute", "--skip-reference", "--skip-corporate"]
    env = {"COLFILL_REST_URL": server.url, "POLYGON_API_KEY": KEY}
    server.latency = 0.25  # grouped daily, one request a day: slow enough to stop half-way
    manifest = tmp_path / "d" / "lake" / "_manifest" / "table=bars_1d"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("COLFILL_", "POLYGON_", "MASSIVE_"))}
    proc = subprocess.Popen([str(BIN), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=base | env, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(list(manifest.rglob("*.json"))) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "run again to continue" in err and KEY not in err
    server.latency = 0.0
    before = len(server.requests)
    rerun = colfill(*args, **env)
    assert rerun.returncode == 0, rerun.stderr
    fetched = [p for _, p in server.requests[before:] if p.startswith("/v2/aggs/grouped/")]
    assert 0 < len(fetched) < 11  # only the days the first run had not committed
    assert_frames_close(stored(tmp_path / "d", "bars_1d"), stored(tmp_path / "complete", "bars_1d"), rel=0)


def test_rest_and_gap_fill_list_only_sessions_not_hurricane_sandy(server: PolygonServer, tmp_path: Path) -> None:
    """The NYSE closed 2012-10-29 and 30 for Hurricane Sandy: REST lists neither, and the gap fill takes the two
    days without a file for closed days, not gaps (only the removed 10-31 is filled)."""
    rest = RestBars(RestApi(RestSettings.from_env(url=server.url, api_key=KEY)), today=dt.date(2024, 1, 1))
    listed = [o.date.isoformat() for o in rest.list("bars_1d", dt.date(2012, 10, 25), dt.date(2012, 11, 1))]
    assert listed == ["2012-10-25", "2012-10-26", "2012-10-31", "2012-11-01"]
    generate(tmp_path, dt.date(2012, 10, 25), dt.date(2012, 11, 1), tickers=2, datasets=("day_aggs_v1",))
    (tmp_path / "us_stocks_sip" / "day_aggs_v1" / "2012" / "10" / "2012-10-31.csv.gz").unlink()
    filled = GapFilled(FlatFiles(str(tmp_path)), rest)
    objs = filled.list("bars_1d", dt.date(2012, 10, 25), dt.date(2012, 11, 1))
    assert [(o.date.isoformat(), o.key.startswith("rest/")) for o in objs] == [
        ("2012-10-25", False), ("2012-10-26", False), ("2012-10-31", True), ("2012-11-01", False)]
    assert "1 trading day(s) missing from the flat files" in " ".join(filled.notes("bars_1d"))
    assert not [p for _, p in server.requests if p.startswith("/v2/aggs/")]  # listing asks REST nothing
