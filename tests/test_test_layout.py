"""The tests' shape: a test module takes shared helpers from a conftest or a helpers module, never from another
test module (a helper buried in a test file is found by nobody, and importing that file runs its module-level setup
in a module it was not written for)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = path.relative_to(TESTS.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(source: str, package: str) -> set[str]:
    """Every module `source` (a module of `package`) imports or may import (`from a import b` may be module a.b),
    relative imports resolved."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            base = ".".join(parts + ([node.module] if node.module else []))
            names |= {base, *(f"{base}.{a.name}" for a in node.names)}
    return names


def test_no_test_module_imports_another() -> None:
    paths = {module_name(p): p for p in TESTS.rglob("*.py")}
    test_modules = {m for m, p in paths.items() if p.name.startswith("test_")}
    assert len(test_modules) > 50
    found = []
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found += [f"{path.relative_to(TESTS)} imports {m}" for m in imported(path.read_text(), package) & test_modules]
    assert sorted(found) == []


def test_the_check_sees_relative_and_absolute_imports() -> None:
    source = "from .test_handoff import x\nfrom tests.rest import test_ratelimit\nfrom . import conftest\n"
    got = imported(source, "tests.live")
    assert {"tests.live.test_handoff", "tests.rest.test_ratelimit", "tests.live.conftest"} <= got
    assert imported("from ..helpers import wait_for\n", "tests.live") >= {"tests.helpers", "tests.helpers.wait_for"}
