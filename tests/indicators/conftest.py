"""Shared helpers for the batch engine's indicator tests: bar builders, hypothesis strategies, references.

They are handed out as session fixtures (`make`, `gen`, `ref`, `check`) rather than imported: this
folder is not a package, and `from conftest import ...` breaks as soon as pytest is given several folders
(each one's `conftest` replaces the other's in `sys.modules`). Property tests draw from `gen` with
`st.data()`.

Tolerances follow docs/indicators.md: within 1e-9 relative, with an absolute floor for values that can be
near 0 (MACD lines, RSI); the floor is 1e-9 in the indicator's unit, scaled down for sub-dollar prices so
that a penny stock's MACD is still compared to ~1e-9 of its price.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest
import talib
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from colfill.indicators.batch import enrich
from colfill.indicators.spec import EMA, MACD, RSI, SMA, VWAP, BBands, Indicator, IndicatorSet

UTC = dt.timezone.utc
NEW_YORK = ZoneInfo("America/New_York")
TS = pl.Datetime("us", "UTC")
BAR_SCHEMA = {
    "ticker": pl.Utf8, "ts": TS, "open": pl.Float64, "high": pl.Float64, "low": pl.Float64,
    "close": pl.Float64, "volume": pl.Float64,
}
# Tickers that trip naive code: `NA`/`NULL` read as missing values by CSV/SQL layers, `BRK.A` has a dot and a
# price of ~6e5 sorting right next to sub-dollar names.
TICKERS = ("A", "AAPL", "BRK.A", "NA", "NULL", "ZVZZT")
REL = 1e-9
# TA-Lib's TA_IS_ZERO: RSI gives 0 and BBANDS zeroes the variance when the value is within this of 0.
TALIB_ZERO = 1e-8

# Starts for generated timestamps: around both 2024 DST changes (07:00 UTC on 2024-03-10, 06:00 UTC on
# 2024-11-03), a year end, and midnight UTC, where the UTC date and the New York date differ.
TS_ANCHORS = (
    dt.datetime(2024, 3, 9, 21, 0, tzinfo=UTC),
    dt.datetime(2024, 3, 10, 3, 30, tzinfo=UTC),
    dt.datetime(2024, 11, 2, 22, 0, tzinfo=UTC),
    dt.datetime(2024, 11, 3, 3, 0, tzinfo=UTC),
    dt.datetime(2023, 12, 31, 20, 0, tzinfo=UTC),
    dt.datetime(2024, 6, 14, 13, 30, tzinfo=UTC),
)
DEFAULT_START = dt.datetime(2024, 3, 8, 14, 30, tzinfo=UTC)


# --- frames -------------------------------------------------------------------------------------------


def make_bars(
    ticker: str,
    close: Sequence[float] | np.ndarray,
    *,
    ts: Sequence[dt.datetime] | None = None,
    high: Sequence[float] | np.ndarray | None = None,
    low: Sequence[float] | np.ndarray | None = None,
    volume: Sequence[float] | np.ndarray | None = None,
    start: dt.datetime = DEFAULT_START,
) -> pl.DataFrame:
    """One symbol's bars; by default minute bars from `start`, high = low = close and volume 1."""
    close = np.asarray(close, dtype=float)
    n = len(close)
    if ts is None:
        ts = [start + dt.timedelta(minutes=i) for i in range(n)]
    return pl.DataFrame(
        {
            "ticker": [ticker] * n,
            "ts": list(ts),
            "open": close,
            "high": close if high is None else np.asarray(high, dtype=float),
            "low": close if low is None else np.asarray(low, dtype=float),
            "close": close,
            "volume": np.ones(n) if volume is None else np.asarray(volume, dtype=float),
        },
        schema=BAR_SCHEMA,
    )


def concat_bars(frames: Mapping[str, pl.DataFrame] | Sequence[pl.DataFrame]) -> pl.DataFrame:
    frames = list(frames.values()) if isinstance(frames, Mapping) else list(frames)
    return pl.concat(frames) if frames else pl.DataFrame(schema=BAR_SCHEMA)


