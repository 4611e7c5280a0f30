"""Split-adjusted views of the bars (`bars_1m_adjusted`, `bars_1d_adjusted`) in the DuckDB stores.

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

from colfill.bars import BAR_TABLES

PRICE_COLUMNS = ("open", "high", "low", "close", "vw")

SPLIT_FACTORS_SQL = """
SELECT ticker,
       coalesce(lag(execution_date) OVER (PARTITION BY ticker ORDER BY execution_date), DATE '1800-01-01') AS since,
       execution_date AS until,
       product(split_to / split_from) OVER (PARTITION BY ticker ORDER BY execution_date DESC
                                            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS factor
FROM splits
WHERE split_from > 0 AND split_to > 0
"""


_RATIOS = """
SELECT ticker, ex, 1 - cash / close AS ratio
FROM ({cash}) d ASOF JOIN (SELECT ticker AS t, timezone('America/New_York', ts)::DATE AS day, close FROM bars_1d) b
  ON d.ticker = b.t AND d.ex > b.day
WHERE close > cash
"""
_CASH = ("SELECT ticker, ex_dividend_date AS ex, sum(cash_amount) AS cash FROM dividends "
         "WHERE cash_amount > 0 AND coalesce(currency, 'USD') = 'USD' GROUP BY ticker, ex_dividend_date")
_AFTER = "OVER (PARTITION BY ticker ORDER BY ex DESC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"
_FACTORS = """
SELECT ticker, coalesce(lag(ex) OVER (PARTITION BY ticker ORDER BY ex), DATE '1800-01-01') AS since, ex AS until,
       {product} AS factor
FROM ({ratios}) r
"""
DIVIDEND_FACTORS_SQL = _FACTORS.format(product=f"product(ratio) {_AFTER}", ratios=_RATIOS.format(cash=_CASH))


def wants_dividends(relations: set[str]) -> bool:
    """Whether a store's adjusted views already include dividends (the choice it keeps between runs)."""
    return "dividend_factors" in relations


def duckdb_views(relations: set[str], dividends: bool = False) -> dict[str, str | None]:
    """The views to create (name -> SELECT; None: drop it) in a DuckDB connection that has `relations`:
    none without `splits`, else `split_factors`, `dividend_factors` when asked for and possible, and an
    adjusted view per bars relation present."""
    if "splits" not in relations:
        return {}
    dividends = dividends and {"dividends", "bars_1d"} <= relations
    views: dict[str, str | None] = {"split_factors": SPLIT_FACTORS_SQL,
                                    "dividend_factors": DIVIDEND_FACTORS_SQL if dividends else None}
    views.update({f"{t}_adjusted": adjusted_view_sql(t, dividends) for t in BAR_TABLES if t in relations})
    return views


def adjusted_view_sql(table: str, dividends: bool = False) -> str:
    """`table` with prices divided and volume multiplied by the split factor of each bar's trading date (and
    prices times its dividend factor)."""
    assert table in BAR_TABLES
    day = "timezone('America/New_York', b.ts)::DATE"
    times = " * coalesce(g.factor, 1)" if dividends else ""
    replace = ", ".join(f"b.{c} / coalesce(f.factor, 1){times} AS {c}" for c in PRICE_COLUMNS)
    sql = (f"SELECT b.* REPLACE ({replace}, b.volume * coalesce(f.factor, 1) AS volume) "
           f"FROM {table} b LEFT JOIN split_factors f ON f.ticker = b.ticker AND {day} >= f.since AND {day} < f.until")
    if dividends:
        sql += f" LEFT JOIN dividend_factors g ON g.ticker = b.ticker AND {day} >= g.since AND {day} < g.until"
    return sql


def pg_split_factors_sql(splits: str) -> str:
    """`split_factors` in PostgreSQL (no product aggregate: exp of a sum of logs in numeric, exact to float8)."""
    return (
        "SELECT ticker, coalesce(lag(execution_date) OVER (PARTITION BY ticker ORDER BY execution_date), "
        "DATE '1800-01-01') AS since, execution_date AS until, "
        "exp(sum(ln(split_to::numeric / split_from::numeric)) OVER (PARTITION BY ticker ORDER BY execution_date "
        "DESC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW))::float8 AS factor "
        f"FROM {splits} WHERE split_from > 0 AND split_to > 0"
    )


def pg_dividend_factors_sql(dividends: str, bars_1d: str) -> str:
    """`dividend_factors` in PostgreSQL: the close before each ex-date by the bars' primary key (LATERAL)."""
    cash = _CASH.replace("FROM dividends", f"FROM {dividends}")
    ratios = (f"SELECT d.ticker, d.ex, 1 - d.cash / p.close AS ratio FROM ({cash}) d CROSS JOIN LATERAL "
              f"(SELECT close FROM {bars_1d} b WHERE b.ticker = d.ticker "
              "AND b.ts < (d.ex::timestamp AT TIME ZONE 'America/New_York') ORDER BY b.ts DESC LIMIT 1) p "
              "WHERE p.close > d.cash")
    return _FACTORS.format(product=f"exp(sum(ln(ratio::numeric)) {_AFTER})::float8", ratios=ratios)


def pg_adjusted_view_sql(bars: str, factors: str, columns: list[str], dividend_factors: str | None = None) -> str:
    """The adjusted view in PostgreSQL, with the table's `columns` listed (no `* REPLACE` there)."""
    times = " * coalesce(g.factor, 1)" if dividend_factors else ""

    def column(c: str) -> str:
        q = '"' + c.replace('"', '""') + '"'
        if c in PRICE_COLUMNS:
            return f"b.{q} / coalesce(f.factor, 1){times} AS {q}"
        if c == "volume":
            return f"b.{q} * coalesce(f.factor, 1) AS {q}"
        return f"b.{q}"

    day = "(b.ts AT TIME ZONE 'America/New_York')::date"
    sql = (f"SELECT {', '.join(column(c) for c in columns)} FROM {bars} b LEFT JOIN {factors} f "
           f"ON f.ticker = b.ticker AND {day} >= f.since AND {day} < f.until")
    if dividend_factors:
        sql += f" LEFT JOIN {dividend_factors} g ON g.ticker = b.ticker AND {day} >= g.since AND {day} < g.until"
    return sql
