"""Shared fixtures: float64 by default for theory checks, and a papermill runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


@pytest.fixture(scope="session")
def ci_results(tmp_path_factory):
    """Execute a notebook at the ``ci`` profile once per session; returns its results dict.

    Usage: ``results = ci_results("00_primer")``. The executed copy lands in a session
    temporary folder (``executed/<stem>.ipynb``) next to ``results/ci/<stem>.json``; both
    are reused by the book-build test.
    """
    import papermill

    base = tmp_path_factory.getbasetemp() / "ci-run"
    cache: dict[str, dict] = {}

    def run(stem: str) -> dict:
        if stem not in cache:
            (base / "executed").mkdir(parents=True, exist_ok=True)
            papermill.execute_notebook(
                str(NOTEBOOKS / f"{stem}.ipynb"),
                str(base / "executed" / f"{stem}.ipynb"),
                parameters={"profile": "ci", "results_dir": str(base / "results")},
                cwd=str(NOTEBOOKS),
                progress_bar=False,
            )
            cache[stem] = json.loads((base / "results" / "ci" / f"{stem}.json").read_text())
        return cache[stem]

    run.base = base
    return run


def assert_claims_pass(results: dict, expected_ids: set[str]) -> None:
    """Every expected claim is present and passed (the message shows the measured values)."""
    claims = {c["id"]: c for c in results["claims"]}
    assert expected_ids <= set(claims), f"missing claims {sorted(expected_ids - set(claims))}"
    failed = {k: (c["measured"], c["tolerance"]) for k, c in claims.items() if not c["passed"]}
    assert not failed, f"claims that deviate at the ci profile: {failed}"
