"""Derived timeframes' cost (issue 22): `colfill run` end to end into the embedded lake with
`--timeframes 1m,5m,15m,1h,1d` against `1m,1d` on the same minute and day files.

Each run is a fresh process (a fresh data dir each time); the two are run alternately three times and the
median wall time of each is compared, since this shared machine's speed drifts by +-15% within minutes.
Target: the three extra timeframes cost at most 25% more wall time. Beside it, the floor no scheduling can
go below: per day, the CPU of the work each derived table must do on its own bars (indicators, the lake file)
against the minute table's (parse, indicators, the lake file), measured on one day of the same files.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import Span, record_extra, timed  # noqa: E402

DATA = Path(__file__).parent / "data"
TICKERS, DAYS, START = 400, 12, dt.date(2024, 1, 2)
BASE, MORE = ("1m", "1d"), ("1m", "5m", "15m", "1h", "1d")


def sample() -> Path:
    """Minute and day flat files of the first DAYS trading days (cached between runs)."""
    from colfill.calendar import trading_days
    from colfill.sample import generate

    root = DATA / f"t{TICKERS}-d{DAYS}-timeframes"
    if not (root / ".complete").exists():
        shutil.rmtree(root, ignore_errors=True)
        end = trading_days(START, START + dt.timedelta(days=DAYS * 2 + 10))[DAYS - 1]
        generate(root, START, end, tickers=TICKERS, seed=1, datasets=("minute_aggs_v1", "day_aggs_v1"),
                 minute_fill=0.5)
        (root / ".complete").touch()
    return root


def end_to_end(root: Path, timeframes: tuple[str, ...]) -> int:
    """`colfill run --timeframes ...` into a fresh lake; reports the minute bars read (rows/s is of those)."""
    from colfill.indicators.spec import IndicatorSet
    from colfill.pipeline import BackfillJob, run
    from colfill.stores import open_store

    data = Path(tempfile.mkdtemp())
    job = BackfillJob(source=str(root), start=dt.date(2000, 1, 1), end=dt.date(2100, 1, 1), data_dir=data,
                      tables=("bars_1m", "bars_1d"), indicators=IndicatorSet.default(), timeframes=timeframes)
    store = open_store(f"lake:///{data}")
    with Span() as span:
        result = run(job, store)
        store.close()
    rows = next(t.rows_out for t in result.tables if t.table == "bars_1m")
    derived = {t.table: t.rows_out for t in result.tables if t.table not in ("bars_1m", "bars_1d")}
    assert set(derived) == {f"bars_{tf}" for tf in timeframes if tf not in BASE}, derived
    assert all(n > 0 for n in derived.values()), derived
    span.report(rows)
    shutil.rmtree(data)
    return rows


def cpu_ms(fn, repeat: int = 5) -> float:  # type: ignore[no-untyped-def]
    """Process CPU (all threads) of `fn()`, best of `repeat`, in ms."""
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best * 1000


def floor(root: Path) -> dict[str, float]:
    """CPU ms of one day's unavoidable work per table: the minute day's parse, indicators and lake write; each
    derived table's rollup, indicators and lake write (its own bars: no schedule shares them)."""
    from colfill.indicators.batch import enrich
    from colfill.indicators.spec import IndicatorSet
    from colfill.sources.flatfiles import FlatFiles
    from colfill.stage.lake import PARQUET_COMPRESSION
    from colfill.timeframes import rollup, timeframe

    src = FlatFiles(str(root))
    day = src.list("bars_1m", dt.date(2000, 1, 1), dt.date(2100, 1, 1))[0]
    ind, out = IndicatorSet.default(), Path(tempfile.mkdtemp()) / "day.parquet"
    minutes = src.read(day).bars

    def write(frame):  # type: ignore[no-untyped-def]
        return lambda: frame.write_parquet(out, compression=PARQUET_COMPRESSION, statistics=True)

    costs = {"1m": cpu_ms(lambda: src.read(day)) + cpu_ms(lambda: enrich(minutes, ind))
             + cpu_ms(write(enrich(minutes, ind)[0]))}
    for tf in MORE:
        if tf in BASE:
            continue
        bars = rollup(minutes, timeframe(tf))
        costs[tf] = (cpu_ms(lambda: rollup(minutes, timeframe(tf))) + cpu_ms(lambda: enrich(bars, ind))  # noqa: B023
                     + cpu_ms(write(enrich(bars, ind)[0])))
    shutil.rmtree(out.parent)
    return costs


def main() -> None:
    root = sample()
    runs: dict[tuple[str, ...], list[float]] = {BASE: [], MORE: []}
    for _ in range(3):
        for tfs in (BASE, MORE):
            runs[tfs].append(timed(end_to_end, root, tfs)["seconds"])
    base, more = (sorted(runs[t])[1] for t in (BASE, MORE))
    costs = floor(root)
    least = sum(v for k, v in costs.items() if k != "1m") / costs["1m"]
    record_extra({"timeframes": {"base_s": base, "more_s": more, "added": round(more / base - 1, 4),
                                 "floor": round(least, 4), "day_cpu_ms": {k: round(v, 1) for k, v in costs.items()},
                                 "base": ",".join(BASE), "more": ",".join(MORE)}})
    print(f"\nderived timeframes: end to end into the lake, {TICKERS} tickers x {DAYS} days (median of 3 each)")
    print(f"  --timeframes {','.join(BASE):<18} {base:6.2f} s   ({', '.join(f'{s:.2f}' for s in runs[BASE])})")
    print(f"  --timeframes {','.join(MORE):<18} {more:6.2f} s   ({', '.join(f'{s:.2f}' for s in runs[MORE])})")
    print(f"  added wall time                  {more / base - 1:+6.1%}  (target <= +25%)")
    print("  one day's own work, CPU ms: " + ", ".join(f"{k} {v:.0f}" for k, v in costs.items())
          + f": the derived tables' is {least:+.1%} of the minute table's, the least any schedule can add")


if __name__ == "__main__":
    main()
