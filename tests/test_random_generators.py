"""`random:ARCH-RES[@SEED]` sources: official architectures with official initialisation.

Small resolutions only run (the mapping network and the 512-channel low-resolution blocks are
full size, so even 32 px takes ~1 s to build with its w_avg); 1024 px is built, not run.
"""

from __future__ import annotations

import pytest
import torch

import image2stylegan as i2s
from image2stylegan.checkpoints.random_generators import RandomSource, parse_random_source
from image2stylegan.checkpoints.registry import is_registry_name
from image2stylegan.errors import CheckpointError
from image2stylegan.models.base import Generator
from image2stylegan.models.stylegan1 import StyleGAN1Config, StyleGAN1Generator
from image2stylegan.models.stylegan2 import StyleGAN2Config, StyleGAN2Generator

SOURCES = (
    "random:stylegan1-32",
    "random:stylegan1-32@0",
    "random:stylegan1-32@1",
    "random:stylegan2-32",
    "random:stylegan2-32@0",
)


@pytest.fixture(scope="module")
def gens() -> dict[str, Generator]:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    out = {src: i2s.load_generator(src) for src in SOURCES}
    assert torch.equal(torch.rand(3), expected), "building touched the global RNG"
    return out


def same_state(G: torch.nn.Module, H: torch.nn.Module) -> bool:
    a, b = G.state_dict(), H.state_dict()
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_parse() -> None:
    assert parse_random_source("random:stylegan1-1024") == RandomSource("stylegan1", 1024, 0)
    assert parse_random_source("random:stylegan2-256@3") == RandomSource("stylegan2", 256, 3)
    assert str(parse_random_source("random:stylegan2-8")) == "random:stylegan2-8@0"


@pytest.mark.parametrize(
    ("src", "message"),
    [
        (
            "random:stylegan4-256",
            "unknown architecture 'stylegan4' (known: stylegan1, stylegan2, stylegan3-t, "
            "stylegan3-r)",
        ),
        ("random:stylegan1-300", "resolution 300 is not a power of two between 4 and 4096"),
        ("random:stylegan1-2", "resolution 2 is not a power of two"),
        ("random:stylegan2-8192", "resolution 8192 is not a power of two between 4 and 4096"),
        ("random:stylegan1", "not a valid random generator source; expected random:ARCH-RES"),
        ("random:stylegan1-256@x", "not a valid random generator source"),
        ("random:stylegan1-256@-1", "not a valid random generator source"),
        ("random:", "not a valid random generator source"),
        ("random:stylegan1-256@99999999999999999999", "seed 99999999999999999999 is too large"),
    ],
)
def test_bad_sources_are_one_clear_error(src: str, message: str) -> None:
    with pytest.raises(CheckpointError) as info:
        i2s.load_generator(src)
    assert str(info.value).startswith(repr(src)) and message in str(info.value)
    assert "\n" not in str(info.value)


def test_not_registry_names() -> None:
    assert not is_registry_name("random:stylegan1-256")
    assert is_registry_name("ffhq-1024")


def test_deterministic_per_seed_and_different_across_seeds(gens) -> None:
    """(The fixture also checks that building leaves the caller's global RNG alone.)"""
    assert same_state(gens["random:stylegan1-32"], gens["random:stylegan1-32@0"])  # default 0
    assert same_state(gens["random:stylegan2-32"], gens["random:stylegan2-32@0"])
    a, b = gens["random:stylegan1-32@0"].state_dict(), gens["random:stylegan1-32@1"].state_dict()
    for key in a:
        if key.endswith(("weight", "noise_const", "w_avg")) and "noise_strength" not in key:
            assert not torch.equal(a[key], b[key]), key
    z = torch.randn(1, 512, generator=torch.Generator().manual_seed(5))
    imgs = [gens[s](z) for s in ("random:stylegan1-32@0", "random:stylegan1-32@1")]
    assert not torch.allclose(imgs[0], imgs[1])


