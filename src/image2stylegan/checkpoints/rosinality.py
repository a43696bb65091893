"""Reader for rosinality/stylegan2-pytorch checkpoints (`.pt` with `g_ema`, `latent_avg`, ...).

`g_ema` is the state dict of rosinality's `Generator(size, style_dim, n_mlp,
channel_multiplier)`; the file records no config, so it is inferred from the keys and shapes:
`n_mlp` = number of `style.{i}` layers, `style_dim` = their width (= z_dim = w_dim), `size` from
the number of `to_rgbs`, and the channels per resolution from the conv weights (rosinality's
channel table: 512 up to 32 px, then 16384 * channel_multiplier / r, i.e. our channel_base =
16384 * channel_multiplier, channel_max = 512). The network is StyleGAN2 config-e/f ('skip',
lrelu, [1, 3, 3, 1] filter, mapping lr multiplier 0.01 — rosinality's fixed `lr_mlp` default,
which the file does not record).

Mean latent: `latent_avg` (TF `dlatent_avg`, saved by rosinality's convert_weight.py) when the
file has it; otherwise (files from rosinality's train.py) w_avg is estimated as rosinality's
generate.py / projector.py do (`mean_latent`: the mean of the mapping of random z), from 4096
z drawn with a fixed seed (0) so that loading is deterministic.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from typing import Any

import torch

from ..errors import CheckpointError
from ..models.stylegan2 import StyleGAN2Config, StyleGAN2Generator, setup_filter
from .build import planned_shapes
from .name_tables import Layout, Rule, as_tensor, convert_state, leading_ones

__all__ = [
    "MEAN_LATENT_SAMPLES",
    "MEAN_LATENT_SEED",
    "config_from_rosinality",
    "generator_from_rosinality",
    "rosinality_rules",
]

log = logging.getLogger(__name__)

MEAN_LATENT_SAMPLES = 4096  # rosinality generate.py's --truncation_mean default
MEAN_LATENT_SEED = 0

_TORGB_BIAS = Layout(lambda s: (1, *s, 1, 1), lambda t: t)  # [1, C, 1, 1] -> [C]
_FILTER_KEYS = r"(convs\.\d+\.conv\.blur|to_rgbs\.\d+\.upsample)\.kernel"


def _block_index(m: re.Match[str]) -> int:
    return int(math.log2(int(m[1]))) - 3  # b8 -> 0, b16 -> 1, ...


def _layer_name(m: re.Match[str]) -> str:
    if m[1] == "4":
        return "conv1"
    return f"convs.{2 * _block_index(m) + (0 if m[2] == 'conv0' else 1)}"


def _torgb_name(m: re.Match[str]) -> str:
    return "to_rgb1" if m[1] == "4" else f"to_rgbs.{_block_index(m)}"


def _noise_name(m: re.Match[str]) -> str:
    index = 2 * int(math.log2(int(m[1]))) - (5 if m[2] == "conv0" else 4)
    return f"noises.noise_{index}"


def rosinality_rules() -> list[Rule]:
    """Our key <- rosinality `g_ema` key."""
    layer = r"synthesis_network\.b(\d+)\.(conv0|conv1)\."
    torgb = r"synthesis_network\.b(\d+)\.torgb\."
    return [
        Rule(r"mapping_network\.fc(\d+)\.(weight|bias)", lambda m: f"style.{int(m[1]) + 1}.{m[2]}"),
        Rule(r"synthesis_network\.b4\.const", "input.input", leading_ones(1)),
        Rule(layer + r"weight", lambda m: _layer_name(m) + ".conv.weight", leading_ones(1)),
        Rule(
            layer + r"affine\.(weight|bias)", lambda m: f"{_layer_name(m)}.conv.modulation.{m[3]}"
        ),
        Rule(
            layer + r"noise_strength", lambda m: _layer_name(m) + ".noise.weight", leading_ones(1)
        ),
        Rule(layer + r"bias", lambda m: _layer_name(m) + ".activate.bias"),
        Rule(layer + r"noise_const", _noise_name, leading_ones(2)),
        Rule(torgb + r"weight", lambda m: _torgb_name(m) + ".conv.weight", leading_ones(1)),
        Rule(
            torgb + r"affine\.(weight|bias)", lambda m: f"{_torgb_name(m)}.conv.modulation.{m[2]}"
        ),
        Rule(torgb + r"bias", lambda m: _torgb_name(m) + ".bias", _TORGB_BIAS),
    ]


def _shape(state: Mapping[str, Any], key: str, ndim: int, label: str) -> tuple[int, ...]:
    value = state.get(key)
    if value is None:
        raise CheckpointError(
            f"{label}: g_ema has no '{key}'; not a rosinality StyleGAN2 generator"
        )
    shape = tuple(getattr(value, "shape", ()))
    if len(shape) != ndim:
        raise CheckpointError(
            f"{label}: g_ema '{key}' has shape {list(shape)}, expected {ndim} dims"
        )
    return shape


def config_from_rosinality(state: Mapping[str, Any], label: str) -> StyleGAN2Config:
    """Infer (size, style_dim, n_mlp, channels) from a `g_ema` state dict."""
    n_mlp = 0
    while f"style.{n_mlp + 1}.weight" in state:
        n_mlp += 1
    if n_mlp == 0:
        raise CheckpointError(f"{label}: g_ema has no 'style.1.weight'; not a rosinality generator")
    style_dim = _shape(state, "style.1.weight", 2, label)[1]
    n_rgbs = 0
    while f"to_rgbs.{n_rgbs}.conv.weight" in state:
        n_rgbs += 1
    size = 2 ** (n_rgbs + 2)
    channels = {4: _shape(state, "input.input", 4, label)[1]}
    for k in range(n_rgbs):
        channels[2 ** (k + 3)] = _shape(state, f"convs.{2 * k}.conv.weight", 5, label)[1]
    img_channels = _shape(state, "to_rgb1.conv.weight", 5, label)[1]
    # channels(r) = min(channel_base // r, channel_max): channel_max = the widest; channel_base
    # from the first resolution below it (any base keeping all resolutions at max works if none).
    channel_max = max(channels.values())
    narrower = [r for r in sorted(channels) if channels[r] < channel_max]
    channel_base = channels[narrower[0]] * narrower[0] if narrower else channel_max * size
    config = StyleGAN2Config(
        z_dim=style_dim,
        w_dim=style_dim,
        img_resolution=size,
        img_channels=img_channels,
        mapping_layers=n_mlp,
        channel_base=channel_base,
        channel_max=channel_max,
    )
    actual = {r: config.channels(r) for r in channels}
    if actual != channels:
        raise CheckpointError(
            f"{label}: g_ema channel widths {channels} do not follow a min(base / r, max) table; "
            "unsupported channel_multiplier"
        )
    return config


def _check_filters(state: Mapping[str, Any], config: StyleGAN2Config, label: str) -> None:
    expected = setup_filter(config.resample_filter) * 4  # rosinality stores the upsampling gain
    for name, value in state.items():
        if re.fullmatch(_FILTER_KEYS, name):
            t = as_tensor(value)
            if t.shape != expected.shape or not torch.allclose(t, expected, rtol=0, atol=1e-6):
                raise CheckpointError(
                    f"{label}: '{name}' is not the [1, 3, 3, 1] blur kernel; a blur_kernel other "
                    "than the default is not supported"
                )


@torch.no_grad()
def mean_latent(
    G: StyleGAN2Generator, n: int = MEAN_LATENT_SAMPLES, seed: int = MEAN_LATENT_SEED
) -> torch.Tensor:
    """w_avg estimated as rosinality's `Generator.mean_latent(n)`: mean of mapping(z ~ N(0, I))."""
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed))
    return G.map_z(z).mean(dim=0)  # [w_dim]


