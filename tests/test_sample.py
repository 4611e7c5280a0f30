"""The sample generator: real layout and format, a file per NYSE session, DST, consistency, determinism, fsspec output.

Files are read back independently of colfill's reader, with an explicit schema so `NA`/`NULL`/`NAN`/`N/A`
stay tickers and integer-looking volumes at the top of a file cannot fix the column to Int64.
"""

from __future__ import annotations

import datetime as dt
import gzip
import re
import uuid
from pathlib import Path
from typing import Any

import fsspec
import polars as pl
import pytest

from colfill.errors import InvalidArgument
from colfill.sample import ANCHOR_TICKERS, SampleSummary, generate, ticker_names

HEADER = "ticker,volume,open,close,high,low,window_start,transactions"
SCHEMA = {
    "ticker": pl.String, "volume": pl.Float64, "open": pl.Float64, "close": pl.Float64, "high": pl.Float64,
    "low": pl.Float64, "window_start": pl.Int64, "transactions": pl.Int64,
}
TEXT = dict.fromkeys(SCHEMA, pl.String)
D = dt.date.fromisoformat

# 2024-03-04 .. 2024-03-15: ten trading days across the 2024-03-10 DST change; the middle one is 2024-03-11
START, END = D("2024-03-04"), D("2024-03-15")
DAYS = [D(f"2024-03-{d:02d}") for d in (4, 5, 6, 7, 8, 11, 12, 13, 14, 15)]
TICKERS, FILL, SEED = 10, 0.1, 5


def read(data: bytes, schema: dict[str, Any] | None = None) -> pl.DataFrame:
    return pl.read_csv(gzip.decompress(data), schema=schema or SCHEMA)


def files(root: Path, dataset: str) -> list[Path]:
    return sorted((root / "us_stocks_sip" / dataset).rglob("*.csv.gz"))


def load(root: Path, dataset: str, schema: dict[str, Any] | None = None) -> pl.DataFrame:
    """Every row of a dataset with its file's date in `date`."""
    return pl.concat([
        read(p.read_bytes(), schema).with_columns(pl.lit(D(p.name[:10])).alias("date")) for p in files(root, dataset)
    ])


def new_york(ns: pl.Expr) -> pl.Expr:
    return pl.from_epoch(ns, "ns").dt.replace_time_zone("UTC").dt.convert_time_zone("America/New_York")


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SampleSummary]:
    root = tmp_path_factory.mktemp("sample")
    return root, generate(root, START, END, tickers=TICKERS, seed=SEED, minute_fill=FILL)


@pytest.fixture(scope="module")
def minute(sample: tuple[Path, SampleSummary]) -> pl.DataFrame:
    return load(sample[0], "minute_aggs_v1")


@pytest.fixture(scope="module")
def daily(sample: tuple[Path, SampleSummary]) -> pl.DataFrame:
    return load(sample[0], "day_aggs_v1")


# --- layout and format ----------------------------------------------------------------------------------------

def test_layout_one_file_per_trading_day(tmp_path: Path) -> None:
    info = generate(tmp_path, D("2024-03-27"), D("2024-04-02"), tickers=3, minute_fill=0.02)
    found = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    want = sorted(f"us_stocks_sip/{ds}/2024/{d[:2]}/2024-{d}.csv.gz" for ds in ("minute_aggs_v1", "day_aggs_v1")
                  for d in ("03-27", "03-28", "04-01", "04-02"))
    assert found == want
    assert info.files == 8
    assert sorted(info.paths) == sorted(str(tmp_path / f) for f in want)
    assert info.rows == sum(read((tmp_path / f).read_bytes()).height for f in want)


