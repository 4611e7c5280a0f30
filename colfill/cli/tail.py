"""`colfill tail`: follow the enriched bars others publish on Redis or Kafka, one line per bar, until Ctrl-C."""

from __future__ import annotations

import datetime as dt
import sys
from typing import Annotated, Any

import typer

DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
KEY_INDICATORS = ("sma_20", "ema_20", "rsi_14", "macd", "vwap")
_BASE = {"v", "ticker", "timeframe", "t", "ts", "open", "high", "low", "close", "volume", "vw", "transactions",
         "revision", "published_ms"}


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):  # 2 to 4 decimals: cents, and sub-dollar prices
        if abs(value) >= 1e6:
            return f"{value:,.0f}"
        text = f"{value:.4f}"
        return text[:-2] + text[-2:].rstrip("0") if text.endswith("0") else text
    return str(value)


def format_bar(message: dict[str, Any], columns: list[str] | None = None) -> str:
    """One line: New York time, ticker, OHLCV, indicators (`columns`, else the key ones present), a mark on
    revisions."""
    from colfill.calendar import NEW_YORK

    when = dt.datetime.fromtimestamp(message["t"] / 1000, NEW_YORK).strftime("%Y-%m-%d %H:%M%z")
    volume = message.get("volume")
    parts = [when, f"{message['ticker']:<6}", message.get("timeframe", ""),
             *(f"{k[0]} {_number(message.get(k))}" for k in ("open", "high", "low", "close")),
             f"v {volume:,.0f}" if isinstance(volume, (int, float)) else "v -"]
    names = columns if columns is not None else [k for k in KEY_INDICATORS if k in message] or \
        [k for k in message if k not in _BASE][:4]
    parts += [f"{k} {_number(message.get(k))}" for k in names]
    if message.get("revision"):
        parts.append("(revised)")
    return "  ".join(parts)


def tail(
    tickers: Annotated[list[str], typer.Argument(help="Tickers to follow (`'*'` for every ticker).",
                                                 show_default=False)],
    redis: Annotated[str, typer.Option("--redis", envvar="COLFILL_REDIS_URL", show_default=False,
                                       help=f"Redis the bars are published on (default {DEFAULT_REDIS}).")] = "",
    bus: Annotated[str, typer.Option("--bus", envvar="COLFILL_BUS_URL", show_default=False,
                                     help="The bus instead: redis://host:6379/0 or kafka://host:9092.")] = "",
    timeframe: Annotated[str, typer.Option("--timeframe", help="Bar timeframe: 1m or 1d.")] = "1m",
    columns: Annotated[str | None, typer.Option("--columns", show_default=False,
                                                help="Indicator columns to show, comma-separated (default: "
                                                + ", ".join(KEY_INDICATORS) + ", those present).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print each message as it arrives (JSON lines).")] = False,
) -> None:
    """Print the enriched bars `colfill live` (or anything using colfill's Redis bus) publishes, one line per bar,
    until Ctrl-C (exit 130). An unreachable bus exits 3."""
    from colfill.bus.base import dumps
    from colfill.errors import InvalidArgument

    if timeframe not in ("1m", "1d"):
        raise InvalidArgument(f"--timeframe {timeframe!r}: use 1m or 1d")
    names = [t.strip() for t in tickers if t.strip()]
    if not names:
        raise InvalidArgument("colfill tail: name at least one ticker (or '*')")
    chosen = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    from colfill.config import redact

    if bus and redis:
        raise InvalidArgument("give --bus or --redis (its short form), not both")
    url = bus or redis or DEFAULT_REDIS
    if url.startswith("kafka://"):
        from colfill.bus.kafka import subscribe
    elif url.startswith("memory:"):
        raise InvalidArgument("--bus memory:// is inside one process: tail reads Redis or Kafka")
    else:
        from colfill.bus.redis import subscribe  # type: ignore[assignment]

    def ready() -> None:
        sys.stderr.write(f"following {', '.join(names)} ({timeframe}) on {redact(url)}; Ctrl-C to stop\n")
        sys.stderr.flush()

    out = sys.stdout
    try:
        for message in subscribe(url, names, timeframe, ready=ready):
            out.write((dumps(message).decode() if as_json else format_bar(message, chosen)) + "\n")
            out.flush()
    except BrokenPipeError:  # `colfill tail AAPL | head -3`: the reader has what it wanted
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error flushing at exit
