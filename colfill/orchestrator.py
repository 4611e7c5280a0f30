"""`BackfillOrchestrator`: the original tool's Python API, over colfill's pipeline.

    from colfill import BackfillOrchestrator
    orch = BackfillOrchestrator(polygon_api_key="...", db_writer="postgresql://me@localhost/market", years_back=1)
    summary = orch.run_full_backfill(["AAPL", "TSLA"])   # per phase: reference, corporate, daily, minute
    orch.close()

The four phases are the pipeline's: reference data and corporate actions from REST, then day and minute
bars from the source (REST with the key unless `source` names flat files), resumable and exactly once.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from colfill.errors import InvalidArgument


class BackfillOrchestrator:
    """Run the four phases for a list of tickers (or every ticker) into a store or store URL."""

    def __init__(self, polygon_api_key: str | None = None, db_writer: Any = None, years_back: int = 1, *,
                 source: str | None = None, data_dir: str | Path = "colfill-data", rest_url: str | None = None,
                 rate: str | None = None, indicators: str | None = None, start: dt.date | None = None,
                 end: dt.date | None = None) -> None:
        from colfill.indicators.spec import IndicatorSet
        from colfill.sources.rest import RestSettings
        from colfill.stores import open_store
        from colfill.target import resolve

        if years_back < 1:
            raise InvalidArgument(f"years_back={years_back} must be at least 1")
        self.data_dir = Path(data_dir)
        self.source = source or "rest"
        self.rest = RestSettings.from_env(url=rest_url, api_key=polygon_api_key, rate=rate)
        self.indicators = IndicatorSet.parse(indicators)
        self.end = end or dt.date.today()
        self.start = start or self.end.replace(year=self.end.year - years_back)
        self._owns_store = db_writer is None or isinstance(db_writer, str)
        self.store = open_store(resolve(db_writer, self.data_dir)) if self._owns_store else db_writer

    def run_full_backfill(self, tickers: list[str] | None = None, *, limit: int | None = None,
                          skip_reference: bool = False, skip_corporate: bool = False, skip_daily: bool = False,
                          skip_minute: bool = False) -> dict[str, dict[str, Any]]:
        """Phases 1-4; a summary per phase (rows written, days staged and loaded, errors)."""
        from colfill.pipeline import BackfillJob, run

        tables = tuple(t for t, skip in (("bars_1d", skip_daily), ("bars_1m", skip_minute)) if not skip)
        phases = tuple(p for p, skip in (("reference", skip_reference), ("corporate", skip_corporate)) if not skip)
        job = BackfillJob(source=self.source, start=self.start, end=self.end, data_dir=self.data_dir, tables=tables,
                          tickers=tuple(sorted(set(tickers))) if tickers else None, limit=limit,
                          indicators=self.indicators, rest=self.rest, phases=phases)
        result = run(job, self.store)
        summary: dict[str, dict[str, Any]] = {
            "reference": {"tickers": result.reference.get("tickers", 0)},
            "corporate": {t: result.reference.get(t, 0) for t in ("splits", "dividends")},
        }
        for t in result.tables:
            summary["daily" if t.table == "bars_1d" else "minute"] = {
                "days": t.files, "staged": t.staged, "skipped": t.skipped, "failed": t.failed, "rows": t.rows_out,
                "rejected": t.rejected, "loaded_rows": t.loaded_rows, "errors": list(t.errors)}
        return summary

    def close(self) -> None:
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> BackfillOrchestrator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
