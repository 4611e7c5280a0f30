"""`colfill bridge`: Kafka's bars onto Redis (stream and pub/sub) for the readers of Redis, until stopped."""

from __future__ import annotations

import re
import sys
from typing import Annotated

import typer


def bridge(
    kafka: Annotated[str, typer.Option("--kafka", envvar="COLFILL_KAFKA_URL", show_default=False,
                                       help="Kafka brokers: host:port[,host:port] (or kafka://host:port).")],
    redis: Annotated[str, typer.Option("--redis", envvar="COLFILL_REDIS_URL", show_default=False,
                                       help="Redis to write to, e.g. redis://localhost:6379/0.")],
    timeframes: Annotated[str, typer.Option("--timeframes", help="Comma-separated timeframes to carry: 1m, 1d "
                                            "and the derived ones colfill live publishes (5m, 1h:rth, ...).")] = "1m",
    group: Annotated[str, typer.Option("--group", help="Kafka consumer group; also names the checkpoint in "
                                       "Redis (colfill:bridge:GROUP:offsets).")] = "colfill-bridge",
    session_timeout: Annotated[float, typer.Option(help="Seconds after which Kafka gives a silent bridge's "
                                                   "partitions to another member of the group.")] = 10.0,
) -> None:
    """Carry the bars `colfill live --bus kafka://` publishes (topics colfill.bars.TF) onto Redis: the stream
    colfill:stream:bars:TF (each message exactly once, also across a kill and restart: offsets are checkpointed
    in Redis with the bars) and the channels colfill:bars:TF:TICKER. Runs until Ctrl-C or SIGTERM (exit 0);
    rides out restarts of Kafka and Redis. Exit 3: Kafka or Redis unreachable at start."""
    from colfill import interrupt
    from colfill.bus.bridge import KafkaToRedisBridge
    from colfill.errors import InvalidArgument

    tfs = list(dict.fromkeys(t.strip() for t in timeframes.split(",") if t.strip()))
    if not tfs or not all(re.fullmatch(r"\w+(:rth)?", t, re.ASCII) for t in tfs):
        raise InvalidArgument(f"--timeframes {timeframes!r}: comma-separated timeframes such as 1m,5m,1h:rth")

    def say(text: str) -> None:
        sys.stderr.write(f"  {text}\n")
        sys.stderr.flush()

    stop = interrupt.Stop()
    with KafkaToRedisBridge(kafka, redis, tfs, group, session_timeout=session_timeout, notice=say) as worker:
        with interrupt.graceful(stop, lambda _: say("stopping")):
            say(f"colfill bridge: {worker.describe()}; Ctrl-C to stop")
            stats = worker.run(stop)
    say(f"colfill bridge: {stats.bridged:,} bars to Redis in {stats.batches:,} batches, {stats.skipped:,} "
        f"messages skipped (not bars), {stats.redis_failures:,} failed Redis writes retried")
    raise typer.Exit(0)
