"""`colfill.timeframes`: parsing `--timeframes`, and `rollup` against a hand-written loop over rows in New York time."""

from __future__ import annotations

import datetime as dt
import random
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from colfill.bars import BAR_COLUMNS, timeframe_of
from colfill.errors import InvalidArgument
from colfill.timeframes import parse, rollup

NY = ZoneInfo("America/New_York")
UTC = dt.timezone.utc
DAYS = (dt.date(2024, 3, 8), dt.date(2024, 3, 11),  # a Friday, then the Monday after the DST change
        dt.date(2024, 11, 29),  # the day after Thanksgiving: early close at 13:00
        dt.date(2024, 11, 3))  # a Sunday (and the autumn DST change): no session
TICKERS = ("NA", "BRK.A", "NULL", "A")
EARLY = {dt.date(2024, 11, 29)}


def minutes(seed: int = 5, fill: float = 0.08) -> pl.DataFrame:
    """Sparse minute bars 04:00-20:00 New York, some without vw or transactions."""
    rnd = random.Random(seed)
    rows = []
    for day in DAYS:
        start = dt.datetime.combine(day, dt.time(4), NY)
        for ticker in TICKERS:
            for m in range(16 * 60):
                if rnd.random() > fill:
                    continue
                o, c = rnd.uniform(10, 20), rnd.uniform(10, 20)
                rows.append((ticker, (start + dt.timedelta(minutes=m)).astimezone(UTC), o, max(o, c) + 1, min(o, c) - 1,
                             c, float(rnd.randint(0, 500)), None if rnd.random() < 0.2 else rnd.uniform(10, 20),
                             None if rnd.random() < 0.1 else rnd.randint(1, 9)))
    frame = pl.DataFrame(rows, schema=list(BAR_COLUMNS), orient="row")
    return frame.with_columns(pl.col("ts").dt.cast_time_unit("us").dt.convert_time_zone("UTC"),
                              pl.col("transactions").cast(pl.Int64)).sample(fraction=1.0, shuffle=True, seed=1)


def expected(frame: pl.DataFrame, size: int, rth: bool) -> list[tuple[object, ...]]:
    """The definition in docs/timeframes.md, one row at a time."""
    buckets: dict[tuple[str, dt.datetime], list[dict[str, object]]] = {}
    for r in sorted(frame.iter_rows(named=True), key=lambda r: (r["ticker"], r["ts"])):
        local = r["ts"].astimezone(NY)
        if rth:
            close = dt.time(13) if local.date() in EARLY else dt.time(16)
            if local.weekday() >= 5 or not dt.time(9, 30) <= local.time() < close:
                continue
        if size == 24 * 60:
            start = dt.datetime.combine(local.date(), dt.time(), NY)
        else:
            of_day = local.hour * 60 + local.minute
            start = dt.datetime.combine(local.date(), dt.time(), NY) + dt.timedelta(minutes=of_day // size * size)
            start = start.replace(tzinfo=None).replace(tzinfo=NY)  # wall clock, not elapsed time
        buckets.setdefault((r["ticker"], start.astimezone(UTC)), []).append(r)
    out = []
    for (ticker, start), rs in sorted(buckets.items()):
        with_vw = [r for r in rs if r["vw"] is not None]
        weight = sum(r["volume"] for r in with_vw)
        vw = sum(r["vw"] * r["volume"] for r in with_vw) / weight if weight else None
        tx = [r["transactions"] for r in rs if r["transactions"] is not None]
        out.append((ticker, start, rs[0]["open"], max(r["high"] for r in rs), min(r["low"] for r in rs),
                    rs[-1]["close"], sum(r["volume"] for r in rs), vw, sum(tx) if tx else None))
    return out


def same(got: pl.DataFrame, want: list[tuple[object, ...]]) -> None:
    rows = got.rows()
    assert [r[:2] for r in rows] == [w[:2] for w in want]
    for r, w in zip(rows, want):
        assert [v is None for v in r] == [v is None for v in w], r
        assert [v for v in r[2:] if v is not None] == pytest.approx([v for v in w[2:] if v is not None], rel=1e-12)


@pytest.mark.parametrize("name", ["2m", "3m", "5m", "10m", "15m", "30m", "1h", "5m:rth", "1h:rth", "1d:rth",
                                  "1m:rth"])
def test_rollup_equals_a_loop_in_new_york_time(name: str) -> None:
    frame = minutes()
    size = {"h": 60, "d": 24 * 60}.get(name.split(":")[0][-1], 1) * int(name.split(":")[0][:-1])
    got = rollup(frame, name)
    assert got.columns == list(BAR_COLUMNS) and got.schema == frame.schema
    same(got, expected(frame, size, name.endswith(":rth")))


def test_rth_keeps_the_session_and_its_early_close() -> None:
    got = rollup(minutes(fill=1.0), "1h:rth")
    local = {(t.astimezone(NY).date(), t.astimezone(NY).time()) for t in got["ts"]}
    assert {t for d, t in local if d == dt.date(2024, 11, 29)} == {dt.time(9), dt.time(10), dt.time(11), dt.time(12)}
    assert {t for d, t in local if d == dt.date(2024, 3, 11)} == {dt.time(h) for h in range(9, 16)}
    assert dt.date(2024, 11, 3) not in {d for d, _ in local}
    day = rollup(minutes(fill=1.0), "1d:rth").filter(pl.col("ticker") == "NA")
    assert [t.astimezone(NY).time() for t in day["ts"]] == [dt.time()] * 3


def test_a_bucket_without_vw_has_none() -> None:
    frame = minutes().with_columns(pl.when(pl.col("ticker") == "NA").then(None).otherwise(pl.col("vw")).alias("vw"))
    got = rollup(frame, "15m")
    assert got.filter(pl.col("ticker") == "NA")["vw"].null_count() == got.filter(pl.col("ticker") == "NA").height
    assert got.filter(pl.col("ticker") == "A")["vw"].null_count() < got.filter(pl.col("ticker") == "A").height


def test_empty_minutes_give_no_bars() -> None:
    assert rollup(minutes().clear(), "5m").is_empty()


def test_parse() -> None:
    assert [t.name for t in parse(None)] == ["1m", "1d"]
    tfs = parse("1m, 5m,1h:rth,1d,5m")
    assert [(t.name, t.table) for t in tfs] == [("1m", "bars_1m"), ("5m", "bars_5m"), ("1h:rth", "bars_1h_rth"),
                                                 ("1d", "bars_1d")]
    assert [timeframe_of(t.table) for t in tfs] == ["1m", "5m", "1h:rth", "1d"]
    assert parse("1m,1d:rth")[1].table == "bars_1d_rth"
    with pytest.raises(InvalidArgument, match="--timeframes.*7m"):
        parse("1m,7m")
    with pytest.raises(InvalidArgument, match="--timeframes.*add 1m"):
        parse("5m,1d")
    with pytest.raises(InvalidArgument, match="--timeframes"):
        parse(" , ")
