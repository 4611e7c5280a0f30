"""colfill: columnar market-data backfill (Polygon/Massive flat files and REST) with exact indicators."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["BackfillOrchestrator", "IncrementalIndicatorProcessor", "__version__"]


def __getattr__(name: str) -> object:
    """Lazy exports: `import colfill` stays light (no Polars, no drivers) for the CLI's start-up."""
    if name == "IncrementalIndicatorProcessor":
        from colfill.live.incremental import IncrementalIndicatorProcessor

        return IncrementalIndicatorProcessor
    if name == "BackfillOrchestrator":
        from colfill.orchestrator import BackfillOrchestrator

        return BackfillOrchestrator
    raise AttributeError(f"module 'colfill' has no attribute {name!r}")