# --- hypothesis strategies ----------------------------------------------------------------------------

# Price levels from sub-penny to BRK.A; `tick` rounds to cents, which makes many exactly equal closes.
SCALES = (0.0007, 0.35, 1.0, 27.5, 180.0, 4321.0, 612_000.0)


def _closes_from(rng: np.random.Generator, n: int, scale: float, vol: float, p_flat: float, tick: bool) -> np.ndarray:
    """A positive random walk in which each bar repeats the previous close with probability p_flat."""
    steps = rng.normal(0.0, vol, n)
    steps[rng.random(n) < p_flat] = 0.0
    close = scale * np.exp(np.cumsum(steps))
    if tick and scale >= 1.0:
        close = np.maximum(np.round(close, 2), 0.01)
    return close


@st.composite
def closes(draw: st.DrawFn, min_size: int = 0, max_size: int = 120, *, scale: float | None = None,
           vol: float | None = None, p_flat: float | None = None) -> np.ndarray:
    """Close series with flat runs (including all-flat), cent ticks, and any length from 0 up; `scale`,
    `vol` (log-return standard deviation) and `p_flat` (chance a bar repeats the last close) can be fixed."""
    n = draw(st.integers(min_size, max_size))
    scale = draw(st.sampled_from(SCALES)) if scale is None else scale
    vol = draw(st.sampled_from((1e-4, 0.003, 0.02, 0.3))) if vol is None else vol
    p_flat = draw(st.sampled_from((0.0, 0.0, 0.5, 0.9, 1.0))) if p_flat is None else p_flat
    tick = draw(st.booleans())
    seed = draw(st.integers(0, 2**32 - 1))
    return _closes_from(np.random.default_rng(seed), n, scale, vol, p_flat, tick)


def _timestamps_from(rng: np.random.Generator, n: int, start: dt.datetime) -> list[dt.datetime]:
    """Strictly increasing times: mostly 1-minute steps, some gaps of minutes, hours and about a day."""
    kind = rng.choice(4, size=n, p=[0.6, 0.2, 0.12, 0.08])
    gaps = np.select(
        [kind == 0, kind == 1, kind == 2],
        [np.ones(n, dtype=np.int64), rng.integers(2, 60, n), rng.integers(60, 360, n)],
        rng.integers(1200, 1700, n),
    )
    minutes = np.cumsum(gaps) - gaps[0] if n else gaps
    return [start + dt.timedelta(minutes=int(m)) for m in minutes]


@st.composite
def bars(draw: st.DrawFn, ticker: str = "AAPL", min_size: int = 0, max_size: int = 120,
         **fixed: float) -> pl.DataFrame:
    """One symbol's bars: `closes` (with `fixed` scale/vol/p_flat if given) plus highs/lows around the close,
    volumes with zeros (sometimes all zero), and timestamps crossing midnight UTC, New York midnight and a
    DST change."""
    close = draw(closes(min_size, max_size, **fixed))
    n = len(close)
    seed = draw(st.integers(0, 2**32 - 1))
    p_zero = draw(st.sampled_from((0.0, 0.3, 1.0)))
    start = draw(st.sampled_from(TS_ANCHORS)) + dt.timedelta(minutes=draw(st.integers(0, 600)))
    rng = np.random.default_rng(seed)
    volume = np.floor(rng.lognormal(6.0, 2.0, n)) + 1.0
    volume[rng.random(n) < p_zero] = 0.0
    high = close * (1.0 + np.abs(rng.normal(0, 0.002, n)))
    low = close * (1.0 - np.abs(rng.normal(0, 0.002, n)))
    return make_bars(ticker, close, ts=_timestamps_from(rng, n, start), high=high, low=low, volume=volume)


# Neighbours in (ticker, ts) order that expose any state leaking from one symbol's rows into the next one's:
# a volatile BRK.A at ~6e5, then a sub-penny NA, then an exactly flat NULL (RSI 0, zero-width bands).
HOSTILE = {
    "BRK.A": {"scale": 612_000.0, "vol": 0.3, "p_flat": 0.0},
    "NA": {"scale": 0.0007},
    "NULL": {"p_flat": 1.0},
}


