"""Recording a chapter's numbers, figures and claims, for the book and for the results file.

One :class:`Results` per notebook run. Every number goes to myst-nb's ``glue`` (so the
book's prose can quote it) and into ``metrics``; every claim is a numbered, tested
statement with its tolerance. :meth:`Results.save` writes
``<results_dir>/<profile>/<notebook>.json`` atomically at the end of a successful run,
so a failed run leaves any earlier file untouched.
"""

from __future__ import annotations

import html
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .plotting import SAVE_DPI, fit_to_page
from .validation import PROFILES, check_choice

CLAIM_KINDS = ("paper", "prediction", "implementation")
VERDICTS = ("reproduced", "deviates", "not evaluated")
DIAGNOSED_PROFILES = ("default", "paper")  # where a deviating claim must carry a diagnosis
CLAIM_KIND_TITLES = {
    "paper": "Paper claims",
    "prediction": "Predictions of this book (derived here, not stated in the papers, stated before the run)",
    "implementation": "Implementation checks (exact identities of the code, not tests of the paper)",
}


def to_jsonable(value: Any) -> Any:
    """Convert tensors, numpy values and containers to plain JSON types (NaN/inf -> None)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"cannot store a {type(value).__name__} in a results file")


def _words(key: Any) -> str:
    """A results key as words: ``worst_seed`` -> ``worst seed``."""
    return str(key).replace("_", " ")


def format_measured(value: Any) -> str:
    """A measured value as a reader reads it: numbers to 3 significant digits, booleans as yes/no, a dict as
    ``key: value`` pairs separated by semicolons (underscores of keys read as spaces) (nested dicts in parentheses), a list comma-separated."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, dict):
        parts = [f"{_words(k)}: {format_measured(v)}" if not isinstance(v, dict) else f"{_words(k)} ({format_measured(v)})"
                 for k, v in value.items()]
        return "; ".join(parts)
    if isinstance(value, list):
        return ", ".join(format_measured(v) for v in value)
    return "n/a" if value is None else str(value)


VERDICT_COLORS = {"deviates": "warning", "not evaluated": "secondary", "reproduced": "success", "not run": "dark"}
"""The badge colour (sphinx-design's) of each verdict, and the order in which the scorecard lists them."""


def verdict_badge(verdict: str) -> str:
    """The verdict as an HTML badge (sphinx-design's classes in the book; plain text elsewhere)."""
    color = VERDICT_COLORS[verdict]
    return f'<span class="sd-sphinx-override sd-badge sd-bg-{color} sd-bg-text-{color} verdict">{verdict}</span>'


def claims_html(rows: Sequence[Mapping[str, str]], *, link: str | None = None, tolerance: bool = True) -> str:
    """An HTML table of claims (class ``claims``, the book's ``fa.css`` lays it out to fit any width): claim,
    verdict badge, statement, and the measured value with the expected one (and, with ``tolerance``, the
    tolerance and its reason), and a deviation's diagnosis linked to the paragraph that discusses it.
    ``rows`` have ``id``, ``verdict``, ``statement``, ``expected``, ``measured`` (already formatted, or why it
    was not evaluated), ``tolerance`` and optionally ``diagnosis`` and ``discussion`` (an anchor on ``link``'s page); each row is anchored ``claim-<id>``,
    and with ``link`` (a page) the claim links to that anchor there. Contains no blank line (one Markdown block)."""
    esc = html.escape
    out = ['<table class="claims">', '<colgroup><col class="claim-id"><col class="claim-verdict"><col class="claim-statement">'
           '<col class="claim-measured"></colgroup>',
           "<thead><tr><th>claim</th><th>verdict</th><th>statement</th><th>measured</th></tr></thead>", "<tbody>"]
    for r in rows:
        anchor = f"claim-{r['id']}"
        name = f'<a href="{esc(link)}#{anchor}">{esc(r["id"])}</a>' if link else esc(r["id"])
        detail = f"<div>{esc(r['measured'])}</div>"
        if r.get("expected"):
            detail += f'<div class="expected">expected: {esc(r["expected"])}</div>'
        if tolerance and r.get("tolerance"):
            detail += f'<div class="tolerance">tolerance: {esc(r["tolerance"])}</div>'
        if r.get("diagnosis"):
            where = f' <a href="{esc(link or "")}#{esc(r["discussion"])}">discussion</a>' if r.get("discussion") else ""
            detail += f'<div class="diagnosis">diagnosis: {esc(r["diagnosis"])}{where}</div>'
        out.append(f'<tr id="{anchor}"><td>{name}</td><td>{verdict_badge(r["verdict"])}</td>'
                   f"<td>{esc(r['statement'])}</td><td>{detail}</td></tr>")
    out += ["</tbody>", "</table>"]
    return "\n".join(" ".join(line.split("\n")) for line in out)


