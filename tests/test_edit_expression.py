"""Sec. 4.3 expression transfer: channel thresholding (both readings), normalisation, strengths."""

from __future__ import annotations

import pytest
import torch

import image2stylegan as i2s
from image2stylegan.edit import channel_norms, expression_direction

NUM_WS, W_DIM = 4, 6


def _pair_with_difference(d: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    neutral = torch.randn(d.shape, generator=torch.Generator().manual_seed(seed), dtype=d.dtype)
    return neutral, neutral + d


def _feature_difference() -> torch.Tensor:
    """d [4, 6] whose feature columns have L2 norms 0.5, 2, 0.99, 3, 0, 1 (each in one entry)."""
    d = torch.zeros(NUM_WS, W_DIM, dtype=torch.float64)
    d[0, 0] = 0.5
    d[1, 1] = -2.0  # norm 2
    d[2, 2] = 0.99
    d[:, 3] = torch.tensor([1.5, 1.5, 1.5, 1.5])  # norm 3
    d[3, 5] = 1.0  # exactly the threshold: kept (only norms *below* it are zeroed)
    return d


def test_feature_reading_zeroes_columns_below_threshold():
    d = _feature_difference()
    neutral, expressive = _pair_with_difference(d)
    assert torch.allclose(
        channel_norms(d, "feature"), torch.tensor([0.5, 2, 0.99, 3, 0, 1]).double()
    )
    direction = expression_direction(neutral, expressive, 1.0, channel="feature", normalize="none")
    assert direction.kept.tolist() == [False, True, False, True, False, True]
    expected = d.clone()
    expected[:, [0, 2, 4]] = 0
    assert torch.allclose(direction.d_hat, expected, atol=1e-12)
    assert direction.zeroed_fraction == pytest.approx(0.5)


def test_layer_reading_zeroes_rows_below_threshold():
    d = torch.zeros(NUM_WS, W_DIM, dtype=torch.float64)
    d[0] = 0.3  # row norm 0.3·√6 ≈ 0.73 -> zeroed
    d[1, :2] = torch.tensor([3.0, 4.0])  # row norm 5 -> kept
    d[2] = 0.5  # row norm ≈ 1.22 -> kept
    # row 3 all zero -> zeroed
    neutral, expressive = _pair_with_difference(d, seed=1)
    direction = expression_direction(neutral, expressive, 1.0, channel="layer", normalize="none")
    assert direction.kept.tolist() == [False, True, True, False]
    expected = d.clone()
    expected[[0, 3]] = 0
    assert torch.allclose(direction.d_hat, expected, atol=1e-12)


def test_the_two_readings_differ_on_the_same_difference():
    d = _feature_difference()
    neutral, expressive = _pair_with_difference(d)
    layer = expression_direction(neutral, expressive, 1.0, channel="layer", normalize="none")
    # rows: [0.5, 0, 0, 1.5], [0, -2, 0, 1.5], [0, 0, .99, 1.5], [0, 0, 0, 1.5, 0, 1]: all >= 1
    assert layer.kept.all()
    assert torch.allclose(layer.d_hat, d, atol=1e-12)


def test_code_normalisation_is_unit_frobenius_norm():
    d = _feature_difference()
    neutral, expressive = _pair_with_difference(d)
    direction = expression_direction(neutral, expressive, normalize="code")
    d_kept = d.clone()
    d_kept[:, [0, 2, 4]] = 0
    norm = (4.0 + 4 * 1.5**2 + 1.0) ** 0.5  # hand computed ‖d′‖_F = √14
    assert direction.norm_kept == pytest.approx(norm)
    assert torch.allclose(direction.d_hat, d_kept / norm, atol=1e-12)
    assert direction.d_hat.norm().item() == pytest.approx(1.0)
    assert direction.source_strength == pytest.approx(norm)


def test_default_channel_normalisation_is_unit_rms_over_kept_channels():
    d = _feature_difference()
    neutral, expressive = _pair_with_difference(d)
    direction = expression_direction(neutral, expressive)  # defaults: feature, channel
    d_kept = d.clone()
    d_kept[:, [0, 2, 4]] = 0
    # kept columns 1, 3, 5 have norms 2, 3, 1: RMS = √((4 + 9 + 1) / 3)
    rms = (14 / 3) ** 0.5
    assert torch.allclose(direction.d_hat, d_kept / rms, atol=1e-12)
    kept_norms = direction.d_hat.norm(dim=0)[direction.kept]
    assert (kept_norms**2).mean().item() == pytest.approx(1.0)
    assert direction.source_strength == pytest.approx(rms)
    assert torch.allclose(direction.source_strength * direction.d_hat, d_kept, atol=1e-12)
    # the layer reading: rows are the channels (all 4 kept here), RMS row norm 1
    layer = expression_direction(neutral, expressive, channel="layer")
    assert (layer.d_hat.norm(dim=1) ** 2).mean().item() == pytest.approx(1.0)


def test_layer_normalisation_gives_unit_rows():
    d = _feature_difference()
    neutral, expressive = _pair_with_difference(d)
    d_hat = expression_direction(neutral, expressive, normalize="layer").d_hat
    # kept columns 1, 3, 5: rows [0,0,0,1.5,0,0], [0,-2,0,1.5,0,0], [0,0,0,1.5,0,0], [0,0,0,1.5,0,1]
    assert torch.allclose(d_hat.norm(dim=1), torch.ones(4, dtype=torch.float64))
    assert torch.allclose(d_hat[1], torch.tensor([0, -0.8, 0, 0.6, 0, 0]).double())


def test_strengths_lambda_zero_identity_and_negative():
    d = _feature_difference()
    neutral, expressive = _pair_with_difference(d)
    target = torch.randn(1, NUM_WS, W_DIM, generator=torch.Generator().manual_seed(5)).double()
    lams = [-1.5, -0.5, 0.0, 0.5, 1.5]
    ws = i2s.expression_transfer(target, neutral, expressive, lams, normalize="code")
    assert ws.shape == (5, NUM_WS, W_DIM)
    assert torch.equal(ws[2], target[0])  # λ = 0: the target, bit for bit
    d_hat = expression_direction(neutral, expressive, normalize="code").d_hat
    for k, lam in enumerate(lams):
        assert torch.allclose(ws[k], target[0] + lam * d_hat, atol=1e-12)
        assert (ws[k] - target[0]).norm().item() == pytest.approx(abs(lam))  # |λ| = W+ distance
    assert torch.allclose(ws[0] - target[0], -(ws[4] - target[0]), atol=1e-12)
    default = i2s.expression_transfer(target, neutral, expressive, lams)  # channel normalisation
    assert torch.equal(default[2], target[0])
    assert torch.allclose(
        default[4] - target[0], 1.5 * expression_direction(neutral, expressive).d_hat
    )


def test_all_channels_below_threshold_is_a_clear_error():
    neutral = torch.zeros(NUM_WS, W_DIM)
    with pytest.raises(ValueError, match=r"below the threshold 1 .*largest has L2 norm 0\.02"):
        i2s.expression_transfer(neutral, neutral, neutral + 0.01, [1.0])


def test_bad_options():
    a = torch.zeros(NUM_WS, W_DIM)
    with pytest.raises(ValueError, match="channel must be"):
        expression_direction(a, a + 1, channel="pixel")
    with pytest.raises(ValueError, match="normalize must be 'channel'"):
        expression_direction(a, a + 1, normalize="max")
    with pytest.raises(ValueError, match="share one"):
        i2s.expression_transfer(torch.zeros(5, W_DIM), a, a + 1, [1.0])


def test_default_reading_zeroes_a_share_where_the_layer_reading_zeroes_nothing():
    """The documented reason for channel="feature": with differences of a few tenths per element
    (18 x 512 codes), threshold 1 zeroes a graded share of feature channels but no layer."""
    g = torch.Generator().manual_seed(0)
    neutral = torch.randn(18, 512, generator=g)
    for sigma, low, high in [(0.2, 0.6, 0.98), (0.25, 0.2, 0.7), (0.3, 0.02, 0.3)]:
        expressive = neutral + sigma * torch.randn(18, 512, generator=g)
        feature = expression_direction(neutral, expressive, channel="feature")
        layer = expression_direction(neutral, expressive, channel="layer")
        assert low < feature.zeroed_fraction < high, (sigma, feature.zeroed_fraction)
        assert layer.zeroed_fraction == 0.0
