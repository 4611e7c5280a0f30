"""The package's shape: no import circles (lazy imports included) between modules or between folders, every import
pointing down the declared layers, modules small enough to read in one sitting."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "colfill"
MAX_LINES = 650
FOLDERS = ("sources", "stores", "live", "bus", "ui", "cli", "indicators", "execute", "stage")
# Bottom-up; a module may import its own layer or lower ones, never a higher one. The package itself (its lazy
# exports) and `__main__` are entry points, at the top with the CLI.
LAYERS: tuple[frozenset[str], ...] = tuple(frozenset(layer) for layer in (
    {"colfill.errors", "colfill._lazy", "colfill.config", "colfill.calendar", "colfill.interrupt", "colfill.bars",
     "colfill.validate", "colfill.atomic", "colfill.target", "colfill.dialect",
     "colfill.timeframes"},  # the model, what every layer needs
    {"indicators", "stage", "colfill.adjust", "colfill.sample"},
    {"sources", "stores"},
    {"bus", "execute", "colfill.universe"},
    {"live"},
    {"colfill.pipeline"},
    {"colfill.orchestrator", "colfill.progress"},
    {"ui", "cli", "colfill", "colfill.__main__"},
))


def imports() -> dict[str, set[str]]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name and not name.startswith(t + ".")}
    return graph


def test_no_import_circles() -> None:
    graph = imports()
    assert len(graph) > 30
    state: dict[str, int] = {}
    circles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert circles == []


def test_modules_are_small() -> None:
    sizes = {p.relative_to(PACKAGE).as_posix(): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {p: n for p, n in sizes.items() if n > MAX_LINES} == {}


def folder_of(module: str) -> str:
    """A module's node in the folder graph: its folder under colfill/, or the top-level module itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in FOLDERS) else module


def folder_imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, targets in imports().items():
        node = folder_of(module)
        graph.setdefault(node, set()).update(folder_of(t) for t in targets if folder_of(t) != node)
    return graph


def test_no_folder_circles() -> None:
    graph = folder_imports()
    assert set(FOLDERS) <= set(graph)
    circles = []
    for start in sorted(graph):  # a node that reaches itself again is on a circle
        seen: set[str] = set()
        todo = list(graph[start])
        while todo:
            node = todo.pop()
            if node == start:
                circles.append(start)
                break
            if node not in seen:
                seen.add(node)
                todo.extend(graph[node])
    assert circles == []


def test_imports_point_down_the_layers() -> None:
    graph = folder_imports()
    rank = {node: i for i, layer in enumerate(LAYERS) for node in layer}
    assert set(graph) - set(rank) == set(), "every folder and top-level module has a layer"
    upward = sorted(f"{a} (layer {rank[a]}) imports {b} (layer {rank[b]})"
                    for a, targets in graph.items() for b in targets if rank[b] > rank[a])
    assert upward == []
