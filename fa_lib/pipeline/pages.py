"""The book's generated pages: the scorecard, the performance page and the table of contents.

Everything here is written from the results files and the benchmark's JSON when the book
is assembled (:mod:`fa_lib.pipeline.reproduce`); nothing is typed by hand. Chapter titles
are read from the notebooks' first heading.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nbformat

from ..results import VERDICTS, compact, load_results
from ..validation import PROFILES

if TYPE_CHECKING:
    from .reproduce import Project


def chapter_title(notebook: Path) -> str:
    """The text of ``notebook``'s first ``# `` heading (its stem if it has none or does not exist)."""
    if not notebook.is_file():
        return notebook.stem
    for cell in nbformat.read(notebook, as_version=4).cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return notebook.stem


# --------------------------------------------------------------------------- scorecard
def scorecard_rows(project: Project, profile: str, stems: Sequence[str]) -> list[dict[str, str]]:
    """One row per claim of every chapter; a chapter without a valid results file is one
    "not run" row."""
    rows = []
    for stem in stems:
        title = chapter_title(project.notebooks / f"{stem}.ipynb")
        try:
            claims = load_results(project.results_file(profile, stem))["claims"]
        except ValueError:
            rows.append({"chapter": stem, "title": title, "paper": "", "id": "(all)", "statement": "the chapter has no results at this profile",
                         "expected": "", "measured": "", "tolerance": "", "verdict": "not run"})
            continue
        for claim in claims:
            rows.append({
                "chapter": stem, "title": title, "paper": claim["paper"], "id": claim["id"], "statement": claim["statement"],
                "expected": claim["expected"], "tolerance": claim["tolerance"], "verdict": claim["verdict"],
                "measured": claim["reason"] if claim["verdict"] == "not evaluated" else compact(claim["measured"]),
            })
    return rows


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def write_scorecard_page(book: Path, rows: Sequence[dict[str, str]], profile: str) -> Path:
    """``book/scorecard.md``, generated from the results files (nothing typed by hand)."""
    counts = {v: sum(r["verdict"] == v for r in rows) for v in (*VERDICTS, "not run")}
    lines = [
        "# Reproduction scorecard", "",
        f"Every claim of every chapter at the `{profile}` profile, generated from `results/{profile}/*.json` "
        "when the book was built. *Reproduced*: the measured value met the tolerance; *deviates*: it did "
        "not, and the chapter shows and discusses the numbers; *not evaluated*: this profile does not run what the "
        "claim needs (the measured column says why); *not run*: the chapter has no results file "
        "at this profile.", "",
        f"Totals: {counts['reproduced']} reproduced, {counts['deviates']} deviate, {counts['not evaluated']} not evaluated, "
        f"{counts['not run']} not run.", "",
        "| chapter | claim | verdict | statement | expected | measured | tolerance | paper |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        link = f"[{r['title']}](generated/{r['chapter']}.ipynb)"
        if r["verdict"] == "not run":
            link = r["title"]
        verdict = {"reproduced": "reproduced", "deviates": "**deviates**", "not evaluated": "*not evaluated*", "not run": "*not run*"}[r["verdict"]]
        cells = [link, r["id"], verdict, r["statement"], r["expected"], r["measured"], r["tolerance"], r["paper"]]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    page = book / "scorecard.md"
    page.write_text("\n".join(lines) + "\n")
    return page


def print_scorecard(rows: Sequence[dict[str, str]], status: dict[str, str], profile: str) -> None:
    """The terminal summary: per chapter status and counts, then every claim that deviates."""
    print(f"\nReproduction scorecard ({profile} profile)")
    print(f"{'chapter':28s} {'run':10s} {'reproduced':>10s} {'deviates':>9s} {'not evaluated':>14s}")
    for stem, state in status.items():
        mine = [r for r in rows if r["chapter"] == stem]
        ok, bad, skipped = (sum(r["verdict"] == v for r in mine) for v in VERDICTS)
        print(f"{stem:28s} {state.split(':')[0]:10s} {ok:10d} {bad:9d} {skipped:14d}")
    deviating = [r for r in rows if r["verdict"] == "deviates"]
    for r in deviating:
        print(f"  deviates: {r['chapter']} {r['id']}: {r['statement']} expected {r['expected']}; measured {r['measured']}")
    for stem, state in status.items():
        if state.startswith("failed"):
            print(f"  FAILED to run: {stem}: {state[len('failed: '):]}")


# --------------------------------------------------------------------------- chapter pages
def notebook_parameters(notebook: nbformat.NotebookNode) -> list[tuple[str, str, str]]:
    """``(name, default, comment)`` of every assignment in the cell tagged ``parameters``."""
    cell = next((c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])), None)
    rows = []
    for line in ([] if cell is None else cell.source.splitlines()):
        code, _, comment = line.partition("#")
        name, eq, value = code.partition("=")
        if eq and name.strip().isidentifier():
            rows.append((name.strip(), value.strip(), comment.strip()))
    return rows


