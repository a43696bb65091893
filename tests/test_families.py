"""Family detection and the StyleGAN2 reader's edge cases, on files written by our fixture
writers in the official layout (the official-made files are in tests/test_official_files.py).

Facts from the official code (NVlabs/stylegan2-ada-pytorch@d72cc7d torch_utils/persistence.py,
NVlabs/stylegan3@c233a91 training/networks_stylegan2.py, autonomousvision/stylegan-xl@4241ff9
training/networks_stylegan3_resetting.py): persistent objects record the bare class name; the
stylegan3 repository's StyleGAN2 Generator takes its synthesis arguments flat and defaults to
num_fp16_res 4 / conv_clamp 256; StyleGAN-XL's mapping network holds a torch.nn.Embedding `embed`
and an `embed_proj`.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import pytest
import torch

import image2stylegan as i2s
from image2stylegan.checkpoints.families import NetworkFamily, identify_network
from image2stylegan.checkpoints.safe_pickle import PersistentObjectStub, safe_pickle_load
from image2stylegan.errors import CheckpointError
from tests.fixtures.official_pickles import persistent_module, write_ada_pickle
from tests.fixtures.stylegan2_fixtures import (
    ada_init_kwargs,
    ada_tensors_from_generator,
    tiny_stylegan2,
    write_ada_pickle_file,
)


def _state(modules: dict[str, Any] | None = None, **attrs: Any) -> dict[str, Any]:
    return {
        "training": False,
        "_parameters": collections.OrderedDict(),
        "_buffers": collections.OrderedDict(),
        "_modules": collections.OrderedDict(modules or {}),
        "_init_args": (),
        "_init_kwargs": {},
        **attrs,
    }


def _stub(class_name: str, modules: dict[str, Any] | None = None, **attrs: Any):
    return PersistentObjectStub(class_name, _state(modules, **attrs))


def _generator(synthesis_children: list[str], mapping_children: list[str] = (), **kwargs):
    synthesis = _stub("SynthesisNetwork", {c: _stub("X") for c in synthesis_children})
    mapping = _stub("MappingNetwork", {c: _stub("FullyConnectedLayer") for c in mapping_children})
    G = _stub("Generator", {"synthesis": synthesis, "mapping": mapping})
    G.state["_init_kwargs"] = dict(kwargs)
    return G


@pytest.mark.parametrize(
    ("G", "family"),
    [
        (_generator(["b4", "b8"], synthesis_kwargs={}), NetworkFamily.STYLEGAN2_ADA),
        (_generator(["b4", "b8"]), NetworkFamily.STYLEGAN2_ADA),  # no arguments: ADA defaults
        (_generator(["b4", "b8"], ["embed", "fc0"], synthesis_kwargs={}),
         NetworkFamily.STYLEGAN2_ADA),  # a conditional StyleGAN2: embed is a persistent FC layer
        (_generator(["b4"], channel_base=512), NetworkFamily.STYLEGAN2_SG3),
        (_generator(["b4"], fused_modconv_default="inference_only"), NetworkFamily.STYLEGAN2_SG3),
        (_generator(["input", "L0_36_512"]), NetworkFamily.STYLEGAN3),
        (_generator(["input", "L0_36_512"], ["embed_proj", "fc0"]), NetworkFamily.STYLEGAN_XL),
        (_generator(["input"], mapping_kwargs={"rand_embedding": False}),
         NetworkFamily.STYLEGAN_XL),
        (_stub("SuperresGenerator"), NetworkFamily.STYLEGAN_XL),
        (_stub("Discriminator"), NetworkFamily.UNKNOWN),
        (_generator(["layers"]), NetworkFamily.UNKNOWN),
        (None, NetworkFamily.UNKNOWN),
    ],
    ids=["ada", "ada-bare", "ada-cond", "sg3-flat", "sg3-fused", "sg3", "xl", "xl-kw", "xl-sr",
         "disc", "odd", "none"],
)  # fmt: skip
def test_identify_network(G: Any, family: NetworkFamily) -> None:
    assert identify_network(G) is family


def test_sg3_modules_without_arguments_are_told_by_their_attributes() -> None:
    G = _generator(["b4"])
    G.submodules["synthesis"].state["num_fp16_res"] = 4  # set by networks_stylegan2.py only
    assert identify_network(G) is NetworkFamily.STYLEGAN2_SG3


def test_a_dotted_class_name_is_read_as_its_last_part() -> None:
    G = _generator(["b4"], synthesis_kwargs={})
    G.class_name = "training.networks.Generator"
    assert identify_network(G) is NetworkFamily.STYLEGAN2_ADA


def test_flat_kwargs_file_loads_with_that_repos_defaults(tmp_path: Path) -> None:
    G = tiny_stylegan2(16)
    kwargs = ada_init_kwargs(G.config)
    synthesis = kwargs.pop("synthesis_kwargs")
    for key in ("num_fp16_res", "conv_clamp"):  # left to networks_stylegan2.py's defaults
        synthesis.pop(key)
    kwargs.update(synthesis, fused_modconv_default=False)
    path = write_ada_pickle_file(tmp_path / "sg3.pkl", ada_tensors_from_generator(G), kwargs)
    H = i2s.load_generator(path)
    assert (H.config.num_fp16_res, H.config.conv_clamp) == (4, 256.0)
    assert H.official_fused_modconv is False  # fused_modconv_default=False: never fused
    assert H.fused_modconv is None  # ... recorded for replays; the fastest path by default
    ws = G.mapping(torch.randn(2, 16))
    assert torch.allclose(H.synthesis(ws), G.synthesis(ws), atol=1e-5)  # clamp 256 never bites


def test_layer_attributes_must_match_the_arguments(tmp_path: Path) -> None:
    """A layer built with another conv_clamp than the arguments say is refused by name."""
    G = tiny_stylegan2(8)
    path = write_ada_pickle_file(
        tmp_path / "a.pkl", ada_tensors_from_generator(G), ada_init_kwargs(G.config)
    )
    data = safe_pickle_load(path)
    layer = data["G_ema"].submodules["synthesis"].submodules["b8"].submodules["conv1"]
    layer.state["conv_clamp"] = 256
    with pytest.raises(
        CheckpointError,
        match=r"built with conv_clamp 256\.0, but its constructor arguments say None",
    ):
        from image2stylegan.checkpoints.stylegan2_ada import generator_from_ada

        generator_from_ada(data, "a.pkl")


def test_positional_constructor_arguments_are_named(tmp_path: Path) -> None:
    G = tiny_stylegan2(8)
    kwargs = ada_init_kwargs(G.config)
    path = write_ada_pickle_file(tmp_path / "a.pkl", ada_tensors_from_generator(G), kwargs)
    data = safe_pickle_load(path)
    net = data["G_ema"]
    order = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")
    net.state["_init_args"] = tuple(kwargs[k] for k in order)
    net.state["_init_kwargs"] = {k: v for k, v in kwargs.items() if k not in order}
    from image2stylegan.checkpoints.stylegan2_ada import generator_from_ada

    assert generator_from_ada(data, "a.pkl").config == G.config


def test_g_ema_that_is_not_a_network(tmp_path: Path) -> None:
    path = write_ada_pickle(tmp_path / "n.pkl", {"G": None, "D": None, "G_ema": None})
    with pytest.raises(CheckpointError, match="'G_ema' is None, not a network pickled by"):
        i2s.load_generator(path)


def test_unknown_class_is_named(tmp_path: Path) -> None:
    net = persistent_module("FancyGenerator", _state())
    path = write_ada_pickle(tmp_path / "n.pkl", {"G_ema": net})
    with pytest.raises(CheckpointError, match=r"G_ema \(class 'FancyGenerator'\) is not a gen"):
        i2s.load_generator(path)
