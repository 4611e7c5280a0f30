"""The dashboard in a real headless Chromium: pages load without console errors, the chart draws the right
candles with overlays and panes, the heatmap shows a removed day as missing, a bar published on Redis reaches
the open chart, and the progress of a run started during the test advances on the page. Screenshots of each
page are saved under tests/artifacts/."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import (
    BIN,
    ENV,
    REMOVED_DAY,
    Browser,
    Server,
    colfill,
    sample_source,
    serving,
    wait_for,
)

pytestmark = pytest.mark.slow


def chart_state(b: Browser) -> dict[str, Any]:
    return b.page.evaluate("JSON.parse(JSON.stringify(window.__chart || {}))")  # type: ignore[no-any-return]


def test_overview_loads_without_console_errors(ui: Server, browser: Browser) -> None:
    browser.page.goto(ui.url + "/")
    browser.page.wait_for_selector("#tables tbody tr[data-table=bars_1m]")
    browser.page.wait_for_selector("#runs tbody tr")
    browser.page.wait_for_selector("#rejects tbody tr")
    text = browser.page.inner_text("#tables")
    assert "bars_1m" in text and "bars_1d" in text
    assert "problems" in browser.page.inner_text("#runs")  # the run had a rejected row
    browser.page.click("#rejects a.reason")
    browser.page.wait_for_selector("#reject-rows tbody tr")
    assert "2024-01-10.csv.gz" in browser.page.inner_text("#reject-rows")
    browser.page.wait_for_selector("#progress .prog[data-table=bars_1m]")  # the finished run's progress file
    browser.shot("overview")
    assert browser.errors == []


def test_chart_draws_the_candles_of_the_range(ui: Server, browser: Browser, sample_data: Path) -> None:
    browser.page.goto(ui.url + "/ticker/MSFT?tf=1d&start=2024-01-08&end=2024-01-31")
    wait_for(lambda: chart_state(browser).get("renders"))
    out = colfill("sql", "SELECT count(*) FROM bars_1d WHERE ticker = 'MSFT' AND timezone('America/New_York', ts)"
                  "::DATE BETWEEN DATE '2024-01-08' AND DATE '2024-01-31'", "--data-dir", str(sample_data),
                  "--format", "csv")
    want = int(out.stdout.splitlines()[1])
    assert want == 16  # 18 sessions, less the removed day; 15 January is a holiday
    state = chart_state(browser)
    assert state["candles"] == want
    assert browser.page.get_attribute("#info", "data-candles") == str(want)
    assert state["traces"][0] == "MSFT" and browser.page.evaluate("window.__chart.inView()") == want  # all shown
    assert set(browser.page.evaluate("window.__chart.last('MSFT')")) >= {"open", "high", "low", "close"}
    assert browser.page.locator("#chart canvas").count() > 0
    browser.shot("chart-day")
    # the minute chart of the whole range: resampled by the server, every bar counted
    browser.page.goto(ui.url + "/ticker/MSFT")
    wait_for(lambda: chart_state(browser).get("renders"))
    info = browser.page.inner_text("#info")
    assert "candles of" in info and "1m bars in range" in info
    assert 0 < chart_state(browser)["candles"] <= 1500
    coarse = browser.page.inner_text("#info").split(" candles of ")[1].split(" ")[0]
    browser.shot("chart-minute")
    # zoom to one morning: the page asks the server for that range again, at a finer bucket
    renders = chart_state(browser)["renders"]
    browser.page.evaluate("window.__chart.zoom('2024-01-24 09:30', '2024-01-24 11:30')")  # as the wheel does
    assert wait_for(lambda: chart_state(browser)["renders"] > renders)
    fine = browser.page.inner_text("#info")
    assert fine.split(" candles of ")[1].startswith("1m ") and coarse != "1m", (coarse, fine)
    assert 100 <= browser.page.evaluate("window.__chart.inView()") <= 121  # two hours of minute bars, unaggregated
    assert chart_state(browser)["candles"] > 121  # and half as much again on each side, for panning
    browser.shot("chart-zoomed")
    # a drag to the loaded candles' left end: the page asks for the range it moved to, at the same bucket
    renders, before = chart_state(browser)["renders"], browser.page.inner_text("#info")
    box = browser.page.locator("#pane-price").bounding_box()
    y = box["y"] + box["height"] / 2
    browser.page.mouse.move(box["x"] + 100, y)
    browser.page.mouse.down()
    browser.page.mouse.move(box["x"] + box["width"] - 100, y, steps=15)
    browser.page.mouse.up()
    assert wait_for(lambda: chart_state(browser)["renders"] > renders)
    after = browser.page.inner_text("#info")
    assert after != before and after.split(" candles of ")[1].startswith("1m "), (before, after)
    assert browser.errors == []


def test_overlays_and_panes(ui: Server, browser: Browser) -> None:
    browser.page.goto(ui.url + "/ticker/AAPL?tf=1d")
    wait_for(lambda: chart_state(browser).get("renders"))
    renders = chart_state(browser)["renders"]
    for group in ("bb", "vwap", "ema_20", "macd"):
        browser.page.check(f"#indicators input[value={group}]")
        renders += 1
        assert wait_for(lambda n=renders: chart_state(browser).get("renders", 0) >= n)
    traces = set(chart_state(browser)["traces"])
    assert {"AAPL", "volume", "sma_20", "rsi_14", "bb_upper", "bb_middle", "bb_lower", "vwap", "ema_20", "macd",
            "macd_signal", "macd_hist"} <= traces
    assert chart_state(browser)["scales"] == ["price", "volume", "rsi_14", "macd"]  # RSI and MACD in panes
    assert browser.page.locator("#chart .pane").count() == 3
    # zoomed in (every day already shown: no reload), then an indicator toggled: the chart keeps the zoom
    shown = browser.page.evaluate("window.__chart.inView()")
    browser.page.evaluate("window.__chart.zoom('2024-01-10 00:00', '2024-01-19 00:00')")
    assert wait_for(lambda: browser.page.evaluate("window.__chart.inView()") < shown)
    zoomed = browser.page.evaluate("window.__chart.inView()")
    renders = chart_state(browser)["renders"]
    browser.page.uncheck("#indicators input[value=ema_20]")
    assert wait_for(lambda: chart_state(browser)["renders"] > renders)
    assert browser.page.evaluate("window.__chart.inView()") == zoomed
    browser.shot("chart-indicators")
    assert browser.errors == []
    # a bad range in the address: the page says why (the API answered 400)
    browser.page.goto(ui.url + "/ticker/AAPL?tf=1d&start=2024-02-01&end=2024-01-01")
    assert wait_for(lambda: "start must be before end" in browser.page.inner_text("#message"))
    browser.page.goto(ui.url + "/ticker/NOPE")
    assert "unknown ticker 'NOPE'" in browser.page.inner_text("#message")
    browser.shot("chart-unknown-ticker")


def test_every_asset_comes_from_our_server(ui: Server, browser: Browser) -> None:
    """No CDN: the pages load only from colfill's server, the charting libraries as their wheels ship them."""
    import urllib.request

    from colfill.ui.dashboard import BUNDLES, vendor_bundle

    drawn_by = {"/": "#tables tbody tr", "/coverage": "#missing[data-days]", "/ticker/AAPL": "#info[data-candles]"}
    for page, drawn in drawn_by.items():
        browser.page.goto(ui.url + page)
        browser.page.wait_for_selector(drawn)
    assert browser.requests and all(u.startswith(ui.url + "/") for u in browser.requests), browser.requests
    loaded = {u.rsplit("/", 1)[1] for u in browser.requests if "/vendor/" in u}
    assert loaded == set(BUNDLES)
    for name in BUNDLES:
        with urllib.request.urlopen(f"{ui.url}/vendor/{name}", timeout=30) as res:
            assert res.read() == vendor_bundle(name).read_bytes()
            assert "max-age" in res.headers["Cache-Control"]
    status, _, _ = ui.get("/vendor/jquery.js")
    assert status == 404
    assert browser.errors == []


