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

# The JavaScript libraries the pages load, as the wheels of the `ui` extra ship them: (package, file inside it).
# Lightweight Charts (TradingView's, inside the `lightweight-charts` wheel) draws the candles: 160 kB that a cold
# browser runs in a few ms, where Plotly's 4.8 MB took 0.75 s. The coverage heatmap is a canvas of our own.
BUNDLES = {
    "lightweight-charts.js": ("lightweight_charts", "js/lightweight-charts.js"),
}


def vendor_bundle(name: str) -> Path:
    """A bundled JavaScript file of an installed package (found without importing the package's Python side)."""
    package, inner = BUNDLES[name]
    spec = importlib.util.find_spec(package)
    for loc in list(spec.submodule_search_locations or []) if spec else []:
        path = Path(loc) / inner
        if path.exists():
            return path
    from colfill.errors import MissingDependency

    raise MissingDependency(f"{package}'s JavaScript bundle ({inner}) is not installed. "
                            "Hint: pip install 'colfill[ui]'")


@dataclass
class Dashboard:
    """What the routes share: the store reader, the data dir (progress, runs, rejects) and Redis, if any."""

    reader: Reader
    data_dir: Path
    hub: LiveHub | None = None
    _bundles: dict[str, tuple[bytes, str]] = field(default_factory=dict, repr=False)
    _bundle_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def bundle(self, name: str) -> tuple[bytes, str]:
        """The vendor file `name` gzip-compressed, and its ETag (read once)."""
        with self._bundle_lock:
            if name not in self._bundles:
                raw = vendor_bundle(name).read_bytes()
                self._bundles[name] = (gzip.compress(raw, 6), hashlib.sha256(raw).hexdigest()[:16])
            return self._bundles[name]