@pytest.mark.parametrize("src", ["random:stylegan1-32", "random:stylegan2-32"])
def test_shapes_and_api(src: str, gens) -> None:
    G = gens[src]
    assert (G.z_dim, G.w_dim, G.num_ws, G.img_resolution, G.img_channels) == (512, 512, 8, 32, 3)
    assert G.source == src and not G.training
    assert not any(p.requires_grad for p in G.parameters())
    z = torch.randn(2, 512, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ws = G.mapping(z, truncation_psi=0.7)
        img = G.synthesis(ws, noise_mode="const")
    assert ws.shape == (2, 8, 512) and img.shape == (2, 3, 32, 32)
    assert torch.isfinite(img).all() and img.std() > 0


def test_official_configs(gens) -> None:
    """StyleGAN1 = the official G_style defaults (the FFHQ model); StyleGAN2 = config-f."""
    assert gens["random:stylegan1-32"].config == StyleGAN1Config(resolution=32)
    assert gens["random:stylegan2-32"].config == StyleGAN2Config(img_resolution=32)


def test_official_initialisation(gens) -> None:
    G1 = gens["random:stylegan1-32"]  # NVlabs/stylegan: const ones, biases/noise strengths zero
    sd = G1.state_dict()
    assert torch.equal(sd["synthesis_net.const"], torch.ones(1, 512, 4, 4))
    zero = [k for k in sd if k.endswith(("bias", "noise_strength")) and "noise_const" not in k]
    assert zero and all(not sd[k].any() for k in zero)
    fc = sd["mapping_net.layers.0.weight"]  # stored N(0, 1 / lrmul) = N(0, 100^2)
    assert 99 < fc.std() < 101
    assert 0.99 < sd["synthesis_net.layers.1.weight"].std() < 1.01

    G2 = gens["random:stylegan2-32"]  # stylegan2-ada-pytorch: const N(0, 1), style biases 1
    sd = G2.state_dict()
    affine = [k for k in sd if k.endswith("affine.bias")]
    assert affine and all(torch.equal(sd[k], torch.ones_like(sd[k])) for k in affine)
    assert all(not sd[k].any() for k in sd if k.endswith("noise_strength"))
    assert 0.98 < sd["synthesis_network.b4.const"].std() < 1.02

    for G in (G1, G2):  # stored noise: N(0, 1)
        noise = torch.cat([b.flatten() for b in G.noise_buffers()])
        assert abs(noise.mean()) < 0.05 and abs(noise.std() - 1) < 0.05


@pytest.mark.parametrize("src", ["random:stylegan1-32", "random:stylegan2-32"])
def test_w_avg_is_the_sample_mean(src: str, gens) -> None:
    G = gens[src]
    assert G.w_avg.abs().max() > 0  # not the untrained zero
    gen = torch.Generator().manual_seed(99)  # other samples than the ones w_avg came from
    with torch.no_grad():
        w = G.map_z(torch.randn(10_000, 512, generator=gen))  # [N, w_dim]
    # two independent means of 10 000 samples: their difference has std s * sqrt(2 / 10 000)
    tolerance = 6 * w.std(dim=0) * (2 / 10_000) ** 0.5
    assert ((G.w_avg - w.mean(dim=0)).abs() < tolerance).all()


def test_stylegan1_1024_has_the_official_shapes() -> None:
    G = i2s.load_generator("random:stylegan1-1024@7")
    assert isinstance(G, StyleGAN1Generator)
    assert (G.num_ws, G.w_dim, G.img_resolution) == (18, 512, 1024)
    channels = [layer.bias.numel() for layer in G.synthesis_net.layers]  # two layers per res
    assert channels[::2] == [512, 512, 512, 512, 256, 128, 64, 32, 16]  # 4 ... 1024 px
    assert [layer.fused for layer in G.synthesis_net.layers[::2]] == [False] * 5 + [True] * 4
    # NVlabs/stylegan's README prints Gs "Total 26219627" trainable values for this network:
    # ours plus the ToRGB layers of the lower resolutions (lod >= 1), unused at lod 0.
    cfg = G.config
    lower_torgb = sum(3 * cfg.nf(k - 1) + 3 for k in range(2, 10))  # 4 ... 512 px
    assert sum(p.numel() for p in G.parameters()) + lower_torgb == 26_219_627


def test_stylegan2_1024_has_the_config_f_shapes() -> None:
    G = i2s.load_generator("random:stylegan2-1024")
    assert isinstance(G, StyleGAN2Generator)
    assert (G.num_ws, G.w_dim, G.img_resolution) == (18, 512, 1024)
    blocks = G.synthesis_network.blocks()
    assert [b.conv1.weight.shape[0] for b in blocks] == [512] * 5 + [256, 128, 64, 32]