def git_commit(path: Path | None = None) -> str:
    """The checkout's commit (with ``+dirty`` when tracked files differ), or ``"unknown"``."""
    cwd = path or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def glue(name: str, value: Any) -> None:
    """myst-nb's glue without display (a no-op outside a notebook kernel)."""
    try:
        from myst_nb import glue as nb_glue
    except ImportError:  # the library works without the book extras
        return
    nb_glue(name, value, display=False)


class Results:
    """Collects one notebook run's metrics and claims; see the module docstring.

    ``notebook``: the notebook's stem (``"00_primer"``); ``paper``: the default paper
    key of the claims; ``parameters``: the papermill parameters; ``seeds``: every seed used.
    """

    def __init__(
        self,
        notebook: str,
        *,
        profile: str,
        parameters: Mapping[str, Any],
        seeds: Sequence[int],
        results_dir: str | os.PathLike,
        paper: str,
    ) -> None:
        check_choice("profile", profile, PROFILES)
        self.notebook = notebook
        self.profile = profile
        self.paper = paper
        self.parameters = dict(parameters)
        self.seeds = sorted({int(s) for s in seeds})
        self.path = Path(results_dir) / profile / f"{notebook}.json"
        self.figure_dir = Path(results_dir) / profile / "figures"
        self.metrics: dict[str, Any] = {}
        self.claims: list[dict[str, Any]] = []
        self.started = datetime.now(timezone.utc)
        self.commit = git_commit()  # the code that ran, read when the run starts
        self._clock = time.perf_counter()

    def add_seeds(self, seeds: Sequence[int]) -> None:
        """Record more of the seeds the run uses (kept sorted, without repeats)."""
        self.seeds = sorted(set(self.seeds) | {int(s) for s in seeds})

    def number(self, name: str, value: float | int, *, glue_as: str | None = None) -> None:
        """Record a scalar in ``metrics`` and glue it as ``glue_as`` (default ``name``). Returns nothing, so
        that a cell ending with it shows no bare number."""
        value = to_jsonable(value)
        self.metrics[name] = value
        glue(glue_as or name, value if value is not None else float("nan"))

    def metric(self, name: str, value: Any) -> None:
        """Record a table or array in ``metrics`` (not glued)."""
        self.metrics[name] = to_jsonable(value)

    def text(self, name: str, value: str) -> None:
        """Glue a string for the prose (dataset names, verdicts) and record it."""
        self.metrics[name] = value
        glue(name, value)

    def figure(self, name: str, fig: Any) -> None:
        """Make ``fig``'s text legible at the book's width (:func:`~fa_lib.plotting.fit_to_page`), glue it and
        save it as ``figures/<notebook>-<name>.png``."""
        fit_to_page(fig)
        self.figure_dir.mkdir(parents=True, exist_ok=True)
        fig.savefig(self.figure_dir / f"{self.notebook}-{name}.png", dpi=SAVE_DPI, bbox_inches="tight")
        try:
            from myst_nb import glue as nb_glue
        except ImportError:
            return
        nb_glue(name, fig, display=False)

    def claim(
        self,
        id: str,
        *,
        statement: str,
        expected: str,
        measured: Any,
        tolerance: str,
        passed: bool,
        paper: str | None = None,
        kind: str = "paper",
        diagnosis: str = "",
        discussion: str | None = None,
    ) -> bool:
        """Record a numbered claim; glue ``<id>_verdict`` ("reproduced" / "deviates"); return ``passed``.

        ``tolerance`` states the bound and why it is that bound (from the paper or the theory).
        ``kind``: ``"paper"`` (a statement of the paper, which a wrong theory would fail), ``"prediction"``
        (a statement this book derives, stated before the run) or ``"implementation"`` (an exact identity
        that checks the code, e.g. a one-step law).
        ``diagnosis``: what was measured to explain a deviation and which way it points (one or two
        sentences); ``discussion``: the label of the chapter's paragraph that discusses it (a MyST
        ``(label)=`` target). Both are kept only when the claim deviates; at the ``default`` and ``paper``
        profiles a deviating claim without a diagnosis is refused (``ValueError``) before anything is recorded.
        """
        passed = bool(passed)
        if not passed and self.profile in DIAGNOSED_PROFILES and not diagnosis.strip():
            raise ValueError(f"claim {id!r} deviates at the {self.profile!r} profile without a diagnosis: pass diagnosis= "
                             "(what was measured to explain the deviation and which way it points); a deviation that is "
                             "our error is fixed, not diagnosed")
        verdict = "reproduced" if passed else "deviates"
        extra = {} if passed or not diagnosis.strip() else {"diagnosis": diagnosis.strip(), "discussion": discussion}
        self._add_claim(id, statement=statement, expected=expected, measured=to_jsonable(measured), tolerance=tolerance,
                        passed=passed, verdict=verdict, paper=paper, kind=kind, **extra)
        return passed

    def bound_check(self, id: str, *, statement: str, expected: str, measured: Any, tolerance: str, worst: float,
                    bound: float, diverged: int = 0, paper: str | None = None) -> bool:
        """Record the implementation check ``id``, the shape of every exact-identity claim (a one-step law, an
        identity along a run, two computations of one spectrum): it passes when the worst relative residual
        ``worst`` is at most the rounding ``bound`` and no seed diverged (``diverged == 0``); returns whether it passed."""
        return self.claim(id, statement=statement, expected=expected, measured=measured, tolerance=tolerance,
                          passed=bool(worst <= bound and diverged == 0), paper=paper, kind="implementation")

    def skip_claim(self, id: str, *, statement: str, reason: str, paper: str | None = None, kind: str = "paper") -> None:
        """Record a claim that this profile does not evaluate (verdict "not evaluated"), with the ``reason``
        (what it needs that the profile lacks); the scorecard shows it as such."""
        if not reason:
            raise ValueError("reason must say why the claim is not evaluated at this profile")
        self._add_claim(id, statement=statement, expected="", measured=None, tolerance="", passed=None,
                        verdict="not evaluated", reason=reason, paper=paper, kind=kind)

    def _add_claim(self, id: str, *, paper: str | None, kind: str, verdict: str, **fields: Any) -> None:
        check_choice("kind", kind, CLAIM_KINDS)
        if any(c["id"] == id for c in self.claims):
            raise ValueError(f"claim id {id!r} recorded twice")
        self.claims.append({"id": id, "paper": paper or self.paper, **fields, "verdict": verdict, "kind": kind})
        glue(f"{id}_verdict", verdict)

    def claims_table(self) -> str:
        """The claims recorded so far as Markdown holding :func:`claims_html` tables (display it with IPython's
        ``Markdown``): measured value, expected value, tolerance with its reason and verdict of each claim.

        One table while every claim is a paper claim; otherwise one table per kind present (paper claims,
        predictions, implementation checks), each under its own heading.
        """

        def table(claims: list[dict[str, Any]]) -> str:
            return claims_html([{**c, "measured": c["reason"] if c["verdict"] == "not evaluated"
                                 else format_measured(c["measured"])} for c in claims])

        by_kind = {kind: [c for c in self.claims if c.get("kind", "paper") == kind] for kind in CLAIM_KINDS}
        if len(self.claims) == len(by_kind["paper"]):
            return table(self.claims)
        parts = []
        for kind, claims in by_kind.items():
            if claims:
                parts += [f"**{CLAIM_KIND_TITLES[kind]}**", "", table(claims), ""]
        return "\n".join(parts).rstrip()

    def provenance(self) -> dict[str, Any]:
        return {
            "git_commit": self.commit,
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "numpy": np.__version__,
            "platform": platform.platform(),
            "threads": torch.get_num_threads(),
            "seeds": self.seeds,
            "started": self.started.isoformat(timespec="seconds"),
            "seconds": round(time.perf_counter() - self._clock, 3),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "notebook": self.notebook,
            "profile": self.profile,
            "parameters": to_jsonable(self.parameters),
            "provenance": self.provenance(),
            "claims": self.claims,
            "metrics": self.metrics,
        }

    def save(self) -> Path:
        """Write the results file atomically (temporary file, fsync, rename); return its path."""
        data = json.dumps(self.to_dict(), indent=2, allow_nan=False)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(data + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return self.path


def load_results(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a results file; raises ``ValueError`` if it is truncated or incomplete."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"results file {path} is unreadable: {exc}") from exc
    missing = {"notebook", "profile", "parameters", "provenance", "claims", "metrics"} - set(data)
    if missing:
        raise ValueError(f"results file {path} lacks keys {sorted(missing)}")
    return data
