"""What colfill's PostgreSQL tables look like: names, column types, DDL text, the `--db` URL, and the checks
that an existing table is one colfill can load into."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import pyarrow as pa

from colfill.bars import INTRADAY_TABLES
from colfill.config import redact, url_secrets
from colfill.dialect import POSTGRES
from colfill.errors import InvalidArgument, SchemaMismatch
from colfill.stores.postgres.session import _Session

MANIFEST = "colfill_files"
KEY = ("ticker", "ts")
MAX_IDENT_BYTES = 63  # NAMEDATALEN - 1: longer names are silently truncated by PostgreSQL
# Plain-PostgreSQL tables made of one partition per New York day: the minute bars and the intraday derived ones
# (`bars_5m`, `bars_1h_rth` ...); day bars (`bars_1d`, `bars_1d_rth`) are one keyed table.
DAY_PARTITIONED = INTRADAY_TABLES

# Columns every bars table has, before the indicator columns (all float64).
BAR_BASE: tuple[tuple[str, pa.DataType], ...] = (
    ("ticker", pa.string()),
    ("ts", pa.timestamp("us", tz="UTC")),
    ("open", pa.float64()),
    ("high", pa.float64()),
    ("low", pa.float64()),
    ("close", pa.float64()),
    ("volume", pa.float64()),
    ("vw", pa.float64()),
    ("transactions", pa.int64()),
)

# Type an existing column may have for an Arrow type we load into it (binary COPY formats must match).
_COMPATIBLE = {
    "text": ("text", "character varying"),
    "timestamp with time zone": ("timestamp with time zone",),
    "double precision": ("double precision",),
    "bigint": ("bigint",),
}

REFERENCE_DDL = {
    "tickers": """(
        ticker text PRIMARY KEY,
        name text,
        market text,
        locale text,
        primary_exchange text,
        type text,
        active boolean,
        currency_name text,
        cik text,
        composite_figi text,
        share_class_figi text,
        list_date date,
        delisted_utc timestamptz,
        last_updated_utc timestamptz
    )""",
    "splits": """(
        ticker text NOT NULL,
        execution_date date NOT NULL,
        split_from double precision NOT NULL,
        split_to double precision NOT NULL,
        id text,
        PRIMARY KEY (ticker, execution_date)
    )""",
    "dividends": """(
        ticker text NOT NULL,
        ex_dividend_date date NOT NULL,
        dividend_type text NOT NULL DEFAULT 'CD',
        cash_amount double precision,
        currency text,
        declaration_date date,
        record_date date,
        pay_date date,
        frequency integer,
        id text,
        PRIMARY KEY (ticker, ex_dividend_date, dividend_type)
    )""",
}

MANIFEST_COLUMNS = """(
    table_name text NOT NULL,
    date date NOT NULL,
    lineage text NOT NULL,
    source_key text NOT NULL,
    etag text NOT NULL,
    size bigint NOT NULL,
    fingerprint text NOT NULL,
    "rows" bigint NOT NULL,
    status text NOT NULL,
    loaded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_name, date, lineage)
)"""


def bars_schema(indicator_columns: Sequence[str] = ()) -> pa.Schema:
    """The Arrow schema of a bars table: ticker, ts (UTC microseconds), OHLCV, vw, transactions, indicators."""
    return pa.schema([*BAR_BASE, *((c, pa.float64()) for c in indicator_columns)])


def pg_type(t: pa.DataType) -> str:
    """The PostgreSQL column type colfill creates for an Arrow type of a bars table."""
    name = POSTGRES.sql_type(t)
    if name not in _COMPATIBLE:
        raise SchemaMismatch(f"column type {t} cannot be loaded into PostgreSQL by colfill. Hint: cast it to float64")
    return name


def pg_array(values: Sequence[str]) -> str:
    """A text[] literal, passed as a bound parameter (`%s::text[]`): quotes and backslashes escaped.

    >>> pg_array(['AAPL', 'A"B'])
    '{"AAPL","A\\\\"B"}'
    """
    return "{" + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "}"


def check_name(name: str, what: str) -> str:
    """Refuse names PostgreSQL would truncate or cannot hold; anything else is fine, since names are quoted."""
    if not name or "\x00" in name or len(name.encode()) > MAX_IDENT_BYTES:
        raise InvalidArgument(
            f"{what} {name!r} cannot be a PostgreSQL name. Hint: use 1 to {MAX_IDENT_BYTES} bytes, no NUL character"
        )
    return name


# --- URL ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PgTarget:
    """A parsed `--db` URL: what libpq gets (`dsn`, secret), what people see (`display`), and colfill's options."""

    dsn: str
    display: str
    dbname: str
    schema: str | None
    driver: str
    secrets: tuple[str, ...]

    def scrub(self, text: str) -> str:
        """`text` with the URL as the user gave it (not libpq's) and no password (raw or percent-decoded)."""
        return redact(text.replace(self.dsn, self.display), self.secrets)

    def with_dbname(self, dbname: str) -> str:
        parts = urlsplit(self.dsn)
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "dbname"]
        return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, urlencode(query, safe="/:"), ""))


