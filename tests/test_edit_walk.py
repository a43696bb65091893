"""The random walk towards w̄: exact ends, seeded perturbation, no hidden randomness."""

from __future__ import annotations

import pytest
import torch

import image2stylegan as i2s


def _start_and_mean():
    g = torch.Generator().manual_seed(0)
    return torch.randn(1, 18, 512, generator=g), torch.randn(512, generator=g)


def test_straight_walk_is_the_line_to_the_mean():
    start, w_avg = _start_and_mean()
    ws = i2s.random_walk(start, w_avg, 5)
    assert ws.shape == (5, 18, 512)
    assert torch.equal(ws[0], start[0])
    assert torch.equal(ws[-1], w_avg.expand(18, 512))
    assert torch.allclose(ws[2], (start[0] + w_avg) / 2, atol=1e-5)


def test_end_stops_part_way():
    start, w_avg = _start_and_mean()
    ws = i2s.random_walk(start, w_avg, 3, end=0.5)
    assert torch.allclose(ws[-1], (start[0] + w_avg) / 2, atol=1e-5)


def test_perturbation_is_seeded_and_keeps_the_ends():
    start, w_avg = _start_and_mean()
    straight = i2s.random_walk(start, w_avg, 20)
    a = i2s.random_walk(start, w_avg, 20, 0.5, generator=torch.Generator().manual_seed(1))
    b = i2s.random_walk(start, w_avg, 20, 0.5, generator=torch.Generator().manual_seed(1))
    c = i2s.random_walk(start, w_avg, 20, 0.5, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a[0], start[0]) and torch.equal(a[-1], straight[-1])
    excursion = a - straight  # [K, num_ws, w_dim]
    assert excursion[1:-1].abs().mean() > 0.05
    # shared across layers by default (a walk in W), independent with per_layer=True
    assert torch.allclose(excursion, excursion[:, :1].expand_as(excursion), atol=1e-5)
    p = i2s.random_walk(start, w_avg, 20, 0.5, per_layer=True, generator=torch.Generator())
    assert not torch.allclose(p[5, 0], p[5, 1])


def test_no_hidden_randomness_and_bad_arguments():
    start, w_avg = _start_and_mean()
    with pytest.raises(ValueError, match="generator="):
        i2s.random_walk(start, w_avg, 10, perturbation=0.1)
    with pytest.raises(ValueError, match="at least 2"):
        i2s.random_walk(start, w_avg, 1)
    with pytest.raises(ValueError, match="w_avg must be"):
        i2s.random_walk(start, w_avg[:100], 10)
