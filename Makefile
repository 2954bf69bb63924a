# fa-repro: two commands do everything on a fresh machine with Python 3.11 and make.
#   make reproduce   set-up, every chapter at PROFILE (default), then the book
#   make test        set-up, then every test (unit, notebooks at the ci profile, book, browser)
#   make test-fast   set-up, then the unit tests only (no notebook, book or browser; under a minute)
# Options: PROFILE=ci|default|paper  CHAPTER=<notebook stem>  FORCE=1  JOBS=<parallel chapters>
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PROFILE ?= default
CHAPTER ?=
FORCE ?=
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
# torch is installed first, pinned, from the version pyproject.toml names (one source of truth).
TORCH := $(shell grep -o '"torch==[0-9.]*"' pyproject.toml | tr -d '"')
STAMP := $(VENV)/.installed-stamp

.PHONY: setup reproduce test test-fast bench clean

# Re-installs whenever pyproject.toml changes; a second run reuses the environment.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[book,test]"
	@touch $@

setup: $(STAMP)

# Unchanged chapters are reused (FORCE=1 re-runs them); chapters run JOBS at a time.
reproduce: setup
	$(PY) -m fa_lib.pipeline.reproduce --profile $(PROFILE) --jobs $(JOBS) $(if $(CHAPTER),--chapter $(CHAPTER)) $(if $(FORCE),--force)

# Speed ratios measured side by side in one run (not a test); shown on the book's Performance page.
bench: setup
	$(PY) -m fa_lib.pipeline.bench

test: setup
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not notebook and not browser"

clean:
	rm -rf book/_build book/generated book/_toc.yml book/scorecard.md book/performance.md
