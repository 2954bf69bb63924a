"""The library's shape, checked from its source: the import graph has no cycle, the theory layer imports
no training, plotting, results, chapter or pipeline module, no chapter imports another, nothing outside the
pipeline imports it, and no file is longer than the limit."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIBRARY = Path(__file__).resolve().parents[1] / "fa_lib"
MAX_LINES = 600
THEORY_FORBIDS = ("fa_lib.training", "fa_lib.plotting", "fa_lib.results", "fa_lib.chapters", "fa_lib.pipeline", "fa_lib.preamble")


def module_name(path: Path) -> str:
    parts = path.relative_to(LIBRARY.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(LIBRARY.rglob("*.py"))}


def imports(name: str) -> set[str]:
    """The fa_lib modules that module ``name`` imports anywhere in its source (function-level and
    ``TYPE_CHECKING`` imports included): ``from .x import y`` is an edge to ``x.y`` when that is a module,
    else to ``x``; parent packages are not counted (importing them runs only their ``__init__``, an edge of its own)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(base + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        found |= {t for t in targets if t in MODULES and t != name}
    return found


GRAPH = {name: imports(name) for name in MODULES}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first = last), or None (depth-first search)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_import_graph_has_no_cycle():
    assert find_cycle(GRAPH) is None, " -> ".join(find_cycle(GRAPH))


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_relative_imports_resolve():
    assert "fa_lib.networks" in GRAPH["fa_lib.training.loop"]
    assert "fa_lib.pipeline.project" in GRAPH["fa_lib.pipeline.pages"]


def test_theory_is_pure():
    theory = [n for n in MODULES if n.startswith("fa_lib.theory")]
    assert len(theory) >= 4, theory  # the package and one module per paper
    for name in theory:
        bad = sorted(t for t in GRAPH[name] if t.startswith(THEORY_FORBIDS))
        assert not bad, f"{name} imports {bad}"


def _chapter(name: str) -> str | None:
    parts = name.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "chapters" else None


def test_no_chapter_imports_another():
    for name in MODULES:
        own = _chapter(name)
        if own is None:
            continue
        others = sorted(t for t in GRAPH[name] if _chapter(t) not in (None, own))
        assert not others, f"{name} imports another chapter: {others}"


def test_only_the_pipeline_imports_the_pipeline():
    for name in MODULES:
        if not name.startswith("fa_lib.pipeline"):
            assert not [t for t in GRAPH[name] if t.startswith("fa_lib.pipeline")], name


@pytest.mark.parametrize("name", sorted(MODULES))
def test_file_length(name):
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[name].relative_to(LIBRARY.parent)} has {lines} lines (at most {MAX_LINES})"
