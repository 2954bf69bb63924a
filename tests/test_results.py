"""Results files: content, provenance, atomic writes; parameter validation."""

import json
import os

import numpy as np
import pytest
import torch

import fa_lib as F


def _results(tmp_path, **kw):
    args = dict(profile="ci", parameters={"profile": "ci", "seed": 0}, seeds=[0, 1], results_dir=tmp_path, paper="test")
    return F.Results("99_test", **(args | kw))


def test_results_file_has_every_key_and_provenance(tmp_path):
    r = _results(tmp_path)
    r.number("acc", np.float32(0.5))
    r.metric("table", [{"a": torch.tensor(1.5), "b": np.array([1, 2])}])
    r.claim("X1", statement="s", expected="e", measured={"v": np.float64(0.25)}, tolerance="t because u", passed=np.bool_(True))
    path = r.save()
    assert path == tmp_path / "ci" / "99_test.json"
    data = F.load_results(path)
    assert data["notebook"] == "99_test" and data["profile"] == "ci"
    assert data["metrics"] == {"acc": 0.5, "table": [{"a": 1.5, "b": [1, 2]}]}
    assert data["claims"] == [{"id": "X1", "paper": "test", "statement": "s", "expected": "e", "measured": {"v": 0.25},
                               "tolerance": "t because u", "passed": True, "verdict": "reproduced", "kind": "paper"}]
    prov = data["provenance"]
    assert {"git_commit", "python", "torch", "numpy", "threads", "seeds", "started", "seconds"} <= set(prov)
    assert prov["seeds"] == [0, 1] and prov["threads"] == torch.get_num_threads()


def test_nan_is_stored_as_null_and_objects_are_refused(tmp_path):
    assert F.to_jsonable([float("nan"), float("inf"), 1.0]) == [None, None, 1.0]
    with pytest.raises(TypeError, match="object"):
        F.to_jsonable(object())


def test_a_claim_not_evaluated_is_recorded_with_its_reason(tmp_path):
    r = _results(tmp_path)
    r.skip_claim("X2", statement="s", reason="needs p >= 400")
    r.claim("X3", statement="s", expected="e", measured=1, tolerance="t", passed=False)
    assert [c["verdict"] for c in r.claims] == ["not evaluated", "deviates"]
    assert r.claims[0]["reason"] == "needs p >= 400" and r.claims[0]["passed"] is None
    table = r.claims_table()
    assert ('<tr id="claim-X2"><td>X2</td><td>' + F.verdict_badge("not evaluated") + "</td><td>s</td>"
            "<td><div>needs p &gt;= 400</div></td></tr>") in table
    assert F.verdict_badge("deviates") in table
    with pytest.raises(ValueError, match="reason"):
        r.skip_claim("X4", statement="s", reason="")
    with pytest.raises(ValueError, match="twice"):
        r.skip_claim("X2", statement="s", reason="again")


def test_seeds_are_added_as_the_run_draws_them(tmp_path):
    r = _results(tmp_path, seeds=[3])
    r.add_seeds([5, 3, 1])
    assert r.provenance()["seeds"] == [1, 3, 5]


def test_start_chapter_checks_parameters_and_opens_the_results(tmp_path):
    profiles = {"ci": {"n": 1}, "default": {"n": 2}, "paper": {"n": 3}}
    config, results = F.start_chapter("99_test", paper="test", profiles=profiles, profile="default", seed=4,
                                      results_dir=str(tmp_path), threads=1, parameters={"dataset": "auto"})
    assert config == {"n": 2} and torch.get_num_threads() == 1
    assert results.parameters == {"profile": "default", "seed": 4, "device": "cpu", "threads": 1, "dataset": "auto", "n": 2}
    assert results.path == tmp_path / "default" / "99_test.json" and not results.path.exists()
    for name, value, message in [("profile", "fast", "profile='fast' is not allowed"), ("seed", -1, "seed=-1"),
                                 ("threads", 0, "threads=0"), ("device", "tpu", "device='tpu'")]:
        kwargs = dict(profile="ci", seed=0, results_dir=str(tmp_path), threads=1) | {name: value}
        with pytest.raises(ValueError, match=message):
            F.start_chapter("99_test", paper="test", profiles=profiles, **kwargs)
    assert not (tmp_path / "ci").exists()


