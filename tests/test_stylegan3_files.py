"""StyleGAN3 files and sources: the convert round trip, what the reader refuses (one line each),
`random:stylegan3-{t,r}-RES` and the registry entries of NVIDIA's ten published pickles."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch

import image2stylegan as i2s
from image2stylegan.checkpoints.random_generators import (
    STYLEGAN3_MAGNITUDE_EMA_BETA,
    RandomSource,
    parse_random_source,
)
from image2stylegan.checkpoints.registry import REGISTRY
from image2stylegan.checkpoints.safe_pickle import safe_pickle_load
from image2stylegan.checkpoints.stylegan3 import generator_from_stylegan3, is_stylegan3_network
from image2stylegan.errors import CheckpointError
from image2stylegan.models.stylegan3 import StyleGAN3Generator
from tests.test_convert import run

SNAPSHOTS = ["t32", "r32", "t64c"]


@pytest.mark.parametrize("name", SNAPSHOTS)
def test_convert_round_trip_is_bit_identical(name, data_dir, tmp_path: Path, capsys) -> None:
    src = data_dir / f"stylegan3_{name}.pkl"
    out = tmp_path / "G.safetensors"
    code, stdout, err = run(capsys, "convert", str(src), "--out", str(out), "--json")
    assert code == 0, err
    assert json.loads(stdout)["architecture"] == "stylegan3"
    G, H = i2s.load_generator(src), i2s.load_generator(out)
    assert isinstance(H, StyleGAN3Generator) and G.config == H.config
    a, b = G.state_dict(), H.state_dict()  # every tensor: filters, transform, input gains
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    c = torch.eye(G.c_dim)[:2] if G.c_dim else None
    z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for psi, cutoff in ((1.0, None), (0.6, 3)):
            assert torch.equal(G.mapping(z, psi, cutoff, c=c), H.mapping(z, psi, cutoff, c=c))
        ws = G.mapping(z, c=c)
        assert torch.equal(G.synthesis(ws), H.synthesis(ws))
        G.set_transform((0.1, 0.2), 30)
        H.set_transform((0.1, 0.2), 30)
        assert torch.equal(G.synthesis(ws), H.synthesis(ws))


# --------------------------------------------------------------------------------------------
# Refusals: one CheckpointError line naming the file


def _snapshot(data_dir: Path) -> dict:
    return safe_pickle_load(data_dir / "stylegan3_t32.pkl")


def _layer(net, index: int):
    synthesis = net.submodules["synthesis"]
    return synthesis.submodules[synthesis.state["layer_names"][index]]


def _unknown_kwarg(d):
    d["G_ema"].state["_init_kwargs"] = {**d["G_ema"].init_kwargs, "fancy_option": 1}


def _unknown_mapping_kwarg(d):
    kwargs = copy.deepcopy(d["G_ema"].init_kwargs)
    kwargs["mapping_kwargs"]["embed_features"] = 4
    d["G_ema"].state["_init_kwargs"] = kwargs


def _missing_kwarg(d):
    kwargs = d["G_ema"].init_kwargs
    del kwargs["w_dim"]
    d["G_ema"].state["_init_kwargs"] = kwargs


def _other_channel_base(d):
    d["G_ema"].state["_init_kwargs"] = {**d["G_ema"].init_kwargs, "channel_base": 512}


def _missing_buffer(d):
    del _layer(d["G_ema"], 3).state["_buffers"]["magnitude_ema"]


def _wrong_shape(d):
    _layer(d["G_ema"], 2).state["_parameters"]["bias"] = torch.zeros(5)


def _extra_tensor(d):
    _layer(d["G_ema"], 0).state["_buffers"]["noise_const"] = torch.zeros(36, 36)


def _positional(d):
    d["G_ema"].state["_init_args"] = (12, 0)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_unknown_kwarg, "G_ema synthesis arguments include unsupported 'fancy_option'"),
        (_unknown_mapping_kwarg, "G_ema mapping_kwargs include unsupported 'embed_features'"),
        (_missing_kwarg, "G_ema constructor arguments lack w_dim"),
        (_other_channel_base, "are not the ones its constructor arguments give"),
        (_missing_buffer, "missing tensor 'synthesis.L3_36_16.magnitude_ema'"),
        (_wrong_shape, "tensor 'synthesis.L2_36_16.bias' has shape [5], expected [16]"),
        (_extra_tensor, "unknown tensor 'synthesis.L0_36_16.noise_const'"),
        (_positional, "built with positional arguments"),
    ],
)
def test_damaged_snapshots_are_one_clear_error(data_dir, damage, message) -> None:
    data = _snapshot(data_dir)
    damage(data)
    with pytest.raises(CheckpointError) as info:
        generator_from_stylegan3(data, "snap.pkl")
    text = str(info.value)
    assert text.startswith("snap.pkl: ") and message in text and "\n" not in text


def test_truncated_snapshot(data_dir, tmp_path: Path) -> None:
    cut = tmp_path / "cut.pkl"
    cut.write_bytes((data_dir / "stylegan3_r32.pkl").read_bytes()[:100_000])
    with pytest.raises(CheckpointError) as info:
        i2s.load_generator(cut)
    assert str(info.value) == f"{cut}: the file ends early (truncated download?)"


def test_detection_by_structure(data_dir) -> None:
    """All four networks a stylegan3-repo snapshot holds are bare-named persistent objects;
    only the generators with a Fourier input are StyleGAN3."""
    data = _snapshot(data_dir)
    assert data["G_ema"].class_name == "Generator"
    assert is_stylegan3_network(data["G_ema"]) and is_stylegan3_network(data["G"])
    assert not is_stylegan3_network(data["D"]) and not is_stylegan3_network(data["augment_pipe"])
    with pytest.raises(CheckpointError, match="'G_ema' is not a StyleGAN3"):
        generator_from_stylegan3({"G_ema": data["D"]}, "d.pkl")


# --------------------------------------------------------------------------------------------
# random:stylegan3-t-RES / random:stylegan3-r-RES


@pytest.fixture(scope="module")
def random_gens() -> dict[str, StyleGAN3Generator]:
    torch.manual_seed(5)
    expected = torch.rand(2)
    torch.manual_seed(5)
    sources = ("random:stylegan3-t-16", "random:stylegan3-r-16", "random:stylegan3-r-16@1")
    out = {src: i2s.load_generator(src) for src in sources}
    assert torch.equal(torch.rand(2), expected), "building touched the global RNG"
    return out


def test_random_parse_and_refusals() -> None:
    assert parse_random_source("random:stylegan3-r-1024@2") == RandomSource("stylegan3-r", 1024, 2)
    for src, message in (
        ("random:stylegan3-x-256", "unknown architecture 'stylegan3-x'"),
        ("random:stylegan3-t-8", "resolution 8 is not a power of two between 16 and 4096"),
        ("random:stylegan3-256", "unknown architecture 'stylegan3'"),
    ):
        with pytest.raises(CheckpointError, match=message):
            i2s.load_generator(src)


def test_random_official_train_py_configs(random_gens) -> None:
    t, r = random_gens["random:stylegan3-t-16"], random_gens["random:stylegan3-r-16"]
    assert (t.config.channel_base, t.config.channel_max, t.config.conv_kernel) == (32768, 512, 3)
    assert (r.config.channel_base, r.config.channel_max, r.config.conv_kernel) == (65536, 1024, 1)
    assert r.config.use_radial_filters and not t.config.use_radial_filters
    for G in (t, r):
        assert G.config.mapping_layers == 2 and G.config.num_fp16_res == 4
        assert G.config.conv_clamp == 256 and G.num_ws == 16 and G.img_resolution == 16
        assert math.isclose(G.config.magnitude_ema_beta, 0.5 ** (32 / 20000))
        assert G.config.magnitude_ema_beta == STYLEGAN3_MAGNITUDE_EMA_BETA
        assert not G.training and not any(p.requires_grad for p in G.parameters())
        torch.testing.assert_close(G.transform, torch.eye(3), rtol=0, atol=0)
        inp = G.synthesis_network.input
        assert float(inp.freqs.norm(dim=1).max()) <= inp.bandwidth  # inside the disc
        assert torch.equal(inp.affine.bias, torch.tensor([1.0, 0, 0, 0]))
        assert not inp.affine.weight.any()  # the official zero init of the input affine
        assert G.w_avg.abs().sum() > 0  # the sample mean, not the initial zeros


def test_random_generators_run_and_differ_by_seed(random_gens) -> None:
    a, b = random_gens["random:stylegan3-r-16"], random_gens["random:stylegan3-r-16@1"]
    z = torch.randn(1, 512, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # one image: the 1024-channel official layers are slow on CPU
        img = a(z, 0.7)
    assert img.shape == (1, 3, 16, 16) and torch.isfinite(img).all()
    assert 0.01 < float(img.std()) < 2
    sa, sb = a.state_dict(), b.state_dict()
    assert not torch.equal(sa["synthesis_network.input.freqs"], sb["synthesis_network.input.freqs"])
    again = i2s.load_generator("random:stylegan3-r-16").state_dict()
    assert all(torch.equal(again[k], sa[k]) for k in sa)  # the seed fixes every tensor


# --------------------------------------------------------------------------------------------
# Registry


def test_registry_has_the_published_pickles() -> None:
    entries = {n: e for n, e in REGISTRY.items() if (e.architecture or "").startswith("stylegan3")}
    assert len(entries) == 12  # README.md lists 6 per config (the issue said ten)
    base = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/"
    for cfg in ("t", "r"):
        for dataset, res in (("ffhq", 1024), ("ffhqu", 1024), ("ffhqu", 256),
                             ("metfaces", 1024), ("metfacesu", 1024), ("afhqv2", 512)):  # fmt: skip
            entry = entries[f"{dataset}-{res}-stylegan3-{cfg}"]
            filename = f"stylegan3-{cfg}-{dataset}-{res}x{res}.pkl"
            assert entry.filename == filename and entry.urls == (base + filename,)
            assert entry.architecture == f"stylegan3-{cfg}" and entry.resolution == res
            assert entry.sha256 is None and entry.size is None  # recorded at first download
            assert entry.default_align == (dataset != "afhqv2")


def test_fixture_checksums_match_the_data_readme(data_dir) -> None:
    import hashlib
    import re

    rows = re.findall(
        r"\| `(stylegan3_\w+\.(?:pkl|npz))` \| (\d+) \| ([0-9a-f]{64}) \|",
        (data_dir / "README.md").read_text(),
    )
    assert len(rows) == 6
    for name, size, digest in rows:
        data = (data_dir / name).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (int(size), digest), name
