"""Realistic sample flat files in the exact Polygon/Massive layout, for `colfill demo`, tests and benchmarks.

`generate` writes `{out}/{prefix}/{dataset}/YYYY/MM/YYYY-MM-DD.csv.gz`, one gzip CSV per NYSE trading day,
with the real header and column order (close before high) and `window_start` in UTC epoch nanoseconds.
It reproduces what trips readers of the real files: sparse minute bars from 04:00 to 20:00 New York time
(across DST changes), day bars stamped 00:00 New York, fractional volumes next to integer ones, short and
6-decimal prices, tickers that look like nulls (`NA`, `NULL`, `NAN`, `N/A`) or carry a dot (`BRK.A`), and one
unadjusted 4-for-1 split-like drop, since flat files are not split-adjusted.

Prices and volumes are integers in millionths until they are printed, so day bars equal the aggregate of
their minute bars exactly. Everything is vectorised per trading day (no per-row Python), and the same
arguments write the same bytes (gzip mtime 0).
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import fsspec
import numpy as np
import polars as pl

from colfill.calendar import NEW_YORK, plain_date, trading_days
from colfill.errors import InvalidArgument

HEADER = ("ticker", "volume", "open", "close", "high", "low", "window_start", "transactions")
DATASETS = ("minute_aggs_v1", "day_aggs_v1")
ANCHOR_TICKERS = ("AAPL", "MSFT", "BRK.A", "NA", "NULL", "NAN", "N/A")
SESSION_MINUTES = 16 * 60  # 04:00-20:00 New York: pre-market, regular session, after-hours
REGULAR = slice(330, 720)  # 09:30-16:00 as minute offsets from 04:00
OPENING_MINUTE = 330  # 09:30: every ticker prints here, so every ticker has a day bar every day
SPLIT_RATIO = 4
MICRO = 1_000_000  # prices and volumes are held as integer millionths
NS_PER_MINUTE = 60 * 1_000_000_000
_NAME_SEED = 20_240_307  # synthetic ticker names do not depend on `seed`: same count, same universe
_MAX_TICKERS = 200_000


@dataclass(frozen=True)
class SampleSummary:
    """What `generate` wrote. `rows` counts data rows (no headers) over all files and datasets."""

    files: int
    rows: int
    paths: tuple[str, ...]


@dataclass(frozen=True)
class _Universe:
    """Per-ticker parameters, in ticker sort order (the order rows appear in real files)."""

    names: tuple[str, ...]
    start_price: np.ndarray  # dollars
    daily_vol: np.ndarray  # log-return standard deviation over one trading day
    fill: np.ndarray  # relative bar density; mean 1
    minute_volume: np.ndarray  # typical shares per regular-session minute
    trade_size: np.ndarray  # typical shares per trade
    six_decimals: np.ndarray  # bool: print prices like newer files (`115.030000`)
    fractional: np.ndarray  # bool: fractional volumes like newer files (`2036584.149027`)
    split: int  # index of the ticker that gets the split-like drop


def ticker_names(count: int) -> list[str]:
    """`count` distinct names: the anchors (`AAPL`, `MSFT`, `BRK.A`, null-looking ones) first, then synthetic
    1-4 letter names. They do not depend on the seed, and a larger count only appends names."""
    if not 1 <= count <= _MAX_TICKERS:
        raise InvalidArgument(f"tickers={count} is out of range. Hint: ask for 1 to {_MAX_TICKERS} tickers.")
    names = dict.fromkeys(ANCHOR_TICKERS[:count])
    rng = np.random.default_rng(_NAME_SEED)
    while len(names) < count:
        batch = 4096  # fixed, so the sequence of names does not depend on `count`
        lengths = rng.choice(4, size=batch, p=[0.04, 0.16, 0.40, 0.40]) + 1
        letters = rng.integers(ord("A"), ord("Z") + 1, size=(batch, 4), dtype=np.uint8)
        letters[np.arange(4) >= lengths[:, None]] = 0  # NUL padding is dropped by the S4 view
        for name in letters.view("S4").ravel().tolist():
            names.setdefault(name.decode(), None)
    return list(names)[:count]


def _check_names(names: Sequence[str]) -> list[str]:
    """Reject names that would change the CSV's shape or collide, so a file always parses as written."""
    out = [str(n) for n in names]
    bad = [n for n in out if not n or any(ch in n for ch in ',"\r\n') or n != n.strip()]
    if not out or bad:
        raise InvalidArgument(f"tickers {bad or out!r} are not usable names. Hint: pass non-empty names without "
                              "commas, quotes or surrounding whitespace, e.g. ['AAPL', 'BRK.A', 'NA'].")
    dupes = sorted({n for n in out if out.count(n) > 1})
    if dupes:
        raise InvalidArgument(f"tickers {dupes!r} are given more than once. Hint: pass each name once.")
    return out