def test_claim_ids_are_unique(tmp_path):
    r = _results(tmp_path)
    r.claim("X1", statement="s", expected="e", measured=1, tolerance="t", passed=False)
    with pytest.raises(ValueError, match="twice"):
        r.claim("X1", statement="s", expected="e", measured=1, tolerance="t", passed=False)


def test_failed_save_leaves_the_earlier_file_untouched(tmp_path, monkeypatch):
    first = _results(tmp_path)
    first.number("v", 1)
    path = first.save()
    before = path.read_text()
    second = _results(tmp_path)
    second.number("v", 2)

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        second.save()
    assert path.read_text() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_truncated_results_file_is_rejected(tmp_path):
    path = _results(tmp_path).save()
    path.write_text(path.read_text()[:40])
    with pytest.raises(ValueError, match="unreadable"):
        F.load_results(path)
    path.write_text(json.dumps({"notebook": "x"}))
    with pytest.raises(ValueError, match="lacks keys"):
        F.load_results(path)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(profile="fast"), "profile='fast'.*'ci', 'default', 'paper'"),
        (dict(seed=-1), "seed=-1"),
        (dict(seed="0"), "seed='0'"),
        (dict(results_dir=""), "results_dir"),
        (dict(device="tpu"), "device='tpu'"),
    ],
)
def test_check_parameters(kwargs, match):
    args = dict(profile="ci", seed=0, results_dir="r", device="cpu") | kwargs
    with pytest.raises(ValueError, match=match):
        F.check_parameters(**args)


def test_select_profile():
    assert F.select_profile("paper", {"ci": 1, "default": 2, "paper": 3}) == 3
    with pytest.raises(ValueError, match="profile='big'"):
        F.select_profile("big", {"ci": 1, "default": 2, "paper": 3})
    with pytest.raises(ValueError, match="no entry"):
        F.select_profile("ci", {"ci": 1})
    with pytest.raises(ValueError, match="finite number > 0"):
        F.check_positive("lr", 0.0)


def test_claims_table_shows_measured_expected_tolerance_and_verdict(tmp_path):
    r = _results(tmp_path)
    r.claim("X1", statement="a < b & c", expected="e", measured={"gap": 0.123456, "ok": True, "cells": {"p=2": 1.5}},
            tolerance="t because u", passed=True)
    r.claim("X2", statement="s", expected="e", measured=None, tolerance="t", passed=False)
    table = r.claims_table()
    assert table.startswith('<table class="claims">') and "\n\n" not in table  # one Markdown block
    rows = [line for line in table.splitlines() if line.startswith("<tr id=")]
    assert rows[0] == ('<tr id="claim-X1"><td>X1</td><td>' + F.verdict_badge("reproduced") + "</td><td>a &lt; b &amp; c</td>"
                       '<td><div>gap: 0.123; ok: yes; cells (p=2: 1.5)</div><div class="expected">expected: e</div>'
                       '<div class="tolerance">tolerance: t because u</div></td></tr>')
    assert "<div>n/a</div>" in rows[1] and F.verdict_badge("deviates") in rows[1]


def test_format_measured_reads_like_prose():
    assert F.format_measured({"bp": 87.12345, "fa": [0.5, None], "diverged": 0}) == "bp: 87.1; fa: 0.5, n/a; diverged: 0"
    assert F.format_measured(-0.0025408234560936748) == "-0.00254"
    assert F.format_measured(False) == "no"
    assert F.format_measured({"worst_seed": 1}) == "worst seed: 1"


def test_claims_table_separates_implementation_checks(tmp_path):
    r = _results(tmp_path)
    r.claim("X1", statement="paper", expected="e", measured=1.0, tolerance="t", passed=True)
    r.claim("K1", statement="identity", expected="e", measured=2.0, tolerance="t", passed=False, kind="implementation")
    text = r.claims_table()
    paper, checks = text.split("**Implementation checks")
    assert paper.startswith("**Paper claims**") and "<td>X1</td>" in paper and "K1" not in paper
    assert "<td>K1</td>" in checks and "<div>2</div>" in checks and "X1" not in checks
    assert [c["kind"] for c in r.claims] == ["paper", "implementation"]
    with pytest.raises(ValueError, match="kind='proof' is not allowed"):
        r.claim("X3", statement="s", expected="e", measured=0, tolerance="t", passed=True, kind="proof")


