"""``python -m fa_lib.reproduce``: execute the chapters with papermill, then build the book.

For a profile P each chapter ``notebooks/<stem>.ipynb`` produces, under ``results/P/``:

* ``<stem>.json``: the results file the notebook writes (atomically) in its last cell;
* ``executed/<stem>.ipynb``: the executed copy (written to a temporary name, then renamed);
* ``executed/<stem>.inputs``: the SHA-256 of the chapter's inputs (the notebook, the
  profile, every source file of ``fa_lib`` and where the datasets were found), written last.

A chapter whose three files exist, whose results file reads back whole and whose inputs
key matches is not executed again (``--force`` re-runs it). An interrupted run therefore
loses at most the chapters in flight; the next run resumes with those. Chapters run in
parallel processes (``--jobs``, default: one per core; each kernel uses one thread),
longest first. The book is assembled from the executed copies with a generated table of
contents, a generated scorecard of every claim and a generated performance page, and
built by Jupyter Book 1 with ``-W -n --keep-going``. The exit status is non-zero only
when a chapter failed to run: a claim that deviates is a finding, not a crash.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .data import DATASETS, find_dataset
from .results import compact, load_results
from .validation import PROFILES, check_choice, check_int

ROOT = Path(__file__).resolve().parents[1]
CHAPTER_TITLES = {
    "00_primer": "Feedback alignment in one page",
    "01_why_align": "Why do they align?",
    "02_conservation_laws": "Conservation laws",
    "03_two_layer_convergence": "Two-layer convergence",
}


@dataclass(frozen=True)
class Project:
    """Where the pipeline reads and writes (tests point it at a scratch copy)."""

    notebooks: Path = ROOT / "notebooks"
    results: Path = ROOT / "results"
    book: Path = ROOT / "book"
    library: Path = ROOT / "fa_lib"

    def chapters(self) -> list[str]:
        """Notebook stems in book order (file names start with the chapter number)."""
        return sorted(p.stem for p in self.notebooks.glob("[0-9][0-9]_*.ipynb"))

    def results_file(self, profile: str, stem: str) -> Path:
        return self.results / profile / f"{stem}.json"

    def executed(self, profile: str, stem: str) -> Path:
        return self.results / profile / "executed" / f"{stem}.ipynb"

    def key_file(self, profile: str, stem: str) -> Path:
        return self.results / profile / "executed" / f"{stem}.inputs"


def inputs_key(project: Project, profile: str, stem: str) -> str:
    """SHA-256 over the notebook, the profile, every ``.py`` file of the library and where each
    dataset was found (installing MNIST changes what ``dataset="auto"`` reads)."""
    digest = hashlib.sha256()
    digest.update(profile.encode())
    for name in DATASETS:
        digest.update(f"{name}:{find_dataset(name)}".encode())
    digest.update((project.notebooks / f"{stem}.ipynb").read_bytes())
    for path in sorted(project.library.rglob("*.py")):
        digest.update(str(path.relative_to(project.library)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def is_fresh(project: Project, profile: str, stem: str) -> bool:
    """True when the chapter's outputs exist, read back whole, and match its current inputs."""
    import nbformat

    key = project.key_file(profile, stem)
    if not key.is_file() or key.read_text().strip() != inputs_key(project, profile, stem):
        return False
    try:
        results = load_results(project.results_file(profile, stem))
        nbformat.read(project.executed(profile, stem), as_version=4)
    except Exception:  # missing, truncated or corrupt: recompute, never trust
        return False
    return results["notebook"] == stem and results["profile"] == profile