def cell_rgb(b: Browser, ticker: str, day: str) -> tuple[int, int, int]:
    """The colour the heatmap's canvas shows at the centre of a (ticker, day) cell: what was drawn, read back."""
    return tuple(b.page.evaluate(
        """([t, d]) => { const c = document.querySelector('#heatmap canvas'), p = window.__coverage.cell(t, d);
        const k = window.devicePixelRatio || 1, px = c.getContext('2d').getImageData(Math.round(p.x * k),
            Math.round(p.y * k), 1, 1);
        return Array.from(px.data).slice(0, 3); }""",
        [ticker, day]))


def test_heatmap_shows_the_removed_day_missing(ui: Server, browser: Browser) -> None:
    browser.page.goto(ui.url + "/coverage")
    browser.page.wait_for_selector("#missing[data-days]")
    assert browser.page.get_attribute("#missing", "data-days") == REMOVED_DAY
    assert REMOVED_DAY in browser.page.inner_text("#missing")
    wait_for(lambda: browser.page.evaluate("window.__coverage.renders"))
    cov = browser.page.evaluate("({days: window.__coverage.days, tickers: window.__coverage.tickers, "
                                "z: window.__coverage.z})")
    col = cov["days"].index(REMOVED_DAY)
    assert all(row[col] == 0 for row in cov["z"]) and all(row[col - 1] > 0 for row in cov["z"])
    red = (198, 40, 40)
    for ticker in cov["tickers"][:5]:  # the drawn pixels: red on the removed day, not the day before
        assert cell_rgb(browser, ticker, REMOVED_DAY) == red
        assert cell_rgb(browser, ticker, cov["days"][col - 1]) != red
    browser.page.hover("#heatmap canvas", position={"x": 5, "y": 5})
    browser.page.mouse.move(*cell_point(browser, cov["tickers"][0], REMOVED_DAY))
    assert wait_for(lambda: f"{cov['tickers'][0]} {REMOVED_DAY}: 0 bars" in browser.page.inner_text("#tip"))
    browser.page.fill("#search", "MS")
    wait_for(lambda: browser.page.evaluate("window.__coverage.tickers.length") == 1)
    assert browser.page.evaluate("window.__coverage.tickers") == ["MSFT"]
    browser.page.fill("#search", "")
    wait_for(lambda: browser.page.evaluate("window.__coverage.tickers.length") > 1)
    browser.shot("coverage")
    day = cov["days"][col - 1]  # a click on a cell opens that ticker's chart of that day
    browser.page.mouse.click(*cell_point(browser, "MSFT", day))
    browser.page.wait_for_url(f"**/ticker/MSFT?tf=1m&start={day}&end={day}")
    wait_for(lambda: chart_state(browser).get("renders"))
    assert browser.errors == []


