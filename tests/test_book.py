"""The book builds with -W from the ci-executed chapters, and a real browser renders it."""

from __future__ import annotations

import functools
import json
import re
import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest

from fa_lib.pipeline import reproduce
from fa_lib.pipeline.project import ROOT

BROWSER = Path("/usr/bin/chromium")
DRIVER = Path("/usr/bin/chromedriver")


SOURCES = ("_config.yml", "intro.md", "notation.md", "bibliography.md", "references.bib", "favicon.svg", "benchmark.json")


@pytest.fixture(scope="session")
def built_book(ci_project, ci_results, tmp_path_factory) -> Path:
    """The book assembled and built exactly as ``make reproduce`` does, from the ci-executed chapters."""
    book = tmp_path_factory.mktemp("book")
    for name in SOURCES:
        shutil.copy(reproduce.Project().book / name, book / name)
    shutil.copytree(reproduce.Project().book / "_static", book / "_static")
    stems = ci_project.chapters()
    for stem in stems:
        ci_results(stem)
    project = reproduce.Project(results=ci_project.results, book=book)
    # The chapters just executed are not executed again: their inputs are unchanged.
    assert set(reproduce.run_chapters(project, "ci", stems, jobs=1).values()) == {"cached"}
    assert reproduce.assemble_book(project, "ci", stems) == stems
    index = reproduce.build_book(book)  # raises CalledProcessError on any Sphinx warning (-W)
    return index.parent


def test_book_sources_are_all_copied():
    tracked = {p.name for p in reproduce.Project().book.iterdir() if p.is_file() and p.name not in
               {"_toc.yml", "scorecard.md", "performance.md"}}
    assert tracked == set(SOURCES)


@pytest.mark.notebook
def test_book_builds_every_chapter(built_book, ci_project):
    assert (built_book / "index.html").is_file()
    for stem in reproduce.Project().chapters():
        page = built_book / "generated" / f"{stem}.html"
        assert page.is_file(), f"no page for {stem}"
        html = page.read_text()
        assert "Traceback" not in html and "stderr" not in html
        assert "Re-run this chapter" in html and "injected-parameters" not in html
        downloads = re.findall(r'href="(\.\./_downloads/[^"]+)"', html)
        assert {Path(d).name for d in downloads} >= {f"{stem}.json", f"{stem}.ipynb"}, downloads
        assert all((page.parent / d).is_file() for d in downloads), downloads
    for page in built_book.rglob("*.html"):  # no path of the machine that built the book, on any page
        html = page.read_text()
        for path in (ROOT, ci_project.results, built_book.parent):
            assert str(path) not in html, f"{page.relative_to(built_book)} shows {path}"
    assert (built_book / "_static" / "mathjax" / "tex-chtml.js").is_file()  # math without internet
    assert "mathjax/tex-chtml.js" in (built_book / "intro.html").read_text()
    scorecard = (built_book / "scorecard.html").read_text()
    assert "Reproduction scorecard" in scorecard and "P1a" in scorecard
    performance = (built_book / "performance.html").read_text()
    assert "the run recorded with the book" in performance and "FA / BP" in performance


@pytest.mark.notebook
@pytest.mark.parametrize("stem", reproduce.Project().chapters())
def test_chapter_shows_no_raw_python_output(ci_results, ci_project, stem):
    """What a reader sees of a code cell is a figure, a table or a sentence: no bare repr (a number, a bool,
    a path, a dict) as a cell's value, no printed text, no "(s)" plural."""
    ci_results(stem)
    notebook = json.loads(ci_project.executed("ci", stem).read_text())
    for index, cell in enumerate(notebook["cells"]):
        for output in cell.get("outputs", []):
            where = f"{stem} cell {index}: {''.join(cell['source'])[:80]!r}"
            assert output["output_type"] != "execute_result", f"{where} shows its value {output['data']}"
            assert not (output["output_type"] == "stream" and output["name"] == "stdout"), f"{where} prints {output['text']}"
            if output["output_type"] == "display_data":
                shown = {k: v for k, v in output["data"].items() if not k.startswith("application/papermill")}
                assert set(shown) != {"text/plain"}, f"{where} displays a bare repr {shown}"
                assert "(s)" not in "".join(shown.get("text/markdown", "")), where


