"""Live bars are validated like batch bars: what the flat files reject, the live engine counts and drops."""

from __future__ import annotations

import datetime as dt
import itertools
import logging

import polars as pl
import pytest

from colfill.bus import InMemoryMessageBus, bar_channel
from colfill.live.engine import DataIngestionEngine
from colfill.validate import RowCheck, validate
from tests.live.engine_helpers import KEY, MIN, SHORT, T0, live_source, rows_of, run_until
from tests.polygon_ws_server import PolygonWsServer, minute_bar

BAD = {  # what each bar breaks: the reason the flat files give it
    "high < low": dict(h=99.0, l=101.0, o=100.0, c=100.0),
    "negative volume": dict(v=-5.0),
    "non-positive price": dict(o=0.0, l=0.0),
    "close outside": dict(c=120.0),
    "empty ticker": dict(sym=""),
}


def flat_file_verdict(row: tuple) -> str | None:
    """The flat files' reason for a socket row (None: a sane bar), through `validate` itself."""
    ticker, t, o, h, l_, c, v = row[:7]
    frame = pl.DataFrame({"line": [2], "ticker": [ticker], "volume": [v], "open": [o], "close": [c], "high": [h],
                          "low": [l_], "window_start": [t * 1_000_000], "transactions": [3]})
    _, rejects = validate(frame, "live", None)
    return rejects["reason"][0] if rejects.height else None


def test_row_check_gives_the_flat_files_verdict() -> None:
    check = RowCheck()
    prices = (-1.0, 0.0, 1.0, 2.0, 3.0, float("nan"))
    rows = [("A" if i % 7 else "", T0 + i * MIN, o, h, l_, c, v, None, 3, T0 + (i + 1) * MIN)
            for i, (o, h, l_, c, v) in enumerate(itertools.product(prices, prices, prices, prices, (-1.0, 0.0, 5.0)))]
    assert len(rows) > 1000
    verdicts = [(check.reject_reason(r), flat_file_verdict(r)) for r in rows[::5]]
    assert sum(a is None for a, _ in verdicts) > 5 and sum(a is not None for a, _ in verdicts) > 50
    assert [a for a, _ in verdicts] == [b for _, b in verdicts]


def test_a_bar_outside_its_new_york_day_is_invalid() -> None:
    check = RowCheck()
    midnight = int(dt.datetime(2024, 3, 11, tzinfo=dt.timezone(dt.timedelta(hours=-4))).timestamp() * 1000)
    sane = ("A", midnight - MIN, 1.0, 1.0, 1.0, 1.0, 1.0, None, 1, midnight)  # 23:59 ends at midnight: its day
    assert check.reject_reason(sane) is None
    across = ("A", midnight - MIN, 1.0, 1.0, 1.0, 1.0, 1.0, None, 1, midnight + MIN)
    backwards = ("A", midnight, 1.0, 1.0, 1.0, 1.0, 1.0, None, 1, midnight)
    assert "outside its New York day" in (check.reject_reason(across) or "")
    assert "outside its New York day" in (check.reject_reason(backwards) or "")


@pytest.mark.parametrize("kind", ["duckdb", "memory"])
def test_live_rejects_what_the_flat_files_reject_and_counts_it(kind: str, tmp_path, caplog) -> None:
    store = f"duckdb:///{tmp_path / 'live.duckdb'}" if kind == "duckdb" else None
    good = [minute_bar("AAPL", T0 + i * MIN, 100.0 + i) for i in range(6)]
    bad = [minute_bar("AAPL" if fields.get("sym") is None else fields.pop("sym"), T0 + (10 + i) * MIN, 100.0,
                      **fields) for i, fields in enumerate(dict(f) for f in BAD.values())]
    for event in bad:  # each is what the flat files would reject
        row = (event["sym"], event["s"], event["o"], event["h"], event["l"], event["c"], event["v"])
        assert flat_file_verdict(row) is not None
    bus = InMemoryMessageBus(keep=1000)
    engine = DataIngestionEngine(storage=store, message_bus=bus, indicators=SHORT)
    caplog.set_level(logging.WARNING, logger="colfill.live")
    with PolygonWsServer(api_key=KEY) as srv:
        srv.publish([*good[:3], *bad, *good[3:]])
        src = live_source(srv, ("AAPL", ""))
        run_until(engine, src, lambda: engine.stats.bars_in >= len(good) + len(bad) and engine.stats.published >= 6)
    engine.close()
    s = engine.stats
    assert (s.bars_in, s.invalid, s.published) == (len(good) + len(bad), len(bad), len(good))
    assert "high 99.0 < low 101.0" in caplog.text and "not stored or published" in caplog.text
    published = bus.messages(bar_channel("1m", "AAPL"))
    assert [m["t"] for m in published] == [b["s"] for b in good]
    if store is not None:
        assert rows_of(store)["ts"].len() == len(good)