def test_no_file_on_a_one_off_closure(tmp_path: Path) -> None:
    """The generator writes the calendar's sessions: Hurricane Sandy's two days and Carter's funeral have none."""
    generate(tmp_path, D("2012-10-25"), D("2012-11-01"), tickers=2, datasets=("day_aggs_v1",), minute_fill=0.02)
    generate(tmp_path, D("2025-01-08"), D("2025-01-10"), tickers=2, datasets=("day_aggs_v1",), minute_fill=0.02)
    found = sorted(p.name[:10] for p in files(tmp_path, "day_aggs_v1"))
    assert found == ["2012-10-25", "2012-10-26", "2012-10-31", "2012-11-01", "2025-01-08", "2025-01-10"]


def test_prefix_and_single_dataset(tmp_path: Path) -> None:
    info = generate(tmp_path, D("2024-07-03"), D("2024-07-05"), tickers=2, datasets=("day_aggs_v1",),
                    prefix="mirror/us_stocks_sip", minute_fill=0.02)
    assert [Path(p).relative_to(tmp_path).as_posix() for p in info.paths] == [
        "mirror/us_stocks_sip/day_aggs_v1/2024/07/2024-07-03.csv.gz",
        "mirror/us_stocks_sip/day_aggs_v1/2024/07/2024-07-05.csv.gz",
    ]
    assert info.rows == 4


def test_header_and_sort_order(sample: tuple[Path, SampleSummary]) -> None:
    root, info = sample
    assert info.files == 2 * len(DAYS)
    for path in files(root, "minute_aggs_v1") + files(root, "day_aggs_v1"):
        raw = path.read_bytes()
        assert raw[4:8] == b"\0\0\0\0"  # gzip mtime
        text = gzip.decompress(raw).decode()
        assert text.split("\n", 1)[0] == HEADER
        frame = pl.read_csv(text.encode(), schema=SCHEMA)
        assert frame.equals(frame.sort("ticker", "window_start"))


def test_rows_total(sample: tuple[Path, SampleSummary], minute: pl.DataFrame, daily: pl.DataFrame) -> None:
    assert sample[1].rows == minute.height + daily.height


def test_ohlc_sane_on_every_row(minute: pl.DataFrame, daily: pl.DataFrame) -> None:
    for frame in (minute, daily):
        assert frame.null_count().sum_horizontal().item() == 0
        bad = frame.filter(
            (pl.col("low") > pl.min_horizontal("open", "close")) | (pl.col("high") < pl.max_horizontal("open", "close"))
            | (pl.col("low") <= 0) | (pl.col("volume") < 0) | (pl.col("transactions") < 1)
        )
        assert bad.height == 0, bad


def test_tickers_null_looking_and_strings(minute: pl.DataFrame, daily: pl.DataFrame) -> None:
    names = set(ticker_names(TICKERS))
    assert set(minute["ticker"]) == set(daily["ticker"]) == names
    assert set(ANCHOR_TICKERS) <= names
    assert all(re.fullmatch(r"[A-Z]{1,4}(\.[A-Z])?|N/A", n) for n in names)
    assert minute["ticker"].null_count() == 0


def test_ticker_names() -> None:
    assert ticker_names(3) == ["AAPL", "MSFT", "BRK.A"]
    assert ticker_names(7) == list(ANCHOR_TICKERS)
    many = ticker_names(3000)
    assert len(set(many)) == 3000 and many[:7] == list(ANCHOR_TICKERS) and ticker_names(3000) == many
    assert ticker_names(20) == many[:20]


def test_given_names_are_used_exactly(tmp_path: Path) -> None:
    info = generate(tmp_path, D("2024-01-02"), D("2024-01-05"), tickers=["ZZZ", "NA", "BRK.B", "NULL"],
                    datasets=("day_aggs_v1",), minute_fill=0.02)
    frame = load(tmp_path, "day_aggs_v1")
    assert frame.height == info.rows == 16
    assert sorted(set(frame["ticker"])) == ["BRK.B", "NA", "NULL", "ZZZ"]