def generator_from_rosinality(ckpt: dict, label: str) -> StyleGAN2Generator:
    """The `g_ema` generator of a rosinality stylegan2-pytorch checkpoint."""
    state = ckpt.get("g_ema")
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise CheckpointError(f"{label}: 'g_ema' is not a state dict of tensors")
    config = config_from_rosinality(state, label)
    _check_filters(state, config, label)
    shapes = planned_shapes(lambda: StyleGAN2Generator(config), label)
    targets = {k: v for k, v in shapes.items() if k != "w_avg"}
    converted = convert_state(targets, state, rosinality_rules(), label, ignore=[_FILTER_KEYS])
    latent_avg = ckpt.get("latent_avg")
    if latent_avg is not None:
        if not isinstance(latent_avg, torch.Tensor) or latent_avg.numel() != config.w_dim:
            shape = list(getattr(latent_avg, "shape", []))
            raise CheckpointError(
                f"{label}: 'latent_avg' has shape {shape}, expected [{config.w_dim}]"
            )
        converted["w_avg"] = as_tensor(latent_avg).reshape(config.w_dim)
    else:
        converted["w_avg"] = torch.zeros(config.w_dim)
    G = StyleGAN2Generator(config)  # built once every tensor is known to be in the file
    G.load_state_dict(converted, strict=True)
    if latent_avg is None:
        G.w_avg.copy_(mean_latent(G))
        log.info(
            "%s: no 'latent_avg' in the file; w_avg = mean mapping of %d random z (seed %d)",
            label, MEAN_LATENT_SAMPLES, MEAN_LATENT_SEED,
        )  # fmt: skip
    return G
