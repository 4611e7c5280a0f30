"""A clone stands alone: no file of the project reads or names anything beside or above the repository.

Users, contributors and packagers clone colfill without the developers' `shared/` folder next to it, so the
tests, benchmarks and tools must find everything they read inside the repository.
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTSIDE = re.compile(r"\.\./shared|(?<![\w.])shared/(fixtures|docs|hooks)|/work/shared|\.\./\.library")
SKIP_DIRS = {".git", ".venv", "colfill-data", "node_modules", "__pycache__", ".pytest_cache", ".mypy_cache",
             ".ruff_cache", "build", "dist", "results"}


def project_files() -> list[Path]:
    """The files git tracks (and new ones not ignored); a walk of the tree where git is not at hand."""
    try:
        out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout
        return [ROOT / line for line in out.splitlines() if (ROOT / line).is_file()]
    except (OSError, subprocess.CalledProcessError):
        return [p for p in ROOT.rglob("*") if p.is_file() and not SKIP_DIRS & set(p.relative_to(ROOT).parts)]


def test_no_file_names_the_shared_folder() -> None:
    files = project_files()
    assert any(p.name == "polygon_server.py" for p in files)
    hits = []
    for path in files:
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        hits += [f"{path.relative_to(ROOT)}:{n}: {line.strip()}" for n, line in enumerate(text.splitlines(), 1)
                 if OUTSIDE.search(line) and path != Path(__file__).resolve()]
    assert hits == []


def _climb(node: ast.AST) -> int | None:
    """How many folders up from the file's own `Path(__file__)...` expression goes, or None if it is not one."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Path" and node.args \
            and isinstance(node.args[0], ast.Name) and node.args[0].id == "__file__":
        return 0
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("resolve",
                                                                                                 "absolute"):
        return _climb(node.func.value)
    if isinstance(node, ast.Attribute) and node.attr == "parent":
        inner = _climb(node.value)
        return None if inner is None else inner + 1
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "parents" \
            and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, int):
        inner = _climb(node.value.value)
        return None if inner is None else inner + node.slice.value + 1
    return None


def test_no_path_climbs_above_the_repository() -> None:
    over = []
    for path in project_files():
        if path.suffix != ".py":
            continue
        depth = len(path.relative_to(ROOT).parts)  # tests/x.py: parent = tests (1), parents[1] = root (2)
        for node in ast.walk(ast.parse(path.read_text())):
            up = _climb(node)
            if up is not None and up > depth:
                over.append(f"{path.relative_to(ROOT)}:{node.lineno}: {up} folders up")  # type: ignore[attr-defined]
    assert over == []


def test_climb_counts_folders() -> None:
    expr = ast.parse("Path(__file__).resolve().parents[2]", mode="eval").body
    assert _climb(expr) == 3
    assert _climb(ast.parse("Path(__file__).parent.parent", mode="eval").body) == 2