def cell_point(b: Browser, ticker: str, day: str) -> tuple[float, float]:
    """Page coordinates of a (ticker, day) cell's centre."""
    box = b.page.locator("#heatmap canvas").bounding_box()
    p = b.page.evaluate("([t, d]) => window.__coverage.cell(t, d)", [ticker, day])
    return box["x"] + p["x"], box["y"] + p["y"]


@pytest.mark.redis
def test_bar_published_on_redis_appears_on_the_chart(sample_data: Path, browser: Browser, redis_url: str) -> None:
    import redis

    url = redis_url.rsplit("/", 1)[0] + "/9"  # status keys in a database of their own (pub/sub is server-wide)
    with serving("--data-dir", str(sample_data), "--redis", url) as server:
        from colfill.bus import open_bus

        status_bus = open_bus(url)  # what `colfill live` publishes about itself
        status_bus.publish_status("live", {"kind": "live", "tickers": ["AAPL", "NAN"], "bars": 1234,
                                           "bars_per_s": 12.5, "lag_ms": 87.0, "reconnects": 1, "fills": 2,
                                           "filled": 600, "filled_revised": 3, "unfilled": 0,
                                           "last_fill": {"why": "reconnect", "tickers": 100, "start_ms": 1704205800000,
                                                         "end_ms": 1704206280000, "inserted": 600, "revised": 3,
                                                         "seconds": 0.98, "failed": 0},
                                           "updated_ms": time.time() * 1000})
        browser.page.goto(server.url + "/")
        browser.page.wait_for_selector("#live-figures")
        browser.page.wait_for_selector("#tables tbody tr[data-table=bars_1m]")
        figures = browser.page.inner_text("#live-figures")
        assert "2 tickers" in figures and "12.5 bars/s" in figures and "lag 87 ms" in figures
        fills = browser.page.inner_text("#live-fills")
        assert "gap fills from REST 2" in fills and "+600 bars, 3 revised in 0.98 s" in fills and "14:30–14:38" in fills
        browser.shot("overview-live")
        status_bus.close()
        redis.Redis.from_url(url).delete("colfill:status:live")
        browser.page.goto(server.url + "/ticker/NAN?tf=1m")
        wait_for(lambda: chart_state(browser).get("renders"))
        browser.page.wait_for_selector("#live-state.ok")
        before = chart_state(browser)["candles"]
        last = browser.page.evaluate("window.__chart.last('NAN').close")
        t = 1707512400000 + 86_400_000 * 3  # Monday 12 February 2024, 16:00 New York: a new day's bucket
        bar = {"ticker": "NAN", "ts": t, "open": last, "high": last * 1.2, "low": last * 0.9, "close": last * 1.1,
               "volume": 1234.0, "vw": None, "transactions": 5, "sma_20": None}
        client = redis.Redis.from_url(url)
        sent = time.time()
        publish(client, url, bar)
        assert wait_for(lambda: chart_state(browser).get("live", 0) >= 1, timeout=2.0), "no live bar within 2 s"
        elapsed = time.time() - sent
        state = chart_state(browser)
        assert state["candles"] == before + 1
        assert browser.page.evaluate("window.__chart.last('NAN').close") == pytest.approx(last * 1.1)
        assert elapsed < 2.0
        revised = dict(bar, close=last * 1.05, volume=1000.0)  # a revision of the same bar replaces it
        publish(client, url, revised, revision=True)
        assert wait_for(lambda: chart_state(browser).get("live", 0) >= 2, timeout=2.0), "no revision within 2 s"
        assert chart_state(browser)["candles"] == before + 1
        assert browser.page.evaluate("window.__chart.last('NAN').close") == pytest.approx(last * 1.05)
        assert browser.page.evaluate("window.__chart.last('volume').value") == pytest.approx(1000.0)
        browser.shot("chart-live")
        client.close()
    assert browser.errors == []