def test_number_formats(sample: tuple[Path, SampleSummary]) -> None:
    text = load(sample[0], "minute_aggs_v1", TEXT)
    volume, price = text["volume"], pl.concat([text[c] for c in ("open", "close", "high", "low")])
    fractional = volume.str.contains(r"^\d+\.\d{6}$") & ~volume.str.ends_with(".000000")
    assert fractional.any()  # like `2036584.149027`
    assert volume.str.contains(r"^\d+$").any()
    assert price.str.contains(r"^\d+\.\d{6}$").any()  # newer files: `115.030000`
    assert price.str.contains(r"^\d+\.\d{1,4}$").any()  # older files: `200.29`
    assert not price.str.contains(r"[eE]|\.\d*9999").any()  # no exponents, no float noise
    assert text["transactions"].str.contains(r"^\d+$").all()


# --- time ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("start", "end"), [("2024-03-07", "2024-03-12"), ("2024-10-31", "2024-11-05")])
def test_minutes_cover_0400_to_2000_new_york_across_dst(tmp_path: Path, start: str, end: str) -> None:
    generate(tmp_path, D(start), D(end), tickers=2, minute_fill=1.0)
    frame = load(tmp_path, "minute_aggs_v1").with_columns(new_york(pl.col("window_start")).alias("ny"))
    assert (frame["window_start"] % 60_000_000_000 == 0).all()
    assert (frame["ny"].dt.date() == frame["date"]).all()
    span = frame.group_by("ticker", "date").agg(pl.col("ny").min().dt.time().alias("lo"),
                                                 pl.col("ny").max().dt.time().alias("hi"), pl.len())
    assert set(span["lo"]) == {dt.time(4, 0)} and set(span["hi"]) == {dt.time(19, 59)}
    assert set(span["len"]) == {960}
    utc_open = frame.group_by("date").agg((pl.col("window_start").min() // 3_600_000_000_000 % 24).alias("h"))
    assert set(utc_open["h"]) == {8, 9}  # 04:00 EDT and 04:00 EST are different UTC hours


def test_sparse_and_liquid_names_denser(minute: pl.DataFrame) -> None:
    realised = minute.height / (TICKERS * 960 * len(DAYS))
    assert 0.8 * FILL < realised < 1.2 * FILL
    counts = dict(minute.group_by("ticker").len().iter_rows())
    assert counts["AAPL"] > 3 * counts["BRK.A"]
    local = new_york(pl.col("window_start")).dt.time()
    regular = minute.filter(local.is_between(dt.time(9, 30), dt.time(16, 0), closed="left")).height
    assert regular > minute.height - regular  # 390 regular minutes hold most bars, the 570 extended ones fewer


def test_day_bars_midnight_and_equal_to_minutes(minute: pl.DataFrame, daily: pl.DataFrame) -> None:
    ny = new_york(pl.col("window_start"))
    assert daily.select((ny.dt.time() == dt.time(0)).all().alias("midnight"),
                        (ny.dt.date() == pl.col("date")).all().alias("same_day")).row(0) == (True, True)
    assert daily.group_by("date").len()["len"].to_list() == [TICKERS] * len(DAYS)
    agg = minute.sort("window_start").group_by("ticker", "date").agg(
        pl.col("open").first(), pl.col("close").last(), pl.col("high").max(), pl.col("low").min(),
        pl.col("volume").sum(), pl.col("transactions").sum(),
    )
    both = daily.join(agg, on=["ticker", "date"], suffix="_m", validate="1:1")
    assert both.height == daily.height
    for col in ("open", "close", "high", "low", "transactions"):
        assert (both[col] == both[f"{col}_m"]).all(), col
    assert ((both["volume"] - both["volume_m"]).abs() <= 1e-9 * both["volume"]).all()


def test_thin_tickers_still_get_a_day_bar(tmp_path: Path) -> None:
    generate(tmp_path, D("2024-05-06"), D("2024-05-08"), tickers=12, minute_fill=0.0005)
    minute, daily = load(tmp_path, "minute_aggs_v1"), load(tmp_path, "day_aggs_v1")
    assert daily.height == minute.select("ticker", "date").n_unique() == 12 * 3
    opening = minute.filter(new_york(pl.col("window_start")).dt.time() == dt.time(9, 30))
    assert opening.height == 12 * 3  # every name prints at the open, as real listed names do


def test_day_files_do_not_depend_on_minute_files(sample: tuple[Path, SampleSummary], tmp_path: Path) -> None:
    generate(tmp_path, START, END, tickers=TICKERS, seed=SEED, minute_fill=FILL, datasets=("day_aggs_v1",))
    ours, theirs = files(tmp_path, "day_aggs_v1"), files(sample[0], "day_aggs_v1")
    assert [p.read_bytes() for p in ours] == [p.read_bytes() for p in theirs]


# --- prices, determinism, storage ---------------------------------------------------------------------------

def test_split_like_drop_once_in_the_middle(daily: pl.DataFrame) -> None:
    ratio = daily.sort("date").with_columns((pl.col("close") / pl.col("close").shift(1).over("ticker")).alias("r"))
    drops = ratio.filter(pl.col("r") < 0.5)
    assert drops.select("ticker", "date").rows() == [("AAPL", DAYS[len(DAYS) // 2])]
    assert 0.2 < float(drops["r"].item()) < 0.3
    assert ratio.filter(pl.col("r").is_not_null() & (pl.col("ticker") != "AAPL"))["r"].is_between(0.8, 1.25).all()


def test_split_falls_to_first_name_without_aapl(tmp_path: Path) -> None:
    generate(tmp_path, START, END, tickers=["XYZ", "MSFT"], datasets=("day_aggs_v1",), minute_fill=0.02)
    closes = load(tmp_path, "day_aggs_v1").filter(pl.col("ticker") == "XYZ").sort("date")["close"]
    assert ((closes / closes.shift(1)) < 0.3).sum() == 1


def test_deterministic_bytes_and_seed_matters(tmp_path: Path) -> None:
    def run(name: str, seed: int) -> list[bytes]:
        info = generate(tmp_path / name, D("2024-01-29"), D("2024-02-02"), tickers=8, seed=seed, minute_fill=0.05)
        return [Path(p).read_bytes() for p in info.paths]

    first, again, other = run("a", 1), run("b", 1), run("c", 2)
    assert first == again
    assert all(x != y for x, y in zip(first, other))


def test_memory_url(tmp_path: Path) -> None:
    root = f"memory://colfill-sample-{uuid.uuid4().hex}"
    fs = fsspec.filesystem("memory")
    try:
        info = generate(root, D("2024-03-28"), D("2024-04-01"), tickers=4, minute_fill=0.02)
        assert info.files == 4 and all(p.startswith("memory://") for p in info.paths)
        assert any(p.endswith("/us_stocks_sip/minute_aggs_v1/2024/04/2024-04-01.csv.gz") for p in info.paths)
        frames = []
        for path in info.paths:
            with fsspec.open(path, "rb") as fh:
                frames.append(read(fh.read()))
        assert sum(f.height for f in frames) == info.rows
        local = generate(tmp_path, D("2024-03-28"), D("2024-04-01"), tickers=4, minute_fill=0.02)
        assert [fs.cat_file(p) for p in info.paths] == [Path(p).read_bytes() for p in local.paths]
    finally:
        fs.rm(root.removeprefix("memory://"), recursive=True)


@pytest.mark.parametrize("kwargs", [
    {"start": D("2024-01-05"), "end": D("2024-01-04")},
    {"datasets": ("trades_v1",)},
    {"datasets": ()},
    {"minute_fill": 0.0},
    {"minute_fill": 1.5},
    {"seed": -1},
    {"tickers": 0},
    {"tickers": ["AAPL", "AAPL"]},
    {"tickers": ["A,B"]},
    {"tickers": []},
])
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"start": D("2024-01-02"), "end": D("2024-01-03"), **kwargs}
    with pytest.raises(InvalidArgument, match="Hint"):
        generate(tmp_path, **args)  # type: ignore[arg-type]
    assert not any(tmp_path.iterdir())
