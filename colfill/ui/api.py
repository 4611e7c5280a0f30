"""The dashboard's JSON API: overview, status, rejects, coverage, tickers, bars, and live bars (server-sent events).

Bad input is a 4xx with `{"error": message}`: 400 for a malformed value (a range that is not a date, start
after end, an unknown timeframe), 404 for a ticker or table the store does not hold, 409 for live bars
without `--redis`. No answer carries a secret: store and Redis URLs are shown redacted, errors scrubbed.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from colfill.bars import TABLES, table_of
from colfill.errors import InvalidArgument
from colfill.ui import resample

if TYPE_CHECKING:
    from colfill.ui.dashboard import Dashboard

MAX_TICKER = 32
MAX_POINTS = 5000
DEFAULT_POINTS = 1500


class BadRequest(Exception):
    """A 4xx answer: `status` and a message for people."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def error(status: int, message: str) -> JSONResponse:
    from colfill.config import redact

    return JSONResponse({"error": redact(message)}, status_code=status)


def check_ticker(raw: str) -> str:
    ticker = raw.strip()
    if not ticker or len(ticker) > MAX_TICKER:
        raise BadRequest(400, f"ticker must be 1 to {MAX_TICKER} characters")
    return ticker


def parse_time(raw: str | None, name: str, end: bool = False) -> int | None:
    """Epoch ms from `YYYY-MM-DD` (New York midnight; an end date includes its day), an ISO time, or epoch ms."""
    if raw is None or raw == "":
        return None
    from colfill.calendar import NEW_YORK

    text = raw.strip()
    try:
        if text.lstrip("-").isdigit():
            return int(text)
        if len(text) == 10:
            day = dt.date.fromisoformat(text) + (dt.timedelta(days=1) if end else dt.timedelta())
            return int(dt.datetime.combine(day, dt.time(), NEW_YORK).timestamp() * 1000)
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        if when.tzinfo is None:
            when = when.replace(tzinfo=NEW_YORK)
        return int(when.timestamp() * 1000)
    except (ValueError, OverflowError):
        raise BadRequest(400, f"{name}={raw!r} is not a date (YYYY-MM-DD), an ISO time or epoch milliseconds"
                         ) from None


