"""Dashboard fixtures: a sample data dir loaded by the installed `colfill run` (one trading day removed from the
source, one row made invalid), `colfill ui` served on 127.0.0.1 in a subprocess, and a real headless Chromium
(Debian's /usr/bin/chromium) driven by Playwright, each test in a fresh user-data dir.

Screenshots go to tests/artifacts/ for a reviewer to look at.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need_service
from tests.helpers import wait_for  # noqa: F401 (the test modules import it from here)

BIN = Path(sys.executable).with_name("colfill")
ENV = {k: v for k, v in os.environ.items() if not k.startswith("COLFILL_")} | {"COLUMNS": "160"}
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
START, END = "2024-01-02", "2024-02-09"
REMOVED_DAY = "2024-01-18"  # a trading day taken out of the sample source: the heatmap must show it missing
BAD_DAY = "2024-01-10"  # a day with one row made invalid (high < low): a rejected row


def colfill(*args: str, timeout: float = 180, **env: str) -> subprocess.CompletedProcess[str]:
    assert BIN.exists(), f"the console script is not installed at {BIN} (pip install -e .)"
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=timeout, env=ENV | env,
                          stdin=subprocess.DEVNULL)


def sample_source(root: Path, start: str = START, end: str = END, tickers: int = 8) -> Path:
    proc = colfill("sample", "--out", str(root), "--start", start, "--end", end, "--tickers", str(tickers))
    assert proc.returncode == 0, proc.stderr
    return root


def break_row(path: Path) -> None:
    """Swap high and low of the first data row, so validation rejects it (high < low)."""
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    header = lines[0].split(",")
    cells = lines[1].split(",")
    hi, lo = header.index("high"), header.index("low")
    if float(cells[hi]) == float(cells[lo]):
        cells[lo] = str(float(cells[hi]) + 1)
    else:
        cells[hi], cells[lo] = cells[lo], cells[hi]
    lines[1] = ",".join(cells)
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0))


def day_file(root: Path, dataset: str, day: str) -> Path:
    return root / "us_stocks_sip" / dataset / day[:4] / day[5:7] / f"{day}.csv.gz"


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir of 8 sample tickers over START..END, loaded by `colfill run` into the lake."""
    base = tmp_path_factory.mktemp("ui-sample")
    src = sample_source(base / "src")
    for dataset in ("minute_aggs_v1", "day_aggs_v1"):
        day_file(src, dataset, REMOVED_DAY).unlink()
    break_row(day_file(src, "minute_aggs_v1", BAD_DAY))
    data = base / "data"
    proc = colfill("run", "--source", str(src), "--data-dir", str(data), "--start", START, "--end", END)
    assert proc.returncode == 1, proc.stderr  # 1: a row was rejected (the rest loaded)
    assert "high" in proc.stderr
    return data


class Server:
    """`colfill ui` in a subprocess; `url` is its address as it printed it."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen([str(BIN), "ui", "--port", "0", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=ENV | (env or {}),
                                     stdin=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if not match:
            self.proc.kill()
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise AssertionError(f"colfill ui did not start: {line!r} {err}")
        self.url = f"http://127.0.0.1:{match.group(1)}"
        self.banner = line

    def get(self, path: str) -> tuple[int, Any, dict[str, str]]:
        import json
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(self.url + path, timeout=30) as res:
                body = res.read().decode()
                status, headers = res.status, dict(res.headers)
        except urllib.error.HTTPError as exc:
            body, status, headers = exc.read().decode(), exc.code, dict(exc.headers)
        try:
            return status, json.loads(body), headers
        except ValueError:
            return status, body, headers

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def serving(*args: str, env: dict[str, str] | None = None) -> Iterator[Server]:
    server = Server(*args, env=env)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def ui(sample_data: Path) -> Iterator[Server]:
    with serving("--data-dir", str(sample_data)) as server:
        yield server


def have_chromium() -> None:
    if not CHROMIUM.exists():
        need_service("Chromium", f"{CHROMIUM} is missing (scripts/services.sh installs Debian's chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        need_service("Playwright", "the playwright package is not installed (pip install -e '.[dev]')")


class Browser:
    """A Playwright page in headless Chromium with the console's errors and every requested URL collected."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        self.requests: list[str] = []
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("console", lambda m: self.errors.append(f"{m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))

    def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture(scope="session")
def playwright_instance() -> Iterator[Any]:
    have_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture
def browser(playwright_instance: Any) -> Iterator[Browser]:
    """A fresh Chromium profile (persistent context in a temporary user-data dir) per test."""
    profile = tempfile.mkdtemp(prefix="colfill-chromium-")
    ctx = playwright_instance.chromium.launch_persistent_context(
        profile, executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True,
        viewport={"width": 1400, "height": 900})
    try:
        page = ctx.pages[0] if ctx.pages else ctx.new_page()
        page.set_default_timeout(15_000)
        yield Browser(page)
    finally:
        ctx.close()
        shutil.rmtree(profile, ignore_errors=True)
