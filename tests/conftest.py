"""Shared fixtures: the chapters executed once per session at the ``ci`` profile."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from fa_lib.pipeline import reproduce

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


@pytest.fixture(scope="session")
def ci_project(tmp_path_factory) -> reproduce.Project:
    """The real notebooks and library, with results (and executed copies) in a session folder."""
    return reproduce.Project(results=tmp_path_factory.getbasetemp() / "ci-results")


@pytest.fixture(scope="session")
def ci_results(ci_project):
    """Execute a chapter at the ``ci`` profile once per session, exactly as ``make reproduce``
    does (``fa_lib.pipeline.reproduce.execute_chapter``); returns its results dict.

    Usage: ``results = ci_results("00_primer")``.
    """
    cache: dict[str, dict] = {}

    def run(stem: str) -> dict:
        if stem not in cache:
            reproduce.execute_chapter(ci_project, "ci", stem)
            cache[stem] = json.loads(ci_project.results_file("ci", stem).read_text())
        return cache[stem]

    return run


def assert_claims_pass(results: dict, expected_ids: set[str]) -> None:
    """Every expected claim is present and passed (the message shows the measured values)."""
    claims = {c["id"]: c for c in results["claims"]}
    assert expected_ids <= set(claims), f"missing claims {sorted(expected_ids - set(claims))}"
    failed = {k: (c["measured"], c["tolerance"]) for k, c in claims.items() if c["verdict"] == "deviates"}
    assert not failed, f"claims that deviate at the ci profile: {failed}"


def assert_notebook_is_thin(stem: str, max_lines: int) -> None:
    """Chapter ``stem`` calls its module: the parameters cell first, no function, class or lambda, cells of at most
    40 lines and ``max_lines`` code lines in all, committed without outputs."""
    cells = [c for c in json.loads((NOTEBOOKS / f"{stem}.ipynb").read_text())["cells"] if c["cell_type"] == "code"]
    assert "parameters" in cells[0]["metadata"].get("tags", [])
    assert all(not c.get("outputs") for c in cells)
    sources = ["".join(c["source"]) for c in cells]
    assert max(len(s.splitlines()) for s in sources) <= 40 and sum(len(s.splitlines()) for s in sources) <= max_lines
    for source in sources:
        nodes = list(ast.walk(ast.parse(source)))
        assert not [n for n in nodes if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.Lambda))], source


def assert_rejects_parameter(stem: str, tmp_path: Path, name: str, value, message: str) -> None:
    """Executing chapter ``stem`` with one bad parameter fails with a ValueError that names it,
    before any computation, and leaves no results behind."""
    import papermill

    params = {"profile": "ci", "results_dir": str(tmp_path / "results"), name: value}
    with pytest.raises(papermill.PapermillExecutionError) as info:
        papermill.execute_notebook(str(NOTEBOOKS / f"{stem}.ipynb"), str(tmp_path / "out.ipynb"),
                                   parameters=params, cwd=str(NOTEBOOKS), progress_bar=False)
    assert "ValueError" in str(info.value) and message in str(info.value)
    assert not (tmp_path / "results").exists()  # nothing half-written