def _write_atomic(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    os.replace(partial, path)


def execute_chapter(project: Project, profile: str, stem: str, *, position: int = 0) -> None:
    """Run one notebook at ``profile`` with papermill (see the module docstring for the files)."""
    import papermill

    check_choice("profile", profile, PROFILES)
    key = inputs_key(project, profile, stem)  # the inputs as they are when the run starts
    target = project.executed(profile, stem)
    target.parent.mkdir(parents=True, exist_ok=True)
    project.key_file(profile, stem).unlink(missing_ok=True)
    partial = target.with_name(f".{stem}.partial.ipynb")
    try:
        papermill.execute_notebook(
            str(project.notebooks / f"{stem}.ipynb"),
            str(partial),
            parameters={"profile": profile, "results_dir": str(project.results)},
            cwd=str(project.notebooks),
            progress_bar={"desc": f"{stem} [{profile}]", "position": position, "leave": True},
        )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    load_results(project.results_file(profile, stem))  # the notebook must have written it
    _write_atomic(project.key_file(profile, stem), key + "\n")


def _last_seconds(project: Project, profile: str, stem: str) -> float:
    try:
        return float(load_results(project.results_file(profile, stem))["provenance"]["seconds"])
    except (ValueError, KeyError, TypeError):
        return math.inf  # never measured: schedule it early


def run_chapters(
    project: Project, profile: str, stems: Sequence[str], *, jobs: int, force: bool = False
) -> dict[str, str]:
    """Execute the stale chapters in parallel, longest first; returns ``{stem: status}`` with
    status ``"cached"``, ``"ran"`` or ``"failed: <reason>"``."""
    status = {stem: "cached" for stem in stems if not force and is_fresh(project, profile, stem)}
    todo = sorted((s for s in stems if s not in status), key=lambda s: -_last_seconds(project, profile, s))
    for stem in status:
        print(f"[{stem}] {profile}: inputs unchanged, using {project.results_file(profile, stem)}", flush=True)

    def run(item: tuple[int, str]) -> tuple[str, str]:
        position, stem = item
        start = time.perf_counter()
        print(f"[{stem}] {profile}: running", flush=True)
        try:
            execute_chapter(project, profile, stem, position=position)
        except Exception as exc:  # reported per chapter; the other chapters go on
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            print(f"[{stem}] {profile}: FAILED ({reason})", flush=True)
            return stem, f"failed: {reason}"
        print(f"[{stem}] {profile}: done in {time.perf_counter() - start:.0f} s", flush=True)
        return stem, "ran"

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        status.update(dict(pool.map(run, enumerate(todo))))
    return {stem: status[stem] for stem in stems}


# --------------------------------------------------------------------------- scorecard
def scorecard_rows(project: Project, profile: str, stems: Sequence[str]) -> list[dict[str, str]]:
    """One row per claim of every chapter; a chapter without a valid results file is one
    "not run" row."""
    rows = []
    for stem in stems:
        try:
            claims = load_results(project.results_file(profile, stem))["claims"]
        except ValueError:
            rows.append({"chapter": stem, "paper": "", "id": "(all)", "statement": "the chapter has no results at this profile",
                         "expected": "", "measured": "", "tolerance": "", "verdict": "not run"})
            continue
        for claim in claims:
            rows.append({
                "chapter": stem, "paper": claim["paper"], "id": claim["id"], "statement": claim["statement"],
                "expected": claim["expected"], "measured": compact(claim["measured"]), "tolerance": claim["tolerance"],
                "verdict": "reproduced" if claim["passed"] else "deviates",
            })
    return rows


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def write_scorecard_page(book: Path, rows: Sequence[dict[str, str]], profile: str) -> Path:
    """``book/scorecard.md``, generated from the results files (nothing typed by hand)."""
    counts = {v: sum(r["verdict"] == v for r in rows) for v in ("reproduced", "deviates", "not run")}
    lines = [
        "# Reproduction scorecard", "",
        f"Every claim of every chapter at the `{profile}` profile, generated from `results/{profile}/*.json` "
        "when the book was built. *Reproduced*: the measured value met the tolerance; *deviates*: it did "
        "not, and the chapter shows and discusses the numbers; *not run*: the chapter has no results file "
        "at this profile.", "",
        f"Totals: {counts['reproduced']} reproduced, {counts['deviates']} deviate, {counts['not run']} not run.", "",
        "| chapter | claim | verdict | statement | expected | measured | tolerance | paper |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        link = f"[{CHAPTER_TITLES.get(r['chapter'], r['chapter'])}](generated/{r['chapter']}.ipynb)"
        if r["verdict"] == "not run":
            link = CHAPTER_TITLES.get(r["chapter"], r["chapter"])
        verdict = {"reproduced": "reproduced", "deviates": "**deviates**", "not run": "*not run*"}[r["verdict"]]
        cells = [link, r["id"], verdict, r["statement"], r["expected"], r["measured"], r["tolerance"], r["paper"]]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    page = book / "scorecard.md"
    page.write_text("\n".join(lines) + "\n")
    return page


def print_scorecard(rows: Sequence[dict[str, str]], status: dict[str, str], profile: str) -> None:
    """The terminal summary: per chapter status and counts, then every claim that deviates."""
    print(f"\nReproduction scorecard ({profile} profile)")
    print(f"{'chapter':28s} {'run':10s} {'reproduced':>10s} {'deviates':>9s}")
    for stem, state in status.items():
        mine = [r for r in rows if r["chapter"] == stem]
        ok = sum(r["verdict"] == "reproduced" for r in mine)
        bad = sum(r["verdict"] == "deviates" for r in mine)
        print(f"{stem:28s} {state.split(':')[0]:10s} {ok:10d} {bad:9d}")
    deviating = [r for r in rows if r["verdict"] == "deviates"]
    for r in deviating:
        print(f"  deviates: {r['chapter']} {r['id']}: {r['statement']} expected {r['expected']}; measured {r['measured']}")
    for stem, state in status.items():
        if state.startswith("failed"):
            print(f"  FAILED to run: {stem}: {state[len('failed: '):]}")


# --------------------------------------------------------------------------- book
def write_performance_page(project: Project, profile: str, stems: Sequence[str]) -> Path:
    """``book/performance.md`` from the benchmark's JSON and each chapter's recorded run time."""
    from .bench import performance_markdown

    # A local `make bench` wins; otherwise the book's recorded run (book/benchmark.json).
    bench_file = next((f for f in (project.results / "benchmark.json", project.book / "benchmark.json") if f.is_file()), None)
    bench = json.loads(bench_file.read_text()) if bench_file else None
    if bench is not None:
        bench["source"] = "this checkout's `make bench`" if bench_file.parent == project.results else "the run recorded with the book"
    times = {}
    for p in PROFILES:
        for stem in stems:
            try:
                prov = load_results(project.results_file(p, stem))["provenance"]
            except ValueError:
                continue
            times[(stem, p)] = prov
    page = project.book / "performance.md"
    page.write_text(performance_markdown(bench, times))
    return page


def write_toc(book: Path, stems: Sequence[str]) -> Path:
    """``_toc.yml``: introduction, the executed chapters, scorecard, performance, bibliography."""
    lines = ["# Generated by fa_lib.reproduce from the executed chapters; do not edit.", "format: jb-book", "root: intro", "chapters:"]
    lines += [f"  - file: generated/{stem}" for stem in stems]
    lines += [f"  - file: {page}" for page in ("scorecard", "performance", "bibliography") if (book / f"{page}.md").is_file()]
    toc = book / "_toc.yml"
    toc.write_text("\n".join(lines) + "\n")
    return toc


def assemble_book(project: Project, profile: str, stems: Sequence[str]) -> list[str]:
    """Copy the profile's executed chapters into ``book/generated`` (dropping stale ones) and
    write the generated pages; returns the chapters the book will show."""
    generated = project.book / "generated"
    shutil.rmtree(generated, ignore_errors=True)
    generated.mkdir(parents=True)
    shown = [s for s in stems if project.executed(profile, s).is_file()]
    for stem in shown:
        shutil.copy(project.executed(profile, stem), generated / f"{stem}.ipynb")
    write_scorecard_page(project.book, scorecard_rows(project, profile, stems), profile)
    write_performance_page(project, profile, stems)
    return shown


def build_book(book: Path) -> Path:
    """Build the HTML book from ``book/generated``; returns ``_build/html/index.html``."""
    stems = sorted(p.stem for p in (book / "generated").glob("[0-9][0-9]_*.ipynb"))
    write_toc(book, stems)
    shutil.rmtree(book / "_build", ignore_errors=True)
    executable = Path(sys.executable).with_name("jupyter-book")
    subprocess.run([str(executable), "build", str(book), "-W", "-n", "--keep-going"], check=True)
    return book / "_build" / "html" / "index.html"


def main(argv: Sequence[str] | None = None, project: Project | None = None) -> int:
    project = project or Project()
    parser = argparse.ArgumentParser(prog="python -m fa_lib.reproduce", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default", help=f"one of {list(PROFILES)}")
    parser.add_argument("--chapter", default=None, help="run only this chapter (notebook stem, e.g. 00_primer)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="chapters run in parallel")
    parser.add_argument("--force", action="store_true", help="re-run chapters whose inputs are unchanged")
    parser.add_argument("--no-book", action="store_true", help="run the chapters but do not build the book")
    args = parser.parse_args(argv)
    available = project.chapters()
    try:
        check_choice("PROFILE", args.profile, PROFILES)
        if args.chapter:
            check_choice("CHAPTER", args.chapter, available)
        check_int("JOBS", args.jobs, minimum=1)
    except ValueError as exc:
        parser.error(str(exc))
    selected = [args.chapter] if args.chapter else available
    status = run_chapters(project, args.profile, selected, jobs=args.jobs, force=args.force)
    rows = scorecard_rows(project, args.profile, available)
    if not args.no_book:
        assemble_book(project, args.profile, available)
        print(f"book: {build_book(project.book)}")
    print_scorecard(rows, status, args.profile)
    return 1 if any(s.startswith("failed") for s in status.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