def _browser():
    if not (BROWSER.exists() and DRIVER.exists()):
        reason = f"headless Chromium not installed ({BROWSER}, {DRIVER}): apt-get install chromium chromium-driver"
        if os.environ.get("FA_REQUIRE_BROWSER"):
            pytest.fail(reason + " (required: FA_REQUIRE_BROWSER is set)")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(BROWSER)
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(str(DRIVER)))


@pytest.fixture(scope="session")
def served_book(built_book):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(built_book))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.browser
@pytest.mark.notebook
@pytest.mark.parametrize("page,min_images,math", [
    ("intro.html", 0, True), ("scorecard.html", 0, False), ("generated/00_primer.html", 3, True),
    ("generated/01_why_align.html", 5, True), ("generated/02_conservation_laws.html", 5, True),
    ("generated/03_two_layer_convergence.html", 5, True), ("generated/04_synthesis.html", 3, True)])
def test_page_renders_in_a_real_browser(served_book, page, min_images, math):
    driver = _browser()
    try:
        driver.set_script_timeout(60)
        driver.set_window_size(1400, 1000)
        driver.get(f"{served_book}/{page}")
        # Wait for MathJax to finish typesetting (it is served from _static, not a CDN).
        loads_mathjax = driver.execute_script(
            "return Array.from(document.scripts).some(s => s.src.includes('mathjax/tex-chtml.js'));")
        assert loads_mathjax == math
        if math:
            driver.execute_async_script(
                "const done = arguments[arguments.length - 1];"
                "const wait = () => (window.MathJax && MathJax.startup && MathJax.startup.promise)"
                "  ? MathJax.startup.promise.then(() => done(true)) : setTimeout(wait, 100);"
                "wait();"
            )
        text = driver.find_element("tag name", "body").text
        assert "Traceback" not in text and "Error" not in driver.title
        assert not driver.find_elements("css selector", ".output.stderr, .output.error, .output.traceback")
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.src, i.complete && i.naturalWidth > 0]);")
        assert len(images) >= min_images
        assert all(ok for _, ok in images), [src for src, ok in images if not ok]
        if math:
            assert len(driver.find_elements("css selector", "mjx-container")) > 0, "math was not typeset"
        assert "$$" not in text and "\\delta" not in text  # no raw TeX left on the page
        if page.startswith("generated/"):
            assert not driver.find_elements("css selector", ".tag_injected-parameters")
            titles = [e.text for e in driver.find_elements("css selector", ".admonition-title")]
            assert "Re-run this chapter" in titles, titles
            # Every code cell's source is collapsed: the page shows prose, figures and tables.
            assert not driver.execute_script(
                "return Array.from(document.querySelectorAll('div.cell_input'))"
                ".filter(e => !(e.closest('details') && !e.closest('details').open)).length;")
            downloads = driver.execute_script(
                "return Array.from(document.querySelectorAll('a.download')).map(a => a.href);")
            assert {d.rsplit("/", 1)[-1] for d in downloads} >= {page[10:-5] + ".json", page[10:-5] + ".ipynb"}, downloads
            statuses = driver.execute_async_script(
                "const done = arguments[arguments.length - 1];"
                "Promise.all(arguments[0].map(u => fetch(u).then(r => r.status))).then(done);", downloads)
            assert set(statuses) == {200}, dict(zip(downloads, statuses))
        severe = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not severe, severe  # e.g. a resource that needs the internet
    finally:
        driver.quit()


@pytest.mark.browser
@pytest.mark.notebook
@pytest.mark.parametrize("width", [1400, 420])
@pytest.mark.parametrize("page", ["scorecard.html", "generated/00_primer.html", "generated/03_two_layer_convergence.html",
                                  "generated/04_synthesis.html"])
def test_claims_tables_fit_without_horizontal_scrolling(served_book, page, width):
    driver = _browser()
    try:
        driver.set_window_size(width, 1000)
        driver.get(f"{served_book}/{page}")
        tables = driver.find_elements("css selector", "table.claims")
        assert tables, "no claims table on the page"
        overflow = driver.execute_script(
            "return Array.from(document.querySelectorAll('table.claims')).map(t => {"
            "  let box = t.parentElement; while (box && box.clientWidth === 0) box = box.parentElement;"
            "  return [t.scrollWidth, box.clientWidth]; });")
        assert all(table <= box + 1 for table, box in overflow), overflow
        page_width = driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth];")
        if page == "scorecard.html":
            assert page_width[0] <= page_width[1] + 1, page_width  # the whole page, not only its tables
    finally:
        driver.quit()
