"""Where the pipeline reads and writes: the one definition that :mod:`~fa_lib.pipeline.reproduce` and
:mod:`~fa_lib.pipeline.pages` both use (so neither imports the other's module for it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


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