def rerun_box(stem: str, profile: str, provenance: dict[str, Any], parameters: Sequence[tuple[str, str, str]]) -> str:
    """The "Re-run this chapter" admonition of a chapter page (MyST): what the page shows, the
    papermill command, the parameters with their defaults and allowed values, and the downloads."""
    commit = str(provenance.get("git_commit", "unknown"))
    lines = [
        ":::{admonition} Re-run this chapter", ":class: tip", "",
        f"This page shows the `{profile}` profile, run from commit `{commit[:12]}{'+dirty' if commit.endswith('+dirty') else ''}` "
        f"on {str(provenance.get('started', ''))[:10]} in {float(provenance.get('seconds', 0)):.0f} s "
        f"on {provenance.get('threads', '?')} thread(s) per process. "
        f"Download {{download}}`the results file <{stem}.json>` (every number and claim of the page) or "
        f"{{download}}`the executed notebook <{stem}.ipynb>`.", "",
        "From a checkout, `make reproduce CHAPTER=" + stem + " PROFILE=<profile>` re-runs it into the book; "
        "with other parameters:", "",
        "```console",
        f".venv/bin/papermill notebooks/{stem}.ipynb /tmp/{stem}.ipynb -p profile default -p results_dir /tmp/results",
        "```", "",
        "| parameter | default | allowed values |", "| --- | --- | --- |",
    ]
    lines += [f"| `{name}` | `{_cell(value)}` | {_cell(comment)} |" for name, value, comment in parameters]
    return "\n".join(lines + ["", ":::"])