def _universe(names: Sequence[str], rng: np.random.Generator) -> _Universe:
    """Per-ticker prices, volatility and liquidity; `AAPL`/`MSFT` are the densest, `BRK.A` trades ~$600k."""
    ordered = tuple(sorted(names))
    n = len(ordered)
    price = np.exp(rng.uniform(np.log(1.5), np.log(500.0), n))
    penny = rng.random(n) < 0.08
    price[penny] = rng.uniform(0.05, 0.95, int(penny.sum()))
    fill = rng.lognormal(0.0, 0.8, n)
    typical = float(np.median(fill))
    known = {"AAPL": (185.0, 3.0), "MSFT": (375.0, 3.0), "BRK.A": (545_000.0, 0.3)}
    for i, name in enumerate(ordered):
        if name in known:
            price[i], relative = known[name]
            fill[i] = relative * typical
    fill /= fill.mean()
    dollar_liquidity = fill * rng.lognormal(np.log(400_000.0), 0.7, n)  # dollars per regular minute
    minute_volume = np.maximum(dollar_liquidity / price, 0.5)
    trade_size = np.clip(minute_volume / rng.uniform(20.0, 120.0, n), 1.0, 400.0)
    return _Universe(
        names=ordered,
        start_price=price,
        daily_vol=rng.uniform(0.008, 0.035, n),
        fill=fill,
        minute_volume=minute_volume,
        trade_size=trade_size,
        six_decimals=rng.permutation(n) < (n + 1) // 2,
        fractional=rng.permutation(n) < max(1, round(0.7 * n)),
        split=ordered.index("AAPL" if "AAPL" in ordered else names[0]),
    )


def _session_profile() -> tuple[np.ndarray, np.ndarray]:
    """Relative bar density and volume by minute since 04:00: thin extended hours, a U-shaped regular session."""
    density = np.full(SESSION_MINUTES, 0.3)
    density[REGULAR] = 1.8
    density /= density.mean()
    volume = np.full(SESSION_MINUTES, 0.08)
    x = np.linspace(-1.0, 1.0, REGULAR.stop - REGULAR.start)
    volume[REGULAR] = 0.7 + 1.6 * x**4
    volume[OPENING_MINUTE] = 6.0  # opening cross
    volume[REGULAR.stop - 1] = 8.0  # closing cross
    return density, volume


def _bar_chance(u: _Universe, minute_fill: float) -> np.ndarray:
    """Chance of a bar per (ticker, minute), scaled so its mean is `minute_fill` after capping at 1.

    Without the calibration liquid names saturate in the regular session and the files come out thinner
    than asked, which would make row counts (and benchmark sizes) hard to predict.
    """
    density = _session_profile()[0]
    shape = u.fill[:, None] * density[None, :]
    lo, hi = 0.0, 1.0 / shape.min()
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.minimum(mid * shape, 1.0).mean() < minute_fill else (lo, mid)
    return np.minimum(hi * shape, 1.0)


def _to_ticks(dollars: np.ndarray) -> np.ndarray:
    """Round to the exchange tick (a cent, 0.0001 below $1) in integer millionths, never below one tick."""
    tick = np.where(dollars >= 1.0, 10_000, 100)
    return np.maximum(np.rint(dollars * MICRO / tick).astype(np.int64), 1) * tick


def _ny_epoch_ns(day: dt.date, hour: int) -> int:
    """UTC epoch nanoseconds of `hour`:00 New York time on `day`; the offset is looked up per date, so DST holds."""
    return int(dt.datetime.combine(day, dt.time(hour), NEW_YORK).timestamp()) * 1_000_000_000


