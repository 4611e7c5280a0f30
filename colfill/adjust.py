"""Split-adjusted views of the bars (`bars_1m_adjusted`, `bars_1d_adjusted`, `bars_5m_adjusted` of a derived
timeframe ...) in every store.

Flat files and colfill's REST requests are unadjusted (`adjusted=false`), so stored bars and their
indicators are of the series as it traded. The adjusted views restate it as of today:

    factor(bar) = product of split_to / split_from over the ticker's splits with execution_date > the bar's
                  New York trading date
    open, high, low, close, vw  ->  value / factor          volume  ->  volume * factor

A split takes effect at the open of its execution date, so that day's bars are already post-split (factor
1 from the last split on). `split_factors` holds one row per split: the factor of every bar in
[since, until), since being the previous split's date; the views join it by range, so each bar meets at
most one row. The indicator columns stay those of the unadjusted series (an adjusted SMA is not the SMA
of adjusted closes after a split day, so it is not faked by dividing).

With `--adjust dividends` the views also restate prices for cash dividends, the CRSP way (total-return prices):

    ratio(dividend) = 1 - cash / close of the ticker's last day bar before the ex-dividend date
                      (cash of one ex-date summed over its rows; USD only; skipped without a day bar before it,
                      or when cash >= that close)
    dividend factor(bar) = product of ratio over the ticker's dividends with ex_dividend_date > the bar's date
    open, high, low, close, vw  ->  value / split factor * dividend factor     volume unchanged

cash and that close are both as of the ex-date (as declared and as traded), so the ratio is the same whatever
splits came later. It needs `bars_1d`; without it only splits apply. The choice is kept by the store (the view
`dividend_factors` exists or not) until a run passes `--adjust` again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from colfill.bars import ALL_BAR_TABLES
from colfill.dialect import Dialect

PRICE_COLUMNS = ("open", "high", "low", "close", "vw")
_AFTER = "OVER (PARTITION BY ticker ORDER BY {col} DESC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"
_CASH = ("SELECT ticker, ex_dividend_date AS ex, sum(cash_amount) AS cash FROM {dividends} "
         "WHERE cash_amount > 0 AND coalesce(currency, 'USD') = 'USD' GROUP BY ticker, ex_dividend_date")


def _same(name: str) -> str:
    return name


def split_factors_sql(d: Dialect, rel: Callable[[str], str] = _same) -> str:
    """`split_factors`: per split, the factor of the bars in [since, until)."""
    product = d.product(d.exact_ratio("split_to", "split_from"), _AFTER.format(col="execution_date"))
    return ("SELECT ticker, coalesce(lag(execution_date) OVER (PARTITION BY ticker ORDER BY execution_date), "
            f"DATE '1800-01-01') AS since, execution_date AS until, {product} AS factor "
            f"FROM {rel('splits')} WHERE split_from > 0 AND split_to > 0")


def dividend_factors_sql(d: Dialect, rel: Callable[[str], str] = _same) -> str:
    """`dividend_factors`: per ex-date, the factor of the bars in [since, until). The close before each ex-date
    is found by an ASOF join where the engine has one, else by the bars' primary key (LATERAL)."""
    cash = _CASH.format(dividends=rel("dividends"))
    if d.asof_join:
        ratios = (f"SELECT ticker, ex, 1 - cash / close AS ratio FROM ({cash}) d ASOF JOIN (SELECT ticker AS t, "
                  f"{d.ny_day('ts')} AS day, close FROM {rel('bars_1d')}) b ON d.ticker = b.t AND d.ex > b.day "
                  "WHERE close > cash")
    else:
        ratios = (f"SELECT d.ticker, d.ex, 1 - d.cash / p.close AS ratio FROM ({cash}) d CROSS JOIN LATERAL "
                  f"(SELECT close FROM {rel('bars_1d')} b WHERE b.ticker = d.ticker "
                  f"AND b.ts < (d.ex::timestamp AT TIME ZONE 'America/New_York') ORDER BY b.ts DESC LIMIT 1) p "
                  "WHERE p.close > d.cash")
    return ("SELECT ticker, coalesce(lag(ex) OVER (PARTITION BY ticker ORDER BY ex), DATE '1800-01-01') AS since, "
            f"ex AS until, {d.product('ratio', _AFTER.format(col='ex'))} AS factor FROM ({ratios}) r")


def wants_dividends(relations: set[str]) -> bool:
    """Whether a store's adjusted views already include dividends (the choice it keeps between runs)."""
    return "dividend_factors" in relations


def adjusted_views(d: Dialect, relations: set[str], dividends: bool = False, rel: Callable[[str], str] = _same,
                   columns: Callable[[str], Sequence[str]] | None = None) -> dict[str, str | None]:
    """The views to create, in order (name -> SELECT; None: drop it) where `relations` exist: none without
    `splits`, else `split_factors`, `dividend_factors` when asked for and possible, and an adjusted view per
    bars relation present. `rel` spells a relation's name; `columns` lists a bars table's columns (needed
    where the dialect has no `* REPLACE`)."""
    if "splits" not in relations:
        return {}
    dividends = dividends and {"dividends", "bars_1d"} <= relations
    views: dict[str, str | None] = {"split_factors": split_factors_sql(d, rel),
                                    "dividend_factors": dividend_factors_sql(d, rel) if dividends else None}
    for t in ALL_BAR_TABLES:
        if t in relations:
            views[f"{t}_adjusted"] = adjusted_view_sql(d, rel(t), rel, columns(t) if columns else None, dividends)
    return views


def adjusted_view_sql(d: Dialect, bars: str, rel: Callable[[str], str] = _same, columns: Sequence[str] | None = None,
                      dividends: bool = False) -> str:
    """`bars` with prices divided and volume multiplied by the split factor of each bar's trading date (and
    prices times its dividend factor); `columns` None keeps every column of the table (`* REPLACE`)."""
    times = " * coalesce(g.factor, 1)" if dividends else ""
    q = d.quote
    replaced = {c: f"b.{q(c)} / coalesce(f.factor, 1){times}" for c in PRICE_COLUMNS
                if columns is None or c in columns}
    if columns is None or "volume" in columns:
        replaced["volume"] = f"b.{q('volume')} * coalesce(f.factor, 1)"
    day = d.ny_day("b.ts")
    sql = (f"SELECT {d.select_replacing('b', columns, replaced)} FROM {bars} b LEFT JOIN {rel('split_factors')} f "
           f"ON f.ticker = b.ticker AND {day} >= f.since AND {day} < f.until")
    if dividends:
        sql += (f" LEFT JOIN {rel('dividend_factors')} g ON g.ticker = b.ticker AND {day} >= g.since "
                f"AND {day} < g.until")
    return sql
