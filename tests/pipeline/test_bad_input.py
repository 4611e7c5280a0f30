"""Bad input: clear errors naming file and row, rejects with reasons, nothing else lost."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from colfill.bars import CSV_SCHEMA
from colfill.cli import app
from colfill.errors import InvalidArgument

from .conftest import backfill, files, stored


def edit_lines(path: Path, edit) -> None:  # type: ignore[no-untyped-def]
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    path.write_bytes(gzip.compress(("\n".join(edit(lines)) + "\n").encode()))


def test_bad_rows_are_rejected_with_line_and_reason(source: Path, tmp_path: Path) -> None:
    target = files(source, "bars_1d")[3]

    def edit(lines: list[str]) -> list[str]:
        t, v, o, c, h, lo, ws, n = lines[2].split(",")
        lines[2] = ",".join([t, "abc", o, c, h, lo, ws, n])  # line 3: unparsable volume
        t, v, o, c, h, lo, ws, n = lines[4].split(",")
        lines[4] = ",".join([t, v, o, c, lo, str(float(h) + 1), ws, n])  # line 5: high < low
        t, v, o, c, h, lo, ws, n = lines[6].split(",")
        lines[6] = ",".join([t, "-5", o, c, h, lo, ws, n])  # line 7: negative volume
        return lines

    edit_lines(target, edit)
    result = backfill(source, tmp_path, tables=("bars_1d",))
    daily = result.tables[0]
    assert not result.ok and daily.rejected == 3 and daily.failed == 0
    rejects = pl.read_parquet(next((tmp_path / "lake" / "_rejects").rglob("*.parquet"))).sort("line")
    assert rejects["line"].to_list() == [3, 5, 7]
    reasons = rejects["reason"].to_list()
    assert reasons[0] == "unparsable volume abc"
    assert reasons[1].startswith("high ") and "< low" in reasons[1]
    assert reasons[2].startswith("negative volume")
    assert all(k == target.relative_to(source).as_posix() for k in rejects["source_key"])
    message = " ".join(daily.errors)
    assert f"{target.relative_to(source).as_posix()} line 3: unparsable volume abc" in message
    lines = sum(len(gzip.decompress(p.read_bytes()).splitlines()) - 1 for p in files(source, "bars_1d"))
    assert stored(tmp_path, "bars_1d").height == lines - 3


@pytest.mark.parametrize("damage", ["corrupt_gzip", "wrong_header"])
def test_bad_file_fails_alone_and_loads_after_fix(source: Path, tmp_path: Path, damage: str) -> None:
    target = files(source, "bars_1d")[4]
    good = target.read_bytes()
    if damage == "corrupt_gzip":
        target.write_bytes(good[: len(good) // 2])
    else:
        edit_lines(target, lambda lines: ["ticker,open,high,low,close,volume,window_start,transactions", *lines[1:]])
    result = backfill(source, tmp_path, tables=("bars_1d",))
    daily = result.tables[0]
    assert daily.failed == 1 and not result.ok
    key = target.relative_to(source).as_posix()
    expected = "corrupt gzip" if damage == "corrupt_gzip" else "line 1: unexpected header"
    assert any(key in e and expected in e for e in daily.errors)
    loaded = stored(tmp_path, "bars_1d")
    day_rows = pl.read_csv(gzip.decompress(good), schema=CSV_SCHEMA, null_values=None).height
    others = sum(
        pl.read_csv(gzip.decompress(p.read_bytes()), schema=CSV_SCHEMA, null_values=None).height
        for p in files(source, "bars_1d") if p != target
    )
    assert loaded.height == others and day_rows > 0
    # The provider fixes the file: the rerun loads it, and recomputes the days after it.
    target.write_bytes(good)
    os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 10**9))
    fixed = backfill(source, tmp_path, tables=("bars_1d",))
    assert fixed.ok
    fresh = tmp_path / "fresh"
    backfill(source, fresh, tables=("bars_1d",))
    assert stored(tmp_path, "bars_1d").equals(stored(fresh, "bars_1d"))


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="no day_aggs_v1 folder"):
        backfill(tmp_path / "nowhere", tmp_path, tables=("bars_1d",))


def test_cli_exit_code_and_summary_on_rejects(source: Path, tmp_path: Path) -> None:
    target = files(source, "bars_1d")[1]
    edit_lines(target, lambda lines: [lines[0], lines[1].replace(lines[1].split(",")[2], "0", 1), *lines[2:]])
    runner = CliRunner()
    res = runner.invoke(app, ["run", "--source", str(source), "--start", "2024-03-01", "--end", "2024-04-30",
                              "--skip-minute", "--data-dir", str(tmp_path)])
    assert res.exit_code == 1
    assert "line 2: non-positive price" in res.output
    assert "rejected" in res.output


@pytest.mark.parametrize("day", ["2024-03-11", "2024-11-04", "2024-03-10", "2024-11-03", "2024-07-01"])
def test_a_bar_of_another_new_york_day_is_rejected_across_dst(day: str) -> None:
    """A file's bars must fall on its New York trading date: the verdict against zoneinfo row by row, every 15
    minutes over three days around both 2024 DST changes (the file's day included)."""
    import datetime as dt

    from colfill.calendar import NEW_YORK
    from colfill.validate import validate

    date = dt.date.fromisoformat(day)
    utc = dt.timezone.utc
    start = dt.datetime.combine(date - dt.timedelta(days=1), dt.time(), utc)
    stamps = [start + dt.timedelta(minutes=15 * i) for i in range(3 * 96)]
    n = len(stamps)
    frame = pl.DataFrame({
        "line": list(range(2, n + 2)), "ticker": ["AAPL"] * n, "volume": [100.0] * n, "open": [1.0] * n,
        "close": [1.0] * n, "high": [1.0] * n, "low": [1.0] * n,
        "window_start": [int(s.timestamp()) * 1_000_000_000 for s in stamps], "transactions": [1] * n,
    }, schema_overrides={"line": pl.UInt32, **CSV_SCHEMA})
    bars, rejects = validate(frame, "f.csv.gz", date)
    want_kept = [s for s in stamps if s.astimezone(NEW_YORK).date() == date]
    assert len(want_kept) in (92, 96, 100)  # 23, 24 or 25 hours of quarter hours
    assert bars["ts"].to_list() == want_kept
    assert rejects.height == n - len(want_kept)
    assert rejects["reason"].str.contains(f"outside the file's trading date {day}").all()
