"""Reader for NVlabs/stylegan3 alias-free snapshots (`--cfg=stylegan3-t` / `stylegan3-r`: NVIDIA's
published stylegan3-*.pkl and every training snapshot of that repository).

The pickle is a dict with `G`, `D`, `G_ema`, `augment_pipe`, `training_set_kwargs`; we read
`G_ema`, a persistent `networks_stylegan3.Generator` restored as `PersistentObjectStub` (its
source text is never kept or run). Its meta `class_name` is the bare 'Generator' that
stylegan2-ada-pytorch, the stylegan3 repo's StyleGAN2 and StyleGAN-XL also write, so the family
is recognised by structure: a `synthesis` module with an `input` module holding Fourier `freqs`
(`is_stylegan3_network`). The config comes from the recorded constructor arguments (absent keys
take the official defaults of NVlabs/stylegan3 @ c233a91), the tensors from the module tree under
their official names. Strict: unknown constructor arguments, missing, unknown or mis-shaped
tensors raise one `CheckpointError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..errors import CheckpointError
from ..models.stylegan3 import StyleGAN3Config, StyleGAN3Generator, layer_specs
from .build import planned_shapes
from .families import NetworkFamily
from .name_tables import Rule, convert_state
from .safe_pickle import PersistentObjectStub

__all__ = ["STYLEGAN3_RULES", "config_from_stylegan3_kwargs", "generator_from_stylegan3",
           "is_stylegan3_network"]  # fmt: skip

FAMILY = "a StyleGAN3 (alias-free) network"

# Official constructor defaults (training/networks_stylegan3.py): MappingNetwork kwargs, then
# SynthesisNetwork + SynthesisLayer kwargs (the Generator passes the latter through flat).
_MAPPING_DEFAULTS: dict[str, Any] = {
    "num_layers": 2,
    "lr_multiplier": 0.01,
    "w_avg_beta": 0.998,  # training only
}
_SYNTHESIS_DEFAULTS: dict[str, Any] = {
    "channel_base": 32768,
    "channel_max": 512,
    "num_layers": 14,
    "num_critical": 2,
    "first_cutoff": 2,
    "first_stopband": 2**2.1,
    "last_stopband_rel": 2**0.3,
    "margin_size": 10,
    "output_scale": 0.25,
    "num_fp16_res": 4,
    "conv_kernel": 3,
    "filter_size": 6,
    "lrelu_upsampling": 2,
    "use_radial_filters": False,
    "conv_clamp": 256,
    "magnitude_ema_beta": 0.999,  # training only
}
_TOP_KEYS = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")

# Our key <- official key.
STYLEGAN3_RULES = [
    Rule(r"w_avg", "mapping.w_avg"),
    Rule(r"mapping_network\.(.+)", "mapping.{0}"),
    Rule(r"synthesis_network\.(.+)", "synthesis.{0}"),
]


def is_stylegan3_network(net: Any) -> bool:
    """True for a restored `networks_stylegan3.Generator` (or its synthesis network): the
    alias-free family, told apart from StyleGAN2-style generators by its Fourier input."""
    if not isinstance(net, PersistentObjectStub):
        return False
    synthesis = net.submodules.get("synthesis", net)
    if not isinstance(synthesis, PersistentObjectStub):
        return False
    inp = synthesis.submodules.get("input")
    return isinstance(inp, PersistentObjectStub) and "freqs" in (inp.state.get("_buffers") or {})


def config_from_stylegan3_kwargs(kwargs: Mapping[str, Any], label: str) -> StyleGAN3Config:
    """Our config from a `networks_stylegan3.Generator`'s recorded `init_kwargs`."""
    missing = [k for k in _TOP_KEYS if k not in kwargs]
    if missing:
        raise CheckpointError(f"{label}: G_ema constructor arguments lack {', '.join(missing)}")
    mapping = kwargs.get("mapping_kwargs") or {}
    if not isinstance(mapping, Mapping):
        raise CheckpointError(
            f"{label}: G_ema mapping_kwargs is a {type(mapping).__name__}, not a dict"
        )
    synthesis = {k: v for k, v in kwargs.items() if k not in (*_TOP_KEYS, "mapping_kwargs")}
    for section, given, defaults in (
        ("mapping_kwargs", mapping, _MAPPING_DEFAULTS),
        ("synthesis arguments", synthesis, _SYNTHESIS_DEFAULTS),
    ):
        unknown = sorted(set(given) - set(defaults))
        if unknown:
            raise CheckpointError(
                f"{label}: G_ema {section} include unsupported {', '.join(map(repr, unknown))}; "
                f"not {FAMILY} this loader knows"
            )
    m = {**_MAPPING_DEFAULTS, **mapping}
    s = {**_SYNTHESIS_DEFAULTS, **synthesis}
    try:
        return StyleGAN3Config(
            z_dim=int(kwargs["z_dim"]),
            c_dim=int(kwargs["c_dim"]),
            w_dim=int(kwargs["w_dim"]),
            img_resolution=int(kwargs["img_resolution"]),
            img_channels=int(kwargs["img_channels"]),
            mapping_layers=int(m["num_layers"]),
            mapping_lr_multiplier=float(m["lr_multiplier"]),
            channel_base=int(s["channel_base"]),
            channel_max=int(s["channel_max"]),
            num_layers=int(s["num_layers"]),
            num_critical=int(s["num_critical"]),
            first_cutoff=float(s["first_cutoff"]),
            first_stopband=float(s["first_stopband"]),
            last_stopband_rel=float(s["last_stopband_rel"]),
            margin_size=int(s["margin_size"]),
            output_scale=float(s["output_scale"]),
            num_fp16_res=int(s["num_fp16_res"]),
            conv_kernel=int(s["conv_kernel"]),
            filter_size=int(s["filter_size"]),
            lrelu_upsampling=int(s["lrelu_upsampling"]),
            use_radial_filters=bool(s["use_radial_filters"]),
            conv_clamp=None if s["conv_clamp"] is None else float(s["conv_clamp"]),
            magnitude_ema_beta=float(s["magnitude_ema_beta"]),
        )
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{label}: unsupported G_ema configuration ({e})") from None


