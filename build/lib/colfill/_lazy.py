"""One helper for optional heavy imports, so `import colfill` stays light and errors name the extra."""

from __future__ import annotations

import importlib
from types import ModuleType

from colfill.errors import MissingDependency


def require(module: str, extra: str) -> ModuleType:
    """Import `module`, or fail with the `pip install 'colfill[extra]'` that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(
            f"{module} is needed for this and is not installed. Hint: pip install 'colfill[{extra}]'"
        ) from exc
