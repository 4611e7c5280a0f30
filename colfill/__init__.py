"""colfill: columnar market-data backfill (Polygon/Massive flat files and REST) with exact indicators."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["BackfillOrchestrator", "DataIngestionEngine", "HistoricalDataSource", "InMemoryMessageBus",
           "IncrementalIndicatorProcessor", "KafkaMessageBus", "KafkaToRedisBridge",
           "LiveDataSource", "MarketDataSource", "RedisMessageBus", "__version__"]

# name -> module of the seed's live-path classes (imported on first use, like the two below)
_LIVE = {"DataIngestionEngine": "colfill.live.engine", "HistoricalDataSource": "colfill.sources.historical",
         "LiveDataSource": "colfill.sources.live", "MarketDataSource": "colfill.sources.base",
         "InMemoryMessageBus": "colfill.bus.memory", "RedisMessageBus": "colfill.bus.redis",
         "KafkaMessageBus": "colfill.bus.kafka", "KafkaToRedisBridge": "colfill.bus.bridge"}


def __getattr__(name: str) -> object:
    """Lazy exports: `import colfill` stays light (no Polars, no drivers) for the CLI's start-up."""
    if name == "IncrementalIndicatorProcessor":
        from colfill.live.incremental import IncrementalIndicatorProcessor

        return IncrementalIndicatorProcessor
    if name in _LIVE:
        import importlib

        return getattr(importlib.import_module(_LIVE[name]), name)
    if name == "BackfillOrchestrator":
        from colfill.orchestrator import BackfillOrchestrator

        return BackfillOrchestrator
    raise AttributeError(f"module 'colfill' has no attribute {name!r}")
