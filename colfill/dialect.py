"""One SQL core for the DuckDB and PostgreSQL stores: a `Dialect` says how each spells what differs (quoting,
literals, column types, placeholders, the New York day, products, upserts), and the algorithms both run are
written once over it: make or extend a table, save the indicator state, save reference rows.

Only the load paths that differ for speed (PostgreSQL's binary COPY and day-partition swap, the lake's files)
stay in their stores. Every statement here runs in the caller's transaction through a `Session`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa

from colfill.bars import STATE_TABLE
from colfill.errors import SchemaMismatch

NY = "America/New_York"


def _kind(t: pa.DataType) -> str | None:
    """The kind of column colfill makes for an Arrow type (a key of `Dialect.types`), None when it makes none."""
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "text"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_floating(t):
        return "float"
    if (pa.types.is_list(t) or pa.types.is_large_list(t)) and pa.types.is_floating(t.value_type):
        return "float[]"
    return None


@dataclass(frozen=True)
class Dialect:
    """How one SQL engine spells what colfill's statements need. `types` maps a column kind to its type name as
    the engine's catalogue reports it (so an existing column is compared by name); `param` is the placeholder
    of the store's sessions; `star_replace`: `SELECT b.* REPLACE (...)` exists (a view then follows new
    columns of its table without being made again); `asof_join`: `ASOF JOIN` exists."""

    name: str
    title: str
    param: str
    types: Mapping[str, str]
    ny_day_sql: str  # of {col}
    epoch_ms_sql: str  # of {col}
    product_sql: str  # of {x} over the window {over}
    exact_ratio_sql: str  # {a} / {b} in the precision the product keeps
    star_replace: bool
    asof_join: bool

    def quote(self, name: str) -> str:
        """An identifier, always double-quoted (quotes inside doubled).

        >>> POSTGRES.quote('a"b')
        '"a""b"'
        """
        return '"' + name.replace('"', '""') + '"'

    def qualified(self, schema: str, name: str) -> str:
        return f"{self.quote(schema)}.{self.quote(name)}"

    def literal(self, text: str) -> str:
        """A string literal (standard-conforming strings in both engines: only quotes are doubled)."""
        return "'" + text.replace("'", "''") + "'"

    def date(self, day: dt.date) -> str:
        return f"DATE '{day.isoformat()}'"

    def sql_type(self, t: pa.DataType) -> str:
        """The column type colfill creates for Arrow type `t`."""
        kind = _kind(t)
        if kind is None or kind not in self.types:
            raise SchemaMismatch(f"column type {t} cannot be stored in {self.title} by colfill. "
                                 "Hint: cast it to float64")
        return self.types[kind]

    def ny_day(self, col: str = "ts") -> str:
        """The New York trading date of a UTC timestamp column."""
        return self.ny_day_sql.format(col=col)

    def epoch_ms(self, col: str = "ts") -> str:
        return self.epoch_ms_sql.format(col=col)

    def product(self, x: str, over: str) -> str:
        """The running product of `x` over the window `over` (PostgreSQL has no product aggregate)."""
        return self.product_sql.format(x=x, over=over)

    def exact_ratio(self, a: str, b: str) -> str:
        return self.exact_ratio_sql.format(a=a, b=b)

    def upsert(self, key: Sequence[str], columns: Sequence[str], nulls: Sequence[str] = (),
               unless_same: str | None = None) -> str:
        """`ON CONFLICT (key) DO UPDATE SET c = EXCLUDED.c` for the non-key `columns` (and `c = NULL` for `nulls`);
        `unless_same` (the target's alias) skips rows whose values would not change.

        >>> DUCKDB.upsert(["ticker"], ["ticker", "name"])
        'ON CONFLICT ("ticker") DO UPDATE SET "name" = EXCLUDED."name"'
        """
        q = self.quote
        rest = [c for c in columns if c not in key]
        sets = [f"{q(c)} = EXCLUDED.{q(c)}" for c in rest] + [f"{q(c)} = NULL" for c in nulls]
        conflict = f"ON CONFLICT ({', '.join(q(k) for k in key)})"
        if not sets:
            return f"{conflict} DO NOTHING"
        clause = f"{conflict} DO UPDATE SET {', '.join(sets)}"
        if unless_same and rest:
            clause += (f" WHERE ({', '.join(f'{unless_same}.{q(c)}' for c in rest)}) IS DISTINCT FROM "
                       f"({', '.join(f'EXCLUDED.{q(c)}' for c in rest)})")
        return clause

    def select_replacing(self, alias: str, columns: Sequence[str] | None, replaced: Mapping[str, str]) -> str:
        """The columns of `alias` with some computed anew (`replaced`: name -> expression), in their order."""
        if self.star_replace and columns is None:
            return f"{alias}.* REPLACE ({', '.join(f'{e} AS {c}' for c, e in replaced.items())})"
        assert columns is not None
        return ", ".join(f"{replaced[c]} AS {self.quote(c)}" if c in replaced else f"{alias}.{self.quote(c)}"
                         for c in columns)


DUCKDB = Dialect(
    name="duckdb", title="DuckDB", param="?",
    types={"text": "VARCHAR", "timestamp": "TIMESTAMPTZ", "integer": "BIGINT", "boolean": "BOOLEAN", "date": "DATE",
           "float": "DOUBLE", "float[]": "DOUBLE[]"},
    ny_day_sql=f"timezone('{NY}', {{col}})::DATE",
    epoch_ms_sql="epoch_ms({col})",
    product_sql="product({x}) {over}",
    exact_ratio_sql="{a} / {b}",
    star_replace=True,
    asof_join=True,
)
POSTGRES = Dialect(
    name="postgres", title="PostgreSQL", param="%s",
    types={"text": "text", "timestamp": "timestamp with time zone", "integer": "bigint", "boolean": "boolean",
           "date": "date", "float": "double precision", "float[]": "double precision[]"},
    ny_day_sql=f"({{col}} AT TIME ZONE '{NY}')::date",
    epoch_ms_sql="(extract(epoch FROM {col}) * 1000)::bigint",
    product_sql="exp(sum(ln(({x})::numeric)) {over})::float8",  # in numeric: exact to float8
    exact_ratio_sql="{a}::numeric / {b}::numeric",
    star_replace=False,
    asof_join=False,
)


class Session(Protocol):
    """A connection in the caller's transaction: rows of a statement with `Dialect.param` placeholders."""

    def execute(self, sql: str, params: Sequence[object] | None = None) -> list[tuple[Any, ...]]: ...


def ensure_columns(s: Session, d: Dialect, rel: str, existing: Mapping[str, str], wanted: Mapping[str, str],
                   mismatch: Callable[[str, str, str], Exception], create: Callable[[], str]) -> None:
    """Make `rel` (`create()`: its CREATE statement) when it has no columns yet, else refuse a column of another
    type (`mismatch(name, have, want)`) before adding the wanted columns it lacks."""
    if not existing:
        s.execute(create())
        return
    for n, t in wanted.items():
        if n in existing and existing[n] != t:
            raise mismatch(n, existing[n], t)
    for n, t in wanted.items():
        if n not in existing:
            s.execute(f"ALTER TABLE {rel} ADD COLUMN {d.quote(n)} {t}")


def create_sql(d: Dialect, rel: str, columns: Mapping[str, str], key: Sequence[str], extra: str = "",
               options: Callable[[str], str] = lambda _: "", keyed: bool = True, exists_ok: bool = False) -> str:
    """CREATE TABLE (IF NOT EXISTS, `exists_ok`) of `columns` (name -> type, each followed by `options(name)`),
    NOT NULL on the key columns, `extra` column definitions and, when `keyed`, the primary key."""
    cols = ", ".join(f"{d.quote(n)} {t}{options(n)}" + (" NOT NULL" if n in key else "") for n, t in columns.items())
    primary = f", PRIMARY KEY ({', '.join(k for k in key)})" if keyed else ""
    return f"CREATE TABLE {'IF NOT EXISTS ' if exists_ok else ''}{rel} ({cols}{extra}{primary})"


def write_state(s: Session, d: Dialect, rel: str, existing: Mapping[str, str], rows: pa.Table, source: str,
                params: Sequence[object], timeframe: str, replace: bool, where: str) -> None:
    """Upsert indicator state `rows` (one timeframe) by (ticker, timeframe): make or extend the table, delete the
    rows replaced (every row of the timeframe with `replace`), insert. `source` is a FROM item holding `rows`
    (with `params`); `where` names the store in errors."""
    wanted = {f.name: d.sql_type(f.type) for f in rows.schema}
    key = ("ticker", "timeframe")

    def mismatch(n: str, have: str, want: str) -> Exception:
        return SchemaMismatch(f"{STATE_TABLE} in {where} has column {n} of type {have}, the state needs {want}. "
                              "Hint: rename or drop that table; colfill never drops it for you.")

    ensure_columns(s, d, rel, existing, wanted, mismatch, lambda: create_sql(
        d, rel, wanted, key, ", saved_at " + d.types["timestamp"] + " NOT NULL DEFAULT now()"))
    p = d.param
    if replace:
        s.execute(f"DELETE FROM {rel} WHERE timeframe = {p}", [timeframe])
    else:
        s.execute(f"DELETE FROM {rel} WHERE timeframe = {p} AND ticker IN (SELECT ticker FROM {source})",
                  [timeframe, *params])
    names = ", ".join(d.quote(n) for n in wanted)
    s.execute(f"INSERT INTO {rel} ({names}, saved_at) SELECT {names}, now() FROM {source}", list(params))


def write_reference(s: Session, d: Dialect, rel: str, create: str, names: Sequence[str], key: Sequence[str],
                    source: str, params: Sequence[object]) -> None:
    """Upsert reference rows by the dataset's `key`: the table made by `create` (CREATE TABLE IF NOT EXISTS),
    then one INSERT ... ON CONFLICT from `source` (a FROM item holding the rows, with `params`)."""
    s.execute(create)
    cols = ", ".join(d.quote(n) for n in names)
    s.execute(f"INSERT INTO {rel} ({cols}) SELECT {cols} FROM {source} {d.upsert(key, names)}", list(params))
