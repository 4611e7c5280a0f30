"""Bad input and bad answers from REST, through the installed command: a clear message, a documented exit
code, and nothing loaded before lost or doubled."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import colfill
from tests.pipeline.conftest import stored
from tests.polygon_server import PolygonServer
from tests.rest.conftest import END, KEY, START

RANGE = ["--start", str(START), "--end", str(END)]


def rest_run(server: PolygonServer, data: Path, *args: str, key: str = KEY):  # type: ignore[no-untyped-def]
    return colfill("run", "--source", "rest", "--data-dir", str(data), "--skip-minute", "--skip-reference",
                   "--skip-corporate", *args, COLFILL_REST_URL=server.url, POLYGON_API_KEY=key)


@pytest.mark.parametrize(("args", "code", "says"), [
    (["--years", "0"], 2, "--years 0 must be at least 1"),
    (["--start", str(END), "--end", str(START)], 2, f"--start {END} is after --end {START}"),
    (["--start", "2031-01-02", "--end", "2031-02-03"], 4, "no trading day before today between 2031-01-02"),
    (["--rate", "fast"], 2, "--rate"),
])
def test_bad_arguments(server: PolygonServer, tmp_path: Path, args: list[str], code: int,
                       says: str) -> None:
    proc = rest_run(server, tmp_path / "d", *args)
    assert proc.returncode == code, proc.stderr
    assert says in " ".join(proc.stderr.split()) and KEY not in proc.stderr + proc.stdout


@pytest.mark.parametrize(("fault", "code", "says"), [
    ("403", 3, "not entitled"),
    ("401", 3, "refused the API key (401)"),
    ("malformed", 1, "malformed"),
])
def test_bad_answers_keep_what_was_loaded(server: PolygonServer, tmp_path: Path, fault: str, code: int,
                                          says: str) -> None:
    data = tmp_path / "d"
    first = rest_run(server, data, "--tickers", "AAPL", *RANGE)
    assert first.returncode == 0, first.stderr
    before = stored(data, "bars_1d")
    server.inject(fault, count=1000)
    proc = rest_run(server, data, "--tickers", "AAPL,MSFT", *RANGE)  # a new ticker set: every day is fetched again
    assert proc.returncode == code, proc.stderr
    assert says.lower() in " ".join(proc.stderr.split()).lower() and KEY not in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr
    assert stored(data, "bars_1d").equals(before)


def test_empty_answers_are_reported_not_fatal(server: PolygonServer, tmp_path: Path) -> None:
    proc = rest_run(server, tmp_path / "d", "--tickers", "NOSUCH,ZZZZ", *RANGE)
    assert proc.returncode == 0, proc.stderr
    assert "REST had no bars of NOSUCH, ZZZZ" in " ".join(proc.stderr.split())


def test_flat_file_bars_load_when_rest_is_down(flatfiles: Path, tmp_path: Path) -> None:
    """Phases 1-2 need REST, the bars do not: they load, the summary names what was not, exit 1."""
    with PolygonServer(api_key=KEY) as down:
        url = down.url
    proc = colfill("run", "--source", str(flatfiles), "--data-dir", str(tmp_path / "d"), *RANGE,
                   COLFILL_REST_URL=url, POLYGON_API_KEY=KEY)
    assert proc.returncode == 1, proc.stderr
    text = " ".join(proc.stderr.split())
    assert f"not loaded reference: the REST API at {url} cannot be reached" in text  # at the first failure
    assert stored(tmp_path / "d", "bars_1m").height > 0 and KEY not in text