@st.composite
def histories(draw: st.DrawFn, min_tickers: int = 2, max_tickers: int = 5,
              max_size: int = 90) -> dict[str, pl.DataFrame]:
    """Several symbols (drawn from TICKERS), each with its own length, price level and calendar; half the time
    the hostile neighbours BRK.A, NA, NULL are among them."""
    hostile = draw(st.booleans()) and max_tickers >= len(HOSTILE)
    forced = list(HOSTILE) if hostile else []
    others = [t for t in TICKERS if t not in forced]
    extra = draw(st.lists(st.sampled_from(others), min_size=max(0, min_tickers - len(forced)),
                          max_size=max_tickers - len(forced), unique=True))
    return {t: draw(bars(t, 0, max_size, **(HOSTILE[t] if t in forced else {}))) for t in sorted([*forced, *extra])}


# --- references ---------------------------------------------------------------------------------------


def talib_columns(ind: Indicator, close: np.ndarray) -> dict[str, np.ndarray]:
    """TA-Lib's values for the indicator's columns (NaN during the warm-up)."""
    c = np.ascontiguousarray(close, dtype=float)
    if isinstance(ind, SMA):
        values: tuple[np.ndarray, ...] = (talib.SMA(c, ind.n),)
    elif isinstance(ind, EMA):
        values = (talib.EMA(c, ind.n),)
    elif isinstance(ind, RSI):
        values = (talib.RSI(c, ind.n),)
    elif isinstance(ind, MACD):
        values = talib.MACD(c, ind.fast, ind.slow, ind.signal)
    elif isinstance(ind, BBands):
        values = talib.BBANDS(c, ind.n, ind.k, ind.k, matype=0)
    else:
        raise TypeError(f"TA-Lib has no {ind!r}")
    return dict(zip(ind.columns, values))


def wilder(close: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rsi, avg_gain, avg_loss) straight from docs/indicators.md, in plain Python: exactly 0 only when
    both averages are exactly 0 (TA-Lib also says 0 when their sum is merely below 1e-8)."""
    m = len(close)
    rsi, gain, loss = (np.full(m, np.nan) for _ in range(3))
    if m <= n:
        return rsi, gain, loss
    d = [float(close[i] - close[i - 1]) for i in range(1, m)]
    g = sum(max(v, 0.0) for v in d[:n]) / n
    lo = sum(max(-v, 0.0) for v in d[:n]) / n
    for i in range(n, m):
        if i > n:
            g = (g * (n - 1) + max(d[i - 1], 0.0)) / n
            lo = (lo * (n - 1) + max(-d[i - 1], 0.0)) / n
        gain[i], loss[i] = g, lo
        rsi[i] = 0.0 if g + lo == 0.0 else 100.0 * g / (g + lo)
    return rsi, gain, loss


def bbands(close: np.ndarray, n: int, k: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(upper, middle, lower, sd) with numpy's exact two-pass population standard deviation per window."""
    m = len(close)
    middle, sd = np.full(m, np.nan), np.full(m, np.nan)
    for i in range(n - 1, m):
        window = close[i - n + 1: i + 1]
        middle[i], sd[i] = np.mean(window), np.std(window, ddof=0)
    return middle + k * sd, middle, middle - k * sd, sd


def ny_date(ts: dt.datetime) -> dt.date:
    return ts.astimezone(NEW_YORK).date()


def session_vwap(frame: pl.DataFrame) -> np.ndarray:
    """Session VWAP of one symbol's bars (in time order), row by row with zoneinfo; NaN while the
    session's cumulative volume is 0."""
    out = np.full(frame.height, np.nan)
    session, pv, v = None, 0.0, 0.0
    for i, row in enumerate(frame.iter_rows(named=True)):
        day = ny_date(row["ts"])
        if day != session:
            session, pv, v = day, 0.0, 0.0
        pv += (row["high"] + row["low"] + row["close"]) / 3.0 * row["volume"]
        v += row["volume"]
        if v > 0:
            out[i] = pv / v
    return out


