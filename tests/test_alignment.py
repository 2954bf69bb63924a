"""Alignment measures on hand-made cases."""

import math

import torch

import fa_lib as F


def test_cosine_hand_made():
    a = torch.tensor([[[1.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [0.0, 0.0]]])
    b = torch.tensor([[[2.0, 0.0], [0.0, 0.0]], [[-1.0, -1.0], [0.0, 0.0]]])
    torch.testing.assert_close(F.cosine(a, b, dims=2), torch.tensor([1.0, -1.0]))
    orth = F.cosine(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 3.0]), dims=1)
    assert orth.item() == 0.0
    zero = F.cosine(torch.zeros(3), torch.ones(3), dims=1)
    assert zero.item() == 0.0
    torch.testing.assert_close(
        F.cosine(torch.tensor([1.0, 1.0]), torch.tensor([1.0, 0.0]), dims=1), torch.tensor(1 / math.sqrt(2))
    )


def test_gradient_and_weight_alignment_per_layer():
    g1 = [torch.ones(3, 2, 2), torch.ones(3, 1, 2)]
    g2 = [torch.ones(3, 2, 2), -torch.ones(3, 1, 2)]
    out = F.gradient_alignment(g1, g2)
    assert out.shape == (3, 2)
    torch.testing.assert_close(out, torch.tensor([[1.0, -1.0]] * 3))
    w = [torch.ones(2, 2, 2), torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])]
    fb = [None, torch.tensor([[[1.0, 0.0]], [[1.0, 0.0]]])]
    torch.testing.assert_close(F.weight_alignment(w, fb), torch.tensor([[1.0], [0.0]]))


def test_signal_alignment_averages_per_sample_cosines():
    d1 = [torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])]  # one seed, two samples
    d2 = [torch.tensor([[[5.0, 0.0], [1.0, 0.0]]])]
    # sample cosines 1 and 0: mean 0.5 (a flattened cosine would give 5/sqrt(26) instead)
    torch.testing.assert_close(F.signal_alignment(d1, d2), torch.tensor([[0.5]]))