def generator_from_stylegan3(data: Any, label: str) -> StyleGAN3Generator:
    """The `G_ema` of a stylegan3 snapshot dict (or a restored Generator stub itself) as a
    `StyleGAN3Generator`, float32 on the CPU."""
    net = data.get("G_ema") if isinstance(data, dict) else data
    if not is_stylegan3_network(net):
        raise CheckpointError(f"{label}: 'G_ema' is not {FAMILY}")
    assert isinstance(net, PersistentObjectStub)
    if net.state.get("_init_args"):
        raise CheckpointError(f"{label}: G_ema was built with positional arguments; unsupported")
    config = config_from_stylegan3_kwargs(net.init_kwargs, label)
    targets = planned_shapes(lambda: StyleGAN3Generator(config), label)
    recorded = net.submodules["synthesis"].state.get("layer_names")
    ours = [spec.name for spec in layer_specs(config)]
    if recorded is not None and list(recorded) != ours:
        raise CheckpointError(
            f"{label}: the synthesis layers {list(recorded)} are not the ones its constructor "
            f"arguments give ({ours}); a modified network this loader does not know"
        )
    state = convert_state(targets, net.named_tensors(), STYLEGAN3_RULES, label)
    G = StyleGAN3Generator(config)  # built once every tensor is known to be in the file
    G.load_state_dict(state, strict=True)
    return G.to(torch.float32)


def generator_from_persistent(
    net: PersistentObjectStub, family: NetworkFamily, label: str
) -> StyleGAN3Generator:
    """The reader `families.READERS` dispatches the alias-free family to."""
    if family is not NetworkFamily.STYLEGAN3:
        raise ValueError(f"not the StyleGAN3 family: {family}")
    return generator_from_stylegan3(net, label)
