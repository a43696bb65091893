"""StyleGAN3 building blocks on tiny inputs: filtered_lrelu against a naive zero-insertion
implementation, its hand-written gradients, the filter design against the filters NVIDIA's code
stored in its snapshots, the modulated convolution paths, float16 and the generator API."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from image2stylegan.checkpoints.safe_pickle import safe_pickle_load
from image2stylegan.models.stylegan3 import (
    StyleGAN3Config,
    StyleGAN3Generator,
    design_lowpass_filter,
    filtered_lrelu,
    layer_specs,
    make_transform,
    modulated_conv2d,
)


def tiny_config(**kw) -> StyleGAN3Config:
    base = dict(z_dim=8, w_dim=8, img_resolution=16, channel_base=64, channel_max=8)
    return StyleGAN3Config(**{**base, **kw})


def tiny_generator(seed: int = 0, **kw) -> StyleGAN3Generator:
    torch.manual_seed(seed)
    G = StyleGAN3Generator(tiny_config(**kw)).eval()
    with torch.no_grad():  # off the initial constants
        for p in G.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        for layer in G.synthesis_network.layers():
            layer.magnitude_ema.fill_(0.5 + torch.rand([]).item())
    return G


# --------------------------------------------------------------------------------------------
# filtered_lrelu


def naive_upfirdn(x, f, up, down, pad):
    """Zero insertion, padding, full 2-D convolution, decimation: the textbook definition."""
    N, C, H, W = x.shape
    z = x.new_zeros(N, C, H * up, W * up)
    z[:, :, ::up, ::up] = x
    px0, px1, py0, py1 = pad
    z = F.pad(z, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    z = z[:, :, max(-py0, 0) : z.shape[2] - max(-py1, 0), max(-px0, 0) : z.shape[3] - max(-px1, 0)]
    if f is not None:
        f2 = torch.outer(f, f) if f.ndim == 1 else f
        k = f2.flip([0, 1]).to(x.dtype)[None, None].repeat(C, 1, 1, 1)
        z = F.conv2d(z, k, groups=C)
    return z[:, :, ::down, ::down]


def naive_filtered_lrelu(x, fu, fd, b, up, down, pad, gain, slope, clamp):
    x = x + b.reshape(1, -1, 1, 1)
    x = naive_upfirdn(x, fu, up, 1, pad) * up**2
    x = F.leaky_relu(x, slope) * gain
    clamped = float((x.abs() > clamp).double().mean())
    x = x.clamp(-clamp, clamp)
    return naive_upfirdn(x, fd, 1, down, (0, 0, 0, 0)), clamped


# up, down, padding (x0, x1, y0, y1), up taps, down taps, radial down-filter, input side
GEOMETRIES = [
    (2, 2, (9, 8, 9, 8), 12, 12, False, 10),  # a regular layer
    (4, 2, (-6, -9, -6, -9), 24, 12, False, 14),  # sampling rate doubles (crops)
    (2, 2, (-11, -12, -11, -12), 12, 12, False, 26),  # last critically sampled layer
    (2, 2, (9, 8, 9, 8), 12, 12, True, 10),  # config R: radial down-filter
    (4, 2, (3, -2, 1, 5), 24, 12, True, 9),  # asymmetric padding
    (1, 2, (1, 2, 0, -1), 1, 12, False, 16),  # no up-filter
    (3, 1, (2, 1, 0, 3), 18, 1, False, 7),  # odd factor, no down-filter
]


def _filters(ku, kd, up, radial, dtype=torch.float64):
    fu = design_lowpass_filter(ku, 2.0, 4.0, 16 * up)
    fd = design_lowpass_filter(kd, 2.5, 3.0, 16 * up, radial=radial)
    return (None if fu is None else fu.to(dtype)), (None if fd is None else fd.to(dtype))


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_filtered_lrelu_matches_naive_definition(geometry):
    up, down, pad, ku, kd, radial, side = geometry
    fu, fd = _filters(ku, kd, up, radial)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, side, side + 1, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, generator=g, requires_grad=True)
    kw = dict(up=up, down=down, padding=pad, gain=math.sqrt(2), slope=0.2, clamp=0.25)
    y = filtered_lrelu(x, fu, fd, b, **kw)
    y_ref, clamped = naive_filtered_lrelu(x, fu, fd, b, up, down, pad, kw["gain"], 0.2, 0.25)
    assert y.shape == y_ref.shape
    assert 0.05 < clamped < 0.95  # the clamp is exercised
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-12)
    r = torch.randn(y.shape, dtype=torch.float64, generator=g)
    grads = torch.autograd.grad((y * r).sum(), (x, b))
    grads_ref = torch.autograd.grad((y_ref * r).sum(), (x, b))
    for ours, ref in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-10)


def test_filtered_lrelu_gradcheck_and_double_backward():
    fu, fd = _filters(12, 12, 2, radial=True)
    x = torch.randn(1, 2, 6, 7, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, dtype=torch.float64, requires_grad=True)

    def f(x, b):
        return filtered_lrelu(x, fu, fd, b, up=2, down=2, padding=(9, 8, 8, 9), clamp=0.3)

    assert torch.autograd.gradcheck(f, (x, b))
    assert torch.autograd.gradgradcheck(f, (x, b))


def test_filtered_lrelu_float32_paths_agree():
    fu, fd = _filters(12, 12, 2, radial=False, dtype=torch.float32)
    x = torch.randn(2, 4, 12, 12, requires_grad=True)
    b = torch.randn(4)
    kw = dict(up=2, down=2, padding=(9, 8, 9, 8), clamp=1.0)
    y = filtered_lrelu(x, fu, fd, b, **kw)
    y_ref = filtered_lrelu(x, fu, fd, b, reference=True, **kw)  # plain autograd, official order
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-6)
    (gx,) = torch.autograd.grad(y.square().sum(), x)
    (gx_ref,) = torch.autograd.grad(y_ref.square().sum(), x)
    torch.testing.assert_close(gx, gx_ref, rtol=0, atol=1e-5)


def test_filtered_lrelu_rejects_impossible_geometry():
    with pytest.raises(ValueError, match="up-filter"):
        filtered_lrelu(torch.zeros(1, 1, 4, 4), None, None, up=2)
    with pytest.raises(ValueError, match="1-D"):
        filtered_lrelu(torch.zeros(1, 1, 4, 4), torch.ones(2, 2), None, up=2)


# --------------------------------------------------------------------------------------------
# Filter design and the sampling plan, against what NVIDIA's code stored


@pytest.mark.parametrize("name", ["t32", "r32", "t64c"])
def test_designed_filters_equal_the_official_buffers(data_dir, name):
    """Our scipy-free design (Kaiser firwin, jinc) reproduces the stored float32 filters."""
    from image2stylegan.checkpoints.stylegan3 import config_from_stylegan3_kwargs

    net = safe_pickle_load(data_dir / f"stylegan3_{name}.pkl")["G_ema"]
    stored = net.named_tensors()
    G = StyleGAN3Generator(config_from_stylegan3_kwargs(net.init_kwargs, name))
    checked = 0
    for key, ours in G.state_dict().items():
        if key.endswith(("up_filter", "down_filter")):
            official = stored[key.replace("synthesis_network.", "synthesis.")]
            # separable taps to the last bit; the radial (jinc) ones within an ulp or so
            atol = 0 if ours.ndim == 1 else 1e-7
            torch.testing.assert_close(ours, official, rtol=0, atol=atol)
            checked += 1
    assert checked >= 2 * len(G.synthesis_network.layer_names) - 2


def test_layer_plan_of_the_official_1024_configs():
    """Layer names (side, channels), up factors and float16 flags of the 1024 px configs T and R
    as NVlabs/stylegan3 @ c233a91 builds them (recorded by running its SynthesisNetwork)."""
    t = [s.name for s in layer_specs(StyleGAN3Config())]
    assert t == ["L0_36_512", "L1_36_512", "L2_52_512", "L3_52_512", "L4_84_512", "L5_148_512",
                 "L6_148_512", "L7_276_323", "L8_276_203", "L9_532_128", "L10_1044_81",
                 "L11_1044_51", "L12_1044_32", "L13_1024_32", "L14_1024_3"]  # fmt: skip
    r = layer_specs(StyleGAN3Config(channel_base=65536, channel_max=1024, conv_kernel=1,
                                    use_radial_filters=True))  # fmt: skip
    assert [s.name for s in r] == [
        "L0_36_1024", "L1_36_1024", "L2_52_1024", "L3_52_1024", "L4_84_1024", "L5_148_1024",
        "L6_148_1024", "L7_276_645", "L8_276_406", "L9_532_256", "L10_1044_161", "L11_1044_102",
        "L12_1044_64", "L13_1024_64", "L14_1024_3"]  # fmt: skip
    assert [s.up for s in r] == [2, 2, 4, 2, 4, 4, 2, 4, 2, 4, 4, 2, 2, 2, 1]
    assert [s.use_fp16 for s in r] == [False] * 5 + [True] * 10
    assert [s.down_radial for s in r] == [True] * 12 + [False] * 3  # not the critical ones
    assert r[-1].is_torgb and r[-1].conv_kernel == 1 and r[0].conv_kernel == 1


# --------------------------------------------------------------------------------------------
# Modulated convolution


def test_modulated_conv_fused_equals_scaled_activations():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 9, 9, generator=g)
    w = torch.randn(4, 5, 3, 3, generator=g)
    s = torch.randn(3, 5, generator=g)
    gain = torch.tensor(1.7)
    for demod in (True, False):
        a = modulated_conv2d(x, w, s, demod, padding=2, input_gain=gain, fused=True)
        b = modulated_conv2d(x, w, s, demod, padding=2, input_gain=gain, fused=False)
        assert a.shape == (3, 4, 11, 11)
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_demodulated_output_has_unit_weight_norm():
    """Demodulation: each output channel of conv(x, w * s * d) has ||w * s * d|| = 1."""
    x = torch.zeros(1, 3, 3, 3)
    x[0, :, 1, 1] = torch.tensor([1.0, -2.0, 0.5])
    w = torch.randn(2, 3, 1, 1)
    s = torch.randn(1, 3)
    y = modulated_conv2d(x, w, s, padding=0)
    ws = w[:, :, 0, 0] * s
    expected = (ws / ws.norm(dim=1, keepdim=True)) @ x[0, :, 1, 1]
    torch.testing.assert_close(y[0, :, 1, 1], expected, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------
# The generator


def test_generator_api_and_shapes():
    G = tiny_generator()
    assert G.num_ws == 16 and G.noise_buffers() == [] and G.num_noise_inputs == 0
    z = torch.randn(2, 8)
    ws = G.mapping(z)
    assert ws.shape == (2, 16, 8) and torch.equal(ws[:, 0], ws[:, -1])
    with torch.no_grad():
        img = G.synthesis(ws)
    assert img.shape == (2, 3, 16, 16) and img.dtype == torch.float32
    with pytest.raises(ValueError, match="ws must be"):
        G.synthesis(ws[:, :3])
    assert "config=T" in repr(G)


def test_truncation_cutoff():
    G = tiny_generator()
    G.w_avg.copy_(torch.randn(8))
    z = torch.randn(2, 8)
    ws, ws_t = G.mapping(z), G.mapping(z, 0.5, 4)
    torch.testing.assert_close(ws_t[:, :4], G.w_avg + 0.5 * (ws[:, :4] - G.w_avg))
    assert torch.equal(ws_t[:, 4:], ws[:, 4:])
    assert torch.equal(G.mapping(z, 1.0, 4), ws)


def test_batch_members_are_independent():
    """The official style pre-normalisation is over the whole batch; demodulation cancels it
    up to its epsilon, so an image does not depend on its batch mates."""
    G = tiny_generator(1)
    ws = G.mapping(torch.randn(3, 8))
    with torch.no_grad():
        together = G.synthesis(ws)
        alone = G.synthesis(ws[1:2])
    torch.testing.assert_close(together[1:2], alone, rtol=0, atol=1e-6)


def test_conditional_generator_needs_labels():
    G = tiny_generator(c_dim=2)
    with pytest.raises(ValueError, match="conditional"):
        G.mapping(torch.randn(1, 8))
    assert G.mapping(torch.randn(1, 8), c=torch.eye(2)[:1]).shape == (1, 16, 8)


def test_transform_rotates_the_fourier_features():
    """set_transform stores the inverse of gen_images.py's matrix; rotating by 90 degrees
    turns the Fourier input (before any layer) by 90 degrees."""
    G = tiny_generator(2, margin_size=0, first_cutoff=2.0)
    m = make_transform((0.0, 0.0), 90.0)
    np.testing.assert_allclose(m[:2, :2], [[0, 1], [-1, 0]], atol=1e-15)
    w = G.mapping(torch.randn(1, 8))[:, 0]
    inp = G.synthesis_network.input
    with torch.no_grad():
        G.synthesis_network.input.affine.weight.zero_()  # no learned rotation/translation
        G.synthesis_network.input.affine.bias.copy_(torch.tensor([1.0, 0, 0, 0]))
        base = inp(w)
        G.set_transform(rotate=90.0)
        turned = inp(w)
    torch.testing.assert_close(G.transform, torch.from_numpy(np.linalg.inv(m)).float())
    torch.testing.assert_close(turned, torch.rot90(base, 1, dims=(2, 3)), rtol=0, atol=1e-5)


def test_float16_path_runs_close_to_float32():
    G = tiny_generator(3, num_fp16_res=2)
    ws = G.mapping(torch.randn(2, 8))
    with torch.no_grad():
        ref = G.synthesis(ws)
        G.fp16 = True
        try:
            half = G.synthesis(ws)
        except RuntimeError as e:  # a torch build without float16 CPU convolutions
            pytest.skip(f"float16 convolution unavailable on this CPU build: {e}")
        finally:
            G.fp16 = False
    assert half.dtype == torch.float32
    assert float((half - ref).abs().max()) < 2e-2 * float(ref.abs().max())
    assert not torch.equal(half, ref)  # the float16 layers really ran


def test_config_validation_and_round_trip():
    c = tiny_config(conv_kernel=1, use_radial_filters=True)
    assert StyleGAN3Config.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="num_critical"):
        tiny_config(num_critical=14)
    with pytest.raises(ValueError, match="unknown StyleGAN3 config keys"):
        StyleGAN3Config.from_dict({**c.to_dict(), "fancy": 1})
    with pytest.raises(ValueError, match="without channels"):
        tiny_config(channel_base=1)
