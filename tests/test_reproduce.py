"""The reproduction pipeline on a scratch project: cache, corruption, interruption, failures,
scorecard. The real chapters' cache is checked in test_book.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from fa_lib.pipeline import pages
from fa_lib.pipeline import reproduce as R
from fa_lib.results import verdict_badge

pytestmark = pytest.mark.notebook

CHAPTER = '''
import os, time
import fa_lib as F
F.check_parameters(profile=profile, seed=seed, results_dir=results_dir)
if os.environ.get("FA_TEST_FAIL") == STEM:
    raise RuntimeError("chapter broke on purpose")
time.sleep(float(os.environ.get("FA_TEST_SLEEP_" + STEM, "0")))
r = F.Results(STEM, profile=profile, parameters={"profile": profile}, seeds=[seed], results_dir=results_dir, paper="test")
r.claim("T1", statement="a claim that holds", expected="1", measured=1, tolerance="exact", passed=True)
r.claim("T2", statement="a claim that " + ("deviates" if STEM.startswith("02") else "holds"), expected="0",
        measured=0.123456, tolerance="exact", passed=not STEM.startswith("02"))
if STEM.startswith("02"):
    r.skip_claim("T3", statement="a claim this profile cannot test", reason="needs the paper profile")
r.save();
'''


def _notebook(path: Path) -> None:
    params = nbformat.v4.new_code_cell('profile = "default"\nseed = 0\nresults_dir = "results"', metadata={"tags": ["parameters"]})
    body = nbformat.v4.new_code_cell(f"STEM = {path.stem!r}\n" + CHAPTER)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"Intro text.\n\n# Chapter {path.stem[3:]}\n\nMore."), params, body])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture()
def project(tmp_path) -> R.Project:
    notebooks, library = tmp_path / "notebooks", tmp_path / "lib"
    notebooks.mkdir()
    library.mkdir()
    (library / "model.py").write_text("VERSION = 1\n")
    (library / "pipeline").mkdir()
    (library / "pipeline" / "pages.py").write_text("STYLE = 1\n")
    for stem in ("01_alpha", "02_beta"):
        _notebook(notebooks / f"{stem}.ipynb")
    return R.Project(notebooks=notebooks, results=tmp_path / "results", book=tmp_path / "book", library=library)


def _mtimes(project: R.Project) -> dict[str, float]:
    return {s: project.executed("ci", s).stat().st_mtime_ns for s in project.chapters()}


def test_second_run_executes_nothing_library_edits_invalidate_pipeline_edits_do_not(project, capsys):
    assert R.main(["--profile", "ci", "--no-book", "--jobs", "2"], project) == 0
    before = _mtimes(project)
    assert R.run_chapters(project, "ci", project.chapters(), jobs=2) == {"01_alpha": "cached", "02_beta": "cached"}
    assert _mtimes(project) == before
    (project.library / "pipeline" / "pages.py").write_text("STYLE = 2\n")  # the pipeline is not a chapter input
    assert R.run_chapters(project, "ci", project.chapters(), jobs=2) == {"01_alpha": "cached", "02_beta": "cached"}
    (project.library / "model.py").write_text("VERSION = 2\n")  # any core or chapter edit invalidates every chapter
    assert R.run_chapters(project, "ci", project.chapters(), jobs=2) == {"01_alpha": "ran", "02_beta": "ran"}
    assert R.run_chapters(project, "ci", ["01_alpha"], jobs=1, force=True) == {"01_alpha": "ran"}
    nb = project.notebooks / "02_beta.ipynb"
    nb.write_text(nb.read_text().replace("a claim that holds", "a claim that still holds"))
    assert R.run_chapters(project, "ci", project.chapters(), jobs=1) == {"01_alpha": "cached", "02_beta": "ran"}


def test_library_edit_during_a_run_leaves_the_chapter_stale(project, monkeypatch):
    import papermill

    real = papermill.execute_notebook

    def edit_while_running(*args, **kwargs):
        result = real(*args, **kwargs)
        (project.library / "model.py").write_text("VERSION = 3\n")  # edited while the chapter ran
        return result

    monkeypatch.setattr(papermill, "execute_notebook", edit_while_running)
    R.execute_chapter(project, "ci", "01_alpha")
    assert not R.is_fresh(project, "ci", "01_alpha")


def test_installing_a_dataset_invalidates(project, monkeypatch, tmp_path):
    R.run_chapters(project, "ci", ["01_alpha"], jobs=1)
    assert R.is_fresh(project, "ci", "01_alpha")
    found = {"mnist": tmp_path / "mnist"}  # MNIST appears: dataset="auto" would now read it
    monkeypatch.setattr(R, "find_dataset", lambda name: found.get(name))
    assert not R.is_fresh(project, "ci", "01_alpha")


@pytest.mark.parametrize("damage", ["truncate", "delete_executed", "garbage_key"])
def test_damaged_outputs_are_recomputed(project, damage):
    R.run_chapters(project, "ci", project.chapters(), jobs=2)
    if damage == "truncate":
        path = project.results_file("ci", "01_alpha")
        path.write_text(path.read_text()[:50])
    elif damage == "delete_executed":
        project.executed("ci", "01_alpha").unlink()
    else:
        project.key_file("ci", "01_alpha").write_text("0" * 64)
    assert R.run_chapters(project, "ci", project.chapters(), jobs=1) == {"01_alpha": "ran", "02_beta": "cached"}
    assert R.is_fresh(project, "ci", "01_alpha")


def test_killed_run_keeps_finished_chapters_and_resumes(project):
    code = (f"import sys; from pathlib import Path; from fa_lib.pipeline import reproduce as R; "
            f"p = R.Project(notebooks=Path({str(project.notebooks)!r}), results=Path({str(project.results)!r}), "
            f"book=Path({str(project.book)!r}), library=Path({str(project.library)!r})); "
            f"sys.exit(R.main(['--profile', 'ci', '--no-book', '--jobs', '1'], p))")
    env = dict(os.environ, FA_TEST_SLEEP_02_beta="120")
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        partial = project.executed("ci", "02_beta").with_name(".02_beta.partial.ipynb")
        # jobs=1 and no timing history: alphabetical order, so 01 finishes before 02 starts.
        while not (R.is_fresh(project, "ci", "01_alpha") and partial.exists()) and time.time() < deadline:
            time.sleep(0.2)
        assert partial.exists(), "the second chapter never started"
        time.sleep(2)  # mid-chapter
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert R.is_fresh(project, "ci", "01_alpha")
    assert json.loads(project.results_file("ci", "01_alpha").read_text())["notebook"] == "01_alpha"
    assert not R.is_fresh(project, "ci", "02_beta") and not project.results_file("ci", "02_beta").exists()
    assert R.run_chapters(project, "ci", project.chapters(), jobs=2) == {"01_alpha": "cached", "02_beta": "ran"}


def test_a_failing_chapter_fails_the_run_but_not_the_others(project, monkeypatch, capsys):
    R.run_chapters(project, "ci", ["02_beta"], jobs=1)
    monkeypatch.setenv("FA_TEST_FAIL", "01_alpha")
    assert R.main(["--profile", "ci", "--no-book"], project) == 1
    out = capsys.readouterr().out
    assert "FAILED to run: 01_alpha" in out and "chapter broke on purpose" in out
    assert R.is_fresh(project, "ci", "02_beta")


def test_deviating_claims_are_findings_not_failures(project, capsys):
    assert R.main(["--profile", "ci", "--no-book"], project) == 0
    out = capsys.readouterr().out
    assert "deviates: 02_beta T2" in out
    rows = pages.scorecard_rows(project, "ci", project.chapters() + ["03_gamma"])
    verdicts = {(r["chapter"], r["id"]): r["verdict"] for r in rows}
    assert verdicts == {("01_alpha", "T1"): "reproduced", ("01_alpha", "T2"): "reproduced", ("02_beta", "T1"): "reproduced",
                        ("02_beta", "T2"): "deviates", ("02_beta", "T3"): "not evaluated", ("03_gamma", "(all)"): "not run"}
    project.book.mkdir()
    page = pages.write_scorecard_page(project.book, rows, "ci").read_text()
    assert "3 reproduced, 1 deviate, 1 not evaluated, 1 not run" in page and "<div>0.123</div>" in page
    assert "## Chapter alpha" in page and "[The chapter](generated/01_alpha.ipynb): 2 reproduced." in page
    beta = page[page.index("## Chapter beta"):page.index("## 03_gamma")]
    assert beta.index('id="claim-T2"') < beta.index('id="claim-T3"') < beta.index('id="claim-T1"')  # deviations first
    assert ('<td><a href="generated/02_beta.html#claim-T3">T3</a></td><td>' + verdict_badge("not evaluated") +
            "</td><td>a claim this profile cannot test</td><td><div>needs the paper profile</div></td>") in beta
    assert verdict_badge("not run") in page[page.index("## 03_gamma"):]


def test_bad_arguments_are_rejected(project, capsys):
    with pytest.raises(SystemExit):
        R.main(["--profile", "fast"], project)
    assert "PROFILE='fast' is not allowed" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        R.main(["--chapter", "99_nothing"], project)
    assert "CHAPTER='99_nothing'" in capsys.readouterr().err


def test_chapter_page_drops_the_injected_cell_and_adds_the_rerun_box(project):
    assert R.main(["--profile", "ci", "--no-book"], project) == 0
    executed = project.executed("ci", "01_alpha")
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in nbformat.read(executed, as_version=4).cells)
    page = pages.chapter_page(executed, project.results_file("ci", "01_alpha"), "01_alpha", "ci")
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in page.cells)
    assert all("hide-input" in c.metadata.tags for c in page.cells if c.cell_type == "code")  # code one click away
    assert str(project.results) not in nbformat.writes(page)  # the machine's results path is gone
    assert page.cells[0].source.startswith("Intro text.") and "Re-run this chapter" in page.cells[1].source
    box = page.cells[1].source
    assert "This page shows the `ci` profile" in box and "{download}`the results file <01_alpha.json>`" in box
    assert "| `profile` | `\"default\"` |" in box and "| `results_dir` |" in box
    assert pages.notebook_parameters(page) == [("profile", '"default"', ""), ("seed", "0", ""), ("results_dir", '"results"', "")]


def test_scorecard_counts_the_kinds_apart(tmp_path):
    def row(claim_id, verdict, kind):
        return {"chapter": "01_alpha", "title": "Chapter alpha", "paper": "", "id": claim_id, "statement": "s", "expected": "",
                "measured": "1", "tolerance": "", "verdict": verdict, "kind": kind}
    rows = [row("P1", "reproduced", "paper"), row("P2", "deviates", "paper"), row("W1", "reproduced", "prediction"),
            row("I1", "reproduced", "implementation")]
    page = pages.write_scorecard_page(tmp_path, rows, "ci").read_text()
    assert "Totals: 3 reproduced, 1 deviate" in page
    assert "- Paper claims: 1 reproduced, 1 deviates, 0 not evaluated" in page
    assert "- Predictions of this book (derived here, not stated in the papers, stated before the run): 1 reproduced" in page
    assert "- Implementation checks (exact identities of the code, not tests of the paper): 1 reproduced" in page
    only_paper = pages.write_scorecard_page(tmp_path, rows[:2], "ci").read_text()
    assert "By kind" not in only_paper
