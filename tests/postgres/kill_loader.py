"""The loader that tests/postgres/test_kill_loader.py kills: loads the days of one data version through
PostgresStore the way the pipeline does (skip days the manifest holds with the same fingerprint, two load
workers), printing a line per committed day.

    python tests/postgres/kill_loader.py URL VERSION DAYS

The data is a pure function of (version, day index), so the test can build the expected tables itself.
"""

from __future__ import annotations

import datetime as dt
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa

TABLE, LINEAGE = "bars_1m", "kill-test"
START = dt.date(2024, 1, 2)
NEW_YORK = ZoneInfo("America/New_York")
INDICATORS = ("sma_20", "ema_20", "rsi_14", "macd", "vwap")


def trading_day(i: int) -> dt.date:
    d, n = START, 0
    while True:
        if d.weekday() < 5:
            if n == i:
                return d
            n += 1
        d += dt.timedelta(days=1)


def fingerprint(version: int, i: int) -> str:
    return f"v{version}-d{i}"


def partition(version: int, i: int) -> pa.Table:
    """Day `i` of data `version`: version 2 drops tickers and minutes on some days, so reloads must delete."""
    rng = np.random.default_rng(version * 1000 + i)
    tickers = 100 if version == 1 else 100 - (i % 3) * 15
    minutes = 250 if version == 1 else 250 - (i % 2) * 40
    names = np.array([f"T{k:03d}" if k % 7 else f"O'T{k:03d}" for k in range(tickers)], dtype=object)
    t0 = dt.datetime.combine(trading_day(i), dt.time(9, 30), NEW_YORK).astimezone(dt.timezone.utc)
    base = int(t0.timestamp() * 1_000_000)
    n = tickers * minutes
    price = rng.uniform(5, 500, n)
    cols = {
        "ticker": pa.array(np.repeat(names, minutes), pa.large_string()),
        "ts": pa.array(np.tile(base + np.arange(minutes, dtype=np.int64) * 60_000_000, tickers),
                       pa.timestamp("us", tz="UTC")),
        "open": price, "high": price * 1.01, "low": price * 0.99, "close": price * rng.uniform(0.99, 1.01, n),
        "volume": rng.uniform(1, 1e6, n), "vw": pa.array(price, mask=rng.random(n) < 0.5),
        "transactions": rng.integers(1, 10_000, n),
    }
    warm = np.tile(np.arange(minutes) < 19, tickers)
    for c in INDICATORS:
        cols[c] = pa.array(rng.normal(size=n), mask=warm)
    return pa.table(cols)


def main(url: str, version: int, days: int) -> None:
    from colfill.stores.base import LoadBatch
    from colfill.stores.postgres import PostgresStore

    store = PostgresStore(url, load_workers=2)
    done = store.loaded(TABLE, LINEAGE)
    todo = [i for i in range(days) if done.get(trading_day(i)) != fingerprint(version, i)]
    print(f"todo {len(todo)}", flush=True)
    with ThreadPoolExecutor(2) as pool:
        futures = {
            pool.submit(store.load, LoadBatch(TABLE, trading_day(i), partition(version, i), f"k/{trading_day(i)}",
                                              fingerprint(version, i), 1, fingerprint(version, i), LINEAGE)): i
            for i in todo
        }
        for fut in as_completed(futures):
            fut.result()
            print(f"loaded {futures[fut]}", flush=True)
    store.close()
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