def int_param(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(400, f"{name}={raw!r} is not a whole number") from None
    if not lo <= value <= hi:
        raise BadRequest(400, f"{name}={value} is out of range ({lo}..{hi})")
    return value


def overview(dash: Dashboard, request: Request) -> dict[str, Any]:
    from colfill.progress import read_runs
    from colfill.ui.queries import rejects_summary

    return {"store": dash.reader.describe(), "kind": dash.reader.kind, "tables": dash.reader.table_stats(),
            "runs": read_runs(dash.data_dir), "rejects": rejects_summary(dash.data_dir),
            "redis": dash.hub.describe() if dash.hub else None}


def status(dash: Dashboard, request: Request) -> dict[str, Any]:
    from colfill.progress import read_progress

    out: dict[str, Any] = {"progress": read_progress(dash.data_dir), "redis": None}
    if dash.hub is not None:
        out["redis"] = dash.hub.statuses()
    return out


def rejects(dash: Dashboard, request: Request) -> dict[str, Any]:
    from colfill.ui.queries import rejects_detail

    reason = request.query_params.get("reason")
    if not reason:
        raise BadRequest(400, "reason is needed, e.g. /api/rejects?reason=...")
    limit = int_param(request, "limit", 200, 1, 10_000)
    return {"reason": reason, "rows": rejects_detail(dash.data_dir, reason, limit)}


def tickers(dash: Dashboard, request: Request) -> dict[str, Any]:
    limit = int_param(request, "limit", 50, 1, 5000)
    search = request.query_params.get("search") or None
    if search is not None and len(search) > MAX_TICKER:
        raise BadRequest(400, f"search must be at most {MAX_TICKER} characters")
    return {"tickers": dash.reader.top_tickers(limit, search)}


def coverage(dash: Dashboard, request: Request) -> dict[str, Any]:
    """Bars per (ticker, trading day) of the N most traded tickers (or those matching `search`), per-day totals,
    and the exchange's sessions without any bar (missing from the source; holidays are not sessions)."""
    from colfill.calendar import trading_days
    from colfill.ui.queries import reject_days

    reader = dash.reader
    have = reader.bar_tables()
    table = request.query_params.get("table") or ("bars_1m" if "bars_1m" in have else "bars_1d")
    if table not in TABLES:
        raise BadRequest(400, f"table={table!r}: choose {' or '.join(TABLES)}")
    if table not in have:
        raise BadRequest(404, f"{table} is not in this store yet (nothing loaded)")
    n = int_param(request, "n", 40, 1, 500)
    search = request.query_params.get("search") or None
    if search is not None and len(search) > MAX_TICKER:
        raise BadRequest(400, f"search must be at most {MAX_TICKER} characters")
    totals = reader.day_totals(table)
    if totals.is_empty():
        return {"table": table, "days": [], "tickers": [], "z": [], "totals": [], "missing": [], "rejected": []}
    first, last = totals["day"].min(), totals["day"].max()
    sessions = trading_days(first, last)  # type: ignore[arg-type]
    with_bars = set(totals["day"].to_list())
    days = sorted(set(sessions) | with_bars)
    index = {d: i for i, d in enumerate(days)}
    names = reader.top_tickers(n, search)
    counts = reader.day_counts(table, names)
    z = [[0] * len(days) for _ in names]
    row_of = {t: i for i, t in enumerate(names)}
    for ticker, day, bars in counts.iter_rows():
        if ticker in row_of and day in index:
            z[row_of[ticker]][index[day]] = int(bars)
    bars_by_day = dict(zip(totals["day"].to_list(), totals["bars"].to_list()))
    tickers_by_day = dict(zip(totals["day"].to_list(), totals["tickers"].to_list()))
    rej = reject_days(dash.data_dir, table)
    rejected = [[row_of[t], index[d], int(k)] for t, d, k in rej.iter_rows()
                if t in row_of and d in index] if rej.height else []
    session_set = set(sessions)
    return {
        "table": table, "days": [d.isoformat() for d in days], "tickers": names, "z": z,
        "totals": [int(bars_by_day.get(d, 0)) for d in days],
        "day_tickers": [int(tickers_by_day.get(d, 0)) for d in days],
        "session": [d in session_set for d in days],
        "missing": [d.isoformat() for d in sessions if d not in with_bars],
        "rejected": rejected,
    }


def bars(dash: Dashboard, request: Request) -> dict[str, Any]:
    """Bars of a ticker over [start, end), resampled to at most `points` candles, with chosen indicator columns."""
    reader = dash.reader
    ticker = check_ticker(request.path_params["ticker"])
    tf = request.query_params.get("tf", "1m")
    adjusted = request.query_params.get("adjusted", "0") in ("1", "true", "yes")
    try:
        relation, adjusted_in_fact = reader.table_for(tf, adjusted)
    except InvalidArgument as exc:
        raise BadRequest(400, str(exc)) from None
    except LookupError as exc:
        raise BadRequest(404, str(exc)) from None
    table = relation.removesuffix("_adjusted")
    span = reader.ticker_span(table, ticker)
    if span is None:
        raise BadRequest(404, f"unknown ticker {ticker!r}: {table} has no bars of it")
    lo = parse_time(request.query_params.get("start"), "start")
    hi = parse_time(request.query_params.get("end"), "end", end=True)
    lo = span[0] if lo is None else lo
    hi = span[1] + 1 if hi is None else hi
    if lo >= hi:
        raise BadRequest(400, "start must be before end")
    points = int_param(request, "points", DEFAULT_POINTS, 10, MAX_POINTS)
    indicators = reader.indicator_columns(relation)
    wanted = [c for c in (request.query_params.get("indicators") or "").split(",") if c]
    unknown = [c for c in wanted if c not in indicators]
    if unknown:
        raise BadRequest(400, f"unknown indicator column(s) {', '.join(unknown)}; stored: {', '.join(indicators)}")
    columns = ["open", "high", "low", "close", "volume", *wanted]
    base = tf.split(":")[0]  # "5m" of "5m:rth": the session changes which bars, not their size
    width = resample.choose_width(hi - lo, base, points)
    if reader.buckets_in_store and width != resample.native(base):
        frame, bars_in = reader.bars_bucketed(relation, ticker, lo, hi, columns, width)  # type: ignore[attr-defined]
        body = resample.payload(frame, width, base, columns, bars_in)
    else:
        body = resample.payload(reader.bars(relation, ticker, lo, hi, columns), width, base, columns)
    body["columns"]["x"] = _wall_ms(body["columns"].get("t", []))
    body.update({"ticker": ticker, "tf": tf, "table": relation, "adjusted": adjusted_in_fact, "start": lo, "end": hi,
                 "first": span[0], "last": span[1], "total_bars": span[2], "indicators": indicators})
    return body


def _wall_ms(ts: list[int]) -> list[int]:
    """New York wall-clock epoch ms of each UTC epoch ms (the chart's axis shows New York time)."""
    if not ts:
        return []
    import polars as pl

    s = pl.Series("t", ts, dtype=pl.Int64)
    local = pl.from_epoch(s, time_unit="ms").dt.replace_time_zone("UTC").dt.convert_time_zone("America/New_York")
    return local.dt.replace_time_zone(None).dt.epoch("ms").to_list()


def meta(dash: Dashboard, request: Request) -> dict[str, Any]:
    """What the chart page needs first: the store's timeframes in menu order (`stored`), those holding the
    ticker (`timeframes`, in the same order) and their stored indicator columns."""
    reader = dash.reader
    ticker = check_ticker(request.path_params["ticker"])
    have = reader.relations()
    stored = reader.timeframes()
    out: dict[str, Any] = {"ticker": ticker, "stored": [tf.label for tf in stored], "timeframes": {},
                           "live": dash.hub is not None}
    for tf in stored:
        span = reader.ticker_span(tf.table, ticker)
        if span is not None:
            out["timeframes"][tf.label] = {"first": span[0], "last": span[1], "bars": span[2], "table": tf.table,
                                           "indicators": reader.indicator_columns(tf.table),
                                           "adjusted": f"{tf.table}_adjusted" in have}
    if not out["timeframes"]:
        raise BadRequest(404, f"unknown ticker {ticker!r}: no bars of it in this store")
    return out


def live(dash: Dashboard, request: Request) -> Response:
    ticker = check_ticker(request.path_params["ticker"])
    tf = request.query_params.get("tf", "1m")
    if table_of(tf) is None and tf not in {t.label for t in dash.reader.timeframes()}:
        return error(400, f"unknown timeframe {tf!r}: choose one the store holds")
    if dash.hub is None:
        return error(409, "live bars need Redis. Hint: start the dashboard with --redis redis://127.0.0.1:6379/0")
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(dash.hub.bars(tf, ticker), media_type="text/event-stream", headers=headers)
