"""colfill: columnar market-data backfill (Polygon/Massive flat files and REST) with exact indicators."""

from __future__ import annotations

__version__ = "0.1.0"
