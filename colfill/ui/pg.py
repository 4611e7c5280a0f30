"""The dashboard's reader of PostgreSQL/TimescaleDB: psycopg sessions that are read-only
(`default_transaction_read_only`), in the URL's schema, one per server thread; status from PostgresStore's own
`colfill db status` queries; minute bars aggregated to the chart's buckets inside the database."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Sequence
from typing import Any

import polars as pl

from colfill.bars import ALL_BAR_TABLES
from colfill.dialect import NY, POSTGRES
from colfill.errors import InvalidArgument
from colfill.ui.queries import VERSION_TTL, Reader, ny_day


class PgReader(Reader):
    """PostgreSQL/TimescaleDB through psycopg, in read-only transactions, in the URL's schema."""

    dialect = POSTGRES
    kind = "postgresql"
    buckets_in_store = True

    def __init__(self, url: str) -> None:
        super().__init__()
        import psycopg

        from colfill.stores.postgres.schema import parse_url

        self.url = url
        self.target = parse_url(url)
        self._psycopg = psycopg
        self._local = threading.local()
        self._status_store: Any = None
        self._status_lock = threading.Lock()
        self._checked = 0.0
        self._version: object = None
        self._conn()  # fail now, with a scrubbed message, when the server cannot be reached

    def describe(self) -> str:
        return f"PostgreSQL {self.target.display}"

    def _conn(self) -> Any:
        con = getattr(self._local, "con", None)
        if con is not None and not con.closed:
            return con
        options = "-c default_transaction_read_only=on"
        if self.target.schema:
            options += f" -c search_path={self.target.schema},public"
        try:
            con = self._psycopg.connect(self.target.dsn, autocommit=True, options=options)
        except Exception as exc:
            from colfill.errors import StoreUnreachable

            raise StoreUnreachable(f"cannot connect to {self.target.display}: "
                                   f"{self.target.scrub(' '.join(str(exc).split()))}") from None
        self._local.con = con
        return con

    def _query(self, sql: str, params: Sequence[object] = ()) -> pl.DataFrame:
        con = self._conn()
        with con.cursor() as cur:
            cur.execute(sql.replace("?", "%s"), list(params))
            names = [d.name for d in cur.description] if cur.description else []
            rows = cur.fetchall()
        if not rows:
            return pl.DataFrame(schema=dict.fromkeys(names, pl.Float64))
        cols = list(zip(*rows))
        return pl.DataFrame({n: list(c) for n, c in zip(names, cols)}, strict=False)

    def bars_bucketed(self, relation: str, ticker: str, lo_ms: int, hi_ms: int, columns: Sequence[str],
                      width: int | str) -> tuple[pl.DataFrame, int]:
        """`bars` already aggregated into buckets of `width` by the server (as `colfill.ui.resample` does), so a
        year of minute bars crosses the wire as a few hundred rows; returns (frame, bars aggregated)."""
        allowed = set(self.columns(relation))
        bad = [c for c in columns if c not in allowed]
        if bad:
            raise InvalidArgument(f"unknown column(s) {', '.join(bad)}; {relation} has {', '.join(sorted(allowed))}")
        if isinstance(width, int):
            w = int(width) * 60_000
            bucket = f"(floor(extract(epoch FROM ts) * 1000 / {w}) * {w})::bigint"
        else:
            unit = "day" if width == "1d" else "week"
            bucket = (f"(extract(epoch FROM (date_trunc('{unit}', ts AT TIME ZONE '{NY}') AT TIME ZONE '{NY}')) "
                      "* 1000)::bigint")
        aggs = []
        for c in columns:
            q = POSTGRES.quote(c)
            if c == "open":
                aggs.append(f"(array_agg({q} ORDER BY ts))[1] AS {q}")
            elif c == "high":
                aggs.append(f"max({q}) AS {q}")
            elif c == "low":
                aggs.append(f"min({q}) AS {q}")
            elif c in ("volume", "transactions"):
                aggs.append(f"sum({q}) AS {q}")
            else:
                aggs.append(f"(array_agg({q} ORDER BY ts DESC))[1] AS {q}")
        lo = dt.datetime.fromtimestamp(lo_ms / 1000, dt.timezone.utc)
        hi = dt.datetime.fromtimestamp(hi_ms / 1000, dt.timezone.utc)
        frame = self._query(f"SELECT {bucket} AS t, {', '.join(aggs)}, count(*) AS bars_in "
                            f"FROM {POSTGRES.quote(relation)} WHERE ticker = ? AND ts >= ? AND ts < ? "
                            "GROUP BY 1 ORDER BY 1", [ticker, lo, hi])
        if frame.is_empty():
            return pl.DataFrame(schema={"t": pl.Int64, **dict.fromkeys(columns, pl.Float64)}), 0
        bars_in = int(frame["bars_in"].sum())
        return frame.drop("bars_in").with_columns(pl.col("t").cast(pl.Int64)), bars_in

    def relations(self) -> set[str]:
        frame = self.cached(("relations",), lambda: self._query(
            "SELECT c.relname::text AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'v', 'p', 'm')"))
        return set(frame["name"].to_list()) if frame.height else set()

    def version(self) -> object:
        now = time.monotonic()
        if now - self._checked < VERSION_TTL and self._version is not None:
            return self._version
        self._checked = now
        try:
            frame = self._query("SELECT count(*)::bigint AS n, extract(epoch FROM max(loaded_at))::float8 AS at "
                                "FROM colfill_files")
            self._version = frame.row(0)
        except self._psycopg.Error:
            self._version = ("no manifest", int(now))
        return self._version

    def table_stats(self) -> list[dict[str, Any]]:
        def compute() -> list[dict[str, Any]]:
            from colfill.stores.postgres import PostgresStore

            with self._status_lock:
                if self._status_store is None:
                    self._status_store = PostgresStore(self.url, load_workers=1)
                status = self._status_store.status()
            out = []
            for st in status:
                if st.table not in ALL_BAR_TABLES:
                    continue
                out.append({"table": st.table, "kind": st.kind, "rows": st.rows or 0, "rows_exact": st.rows_exact,
                            "tickers": st.tickers or 0, "first_day": ny_day(st.first_ts),
                            "last_day": ny_day(st.last_ts), "days": st.days, "size_bytes": st.size_bytes,
                            "chunks": st.chunks, "compressed_chunks": st.compressed_chunks,
                            "compression_ratio": st.compression_ratio})
            return out
        return self.cached(("stats",), compute)  # type: ignore[no-any-return]

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
        if self._status_store is not None:
            self._status_store.close()