def publish(client: Any, url: str, bar: dict[str, Any], revision: bool = False) -> None:
    """A bar as `colfill live` publishes it: through colfill.bus when it is there, else the contract's JSON."""
    try:
        import pyarrow as pa

        from colfill.bus.redis import RedisMessageBus
    except ImportError:
        message = {"v": 1, "ticker": bar["ticker"], "timeframe": "1m", "t": bar["ts"], "ts": "",
                   **{k: bar[k] for k in ("open", "high", "low", "close", "volume", "vw", "transactions", "sma_20")},
                   "revision": revision, "published_ms": time.time() * 1000}
        client.publish(f"colfill:bars:1m:{bar['ticker']}", json.dumps(message))
        return
    import datetime as dt

    row = dict(bar, ts=dt.datetime.fromtimestamp(bar["ts"] / 1000, dt.timezone.utc))
    table = pa.Table.from_pylist([row], schema=pa.schema([
        ("ticker", pa.string()), ("ts", pa.timestamp("us", "UTC")), ("open", pa.float64()), ("high", pa.float64()),
        ("low", pa.float64()), ("close", pa.float64()), ("volume", pa.float64()), ("vw", pa.float64()),
        ("transactions", pa.int64()), ("sma_20", pa.float64())]))
    bus = RedisMessageBus(url)
    bus.publish("1m", table, revision=revision)
    bus.close()


