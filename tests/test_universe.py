"""`--limit N`: the N most traded tickers by median daily dollar volume, checked against an independent
computation, printed, recorded, kept by reruns and later --end dates, re-ranked on request."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import statistics
from pathlib import Path

import pytest

from colfill.errors import NoData
from colfill.sample import generate
from colfill.sources.flatfiles import FlatFiles
from colfill.universe import choose, rank
from tests.helpers import colfill

START, END = dt.date(2024, 1, 2), dt.date(2024, 2, 29)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("universe")
    generate(path, START, END, tickers=30, seed=3, datasets=("day_aggs_v1",))
    return path


def by_hand(root: Path, end: dt.date, n: int, window: int = 20) -> list[str]:
    """The ranking computed with the csv module and statistics.median, from the files themselves."""
    files = sorted(p for p in (root / "us_stocks_sip" / "day_aggs_v1").rglob("*.csv.gz")
                   if dt.date.fromisoformat(p.name[:10]) <= end)[-window:]
    volume: dict[str, list[float]] = {}
    for i, path in enumerate(files):
        for row in csv.DictReader(io.StringIO(gzip.decompress(path.read_bytes()).decode())):
            days = volume.setdefault(row["ticker"], [0.0] * len(files))
            days[i] += float(row["close"]) * float(row["volume"])
    medians = {t: statistics.median(v) for t, v in volume.items()}
    return sorted(medians, key=lambda t: (-medians[t], t))[:n]


@pytest.mark.parametrize(("end", "n"), [(END, 5), (dt.date(2024, 1, 20), 7), (dt.date(2024, 1, 5), 3)])
def test_ranking_matches_an_independent_computation(root: Path, end: dt.date, n: int) -> None:
    chosen = rank(FlatFiles(str(root)), end, n)
    assert list(chosen.tickers) == by_hand(root, end, n)
    assert chosen.last <= end and chosen.files <= 20
    assert list(chosen.dollar_volume) == sorted(chosen.dollar_volume, reverse=True)


def test_a_ticker_missing_from_days_counts_zero_for_them(tmp_path: Path) -> None:
    day = tmp_path / "us_stocks_sip" / "day_aggs_v1" / "2024" / "01"
    day.mkdir(parents=True)
    header = "ticker,volume,open,close,high,low,window_start,transactions\n"
    for i, d in enumerate(range(2, 7)):
        ts = int(dt.datetime(2024, 1, d, 5, tzinfo=dt.timezone.utc).timestamp()) * 10**9
        rows = f"STEADY,1000,10,10,10,10,{ts},5\n" + (f"BURST,100000,10,10,10,10,{ts},5\n" if i < 2 else "")
        (day / f"2024-01-0{d}.csv.gz").write_bytes(gzip.compress((header + rows).encode()))
    assert rank(FlatFiles(str(tmp_path)), dt.date(2024, 1, 6), 1).tickers == ("STEADY",)  # BURST: median 0


def test_no_day_files_up_to_end_is_a_clear_error(root: Path) -> None:
    with pytest.raises(NoData, match="no day_aggs_v1|has none up to 2023-12-31"):
        rank(FlatFiles(str(root)), dt.date(2023, 12, 31), 5)


def test_recorded_choice_is_kept_until_rerank(root: Path, tmp_path: Path) -> None:
    src = FlatFiles(str(root))
    first, ranked = choose(src, tmp_path, dt.date(2024, 1, 20), 5)
    again, ranked_again = choose(src, tmp_path, END, 5)  # a later --end keeps the tickers
    assert ranked and not ranked_again and again == first
    fresh, ranked_now = choose(src, tmp_path, END, 5, rerank=True)
    assert ranked_now and list(fresh.tickers) == by_hand(root, END, 5)
    assert choose(src, tmp_path, dt.date(2024, 1, 20), 5)[0] == fresh


def test_run_prints_and_keeps_the_chosen_tickers(root: Path, tmp_path: Path) -> None:
    data = tmp_path / "d"
    args = ["run", "--source", str(root), "--data-dir", str(data), "--skip-minute", "--limit", "4",
            "--start", "2024-01-02"]
    proc = colfill(*args, "--end", "2024-01-31")
    assert proc.returncode == 0, proc.stderr
    top = by_hand(root, dt.date(2024, 1, 31), 4)
    said = " ".join(proc.stderr.split())
    assert "--limit 4: the 4 most traded tickers by median daily dollar volume over 20 day files" in said
    assert all(t in said for t in top)
    later = colfill(*args, "--end", "2024-02-29")
    assert later.returncode == 0 and "(recorded; --rerank ranks again)" in later.stderr
    import duckdb

    con = duckdb.connect(str(data / "colfill.duckdb"), read_only=True)
    assert sorted(r[0] for r in con.execute("SELECT DISTINCT ticker FROM bars_1d").fetchall()) == sorted(top)
    con.close()


def test_only_allowed_tickers_are_ranked(root: Path) -> None:
    everything = by_hand(root, END, 30)
    allowed = set(everything[1::2])  # as if only these were common stocks
    chosen = rank(FlatFiles(str(root)), END, 5, allowed=allowed)
    assert list(chosen.tickers) == [t for t in everything if t in allowed][:5]
