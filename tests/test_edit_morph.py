"""Sec. 4.1 morphing: endpoints exact, frames = (1 − t)·A + t·B, multi-keyframe paths, ping-pong."""

from __future__ import annotations

import pytest
import torch

import image2stylegan as i2s
from image2stylegan.edit import morph_path, ping_pong


@pytest.fixture
def codes() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return tuple(torch.randn(18, 512, generator=g) * 3 for _ in range(3))


def test_endpoints_are_the_inputs_bit_for_bit(codes):
    a, b, _ = codes
    for n in (2, 3, 7, 30):
        ws = i2s.morph(a, b, n)
        assert ws.shape == (n, 18, 512)
        assert torch.equal(ws[0], a)
        assert torch.equal(ws[-1], b)


def test_frames_are_the_linear_interpolation(codes):
    a, b, _ = codes
    ws = i2s.morph(a.unsqueeze(0), b.unsqueeze(0), 5)  # [1, num_ws, w_dim] inputs work too
    for k in range(5):
        t = k / 4
        assert torch.allclose(ws[k], (1 - t) * a + t * b, atol=1e-5)
    # the paper's form w = λ·w1 + (1 − λ)·w2 with λ = 1 − t
    assert torch.allclose(ws[1], 0.75 * a + 0.25 * b, atol=1e-5)
    assert torch.allclose(ws[2], (a + b) / 2, atol=1e-5)


def test_bad_arguments(codes):
    a, b, _ = codes
    with pytest.raises(ValueError, match="at least 2"):
        i2s.morph(a, b, 1)
    with pytest.raises(ValueError, match="share one"):
        i2s.morph(a, b[:14], 5)
    with pytest.raises(ValueError, match=r"\[num_ws, w_dim\]"):
        i2s.morph(a.flatten(), b.flatten(), 5)


def test_path_visits_every_keyframe_exactly(codes):
    a, b, c = codes
    ws = morph_path([a, b, c], frames_per_segment=4)
    assert ws.shape == (7, 18, 512)  # 2 segments x 3 steps + 1
    assert torch.equal(ws[0], a) and torch.equal(ws[3], b) and torch.equal(ws[6], c)
    assert torch.allclose(ws[4], (2 * b + c) / 3, atol=1e-5)
    assert torch.equal(morph_path(torch.stack([a, b]), 5), i2s.morph(a, b, 5))


def test_ping_pong_loops_without_repeating_ends(codes):
    a, b, _ = codes
    ws = i2s.morph(a, b, 5)
    loop = ping_pong(ws)
    assert loop.shape[0] == 8
    assert torch.equal(loop[:5], ws)
    assert torch.equal(loop[5:], ws[1:4].flip(0))
    assert torch.equal(morph_path([a, b], 5, loop=True), loop)
