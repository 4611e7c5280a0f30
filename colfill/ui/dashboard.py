"""What the dashboard's routes share, and where the charting bundle comes from."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import threading
from dataclasses import dataclass, field
from pathlib import Path

from colfill.ui.live import LiveHub
from colfill.ui.queries import Reader


def plotly_bundle() -> Path:
    """plotly.min.js inside the installed plotly package (found without importing plotly's Python side)."""
    spec = importlib.util.find_spec("plotly")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        path = Path(loc) / "package_data" / "plotly.min.js"
        if path.exists():
            return path
    from colfill.errors import MissingDependency

    raise MissingDependency("plotly's JavaScript bundle is not installed. Hint: pip install 'colfill[ui]'")


@dataclass
class Dashboard:
    """What the routes share: the store reader, the data dir (progress, runs, rejects) and Redis, if any."""

    reader: Reader
    data_dir: Path
    hub: LiveHub | None = None
    _bundle: tuple[bytes, str] | None = field(default=None, repr=False)
    _bundle_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def bundle(self) -> tuple[bytes, str]:
        with self._bundle_lock:
            if self._bundle is None:
                raw = plotly_bundle().read_bytes()
                self._bundle = (gzip.compress(raw, 6), hashlib.sha256(raw).hexdigest()[:16])
            return self._bundle
