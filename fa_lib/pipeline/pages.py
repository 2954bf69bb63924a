"""The book's generated pages: the scorecard, the performance page and the table of contents.

Everything here is written from the results files and the benchmark's JSON when the book
is assembled (:mod:`fa_lib.pipeline.reproduce`); nothing is typed by hand. Chapter titles
are read from the notebooks' first heading.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nbformat

from ..results import CLAIM_KIND_TITLES, CLAIM_KINDS, VERDICT_COLORS, VERDICTS, claims_html, format_measured, load_results, verdict_badge
from ..validation import PROFILES
from .project import Project


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
    "not run" row. ``measured`` is :func:`format_measured` of the claim's value (or why it was not evaluated)."""
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
                "measured": claim["reason"] if claim["verdict"] == "not evaluated" else format_measured(claim["measured"]),
                "diagnosis": claim.get("diagnosis", ""), "discussion": claim.get("discussion"), "kind": claim.get("kind", "paper"),
            })
    return rows


def _count(n: int, noun: str) -> str:
    """``"1 torch thread"``, ``"2 torch threads"``."""
    return f"{n} {noun}{'s' * (int(n) != 1)}"


def _table_cell(text: str) -> str:
    """Text for a cell of a Markdown pipe table."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def write_scorecard_page(book: Path, rows: Sequence[dict[str, str]], profile: str) -> Path:
    """``book/scorecard.md``, generated from the results files (nothing typed by hand): totals, then one
    section per chapter with a compact table (claim, verdict badge, statement, measured against expected),
    deviations first; each claim links to its row in the chapter's claims table."""
    counts = {v: sum(r["verdict"] == v for r in rows) for v in (*VERDICTS, "not run")}
    lines = [
        "# Reproduction scorecard", "",
        f"Every claim of every chapter at the `{profile}` profile, generated from `results/{profile}/*.json` "
        "when the book was built. *Reproduced*: the measured value met the tolerance; *deviates*: it did not, "
        "and the chapter shows and discusses the numbers (a diagnosis, where given, says what was measured to explain it and links to that discussion); *not evaluated*: this profile does not run what the "
        "claim needs (the measured column says why); *not run*: the chapter has no results file at this profile. "
        "Each claim links to its row in the chapter's claims table, which also gives its tolerance and the "
        "reason for it.", "",
        f"Totals: {counts['reproduced']} reproduced, {counts['deviates']} deviate, {counts['not evaluated']} not evaluated, "
        f"{counts['not run']} not run.", "",
    ]
    kinds = [kind for kind in CLAIM_KINDS if any(r.get("kind") == kind for r in rows)]
    if len(kinds) > 1:
        lines += ["By kind (predictions are this book's own, not the papers'; implementation checks test the code, not a paper):", ""]
        lines += [f"- {CLAIM_KIND_TITLES[kind]}: " + ", ".join(f"{sum(r.get('kind') == kind and r['verdict'] == v for r in rows)} {v}"
                                                          for v in VERDICTS) for kind in kinds]
        lines += [""]
    order = list(VERDICT_COLORS)
    for stem in dict.fromkeys(r["chapter"] for r in rows):
        mine = sorted((r for r in rows if r["chapter"] == stem), key=lambda r: order.index(r["verdict"]))
        title = mine[0]["title"]
        summary = ", ".join(f"{sum(r['verdict'] == v for r in mine)} {v}" for v in order if any(r["verdict"] == v for r in mine))
        if mine[0]["verdict"] == "not run":
            lines += [f"## {title}", "", f"{verdict_badge('not run')} this chapter has no results at the `{profile}` profile.", ""]
            continue
        lines += [f"## {title}", "", f"[The chapter](generated/{stem}.ipynb): {summary}.", "",
                  claims_html(mine, link=f"generated/{stem}.html", tolerance=False), ""]
    page = book / "scorecard.md"
    page.write_text("\n".join(lines))
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
        print(f"  deviates: {r['chapter']} {r['id']}: {r['statement']} expected {r['expected']}; measured {r['measured']}"
              + (f"; diagnosis: {r['diagnosis']}" if r.get('diagnosis') else ""))
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
        f"with {_count(provenance.get('threads', 1), 'torch thread')} per process. "
        f"Download {{download}}`the results file <{stem}.json>` (every number and claim of the page) or "
        f"{{download}}`the executed notebook <{stem}.ipynb>`.", "",
        "From a checkout, `make reproduce CHAPTER=" + stem + " PROFILE=<profile>` re-runs it into the book; "
        "with other parameters:", "",
        "```console",
        f".venv/bin/papermill notebooks/{stem}.ipynb /tmp/{stem}.ipynb \\",
        "    -p profile default -p results_dir /tmp/results",
        "```", "",
        "| parameter | default | allowed values |", "| --- | --- | --- |",
    ]
    lines += [f"| `{name}` | `{_table_cell(value)}` | {_table_cell(comment)} |" for name, value, comment in parameters]
    return "\n".join(lines + ["", ":::"])


