"""Reader for stylegan2-ada-pytorch pickles (ffhq.pkl, metfaces.pkl, training snapshots, and
TF pickles converted by its legacy.py).

The pickle is a dict with `G`, `D`, `G_ema`, ...; we read `G_ema`, a persistent
`training.networks.Generator` (restored as `PersistentObjectStub`, its source text ignored).
The config comes from the constructor arguments it recorded (`init_kwargs`, with nested
`mapping_kwargs` / `synthesis_kwargs`; absent keys take the official defaults); the tensors from
its module tree. Our parameter names are the official ones under `mapping_network.` /
`synthesis_network.`, so the name table is three renames. Strict: unknown constructor
arguments, missing, unknown or mis-shaped tensors raise one `CheckpointError`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import torch

from ..errors import CheckpointError
from ..models.stylegan2 import StyleGAN2Config, StyleGAN2Generator, setup_filter
from .name_tables import Rule, as_tensor, convert_state
from .safe_pickle import PersistentObjectStub

__all__ = ["ADA_RULES", "config_from_ada_kwargs", "generator_from_ada"]

log = logging.getLogger(__name__)

GENERATOR_CLASS = "training.networks.Generator"

# Official constructor defaults (training/networks.py): Generator, MappingNetwork, SynthesisNetwork
# + SynthesisBlock + SynthesisLayer keyword arguments.
_MAPPING_DEFAULTS: dict[str, Any] = {
    "num_layers": 8,
    "embed_features": None,
    "layer_features": None,
    "activation": "lrelu",
    "lr_multiplier": 0.01,
    "w_avg_beta": 0.995,  # training only (but None means the file has no w_avg)
}
_SYNTHESIS_DEFAULTS: dict[str, Any] = {
    "channel_base": 32768,
    "channel_max": 512,
    "num_fp16_res": 0,
    "conv_clamp": None,
    "architecture": "skip",
    "resample_filter": [1, 3, 3, 1],
    "use_noise": True,
    "activation": "lrelu",
    "fp16_channels_last": False,  # memory layout only
    "kernel_size": 3,
}
_TOP_KEYS = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")

# Our key <- official key. The resample_filter buffers are checked against the config instead.
ADA_RULES = [
    Rule(r"w_avg", "mapping.w_avg"),
    Rule(r"mapping_network\.(.+)", "mapping.{0}"),
    Rule(r"synthesis_network\.(.+)", "synthesis.{0}"),
]
_FILTER_KEYS = r"synthesis\.(.+\.)?resample_filter"


def _merged(section: str, given: Any, defaults: Mapping[str, Any], label: str) -> dict[str, Any]:
    if given is None:
        given = {}
    if not isinstance(given, Mapping):
        raise CheckpointError(f"{label}: G_ema {section} is a {type(given).__name__}, not a dict")
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise CheckpointError(
            f"{label}: G_ema {section} has unsupported argument(s) "
            f"{', '.join(map(repr, unknown))}; not a stylegan2-ada-pytorch generator this loader "
            "knows"
        )
    return {**defaults, **given}


def config_from_ada_kwargs(kwargs: Mapping[str, Any], label: str) -> tuple[StyleGAN2Config, bool]:
    """(config, has_w_avg) from a `training.networks.Generator`'s recorded `init_kwargs`."""
    missing = [k for k in _TOP_KEYS if k not in kwargs]
    unknown = sorted(set(kwargs) - {*_TOP_KEYS, "mapping_kwargs", "synthesis_kwargs"})
    if missing or unknown:
        what = f"lacks {', '.join(missing)}" if missing else f"has unknown {', '.join(unknown)}"
        raise CheckpointError(f"{label}: G_ema constructor arguments {what}")
    m = _merged("mapping_kwargs", kwargs.get("mapping_kwargs"), _MAPPING_DEFAULTS, label)
    s = _merged("synthesis_kwargs", kwargs.get("synthesis_kwargs"), _SYNTHESIS_DEFAULTS, label)
    if s["kernel_size"] != 3:
        raise CheckpointError(f"{label}: kernel_size {s['kernel_size']} is not supported (only 3)")
    taps = s["resample_filter"]
    if taps is None:
        taps = [1]
    if not isinstance(taps, (list, tuple)) or any(isinstance(t, (list, tuple)) for t in taps):
        raise CheckpointError(f"{label}: resample_filter {taps!r} is not supported (1-D taps only)")
    try:
        config = StyleGAN2Config(
            z_dim=int(kwargs["z_dim"]),
            c_dim=int(kwargs["c_dim"]),
            w_dim=int(kwargs["w_dim"]),
            img_resolution=int(kwargs["img_resolution"]),
            img_channels=int(kwargs["img_channels"]),
            mapping_layers=int(m["num_layers"]),
            mapping_embed_features=m["embed_features"],
            mapping_layer_features=m["layer_features"],
            mapping_activation=m["activation"],
            mapping_lr_multiplier=float(m["lr_multiplier"]),
            channel_base=int(s["channel_base"]),
            channel_max=int(s["channel_max"]),
            num_fp16_res=int(s["num_fp16_res"]),
            conv_clamp=None if s["conv_clamp"] is None else float(s["conv_clamp"]),
            architecture=s["architecture"],
            resample_filter=tuple(float(t) for t in taps),
            use_noise=bool(s["use_noise"]),
            activation=s["activation"],
        )
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{label}: unsupported G_ema configuration ({e})") from None
    return config, m["w_avg_beta"] is not None


def _check_filters(tensors: Mapping[str, Any], config: StyleGAN2Config, label: str) -> None:
    expected = setup_filter(config.resample_filter)
    for name, value in tensors.items():
        if re.fullmatch(_FILTER_KEYS, name):
            t = as_tensor(value)
            if t.shape != expected.shape or not torch.allclose(t, expected, rtol=0, atol=1e-6):
                raise CheckpointError(
                    f"{label}: buffer '{name}' is not the filter the config declares "
                    f"({list(config.resample_filter)}); a modified network this loader does not "
                    "know"
                )


def generator_from_ada(data: dict, label: str) -> StyleGAN2Generator:
    """The `G_ema` generator of a stylegan2-ada-pytorch pickle as a `StyleGAN2Generator`."""
    net = data.get("G_ema")
    if not isinstance(net, PersistentObjectStub):
        raise CheckpointError(f"{label}: 'G_ema' is not a stylegan2-ada-pytorch network")
    if net.class_name != GENERATOR_CLASS:
        raise CheckpointError(
            f"{label}: G_ema is a '{net.class_name}', not a stylegan2-ada-pytorch "
            f"'{GENERATOR_CLASS}' (StyleGAN3 and other variants are not supported)"
        )
    if net.state.get("_init_args"):
        raise CheckpointError(f"{label}: G_ema was built with positional arguments; unsupported")
    config, has_w_avg = config_from_ada_kwargs(net.init_kwargs, label)
    tensors = net.named_tensors()
    _check_filters(tensors, config, label)
    G = StyleGAN2Generator(config)
    targets = {k: v.shape for k, v in G.state_dict().items()}
    rules = ADA_RULES
    if not has_w_avg:  # w_avg_beta=None: the official network keeps no mean latent
        targets.pop("w_avg")
        rules = ADA_RULES[1:]
        log.warning("%s: G_ema tracks no w_avg (w_avg_beta=None); truncation uses w_avg = 0", label)
    state = convert_state(targets, tensors, rules, label, ignore=[_FILTER_KEYS])
    state.setdefault("w_avg", torch.zeros(config.w_dim))
    G.load_state_dict(state, strict=True)
    return G
