"""The one message shape, built row by row (`bar_message`) and column by column (`encode_bars`), and the in-memory
bus that publishes it under the Redis names."""

from __future__ import annotations

import json
import queue

import polars as pl
import pyarrow as pa
import pytest

from colfill.bus import InMemoryMessageBus, bar_message, open_bus
from colfill.bus import base as bus_base
from colfill.bus.base import dumps, encode_bars
from colfill.errors import InvalidArgument

from .conftest import T0, bars

KEYS = ["v", "ticker", "timeframe", "t", "ts", "open", "high", "low", "close", "volume", "vw", "transactions",
        "sma_20", "rsi_14", "revision", "published_ms"]


def test_bar_message_has_the_contract_keys_in_order_and_nan_as_null() -> None:
    row = {"ticker": "AAPL", "ts": T0, "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 10.0,
           "vw": float("inf"), "transactions": None, "sma_20": float("nan"), "rsi_14": 55.5}
    msg = bar_message(row, "1m", True, published_ms=12.5)
    assert list(msg) == KEYS
    assert msg["t"] == 1704205800000 and msg["ts"] == "2024-01-02T14:30:00+00:00"
    assert msg["vw"] is None and msg["sma_20"] is None and msg["transactions"] is None and msg["rsi_14"] == 55.5
    assert msg["revision"] is True and msg["published_ms"] == 12.5 and msg["v"] == 1
    text = dumps(msg).decode()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == msg
    naive = bar_message({**row, "ts": T0.replace(tzinfo=None)}, "1m", False)
    from_ms = bar_message({**row, "ts": 1704205800000}, "1m", False)
    assert naive["t"] == from_ms["t"] == msg["t"]
    with pytest.raises(InvalidArgument):
        bar_message({**row, "ts": "2024-01-02"}, "1m", False)


def test_bar_message_fills_missing_bar_columns_with_null() -> None:
    msg = bar_message({"ticker": "X", "ts": T0, "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0,
                       "volume": 5.0, "ema_20": 3.0}, "1d", False)
    assert list(msg)[:12] == KEYS[:12] and msg["vw"] is None and msg["transactions"] is None
    assert list(msg)[12:] == ["ema_20", "revision", "published_ms"]