def _minute_bars(
    u: _Universe, rng: np.random.Generator, log_price: np.ndarray, volume_scale: np.ndarray, chance: np.ndarray,
    day: dt.date,
) -> dict[str, np.ndarray]:
    """One day of minute bars for every ticker, sorted by ticker then minute, prices/volumes in millionths.

    The latent log price walks every minute (traded or not); a bar spans one step of that walk. `log_price`
    is advanced in place to the day's last latent price so the walk carries into the next day.
    """
    vol_shape = _session_profile()[1]
    n = len(u.names)
    sigma = u.daily_vol / np.sqrt(SESSION_MINUTES)
    path = rng.standard_normal((n, SESSION_MINUTES + 1))
    path[:, 0] = 0.0
    path *= sigma[:, None]
    np.cumsum(path, axis=1, out=path)
    path += log_price[:, None]
    mask = rng.random((n, SESSION_MINUTES)) < chance
    mask[:, OPENING_MINUTE] = True
    ti, mi = np.nonzero(mask)
    k = ti.size
    first = path[ti, mi] + rng.normal(0.0, 0.3, k) * sigma[ti]
    last = path[ti, mi + 1]
    o, c = _to_ticks(np.exp(first)), _to_ticks(np.exp(last))
    wicks = np.abs(rng.standard_normal((2, k))) * sigma[ti]
    h = np.maximum(_to_ticks(np.exp(np.maximum(first, last) + wicks[0])), np.maximum(o, c))
    lo = np.minimum(_to_ticks(np.exp(np.minimum(first, last) - wicks[1])), np.minimum(o, c))
    shares = u.minute_volume[ti] * volume_scale[ti] * vol_shape[mi] * rng.lognormal(-0.3, 0.8, k)
    whole = np.maximum(np.rint(shares), 1).astype(np.int64) * MICRO
    fine = np.maximum(np.rint(shares * MICRO), 1).astype(np.int64)
    volume = np.where(u.fractional[ti], fine, whole)
    per_trade = u.trade_size[ti] * volume_scale[ti] * rng.lognormal(0.0, 0.5, k)
    most = np.maximum(np.ceil(volume / MICRO), 1)  # never more trades than shares
    transactions = np.clip(np.rint(volume / MICRO / per_trade), 1, most).astype(np.int64)
    log_price[:] = path[:, -1]
    return {"t": ti, "volume": volume, "open": o, "close": c, "high": h, "low": lo,
            "window_start": _ny_epoch_ns(day, 4) + mi.astype(np.int64) * NS_PER_MINUTE, "transactions": transactions}


def _day_bars(minute: dict[str, np.ndarray], n: int, day: dt.date) -> dict[str, np.ndarray]:
    """Each ticker's day bar as the exact aggregate of its minute bars (every ticker has at least one)."""
    starts = np.searchsorted(minute["t"], np.arange(n))
    ends = np.append(starts[1:], minute["t"].size) - 1
    return {
        "t": np.arange(n), "volume": np.add.reduceat(minute["volume"], starts),
        "open": minute["open"][starts], "close": minute["close"][ends],
        "high": np.maximum.reduceat(minute["high"], starts), "low": np.minimum.reduceat(minute["low"], starts),
        "window_start": np.full(n, _ny_epoch_ns(day, 0), dtype=np.int64),
        "transactions": np.add.reduceat(minute["transactions"], starts),
    }