def chapter_page(executed: Path, results_file: Path, stem: str, profile: str) -> nbformat.NotebookNode:
    """The executed notebook as the book shows it: papermill's injected-parameters cell and its notebook
    metadata (both hold paths of the machine that ran it) removed, every code cell's input collapsed
    (``hide-input``), and the re-run box after the title cell."""
    notebook = nbformat.read(executed, as_version=4)
    notebook.cells = [c for c in notebook.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    for cell in notebook.cells:  # the page shows prose, figures and tables; every cell's code is one click away
        tags = cell.metadata.setdefault("tags", [])
        if cell.cell_type == "code" and not {"hide-input", "remove-input", "remove-cell"} & set(tags):
            tags.append("hide-input")
    notebook.metadata.pop("papermill", None)  # input and output paths of the machine that ran it
    provenance = load_results(results_file)["provenance"]
    box = nbformat.v4.new_markdown_cell(rerun_box(stem, profile, provenance, notebook_parameters(notebook)))
    first = next((i for i, c in enumerate(notebook.cells) if c.cell_type == "markdown"), -1)
    notebook.cells.insert(first + 1, box)
    return notebook


# --------------------------------------------------------------------------- performance and contents
def write_performance_page(project: Project, profile: str, stems: Sequence[str]) -> Path:
    """``book/performance.md`` from the benchmark JSONs (this checkout's ``make bench``, if run, beside the run
    recorded with the book) and each chapter's recorded run time."""
    benches = []
    for file, source in ((project.results / "benchmark.json", "this checkout's `make bench`"),
                         (project.book / "benchmark.json", "the run recorded with the book")):
        if file.is_file():
            benches.append({**json.loads(file.read_text()), "source": source})
    times = {}
    for p in PROFILES:
        for stem in stems:
            try:
                prov = load_results(project.results_file(p, stem))["provenance"]
            except ValueError:
                continue
            times[(stem, p)] = prov
    page = project.book / "performance.md"
    page.write_text(performance_markdown(benches, times))
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



def performance_markdown(benches: Sequence[dict[str, Any]], chapter_times: dict[tuple[str, str], dict[str, Any]]) -> str:
    """The book's Performance page, generated from benchmark JSONs (each with its ``source``) and the results files."""
    lines = ["# Performance", "",
             "`make bench` times our code against itself and against the authors' method, side by side in one run, "
             "and reports ratios (the median of interleaved repeats): absolute times on a shared machine are not a "
             "result, and a ratio is only comparable with ratios measured on the same machine. Each section below "
             "names the machine, the date and the commit it was measured at.", ""]
    if not benches:
        lines += ["No benchmark has been run in this checkout: `make bench` measures it and the next book build shows it here.", ""]
    for bench in benches:
        lines += _bench_markdown(bench)
    lines += ["## Chapter wall times", "",
              "From the results files of this checkout (each run's own `provenance.seconds`; threads as recorded).", ""]
    if chapter_times:
        lines += ["| chapter | profile | seconds | threads | commit | started |", "| --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {stem} | {profile} | {prov['seconds']:.0f} | {prov['threads']} | `{str(prov.get('git_commit', '?'))[:12]}` "
                  f"| {prov['started']} |" for (stem, profile), prov in sorted(chapter_times.items())]
    else:
        lines.append("No chapter has been run yet.")
    return "\n".join(lines) + "\n"


def _bench_markdown(bench: dict[str, Any]) -> list[str]:
    """One benchmark's section of the Performance page."""
    source = bench.get("source", "this checkout")
    if "against_authors" not in bench:
        return [f"## Measured by {source}", "",
                "This benchmark file was written by an older version of `make bench`; run `make bench` again to see it here.", ""]
    m = bench["machine"]
    lines = [
        f"## Measured by {source}: {m['cpu']}", "",
        f"{m['cpu']}, {m['cores']} cores, {_count(m['threads'], 'torch thread')}, Python {m['python']}, torch {m['torch']}; "
        f"{str(m['date'])[:10]}, commit `{str(m['git_commit'])[:12]}`.", "",
        "### FA costs what BP costs", "",
        "Seconds per training step of the same network and batch; FA and DFA as multiples of BP (1.00: the same cost).", "",
        "| network | seeds | batch | BP s/step | FA / BP | DFA / BP |", "| --- | --- | --- | --- | --- | --- |",
    ]
    s = bench["fa_vs_bp"]
    lines += [f"| {'-'.join(map(str, s['widths']))} | {s['seeds']} | {s['batch']} | {s['seconds_per_step']['bp']:.2e} | "
              f"{s['fa_over_bp']:.2f} | {s['dfa_over_bp']:.2f} |", ""]
    lines += ["### Networks batched in one computation", "",
              "The two-layer step of the Song, Xu & Lafferty chapter (ReLU, n = 50, d = 150): how many times longer S "
              "separate runs take than one batched run of the same S networks.", "",
              "| S | p | steps | S separate runs / one batched run |", "| --- | --- | --- | --- |"]
    lines += [f"| {r['S']} | {r['p']} | {r['steps']} | {r['speedup']:.1f} |" for r in bench["batched_vs_separate"]]
    lines += ["", "### Against the authors' method", "",
              "Time per network and step of the two-layer protocol (ReLU, n = 50, FA), measured side by side: the "
              "authors' method (one `nn.Module` per network, a custom autograd function carrying the error back "
              "through b, `nn.MSELoss`, `torch.optim.SGD`, d = 150, one network at a time; written after their code) "
              "against ours (`TwoLayerStep`: a cache-sized batch of networks, row-space inputs of dimension "
              "n = 50, the update computed in place). The last columns give our float32 rate against the machine's "
              "own 1024 x 1024 matrix product, timed in the same run (1.00 would be the matrix product's rate).", "",
              "| p | networks batched | authors' method, ms | ours, ms | speed-up | our GFLOP/s | matmul GFLOP/s | fraction |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['p']} | {r['networks']} | {r['authors_ms']:.3f} | {r['ours_ms']:.3f} | {r['speedup']:.1f} | "
              f"{r['gflops']:.1f} | {r['matmul_gflops']:.1f} | {r['fraction_of_matmul']:.2f} |" for r in bench["against_authors"]]
    return lines + [""]
