"""The original tool's README examples, verbatim but for the package name, the key and the URLs, against the
replay REST server and a real redis-server: the orchestrator, the ingestion engine with the official
`RESTClient` and `RedisMessageBus(host=, port=)`, and the incremental processor on one bar dict."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.pipeline.conftest import stored
from tests.polygon_server import PolygonServer
from tests.rest.conftest import KEY


def test_the_orchestrator_example(server: PolygonServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLFILL_REST_URL", server.url)
    monkeypatch.setenv("COLFILL_REST_RATE", "1000/s")
    monkeypatch.chdir(tmp_path)
    db_writer = f"duckdb:///{tmp_path / 'seed.duckdb'}"

    from colfill import BackfillOrchestrator
    orchestrator = BackfillOrchestrator(polygon_api_key=KEY, db_writer=db_writer, years_back=1)
    results = orchestrator.run_full_backfill(['AAPL', 'TSLA', 'NVDA'])
    orchestrator.close()

    # the replay server's bars are of March 2024, outside the year back from today: the run is what is checked
    assert results["reference"] == {"tickers": 4} and results["minute"]["errors"] == []
    assert results["daily"]["errors"] == [] and (tmp_path / "seed.duckdb").exists()


@pytest.mark.redis
def test_the_ingestion_engine_example(server: PolygonServer, tmp_path: Path, redis_url: str) -> None:
    import redis

    redis_client = redis.Redis.from_url(redis_url)
    redis_client.delete("colfill:stream:bars:1m")
    where = urlsplit(redis_url)
    db_writer = f"lake:///{tmp_path / 'lake'}"

    from polygon import RESTClient

    from colfill import DataIngestionEngine, HistoricalDataSource, IncrementalIndicatorProcessor, RedisMessageBus
    polygon_client = RESTClient(KEY, base=server.url)
    agg_client = polygon_client
    redis_bus = RedisMessageBus(host=where.hostname, port=where.port)
    engine = DataIngestionEngine(processors=[IncrementalIndicatorProcessor()], storage=db_writer,
                                 message_bus=redis_bus, batch_size=1000)
    source = HistoricalDataSource(aggregates_client=agg_client, symbol='AAPL', start_date=datetime(2024, 1, 1),
                                  end_date=datetime(2024, 12, 31), timeframe='1m')
    engine.ingest(source, mode='batch')

    engine.close()
    rows = stored(tmp_path / "lake", "bars_1m")
    assert rows.height > 1000 and set(rows["ticker"]) == {"AAPL"} and "rsi_14" in rows.columns
    assert redis_client.xlen("colfill:stream:bars:1m") == rows.height
    redis_client.delete("colfill:stream:bars:1m")


def test_the_processor_example() -> None:
    from colfill import IncrementalIndicatorProcessor

    processor = IncrementalIndicatorProcessor()
    enriched = processor.process({'symbol': 'AAPL', 'timeframe': '1m', 't': 1640000000000, 'o': 150.0, 'h': 151.0,
                                  'l': 149.5, 'c': 150.5, 'v': 1000000, 'vw': 150.3})
    assert {"sma_20", "sma_50", "ema_20", "rsi_14", "macd"} <= {k.lower() for k in enriched}