def parse_url(url: str) -> PgTarget:
    """Split colfill's options (`+driver` in the scheme, `schema=` in the query) from what libpq understands.

    >>> t = parse_url("postgresql://me:pw@db.example/prices?schema=bars&sslmode=require")
    >>> (t.display, t.schema, t.dbname, t.driver)
    ('postgresql://me:***@db.example/prices?schema=bars&sslmode=require', 'bars', 'prices', 'auto')
    """
    parts = urlsplit(url)
    scheme, _, driver = parts.scheme.partition("+")
    query = parse_qsl(parts.query, keep_blank_values=True)
    display = redact(url)
    if scheme not in ("postgresql", "postgres"):
        raise InvalidArgument(f"--db {display!r} is not a postgresql:// URL")
    driver = driver or "auto"
    if driver not in ("auto", "psycopg", "adbc"):
        raise InvalidArgument(
            f"--db {display!r}: unknown driver {driver!r}. Hint: postgresql:// (automatic), postgresql+psycopg:// "
            "or postgresql+adbc://"
        )
    schema = next((v for k, v in query if k == "schema"), None)
    kept = [(k, v) for k, v in query if k != "schema"]
    keys = {k for k, _ in kept}
    if "connect_timeout" not in keys:
        kept.append(("connect_timeout", "10"))  # an unreachable host fails in seconds, not minutes
    if "application_name" not in keys:
        kept.append(("application_name", "colfill"))
    dsn = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(kept, safe="/:"), ""))
    dbname = unquote(parts.path.lstrip("/")) or dict(kept).get("dbname") or unquote(parts.username or "")
    return PgTarget(dsn=dsn, display=display, dbname=dbname, schema=schema, driver=driver,
                    secrets=url_secrets(url))


def distinct_tickers_sql(rel: str) -> str:
    """Every ticker of `rel`, one index probe each on the (ticker, ts) key (a skip scan), not a table scan."""
    return (f"WITH RECURSIVE k(ticker) AS ((SELECT ticker FROM {rel} ORDER BY ticker LIMIT 1) UNION ALL "
            f"SELECT (SELECT x.ticker FROM {rel} x WHERE x.ticker > k.ticker ORDER BY x.ticker LIMIT 1) "
            "FROM k WHERE k.ticker IS NOT NULL) SELECT ticker FROM k WHERE ticker IS NOT NULL")


def check_existing(s: _Session, schema: str, database: str, table: str, kind: str, existing: dict[str, str],
                   wanted: dict[str, str], keyless_ok: bool = False) -> None:
    """Refuse an existing bars table colfill cannot load into: not a table, a column of an incompatible
    type, or no unique key on (ticker, ts) (`keyless_ok`: a hypertable, whose loader keeps rows unique)."""
    where = f"table {schema}.{table} in database {database!r}"
    hint = "Hint: colfill never drops or rewrites data; rename the table, or use another schema (?schema=NAME)."
    if kind not in ("r", "p"):
        raise SchemaMismatch(f"{where} exists but is not a table (relkind {kind!r}). {hint}")
    for n, t in wanted.items():
        have = existing.get(n)
        if have is not None and have not in _COMPATIBLE[t]:
            raise SchemaMismatch(f"{where} has column {n} of type {have}; colfill loads {t} into it. {hint}")
    if not keyless_ok and not has_unique_key(s, schema, table):
        raise SchemaMismatch(f"{where} has no primary key or unique index on (ticker, ts), which colfill needs "
                             f"to replace days exactly once. {hint}")


def has_unique_key(s: _Session, schema: str, table: str) -> bool:
    """Whether `table` has a primary key or unique index on exactly (ticker, ts)."""
    keys = s.execute(
        "SELECT string_agg(a.attname::text, ',' ORDER BY k.ord) FROM pg_index i "
        "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
        "WHERE i.indrelid = to_regclass(%s::text) AND i.indisunique GROUP BY i.indexrelid",
        [POSTGRES.qualified(schema, table)],
    )
    return any(r[0] == "ticker,ts" for r in keys)
