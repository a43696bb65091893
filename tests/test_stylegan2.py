"""StyleGAN2 generator: API behaviour, options, and strict, clear checkpoint errors.

Numerical equality with the official implementations: tests/test_stylegan2_reference.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import image2stylegan as i2s
from image2stylegan.checkpoints.stylegan2_ada import config_from_ada_kwargs
from image2stylegan.models.stylegan2 import (
    StyleGAN2Config,
    StyleGAN2Generator,
    setup_filter,
    upfirdn2d,
    upsample2d,
)
from tests.fixtures.stylegan2_fixtures import (
    ada_init_kwargs,
    ada_tensors_from_generator,
    load_reference,
    tiny_stylegan2,
    write_ada_pickle_file,
    write_reference_checkpoint,
    write_rosinality_file,
    write_tf_pickle_file,
)

# --- the model ----------------------------------------------------------------------------------


@pytest.mark.parametrize("architecture", ["skip", "resnet", "orig"])
def test_tiny_generator_shapes_and_attributes(architecture: str) -> None:
    G = tiny_stylegan2(32, architecture=architecture)
    assert (G.z_dim, G.w_dim, G.num_ws, G.img_resolution, G.img_channels) == (16, 16, 8, 32, 3)
    assert G.architecture == "stylegan2" and G.w_avg.shape == (16,)
    z = torch.randn(2, 16, generator=torch.Generator().manual_seed(1))
    ws = G.mapping(z)
    assert ws.shape == (2, 8, 16) and torch.equal(ws[:, 0], ws[:, -1])
    img = G.synthesis(ws)
    assert img.shape == (2, 3, 32, 32) and img.dtype == torch.float32 and img.abs().max() > 0
    assert torch.equal(G(z), img)
    # one stored noise per conv layer, in layer order: 4, 8, 8, 16, 16, 32, 32
    assert [b.shape[-1] for b in G.noise_buffers()] == [4, 8, 8, 16, 16, 32, 32]
    assert all(b.shape[:2] == (1, 1) and b.abs().max() > 0 for b in G.noise_buffers())


def test_truncation_cutoff_and_w_avg() -> None:
    G = tiny_stylegan2(16)
    z = torch.randn(3, 16, generator=torch.Generator().manual_seed(2))
    ws = G.mapping(z)
    t = G.mapping(z, truncation_psi=0.5, truncation_cutoff=2)
    assert torch.allclose(t[:, :2], G.w_avg + 0.5 * (ws[:, :2] - G.w_avg), atol=1e-6)
    assert torch.equal(t[:, 2:], ws[:, 2:])
    assert torch.allclose(G.mapping(z, truncation_psi=0.0), G.w_avg.expand_as(ws))


def test_noise_modes() -> None:
    G = tiny_stylegan2(16)
    ws = G.mapping(torch.randn(2, 16, generator=torch.Generator().manual_seed(3)))
    const = G.synthesis(ws, noise_mode="const")
    assert torch.equal(const, G.synthesis(ws, noise_mode="const"))  # deterministic
    none = G.synthesis(ws, noise_mode="none")
    zeros = [torch.zeros_like(b) for b in G.noise_buffers()]
    assert torch.equal(none, G.synthesis(ws, noise=zeros))
    assert not torch.allclose(none, const)
    r1 = G.synthesis(ws, noise_mode="random", generator=torch.Generator().manual_seed(0))
    r2 = G.synthesis(ws, noise_mode="random", generator=torch.Generator().manual_seed(0))
    r3 = G.synthesis(ws, noise_mode="random")
    assert torch.equal(r1, r2) and not torch.allclose(r1, r3) and not torch.allclose(r1, const)
    same = G.synthesis(ws[:1].repeat(2, 1, 1), noise_mode="random")
    assert not torch.allclose(same[0], same[1])  # fresh noise per sample
    with pytest.raises(ValueError, match="noise_mode"):
        G.synthesis(ws, noise_mode="fresh")
    with pytest.raises(ValueError, match="noise tensors"):
        G.synthesis(ws, noise=zeros[:-1])


def test_generator_without_noise_inputs() -> None:
    G = tiny_stylegan2(16, use_noise=False)
    ws = G.mapping(torch.randn(1, 16))
    assert G.noise_buffers() == []
    assert torch.equal(G.synthesis(ws, "const"), G.synthesis(ws, "random"))
    assert torch.equal(G.synthesis(ws, "const"), G.synthesis(ws, "none"))


def test_shape_checks_at_the_public_boundary() -> None:
    G = tiny_stylegan2(16)
    with pytest.raises(ValueError, match=r"z must be \[N, 16\]"):
        G.mapping(torch.randn(2, 15))
    with pytest.raises(ValueError, match=r"ws must be \[N, 6, 16\]"):
        G.synthesis(torch.randn(2, 5, 16))


def test_conditional_generator_needs_labels() -> None:
    G = tiny_stylegan2(16, c_dim=3)
    z = torch.randn(2, 16)
    with pytest.raises(ValueError, match=r"conditional: c must be \[N, 3\]"):
        G.mapping(z)
    with pytest.raises(ValueError, match="conditional"):
        G.mapping(z, c=torch.zeros(2, 4))
    c = torch.eye(3)[:2]
    assert not torch.allclose(G.mapping(z, c=c), G.mapping(z, c=c.flip(0)))
    assert G(z, c=c).shape == (2, 3, 16, 16)


def test_gradients_reach_ws_only() -> None:
    G = tiny_stylegan2(16, architecture="resnet")
    ws = G.mapping(torch.randn(2, 16)).requires_grad_(True)
    G.synthesis(ws).square().mean().backward()
    assert ws.grad is not None and ws.grad.abs().max() > 0
    assert all(p.grad is None for p in G.parameters())


def test_unfused_modulated_conv_matches_fused() -> None:
    """The official training-mode path (modulate activations) equals the fused grouped conv."""
    G = tiny_stylegan2(32, architecture="resnet", conv_clamp=1.0)
    ws = G.mapping(torch.randn(3, 16, generator=torch.Generator().manual_seed(4)))
    fused = G.synthesis(ws)
    G.fused_modconv = False
    try:
        assert torch.allclose(G.synthesis(ws), fused, atol=1e-5)
    finally:
        G.fused_modconv = None


def _image_and_grad(G: StyleGAN2Generator, ws: torch.Tensor, **kwargs):
    R = torch.randn(ws.shape[0], G.img_channels, G.img_resolution, G.img_resolution,
                    generator=torch.Generator().manual_seed(9))  # fmt: skip
    ws = ws.clone().requires_grad_(True)
    img = G.synthesis(ws, **kwargs)
    (img * R).sum().backward()
    assert ws.grad is not None
    return img.detach(), ws.grad


@pytest.mark.parametrize(
    ("architecture", "overrides"),
    [
        ("skip", {}),
        ("skip", {"conv_clamp": 0.5}),  # the clamp bites: a third of the pixels sit at +-0.5
        ("resnet", {"conv_clamp": 0.5}),
        ("orig", {"use_noise": False}),
        ("skip", {"activation": "tanh"}),  # not positively homogeneous: the generic epilogue
        ("skip", {"resample_filter": (1, 2, 1)}),  # odd filter: the reference FIR fallbacks
    ],
)
@pytest.mark.parametrize("noise_mode", ["const", "random"])
def test_fast_path_matches_the_official_replay(architecture, overrides, noise_mode) -> None:
    """The default path (fused_modconv=None: the CPU fast path) vs the two replays of the official
    arithmetic, in images and the W+ gradient: within 1e-5 of the range (measured <= 2e-6)."""
    G = tiny_stylegan2(32, architecture=architecture, **overrides)
    ws = G.mapping(torch.randn(3, 16, generator=torch.Generator().manual_seed(4)))
    out = {}
    for mode in (None, True, False):
        G.fused_modconv = mode
        out[mode] = _image_and_grad(
            G, ws, noise_mode=noise_mode, generator=torch.Generator().manual_seed(1)
        )
    img, grad = out[True]
    assert img.is_contiguous() and out[None][0].is_contiguous()
    for mode in (None, False):
        assert (out[mode][0] - img).abs().max() <= 1e-5 * (img.max() - img.min())
        assert (out[mode][1] - grad).abs().max() <= 1e-5 * grad.abs().max()
    assert not torch.equal(out[None][0], img)  # another path, not the replay under a new name
    if "conv_clamp" in overrides:
        layer = G.synthesis_network.b32.conv1
        x = torch.randn(2, layer.weight.shape[1], 32, 32)
        y = layer(x, ws[:2, 0], None, G.synthesis_network.resample_filter, fused=True)
        assert (y.abs() == 0.5).float().mean() > 0.05


def test_fast_path_recomputes_what_it_caches() -> None:
    """The fast path computes what depends on the frozen weights once; a change to a weight (in
    place or by loading a state dict), fresh random noise, or weights that need gradients are
    all seen at the next call, and inference mode caches nothing."""
    G = tiny_stylegan2(16)
    ws = G.mapping(torch.randn(2, 16, generator=torch.Generator().manual_seed(2)))

    def replay() -> torch.Tensor:
        G.fused_modconv = True
        try:
            return G.synthesis(ws)
        finally:
            G.fused_modconv = None

    first = G.synthesis(ws)
    assert torch.allclose(first, replay(), atol=1e-5)
    with torch.no_grad():
        G.synthesis_network.b16.conv1.weight.mul_(1.5)
        G.synthesis_network.b8.conv0.bias.add_(0.3)
        G.synthesis_network.b16.torgb.affine.weight.mul_(0.5)
        G.synthesis_network.b8.conv1.noise_const.add_(1.0)
    changed = G.synthesis(ws)
    assert not torch.allclose(changed, first, atol=1e-3)
    assert torch.allclose(changed, replay(), atol=1e-5)
    G.load_state_dict(tiny_stylegan2(16, seed=3).state_dict())
    assert torch.allclose(G.synthesis(ws), replay(), atol=1e-5)
    # random noise: a new draw each call, never a cached one
    a, b = (G.synthesis(ws, noise_mode="random", generator=torch.Generator().manual_seed(k))
            for k in (5, 6))  # fmt: skip
    assert not torch.allclose(a, b, atol=1e-3)
    # inference mode first, then a step with gradients: nothing stale, no inference tensors
    G2 = tiny_stylegan2(16)
    with torch.inference_mode():
        G2.synthesis(ws.clone())
    ws_var = ws.clone().requires_grad_(True)
    G2.synthesis(ws_var).sum().backward()
    assert ws_var.grad is not None and ws_var.grad.abs().max() > 0
    # weights that need gradients (fine-tuning): they get them through the fast path
    G2.requires_grad_(True)
    G2.synthesis(ws).square().mean().backward()
    assert G2.synthesis_network.b16.conv1.weight.grad is not None
    assert G2.synthesis_network.b16.conv1.weight.grad.abs().max() > 0


def test_fp16_option() -> None:
    """G.fp16 runs the top num_fp16_res blocks in float16 (official path; a no-op without them).
    Equality with the official float16 numbers: test_stylegan2_reference.py."""
    G = tiny_stylegan2(32, num_fp16_res=2, conv_clamp=256)
    ws = G.mapping(torch.randn(2, 16, generator=torch.Generator().manual_seed(5)))
    exact = G.synthesis(ws)
    G.fp16 = True
    half = G.synthesis(ws)
    assert half.dtype == torch.float32 and not torch.equal(half, exact)
    assert (half - exact).abs().max() < 2e-2
    no_fp16_blocks = tiny_stylegan2(32)
    no_fp16_blocks.fp16 = True
    assert torch.equal(no_fp16_blocks.synthesis(ws), tiny_stylegan2(32).synthesis(ws))


def test_fp16_reader_option(tmp_path: Path) -> None:
    G = tiny_stylegan2(16, num_fp16_res=1)
    path = write_ada_pickle_file(
        tmp_path / "g.pkl", ada_tensors_from_generator(G), ada_init_kwargs(G.config)
    )
    assert i2s.load_generator(path, fp16=True).fp16 is True


def test_config_round_trip_and_native_file(tmp_path: Path) -> None:
    from image2stylegan.checkpoints.native import save_native

    G = tiny_stylegan2(16, architecture="orig", c_dim=2, conv_clamp=64, num_fp16_res=1)
    config = json.loads(json.dumps(G.config_dict()))
    assert StyleGAN2Generator.from_config(config).config == G.config
    with pytest.raises(ValueError, match="unknown StyleGAN2 config keys: bogus"):
        StyleGAN2Generator.from_config({**config, "bogus": 1})
    H = i2s.load_generator(save_native(G, tmp_path / "g.safetensors"))
    ws = G.mapping(torch.randn(2, 16), c=torch.eye(2))
    assert torch.equal(H.synthesis(ws), G.synthesis(ws)) and torch.equal(H.w_avg, G.w_avg)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="power of two"):
        StyleGAN2Config(img_resolution=48)
    with pytest.raises(ValueError, match="architecture"):
        StyleGAN2Config(architecture="fancy")
    with pytest.raises(ValueError, match="activation"):
        StyleGAN2Config(activation="gelu")
    assert StyleGAN2Config().num_ws == 18  # config-f at 1024 px
    assert [StyleGAN2Config().channels(r) for r in (4, 64, 1024)] == [512, 512, 32]


def test_upfirdn2d_upsamples_constants_exactly() -> None:
    """The [1, 3, 3, 1] FIR upsampler keeps DC: a constant stays constant away from the border."""
    f = setup_filter([1, 3, 3, 1])
    assert f.shape == (4, 4) and abs(f.sum().item() - 1) < 1e-7
    x = torch.full((1, 2, 6, 6), 3.0)
    y = upsample2d(x, f)
    assert y.shape == (1, 2, 12, 12)
    assert torch.allclose(y[..., 2:-2, 2:-2], torch.full_like(y[..., 2:-2, 2:-2], 3.0))
    separable = setup_filter([1, 3, 3, 1, 1, 3, 3, 1])  # >= 8 taps: kept separable, as official
    assert separable.ndim == 1
    dense = torch.outer(separable, separable)
    assert torch.allclose(
        upfirdn2d(x, separable, padding=(4, 3, 4, 3)),
        upfirdn2d(x, dense, padding=(4, 3, 4, 3)),
        atol=1e-6,
    )


# --- stylegan2-ada-pytorch pickles ------------------------------------------------------------


def _ada_file(tmp_path: Path, G: StyleGAN2Generator | None = None, **changes) -> Path:
    G = G or tiny_stylegan2(16, architecture="resnet")
    tensors = ada_tensors_from_generator(G)
    kwargs = ada_init_kwargs(G.config)
    for key, value in changes.get("tensors", {}).items():
        if value is None:
            tensors.pop(key)
        else:
            tensors[key] = value
    for section, values in changes.get("kwargs", {}).items():
        kwargs[section] = {**kwargs[section], **values} if isinstance(values, dict) else values
    return write_ada_pickle_file(
        tmp_path / "net.pkl", tensors, kwargs,
        class_name=changes.get("class_name", "Generator"),
    )  # fmt: skip


def test_ada_round_trip_is_exact(tmp_path: Path) -> None:
    G = tiny_stylegan2(16, architecture="resnet")
    H = i2s.load_generator(_ada_file(tmp_path, G))
    ws = G.mapping(torch.randn(2, 16))
    assert torch.equal(H.synthesis(ws), G.synthesis(ws)) and H.config == G.config


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"tensors": {"synthesis.b8.conv1.affine.bias": None}},
            "missing tensor 'synthesis.b8.conv1.affine.bias'",
        ),
        (
            {"tensors": {"synthesis.b8.extra": torch.zeros(3)}},
            "unknown tensor 'synthesis.b8.extra'",
        ),
        (
            {"tensors": {"mapping.fc1.weight": torch.zeros(16, 15)}},
            r"tensor 'mapping.fc1.weight' has shape \[16, 15\], expected \[16, 16\]",
        ),
        ({"kwargs": {"synthesis_kwargs": {"channel_max": 32}}}, "has shape"),
        ({"kwargs": {"synthesis_kwargs": {"kernel_size": 5}}}, "kernel_size 5 is not supported"),
        ({"kwargs": {"synthesis_kwargs": {"magic": 1}}}, "unsupported argument.*'magic'"),
        (
            {"kwargs": {"synthesis_kwargs": {"architecture": "fancy"}}},
            "unsupported G_ema configuration",
        ),
        (
            {"tensors": {"synthesis.b8.resample_filter": torch.ones(4, 4) / 16}},
            "not the filter the config declares",
        ),
        (
            {"class_name": "Discriminator"},
            r"G_ema \(class 'Discriminator'\) is not a generator this loader knows",
        ),
    ],
    ids=["missing", "unknown", "shape", "config-shape", "kernel", "kwarg", "arch", "filter", "cls"],
)
def test_ada_strict_errors(tmp_path: Path, change: dict, message: str) -> None:
    path = _ada_file(tmp_path, **change)
    with pytest.raises(i2s.CheckpointError, match=message) as info:
        i2s.load_generator(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_ada_kwargs_defaults_are_config_f() -> None:
    config, has_w_avg = config_from_ada_kwargs(
        {"z_dim": 512, "c_dim": 0, "w_dim": 512, "img_resolution": 1024, "img_channels": 3,
         "mapping_kwargs": {"num_layers": 8},
         "synthesis_kwargs": {"channel_base": 32768, "channel_max": 512, "num_fp16_res": 4,
                              "conv_clamp": 256}},
        "ffhq.pkl",
    )  # fmt: skip
    assert has_w_avg and config == StyleGAN2Config(num_fp16_res=4, conv_clamp=256.0)


def test_ada_without_w_avg(tmp_path: Path) -> None:
    G = tiny_stylegan2(16)
    path = _ada_file(
        tmp_path,
        G,
        tensors={"mapping.w_avg": None},
        kwargs={"mapping_kwargs": {"w_avg_beta": None}},
    )
    assert torch.equal(i2s.load_generator(path).w_avg, torch.zeros(16))


# --- StyleGAN2 TF pickles ------------------------------------------------------------------------


def _tf_file(tmp_path: Path, name: str = "tf_resnet32", gs_kwargs=None, variables=None) -> Path:
    ref = load_reference(name)
    networks = json.loads(str(ref["networks"]))
    tables = {k: {n: ref[f"var/{k}/{n}"] for n in networks[k]["variable_order"]} for k in networks}
    networks["Gs"]["static_kwargs"].update(gs_kwargs or {})
    for (net, key), value in (variables or {}).items():
        if value is None:
            tables[net].pop(key)
        else:
            tables[net][key] = value
    return write_tf_pickle_file(tmp_path / "net.pkl", networks, tables)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"variables": {("synthesis", "16x16/Conv1/mod_bias"): None}},
            "missing variable 'synthesis/16x16/Conv1/mod_bias'",
        ),
        (
            {"variables": {("synthesis", "16x16/Extra/weight"): np.zeros(2, np.float32)}},
            "unknown variable 'synthesis/16x16/Extra/weight'",
        ),
        (
            {"variables": {("synthesis", "noise3"): np.zeros((1, 1, 8, 8), np.float32)}},
            r"'synthesis/noise3' has shape \[1, 1, 8, 8\], expected \[1, 1, 16, 16\]",
        ),
        ({"gs_kwargs": {"fmap_decay": 0.5}}, "fmap_decay=0.5 is not supported"),
        ({"gs_kwargs": {"magic": True}}, "unknown TF network keyword 'magic'"),
        (
            {
                "gs_kwargs": {"label_size": 4},
                "variables": {("mapping", "LabelConcat/weight"): np.zeros((4, 24), np.float32)},
            },
            "LabelConcat",
        ),
    ],
    ids=["missing", "unknown", "shape", "fmap_decay", "kwarg", "labelconcat"],
)
def test_tf_strict_errors(tmp_path: Path, change: dict, message: str) -> None:
    path = _tf_file(tmp_path, **change)
    with pytest.raises(i2s.CheckpointError, match=message) as info:
        i2s.load_generator(path)
    assert str(path) in str(info.value)


def test_tf_revised_mid_growing_snapshot_refused(tmp_path: Path) -> None:
    path = _tf_file(tmp_path, "tf_revised16", variables={("Gs", "lod"): np.float32(1.0)})
    with pytest.raises(i2s.CheckpointError, match="progressive growing"):
        i2s.load_generator(path)


# --- rosinality .pt -------------------------------------------------------------------------------


def _ros_file(tmp_path: Path, changes: dict) -> Path:
    ref = load_reference("rosinality_64")
    g_ema = {k[len("g_ema/") :]: v for k, v in ref.items() if k.startswith("g_ema/")}
    for key, value in changes.items():
        if value is None:
            g_ema.pop(key)
        else:
            g_ema[key] = value
    return write_rosinality_file(tmp_path / "ros.pt", g_ema, ref["latent_avg"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"convs.3.noise.weight": None}, "missing tensor 'convs.3.noise.weight'"),
        ({"convs.3.extra": np.zeros(2, np.float32)}, "unknown tensor 'convs.3.extra'"),
        (
            {"to_rgbs.1.bias": np.zeros((3,), np.float32)},
            r"'to_rgbs.1.bias' has shape \[3\], expected \[1, 3, 1, 1\]",
        ),
        ({"convs.6.conv.blur.kernel": np.ones((4, 4), np.float32)}, "blur kernel"),
        (
            {"convs.0.conv.weight": np.zeros((1, 64, 32, 3, 3), np.float32)},
            "min\\(base / r, max\\)",
        ),
        ({"style.1.weight": None}, "no 'style.1.weight'"),
    ],
    ids=["missing", "unknown", "shape", "blur", "channels", "not-rosinality"],
)
def test_rosinality_strict_errors(tmp_path: Path, change: dict, message: str) -> None:
    path = _ros_file(tmp_path, change)
    with pytest.raises(i2s.CheckpointError, match=message) as info:
        i2s.load_generator(path)
    assert str(path) in str(info.value)


def test_rosinality_infers_config(tmp_path: Path) -> None:
    G = i2s.load_generator(write_reference_checkpoint("rosinality_64", tmp_path / "r.pt"))
    c = G.config
    assert (c.img_resolution, c.z_dim, c.w_dim, c.mapping_layers) == (64, 32, 32, 4)
    assert [c.channels(r) for r in (4, 8, 16, 32, 64)] == [32, 32, 32, 32, 16]
    assert (c.architecture, c.mapping_lr_multiplier, c.conv_clamp) == ("skip", 0.01, None)
