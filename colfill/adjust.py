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
"""

from __future__ import annotations

from colfill.stores.base import BAR_TABLES

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


def duckdb_views(relations: set[str]) -> dict[str, str]:
    """The views to create (name -> SELECT) in a DuckDB connection that has `relations` (tables or views):
    none without `splits`, else `split_factors` and an adjusted view per bars relation present."""
    if "splits" not in relations:
        return {}
    views = {"split_factors": SPLIT_FACTORS_SQL}
    views.update({f"{t}_adjusted": adjusted_view_sql(t) for t in BAR_TABLES if t in relations})
    return views


def adjusted_view_sql(table: str) -> str:
    """`table` with prices divided and volume multiplied by the split factor of each bar's trading date."""
    assert table in BAR_TABLES
    replace = ", ".join(f"b.{c} / coalesce(f.factor, 1) AS {c}" for c in PRICE_COLUMNS)
    return (
        f"SELECT b.* REPLACE ({replace}, b.volume * coalesce(f.factor, 1) AS volume) "
        f"FROM {table} b LEFT JOIN split_factors f ON f.ticker = b.ticker "
        "AND timezone('America/New_York', b.ts)::DATE >= f.since AND timezone('America/New_York', b.ts)::DATE < f.until"
    )


def pg_split_factors_sql(splits: str) -> str:
    """`split_factors` in PostgreSQL (no product aggregate: exp of a sum of logs in numeric, exact to float8)."""
    return (
        "SELECT ticker, coalesce(lag(execution_date) OVER (PARTITION BY ticker ORDER BY execution_date), "
        "DATE '1800-01-01') AS since, execution_date AS until, "
        "exp(sum(ln(split_to::numeric / split_from::numeric)) OVER (PARTITION BY ticker ORDER BY execution_date "
        "DESC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW))::float8 AS factor "
        f"FROM {splits} WHERE split_from > 0 AND split_to > 0"
    )


def pg_adjusted_view_sql(bars: str, factors: str, columns: list[str]) -> str:
    """The adjusted view in PostgreSQL, with the table's `columns` listed (no `* REPLACE` there)."""
    def column(c: str) -> str:
        q = '"' + c.replace('"', '""') + '"'
        if c in PRICE_COLUMNS:
            return f"b.{q} / coalesce(f.factor, 1) AS {q}"
        if c == "volume":
            return f"b.{q} * coalesce(f.factor, 1) AS {q}"
        return f"b.{q}"

    day = "(b.ts AT TIME ZONE 'America/New_York')::date"
    return (f"SELECT {', '.join(column(c) for c in columns)} FROM {bars} b LEFT JOIN {factors} f "
            f"ON f.ticker = b.ticker AND {day} >= f.since AND {day} < f.until")