def test_progress_of_a_running_backfill_advances(tmp_path: Path, browser: Browser) -> None:
    src = sample_source(tmp_path / "src", "2024-01-02", "2024-04-30", tickers=40)
    data = tmp_path / "data"
    data.mkdir()
    with serving("--data-dir", str(data)) as server:
        browser.page.goto(server.url + "/")
        browser.page.wait_for_selector("#progress[data-state=none]")
        proc = subprocess.Popen([str(BIN), "run", "--source", str(src), "--data-dir", str(data), "--start",
                                 "2024-01-02", "--end", "2024-04-30", "--skip-daily"], env=ENV,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        seen: list[int] = []
        shot = False
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = browser.page.evaluate(
                "(() => { const e = document.querySelector('#progress .prog[data-table=bars_1m]');"
                " return e ? Number(e.dataset.done) : null; })()")
            if done is not None and (not seen or done != seen[-1]):
                seen.append(done)
                if not shot and 0 < done < 80:
                    browser.shot("overview-progress")
                    shot = True
            if browser.page.get_attribute("#progress", "data-state") == "finished":
                break
            time.sleep(0.1)
        assert proc.wait(120) == 0, proc.stderr.read() if proc.stderr else ""
        assert browser.page.get_attribute("#progress", "data-state") == "finished"
        total = int(browser.page.get_attribute("#progress .prog[data-table=bars_1m]", "data-total") or 0)
        assert total == 83  # trading days of January to April 2024
        assert len([d for d in seen if 0 < d < total]) >= 2, seen  # seen advancing, not only the end
        assert seen == sorted(seen)
        assert "rows/s" in browser.page.inner_text("#progress")
    assert browser.errors == []


def test_colours_scales_and_the_crosshair_legend(ui: Server, browser: Browser) -> None:
    browser.page.goto(ui.url + "/ticker/AAPL?tf=1d")
    wait_for(lambda: chart_state(browser).get("renders"))
    scale = browser.page.evaluate("window.__chart.scale()")  # volume on its own scale: prices stay above zero
    assert scale["volume"] != scale["price"]
    assert 0 <= scale["min"] < scale["max"]
    renders = chart_state(browser)["renders"]
    for group in ("ema_20", "bb", "macd"):
        browser.page.check(f"#indicators input[value={group}]")
        renders += 1
        assert wait_for(lambda n=renders: chart_state(browser).get("renders", 0) >= n)
    colours = browser.page.evaluate("window.__chart.colours()")
    lines = {c["name"]: c["colour"] for c in colours if c["kind"] == "line"}
    assert {"sma_20", "ema_20", "rsi_14", "bb_upper", "macd", "macd_signal"} <= set(lines)
    assert len(set(lines.values())) == len(lines), lines  # each line a colour of its own
    (candles,) = [c["colour"] for c in colours if c["kind"] == "candles"]
    assert not set(candles) & set(lines.values())
    for c in colours:  # the legend's swatch is the line's colour
        if c["kind"] == "line":
            assert c["legend"] and rgb(c["legend"]) == rgb(c["colour"]), c
    box = browser.page.locator("#pane-price").bounding_box()
    seen = []
    for fraction in (0.25, 0.6):
        browser.page.mouse.move(box["x"] + box["width"] * fraction, box["y"] + box["height"] / 2)
        assert wait_for(lambda: browser.page.get_attribute("#legend", "data-t") not in (None, *seen))
        seen.append(browser.page.get_attribute("#legend", "data-t"))
    text = browser.page.inner_text("#legend")
    hovered = int(seen[-1])
    close = browser.page.evaluate("(t) => window.__chart.at(t)", hovered)
    assert f"C {close['close']:.2f}" in text and "volume" in text and "sma_20" in text, text
    assert f"{close['sma_20']:.2f}" in text, (close, text)
    browser.shot("chart-legend")
    assert browser.errors == []


def rgb(colour: str) -> tuple[int, ...]:
    if colour.startswith("#"):
        return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return tuple(int(v) for v in colour[colour.index("(") + 1:colour.index(")")].split(",")[:3])


def test_a_timeframe_switch_keeps_the_visible_range(ui: Server, browser: Browser) -> None:
    browser.page.goto(ui.url + "/ticker/MSFT?tf=1m&start=2024-01-10&end=2024-02-05")
    wait_for(lambda: chart_state(browser).get("renders"))
    assert browser.page.eval_on_selector_all("#tf option", "os => os.map((o) => o.value)") == ["1m", "1d"]
    browser.page.evaluate("window.__chart.zoom('2024-01-16 00:00', '2024-01-30 00:00')")  # two weeks
    time.sleep(0.5)  # past a reload it may ask for
    before = browser.page.evaluate("window.__chart.visible()")
    renders = chart_state(browser)["renders"]
    browser.page.select_option("#tf", "1d")
    assert wait_for(lambda: chart_state(browser)["renders"] > renders)
    assert "1d bars" in browser.page.inner_text("#info")
    after = browser.page.evaluate("window.__chart.visible()")
    assert abs(after["from"] - before["from"]) < 86_400_000 and abs(after["to"] - before["to"]) < 86_400_000, (
        before, after)  # within a day bar
    renders = chart_state(browser)["renders"]
    browser.page.select_option("#tf", "1m")
    assert wait_for(lambda: chart_state(browser)["renders"] > renders)
    back = browser.page.evaluate("window.__chart.visible()")
    assert abs(back["from"] - before["from"]) < 3_600_000 and abs(back["to"] - before["to"]) < 3_600_000, (
        before, back)
    assert browser.errors == []
