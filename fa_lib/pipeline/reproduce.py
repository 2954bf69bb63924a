"""``python -m fa_lib.pipeline.reproduce``: execute the chapters with papermill, then build the book.

For a profile P each chapter ``notebooks/<stem>.ipynb`` produces, under ``results/P/``:

* ``<stem>.json``: the results file the notebook writes (atomically) in its last cell;
* ``executed/<stem>.ipynb``: the executed copy (written to a temporary name, then renamed);
* ``executed/<stem>.inputs``: the SHA-256 of the chapter's inputs (the notebook, the
  profile, every source file of ``fa_lib`` outside this pipeline package and where the
  datasets were found), written last. Editing the pipeline (this module, the page writers,
  the benchmark) therefore leaves every chapter cached.

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
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

from ..data import DATASETS, find_dataset
from ..results import load_results
from ..validation import PROFILES, check_choice, check_int
from .project import Project
from .pages import chapter_page, print_scorecard, scorecard_rows, write_performance_page, write_scorecard_page, write_toc

def inputs_key(project: Project, profile: str, stem: str) -> str:
    """SHA-256 over the notebook, the profile, every ``.py`` file of the library's core and chapter
    wings (not :mod:`fa_lib.pipeline`, which runs chapters but is not run by them) and where each
    dataset was found (installing MNIST changes what ``dataset="auto"`` reads)."""
    digest = hashlib.sha256()
    digest.update(profile.encode())
    for name in DATASETS:
        digest.update(f"{name}:{find_dataset(name)}".encode())
    digest.update((project.notebooks / f"{stem}.ipynb").read_bytes())
    pipeline = project.library / "pipeline"
    for path in sorted(p for p in project.library.rglob("*.py") if pipeline not in p.parents):
        digest.update(str(path.relative_to(project.library)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def is_fresh(project: Project, profile: str, stem: str) -> bool:
    """True when the chapter's outputs exist, read back whole, and match its current inputs."""
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


# --------------------------------------------------------------------------- book
def assemble_book(project: Project, profile: str, stems: Sequence[str]) -> list[str]:
    """Write the profile's executed chapters into ``book/generated`` as :func:`~fa_lib.pipeline.pages.chapter_page`
    (dropping stale ones) with their results files, and the generated pages; returns the chapters the book will show."""
    generated = project.book / "generated"
    shutil.rmtree(generated, ignore_errors=True)
    generated.mkdir(parents=True)
    shown = [s for s in stems if project.executed(profile, s).is_file()]
    for stem in shown:
        page = chapter_page(project.executed(profile, stem), project.results_file(profile, stem), stem, profile)
        nbformat.write(page, generated / f"{stem}.ipynb")
        shutil.copy(project.results_file(profile, stem), generated / f"{stem}.json")  # the page's download
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
    parser = argparse.ArgumentParser(prog="python -m fa_lib.pipeline.reproduce", description=__doc__.splitlines()[0])
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