def _text(column: str, fixed: pl.Expr) -> pl.Expr:
    """Millionths as text: `115.030000` where `fixed`, else the shortest form (`200.29`, `200.0`).

    The short form comes from a float column `__{column}` divided in numpy (correctly rounded, so it prints
    as `425.47`, where Polars' reciprocal multiplication would print `425.46999999999997`).
    """
    value = pl.col(column)
    six = pl.concat_str((value // MICRO).cast(pl.String), pl.lit("."), (value % MICRO).cast(pl.String).str.zfill(6))
    return pl.when(fixed).then(six).otherwise(pl.col(f"__{column}").cast(pl.String)).alias(column)


def _csv(bars: dict[str, np.ndarray], u: _Universe) -> tuple[bytes, int]:
    """One file's CSV text (real header and column order) and its row count."""
    t = bars["t"]
    prices = ("open", "close", "high", "low")
    frame = pl.DataFrame({
        "ticker": pl.Series(u.names, dtype=pl.String).gather(t),
        **{name: bars[name] for name in HEADER[1:]},
        **{f"__{name}": bars[name] / MICRO for name in prices},
        "__six": u.six_decimals[t], "__frac": u.fractional[t],
    })
    volume = pl.col("volume")
    whole = (volume // MICRO).cast(pl.String)
    frac = (volume % MICRO).cast(pl.String).str.zfill(6)
    text = frame.select(
        "ticker",
        pl.when("__frac").then(pl.concat_str(whole, pl.lit("."), frac)).otherwise(whole).alias("volume"),
        *[_text(name, pl.col("__six")) for name in prices],
        "window_start", "transactions",
    )
    return text.write_csv().encode(), text.height


def _gzip(data: bytes) -> bytes:
    """Level 6 gives ~16 bytes per minute row, like the real files; mtime 0 keeps reruns byte-identical."""
    return gzip.compress(data, compresslevel=6, mtime=0)


def generate(
    out: str | os.PathLike[str],
    start: dt.date,
    end: dt.date,
    *,
    tickers: int | Sequence[str] = 20,
    seed: int = 0,
    datasets: Sequence[str] = DATASETS,
    prefix: str = "us_stocks_sip",
    minute_fill: float = 0.5,
    storage_options: dict[str, object] | None = None,
) -> SampleSummary:
    """Write sample flat files for every trading day in [start, end] under `out` (a folder or fsspec URL).

    `tickers`: a count (anchors `AAPL`, `MSFT`, `BRK.A`, `NA`, `NULL`, `NAN`, `N/A` first, then synthetic
    names) or the exact names. `minute_fill`: the mean chance that a ticker has a bar in a given minute;
    liquid tickers and the regular session are denser, and every ticker prints at 09:30. `AAPL` (or the first
    name) drops to a quarter on the middle trading day, unadjusted. Files already there are overwritten.
    Minute bars are always simulated, so day bars match them even when only `day_aggs_v1` is written.
    """
    first, last = plain_date(start), plain_date(end)
    if first > last:
        raise InvalidArgument(f"start {first} is after end {last}. Hint: swap the dates.")
    wanted = tuple(dict.fromkeys([datasets] if isinstance(datasets, str) else datasets))
    unknown = [d for d in wanted if d not in DATASETS]
    if not wanted or unknown:
        raise InvalidArgument(f"datasets {list(unknown or wanted)!r} cannot be generated. "
                              f"Hint: choose from {', '.join(DATASETS)}.")
    if not 0.0 < minute_fill <= 1.0:
        raise InvalidArgument(f"minute_fill {minute_fill} is not in (0, 1]. Hint: 0.5 is typical of liquid names.")
    if seed < 0:
        raise InvalidArgument(f"seed {seed} is negative. Hint: use a seed >= 0.")
    if isinstance(tickers, (int, np.integer)):
        names = ticker_names(int(tickers))
    else:
        names = _check_names([tickers] if isinstance(tickers, str) else tickers)
    u = _universe(names, np.random.default_rng(seed))
    n = len(u.names)
    days = trading_days(first, last)
    split_day = days[len(days) // 2] if len(days) > 1 else None
    url = os.fspath(out)
    fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
    base = f"{root.rstrip('/')}/{prefix.strip('/')}"
    chance = _bar_chance(u, minute_fill)
    log_price = np.log(u.start_price)
    volume_scale = np.ones(n)
    made: set[str] = set()
    paths: list[str] = []
    rows = 0
    workers = max(1, min(4, os.cpu_count() or 1))
    pending: deque[tuple[str, Future[bytes]]] = deque()

    def flush(keep: int) -> None:
        """Write finished files in order from this thread (filesystems need not be thread-safe)."""
        while len(pending) > keep:
            key, data = pending.popleft()
            fs.pipe_file(key, data.result())
            paths.append(fs.unstrip_protocol(key) if "://" in url else key)

    # zlib releases the GIL: compress earlier files in threads while later days are simulated
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for day in days:
            rng = np.random.default_rng([seed, day.toordinal()])
            log_price += rng.standard_normal(n) * u.daily_vol * 0.35  # overnight gap
            if day == split_day:
                log_price[u.split] -= np.log(SPLIT_RATIO)
                volume_scale[u.split] *= SPLIT_RATIO
            minute = _minute_bars(u, rng, log_price, volume_scale, chance, day)
            tables = {"minute_aggs_v1": minute}
            if "day_aggs_v1" in wanted:
                tables["day_aggs_v1"] = _day_bars(minute, n, day)
            for dataset in wanted:
                folder = f"{base}/{dataset}/{day:%Y}/{day:%m}"
                if folder not in made:
                    fs.makedirs(folder, exist_ok=True)
                    made.add(folder)
                text, count = _csv(tables[dataset], u)
                pending.append((f"{folder}/{day.isoformat()}.csv.gz", pool.submit(_gzip, text)))
                rows += count
            flush(workers)
        flush(0)
    return SampleSummary(files=len(paths), rows=rows, paths=tuple(paths))
