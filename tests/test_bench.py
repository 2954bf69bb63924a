"""The benchmark's bookkeeping (no timing is asserted: timings are not test results)."""

from fa_lib.pipeline import bench, pages


def test_flop_count_of_a_two_layer_step():
    # the pre-activation update n n p, the output n p and dMSE/dbeta n p; x2 for multiply-add
    assert bench.two_layer_flops_per_step(seeds=1, n=2, p=5) == 2 * (2 * 2 * 5 + 2 * 2 * 5)
    assert bench.two_layer_flops_per_step(seeds=4, n=2, p=5) == 4 * bench.two_layer_flops_per_step(1, 2, 5)


def test_performance_page_without_and_with_a_benchmark():
    times = {("00_primer", "ci"): {"seconds": 12.3, "threads": 1, "started": "2026-01-01T00:00:00+00:00"}}
    page = pages.performance_markdown([], times)
    assert page.startswith("# Performance") and "make bench" in page and "| 00_primer | ci | 12 | 1 | `?` |" in page
    fake = {
        "machine": {"date": "d", "cpu": "cpu", "cores": 2, "threads": 1, "python": "3.11", "torch": "t", "git_commit": "c"},
        "fa_vs_bp": {"widths": [4, 3], "seeds": 2, "batch": 5, "seconds_per_step": {"bp": 1e-3}, "fa_over_bp": 1.04, "dfa_over_bp": 0.9},
        "batched_vs_separate": [{"S": 8, "p": 200, "steps": 10, "speedup": 5.5}],
        "against_authors": [{"p": 800, "networks": 6, "authors_ms": 1.5, "ours_ms": 0.25, "speedup": 6.0, "gflops": 32.0,
                             "matmul_gflops": 50.0, "fraction_of_matmul": 0.64}],
    }
    page = pages.performance_markdown([{**fake, "source": "mine"}, {**fake, "machine": {**fake["machine"], "cpu": "other"},
                                                                     "source": "the run recorded with the book"}], {})
    assert "## Measured by mine: cpu" in page and "## Measured by the run recorded with the book: other" in page
    assert "| 4-3 | 2 | 5 | 1.00e-03 | 1.04 | 0.90 |" in page and "| 8 | 200 | 10 | 5.5 |" in page
    assert "| 800 | 6 | 1.500 | 0.250 | 6.0 | 32.0 | 50.0 | 0.64 |" in page and "No chapter has been run yet." in page


def test_the_authors_method_baseline_trains_like_their_code():
    """One step of the baseline equals lr * (autograd of nn.MSELoss with b in the backward pass + lam beta)."""
    import math

    import torch

    net = bench.AuthorsMethodNetwork(d=5, p=7, lam=0.3, seed=0)
    x, y = torch.randn(4, 5, generator=torch.Generator().manual_seed(1)), torch.randn(4, 1)
    w0, beta0 = net.first.detach().clone(), net.beta.detach().clone()
    loss = torch.nn.MSELoss()(net(x), y)
    loss.backward()
    h = torch.relu(x @ w0.t())
    e = 2 * (h @ beta0.t() / math.sqrt(7) - y) / 4
    torch.testing.assert_close(net.beta.grad, e.t() @ h / math.sqrt(7) + 0.3 * beta0)
    torch.testing.assert_close(net.first.grad, ((e @ net.b / math.sqrt(7)) * (h > 0)).t() @ x)


def test_two_layer_step_vs_train_reports_both_times_and_their_ratio():
    rows = bench.two_layer_step_vs_train(widths=(4, 6), networks=2, n=3, d=5, steps=2)
    assert [r["p"] for r in rows] == [4, 6]
    for row in rows:
        assert set(row) == {"p", "networks", "n", "d", "steps", "two_layer_step_s", "train_s", "ratio"}
        assert (row["networks"], row["n"], row["d"], row["steps"]) == (2, 3, 5, 2)
        assert row["two_layer_step_s"] > 0 and row["train_s"] > 0
        assert row["ratio"] == row["train_s"] / row["two_layer_step_s"]