def chapter_page(executed: Path, results_file: Path, stem: str, profile: str) -> nbformat.NotebookNode:
    """The executed notebook as the book shows it: papermill's injected-parameters cell and its notebook
    metadata (both hold paths of the machine that ran it) removed, and the re-run box after the title cell."""
    notebook = nbformat.read(executed, as_version=4)
    notebook.cells = [c for c in notebook.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    notebook.metadata.pop("papermill", None)  # input and output paths of the machine that ran it
    provenance = load_results(results_file)["provenance"]
    box = nbformat.v4.new_markdown_cell(rerun_box(stem, profile, provenance, notebook_parameters(notebook)))
    first = next((i for i, c in enumerate(notebook.cells) if c.cell_type == "markdown"), -1)
    notebook.cells.insert(first + 1, box)
    return notebook


# --------------------------------------------------------------------------- performance and contents
def write_performance_page(project: Project, profile: str, stems: Sequence[str]) -> Path:
    """``book/performance.md`` from the benchmark's JSON and each chapter's recorded run time."""
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
    """``_toc.yml``: introduction, notation, the executed chapters, scorecard, performance, bibliography."""
    lines = ["# Generated by fa_lib.pipeline.reproduce from the executed chapters; do not edit.", "format: jb-book", "root: intro", "chapters:"]
    lines += ["  - file: notation"] if (book / "notation.md").is_file() else []
    lines += [f"  - file: generated/{stem}" for stem in stems]
    lines += [f"  - file: {page}" for page in ("scorecard", "performance", "bibliography") if (book / f"{page}.md").is_file()]
    toc = book / "_toc.yml"
    toc.write_text("\n".join(lines) + "\n")
    return toc



def performance_markdown(bench: dict[str, Any] | None, chapter_times: dict[tuple[str, str], dict[str, Any]]) -> str:
    """The book's Performance page, generated from the benchmark JSON and the results files."""
    lines = ["# Performance", ""]
    if bench is None:
        lines += ["No benchmark has been run in this checkout: `make bench` measures it and the next book build shows it here.", ""]
    elif "against_authors" not in bench:
        lines += ["The benchmark file was written by an older version of `make bench`; run `make bench` again to see it here.", ""]
    else:
        m = bench["machine"]
        lines += [
            f"Measured by `make bench` ({bench.get('source', 'this checkout')}) on {m['date']}: {m['cpu']}, {m['cores']} cores, {m['threads']} torch thread(s), "
            f"Python {m['python']}, torch {m['torch']}, commit `{m['git_commit']}`. Every figure below is a ratio of "
            "timings taken side by side in the same run (the median of interleaved repeats), because absolute times "
            "on a shared machine are not a result.", "",
            "## FA costs what BP costs", "",
            "| network | seeds | batch | BP s/step | FA / BP | DFA / BP |", "| --- | --- | --- | --- | --- | --- |",
        ]
        s = bench["fa_vs_bp"]
        lines += [f"| {'-'.join(map(str, s['widths']))} | {s['seeds']} | {s['batch']} | {s['seconds_per_step']['bp']:.2e} | "
                  f"{s['fa_over_bp']:.2f} | {s['dfa_over_bp']:.2f} |", ""]
        lines += ["## Networks batched in one computation", "",
                  "The two-layer step of the Song, Xu & Lafferty chapter (ReLU, n = 50, d = 150).", "",
                  "| S | p | steps | S separate runs / one batched run |", "| --- | --- | --- | --- |"]
        lines += [f"| {r['S']} | {r['p']} | {r['steps']} | {r['speedup']:.1f} |" for r in bench["batched_vs_separate"]]
        lines += ["", "## Against the authors' method", "",
                  "Time per network and step of the two-layer protocol (ReLU, n = 50, FA), measured side by side: the "
                  "authors' method (one `nn.Module` per network, a custom autograd function carrying the error back "
                  "through b, `nn.MSELoss`, `torch.optim.SGD`, d = 150, one network at a time; written after their code) "
                  "against ours (`song.TwoLayerStep`: a cache-sized batch of networks, row-space inputs of dimension "
                  "n = 50, the update computed in place). The last columns give our float32 rate against the machine's "
                  "own 1024 x 1024 matrix product, timed in the same run.", "",
                  "| p | networks batched | authors' method, ms | ours, ms | speed-up | our GFLOP/s | matmul GFLOP/s | fraction |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {r['p']} | {r['networks']} | {r['authors_ms']:.3f} | {r['ours_ms']:.3f} | {r['speedup']:.1f} | "
                  f"{r['gflops']:.1f} | {r['matmul_gflops']:.1f} | {r['fraction_of_matmul']:.2f} |" for r in bench["against_authors"]]
        lines.append("")
    lines += ["## Chapter wall times", "",
              "From the results files of this checkout (each run's own `provenance.seconds`; threads as recorded).", ""]
    if chapter_times:
        lines += ["| chapter | profile | seconds | threads | started |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| {stem} | {profile} | {prov['seconds']:.0f} | {prov['threads']} | {prov['started']} |"
                  for (stem, profile), prov in sorted(chapter_times.items())]
    else:
        lines.append("No chapter has been run yet.")
    return "\n".join(lines) + "\n"