def reference_columns(ind: Indicator, frame: pl.DataFrame) -> dict[str, np.ndarray]:
    """Independent values for one symbol's bars (time order): TA-Lib, numpy for Bollinger, Python for VWAP."""
    close = frame["close"].to_numpy()
    if isinstance(ind, VWAP):
        return {"vwap": session_vwap(frame)}
    if isinstance(ind, BBands):
        return dict(zip(ind.columns, bbands(close, ind.n, ind.k)[:3]))
    if isinstance(ind, RSI):
        return {ind.key: wilder(close, ind.n)[0]}
    return talib_columns(ind, close)


# --- assertions ---------------------------------------------------------------------------------------


def price_atol(close: np.ndarray | pl.Series) -> float:
    """Absolute floor for price-denominated values that can be near 0 (MACD): 1e-9, or 1e-9 of the
    price level for sub-dollar prices."""
    c = np.asarray(close, dtype=float)
    top = float(np.max(np.abs(c))) if c.size else 1.0
    return REL * min(1.0, top)


def atol_for(column: str, close: np.ndarray | pl.Series) -> float:
    """The absolute floor to use for an output column: RSI is 0..100, MACD is a price difference, the
    rest are price levels (never near 0, compared relatively only)."""
    if column.startswith("rsi"):
        return REL
    if column.startswith("macd"):
        return price_atol(close)
    return 0.0


def assert_series_close(actual: pl.Series, expected: np.ndarray, *, rel: float = REL, atol: float | np.ndarray = REL,
                        what: str = "") -> None:
    """`actual` has nulls exactly where `expected` has NaN, never NaN/inf itself, and agrees elsewhere within
    max(rel·|expected|, atol)."""
    what = what or actual.name
    expected = np.asarray(expected, dtype=float)
    assert actual.dtype == pl.Float64, f"{what}: dtype {actual.dtype}"
    assert actual.len() == len(expected), f"{what}: {actual.len()} rows, expected {len(expected)}"
    nan = actual.is_nan().fill_null(False)
    assert not nan.any(), f"{what}: NaN at rows {nan.arg_true().to_list()[:10]} (warm-up must be null)"
    got_null = actual.is_null().to_numpy()
    want_null = np.isnan(expected)
    if (got_null != want_null).any():
        rows = np.flatnonzero(got_null != want_null)[:10].tolist()
        raise AssertionError(
            f"{what}: null mask differs at rows {rows}: got {[actual[i] for i in rows]}, "
            f"expected {[float(expected[i]) for i in rows]}"
        )
    got = actual.to_numpy()[~got_null].astype(float)
    want = expected[~want_null]
    assert np.isfinite(got).all(), f"{what}: non-finite values"
    tol = np.maximum(rel * np.abs(want), atol)
    bad = np.abs(got - want) > tol
    if bad.any():
        rows = np.flatnonzero(~want_null)[bad][:10].tolist()
        relative = np.abs(got - want)[bad] / np.maximum(np.abs(want[bad]), 1e-300)
        raise AssertionError(
            f"{what}: {int(bad.sum())} value(s) off, rows {rows}: got {got[bad][:5].tolist()}, "
            f"expected {want[bad][:5].tolist()} (worst relative error {relative.max():.3g})"
        )


def assert_indicator_matches(out: pl.DataFrame, ind: Indicator, frame: pl.DataFrame, *,
                             reference: Callable[[Indicator, pl.DataFrame], dict[str, np.ndarray]] = reference_columns,
                             what: str = "") -> None:
    """`out` (one symbol, time order) has the reference's values in each of the indicator's columns."""
    expected = reference(ind, frame)
    for col in ind.columns:
        assert_series_close(out[col], expected[col], atol=atol_for(col, frame["close"]), what=f"{what}{col}")