@pytest.mark.parametrize("stdlib", [False, True], ids=["orjson", "stdlib-json"])
def test_encode_bars_gives_the_bytes_of_bar_message_row_by_row(stdlib: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if stdlib:
        monkeypatch.setattr(bus_base, "orjson", None)
    table = bars(["AAPL", "BRK.A", 'O"DD'], minutes=3)
    table = table.append_column("pct%s", pa.array([1.0] * table.num_rows))  # a '%' must not break the template
    flags = [i % 2 == 0 for i in range(table.num_rows)]
    tickers, t_ms, payloads = encode_bars("1m", table, flags, published_ms=7.0)
    assert tickers == table["ticker"].to_pylist()
    for row, flag, t, payload in zip(table.to_pylist(), flags, t_ms, payloads):
        expected = bar_message(row, "1m", flag, published_ms=7.0)
        assert json.loads(payload) == expected and list(json.loads(payload)) == list(expected)
        assert t == expected["t"]
        if not stdlib:
            assert payload == dumps(expected)  # byte for byte
    first = json.loads(payloads[0])
    assert first["sma_20"] is None and first["rsi_14"] is None  # NaN and null alike


def test_encode_bars_takes_polars_and_dictionary_columns_and_checks_its_input() -> None:
    table = bars(["AAPL", "MSFT"], minutes=2)
    from_polars = encode_bars("1m", pl.from_arrow(table), published_ms=1.0)[2]  # type: ignore[arg-type]
    dictionary = table.set_column(0, "ticker", table["ticker"].dictionary_encode())
    assert from_polars == encode_bars("1m", table, published_ms=1.0)[2] == encode_bars(
        "1m", dictionary, published_ms=1.0)[2]
    assert encode_bars("1m", table.slice(0, 0)) == ([], [], [])
    with pytest.raises(InvalidArgument, match="revision flags"):
        encode_bars("1m", table, [True])
    with pytest.raises(InvalidArgument, match="'ts'"):
        encode_bars("1m", table.drop_columns(["ts"]))
    no_vw = json.loads(encode_bars("1m", table.drop_columns(["vw", "transactions"]))[2][0])
    assert list(no_vw) == KEYS and no_vw["vw"] is None and no_vw["transactions"] is None


def test_in_memory_bus_delivers_under_the_redis_names_and_keeps_the_last_n() -> None:
    bus = open_bus(None, keep=3, maxlen=5)
    assert isinstance(bus, InMemoryMessageBus) and isinstance(open_bus("memory://"), InMemoryMessageBus)
    calls: list[tuple[str, dict]] = []
    inbox: queue.Queue = queue.Queue()
    bus.add_listener(lambda channel, message: calls.append((channel, message)), "colfill:bars:1m:AAPL")
    bus.add_listener(inbox)

    def broken(channel: str, message: dict) -> None:
        raise RuntimeError("a bad reader")

    bus.add_listener(broken)
    table = bars(["AAPL", "MSFT"], minutes=4)
    assert bus.publish("1m", table, revision=True) == 8
    assert [c for c, _ in calls] == ["colfill:bars:1m:AAPL"] * 4
    assert [m["t"] for _, m in calls] == [1704205800000 + 60_000 * i for i in range(4)]
    assert all(m["revision"] is True and list(m) == KEYS for _, m in calls)
    assert inbox.qsize() == 8
    assert len(bus.messages("colfill:bars:1m:MSFT")) == 3  # keep=3, oldest dropped
    assert bus.messages("colfill:bars:1m:MSFT")[-1]["close"] == table["close"][-1].as_py()
    assert len(bus.stream("1m")) == 5 and bus.stream("1m")[-1]["ticker"] == "MSFT"
    bus.publish_status("live", {"kind": "live", "bars": 8})
    assert bus.status("live") == {"name": "live", "kind": "live", "bars": 8}
    assert inbox.qsize() == 9 and bus.messages("colfill:status")[-1]["bars"] == 8  # the broken one was dropped
    with pytest.raises(InvalidArgument, match="unknown scheme"):
        open_bus("nats://u:pw@host:4222")


def test_in_memory_subscribe_yields_the_chosen_tickers() -> None:
    import threading
    import time

    bus = InMemoryMessageBus()
    got: list[dict] = []
    reader = threading.Thread(target=lambda: got.extend(bus.subscribe(["MSFT"], "1m", timeout=0.5)))
    reader.start()
    deadline = time.monotonic() + 5
    while not bus._listeners and time.monotonic() < deadline:  # subscribed once its listener is there
        time.sleep(0.01)
    bus.publish("1m", bars(["AAPL", "MSFT"], minutes=2))
    reader.join(5)
    assert [m["ticker"] for m in got] == ["MSFT", "MSFT"]
    assert not bus._listeners  # the subscription ended with its iterator


def test_revision_flags_from_numpy_arrow_and_polars() -> None:
    import numpy as np

    table = bars(["AAPL", "MSFT"])
    want = [True, False]
    for flags in (want, np.array(want), pa.array(want), pa.chunked_array([want]), pl.Series(want)):
        got = [json.loads(p)["revision"] for p in encode_bars("1m", table, flags)[2]]  # type: ignore[arg-type]
        assert got == want, type(flags)
    assert [json.loads(p)["revision"] for p in encode_bars("1m", table, np.bool_(True))[2]] == [True, True]


def test_encode_bars_matches_bar_message_for_any_values() -> None:
    import math

    from hypothesis import given, settings
    from hypothesis import strategies as st

    floats = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True),
                       st.sampled_from([-0.0, 5e-324, 1e300, 0.1, 123456789.123456789]))
    row = st.fixed_dictionaries({
        "ticker": st.text(min_size=1, max_size=6), "ts": st.integers(0, 4_102_444_800_000),
        "open": floats, "high": floats, "low": floats, "close": floats, "volume": floats, "vw": floats,
        "transactions": st.one_of(st.none(), st.integers(-(2**62), 2**62)), "rsi_14": floats})

    @settings(max_examples=60, deadline=None)
    @given(st.lists(row, min_size=1, max_size=5), st.booleans())
    def check(rows: list[dict], stdlib: bool) -> None:
        saved = bus_base.orjson
        if stdlib:
            bus_base.orjson = None
        try:
            table = pa.table({k: pa.array([r[k] for r in rows], pa.timestamp("ms", tz="UTC") if k == "ts" else
                                          pa.int64() if k == "transactions" else
                                          pa.string() if k == "ticker" else pa.float64()) for k in rows[0]})
            payloads = encode_bars("1d", table, published_ms=3.5)[2]
            for r, payload in zip(rows, payloads):
                got, want = json.loads(payload), bar_message(r, "1d", False, published_ms=3.5)
                assert list(got) == list(want)
                for k in want:
                    if isinstance(want[k], float):
                        assert got[k] == want[k] and math.copysign(1, got[k]) == math.copysign(1, want[k]), k
                    else:
                        assert got[k] == want[k], k
        finally:
            bus_base.orjson = saved

    check()


def test_without_the_redis_package_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from colfill.errors import USAGE, MissingDependency

    monkeypatch.setitem(sys.modules, "redis", None)  # as if not installed
    with pytest.raises(MissingDependency, match=r"pip install 'colfill\[redis\]'") as info:
        open_bus("redis://127.0.0.1:6379/0")
    assert info.value.exit_code == USAGE