def test_figures_are_made_legible_at_the_book_width(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fa_lib.plotting import MIN_TEXT_PT, PAGE_PIXELS, SAVE_DPI, fit_to_page

    for width in (5.0, 12.0):
        fig, ax = plt.subplots(figsize=(width, 3))
        ax.plot([1, 2], [3, 4], label="a line")
        ax.legend(fontsize=5)
        ax.set_xlabel("x", fontsize=5)
        fit_to_page(fig)
        fig.canvas.draw()
        scale = min(1.0, PAGE_PIXELS / (width * SAVE_DPI))
        texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_text()] + ax.get_xticklabels() + ax.get_yticklabels()
        rendered_pt = min(t.get_fontsize() for t in texts) * SAVE_DPI / 72 * scale * 72 / 96
        assert rendered_pt >= MIN_TEXT_PT - 1e-9, (width, rendered_pt)
        plt.close(fig)


def test_a_deviation_carries_its_diagnosis_linked_to_its_discussion(tmp_path):
    """The diagnosis and its discussion anchor are kept on a deviation only, and the claims tables show them linked."""
    kw = dict(statement="s", expected="e", measured=1.0, tolerance="t")
    r = _results(tmp_path)
    assert r.claim("X2", passed=True, diagnosis="ignored when it passes", **kw)
    assert "diagnosis" not in r.claims[0]
    assert not r.claim("X3", passed=False, diagnosis="the loss still falls at the last step", discussion="diag-x3", **kw)
    assert r.claims[1]["diagnosis"] == "the loss still falls at the last step" and r.claims[1]["discussion"] == "diag-x3"
    assert not r.claim("X4", passed=False, **kw) and "diagnosis" not in r.claims[2]  # at ci a diagnosis may be empty
    table = r.claims_table()
    assert 'class="diagnosis">diagnosis: the loss still falls at the last step <a href="#diag-x3">discussion</a>' in table
    linked = F.claims_html([{"id": "X3", "verdict": "deviates", "statement": "s", "measured": "1", "diagnosis": "d",
                             "discussion": "diag-x3"}], link="generated/99_test.html")
    assert '<a href="generated/99_test.html#diag-x3">discussion</a>' in linked


def test_bound_check_is_an_implementation_claim_that_fails_on_the_bound_or_a_divergence(tmp_path):
    r = _results(tmp_path)
    kw = dict(statement="s", expected="e", measured={"worst": 1e-13}, tolerance="t")
    assert r.bound_check("B1", worst=1e-13, bound=1e-12, **kw)
    assert not r.bound_check("B2", worst=2e-12, bound=1e-12, **kw)
    assert not r.bound_check("B3", worst=1e-13, bound=1e-12, diverged=1, **kw)
    assert not r.bound_check("B4", worst=float("nan"), bound=1e-12, **kw)
    assert [c["kind"] for c in r.claims] == ["implementation"] * 4


def test_a_deviation_needs_a_diagnosis_at_default_and_paper(tmp_path):
    """A failing claim without a diagnosis is refused at default and paper, and nothing is recorded."""
    kw = dict(statement="s", expected="e", measured=1.0, tolerance="t")
    for profile in ("default", "paper"):
        r = _results(tmp_path, profile=profile, parameters={"profile": profile})
        with pytest.raises(ValueError, match="'X1' deviates at the '%s' profile without a diagnosis" % profile):
            r.claim("X1", passed=False, **kw)
        with pytest.raises(ValueError, match="without a diagnosis"):
            r.claim("X1", passed=False, diagnosis="  ", **kw)
        assert r.claims == []
        assert r.claim("X2", passed=True, **kw) and not r.claim("X3", passed=False, diagnosis="measured d", **kw)
        assert [c["id"] for c in r.claims] == ["X2", "X3"]


def test_predictions_get_their_own_table(tmp_path):
    r = _results(tmp_path)
    kw = dict(statement="s", expected="e", measured=1.0, tolerance="t", passed=True)
    r.claim("P1", **kw)
    assert "Predictions of this book" not in r.claims_table()
    r.claim("W1", kind="prediction", **kw)
    table = r.claims_table()
    assert table.index("**Paper claims**") < table.index("**Predictions of this book") and "Implementation checks" not in table
    with pytest.raises(ValueError, match="kind='guess' is not allowed"):
        r.claim("G1", kind="guess", **kw)