def assert_frames_close(actual: pl.DataFrame, expected: pl.DataFrame, columns: Sequence[str], *,
                        what: str = "") -> None:
    """Same bars (ticker, ts and prices exactly), indicator columns within tolerance and identical nulls."""
    assert actual.height == expected.height, f"{what}: {actual.height} rows, expected {expected.height}"
    base = [c for c in BAR_SCHEMA if c in expected.columns]
    assert_frame_equal(actual.select(base), expected.select(base))
    for col in columns:
        want = expected[col].cast(pl.Float64).fill_null(float("nan")).to_numpy()
        assert_series_close(actual[col], want, atol=atol_for(col, expected["close"]), what=f"{what}{col}")


def assert_states_equal(actual: pl.DataFrame, expected: pl.DataFrame, *, what: str = "state") -> None:
    """Same schema, symbols, counts, last times, remembered closes and session dates exactly; carried
    recursive values within 1e-9 relative with identical nulls."""
    assert actual.schema == expected.schema, f"{what}: schema {actual.schema} != {expected.schema}"
    assert actual["ticker"].to_list() == expected["ticker"].to_list(), f"{what}: symbols differ"
    floats = [c for c, t in expected.schema.items() if t == pl.Float64]
    assert_frame_equal(actual.drop(floats), expected.drop(floats))
    for col in floats:
        want = expected[col].fill_null(float("nan")).to_numpy()
        atol = REL if col.startswith("rsi") else price_atol(pl.concat([expected["closes"].explode(), pl.Series([1.0])]))
        if col.startswith("vwap__"):
            atol = 0.0  # sums of price×volume and volume: positive, compared relatively (0 only if exactly 0)
        assert_series_close(actual[col], want, atol=atol, what=f"{what}.{col}")


def assert_multi_ticker(indicators: IndicatorSet, frames: Mapping[str, pl.DataFrame], seed: int) -> pl.DataFrame:
    """Enrich the symbols together from shuffled rows: output in (ticker, ts) order, identical to enriching the
    sorted frame, and each symbol's rows equal to enriching that symbol alone. Returns the combined output."""
    whole = concat_bars(frames)
    shuffled = whole.sample(fraction=1.0, shuffle=True, seed=seed)
    out, state = enrich(shuffled, indicators)
    expected_order = whole.sort("ticker", "ts").select("ticker", "ts")
    assert_frame_equal(out.select("ticker", "ts"), expected_order)
    out_sorted, state_sorted = enrich(whole.sort("ticker", "ts"), indicators)
    assert_frame_equal(out, out_sorted)
    assert_frame_equal(state, state_sorted)
    for ticker, frame in frames.items():
        alone, _ = enrich(frame, indicators)
        mine = out.filter(pl.col("ticker") == ticker)
        assert_frames_close(mine, alone, indicators.columns, what=f"{ticker}: ")
    assert sorted(state["ticker"].to_list()) == sorted(t for t, f in frames.items() if f.height)
    return out


# --- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def gen() -> SimpleNamespace:
    """Hypothesis strategies: `closes`, `bars`, `histories`, and the ticker list."""
    return SimpleNamespace(closes=closes, bars=bars, histories=histories, tickers=TICKERS, anchors=TS_ANCHORS)


@pytest.fixture(scope="session")
def ref() -> SimpleNamespace:
    """Independent references: TA-Lib, plain-Python Wilder RSI, numpy Bollinger bands, session VWAP."""
    return SimpleNamespace(talib=talib_columns, wilder=wilder, bbands=bbands, vwap=session_vwap, ny_date=ny_date,
                           columns=reference_columns, talib_zero=TALIB_ZERO)


@pytest.fixture(scope="session")
def check() -> SimpleNamespace:
    """Assertions: series/frames/states within tolerance, and the multi-ticker invariants."""
    return SimpleNamespace(series=assert_series_close, indicator=assert_indicator_matches, frames=assert_frames_close,
                           states=assert_states_equal, multi_ticker=assert_multi_ticker, price_atol=price_atol,
                           atol_for=atol_for)


@pytest.fixture(scope="session")
def make() -> SimpleNamespace:
    """Frame builders: `make.bars(ticker, closes, ts=..., high=..., low=..., volume=...)`, `make.concat`."""
    return SimpleNamespace(bars=make_bars, concat=concat_bars, schema=BAR_SCHEMA, utc=UTC)
