"""Reader for the StyleGAN2 networks of NVIDIA's PyTorch code: stylegan2-ada-pytorch pickles
(ffhq.pkl, metfaces.pkl, training snapshots, TF pickles converted by its legacy.py) and the
stylegan3 repository's `--cfg=stylegan2` pickles (`training/networks_stylegan2.py`, the same
layers and arithmetic).

The pickle is a dict with `G`, `D`, `G_ema`, ...; we read `G_ema`, a persistent object restored as
`PersistentObjectStub` (its source text ignored), after `families.identify_network` has told the
two families apart. The config comes from the constructor arguments it recorded (`_init_kwargs`;
absent keys take that family's official defaults, which differ: the stylegan3 repository passes
the synthesis arguments flat and defaults to `num_fp16_res=4`, `conv_clamp=256`), checked against
the attributes the modules themselves recorded (`conv_clamp`, `use_fp16`, `architecture`, ...);
the tensors come from its module tree. Our parameter names are the official ones under
`mapping_network.` / `synthesis_network.`, so the name table is three renames. Strict: unknown
constructor arguments, missing, unknown or mis-shaped tensors raise one `CheckpointError`.

Official code checked against: NVlabs/stylegan2-ada-pytorch@d72cc7d041b42ec8e806021a205ed9349f87c6a4
training/networks.py and NVlabs/stylegan3@c233a919a6faee6e36a316ddd4eddababad1adf9
training/networks_stylegan2.py.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import torch

from ..errors import CheckpointError
from ..models.stylegan2 import StyleGAN2Config, StyleGAN2Generator, setup_filter
from .build import planned_shapes
from .families import SG3_FLAT_SYNTHESIS_KEYS, NetworkFamily, identify_network, reader_for
from .name_tables import Rule, as_tensor, convert_state
from .safe_pickle import PersistentObjectStub

__all__ = [
    "ADA_RULES",
    "config_from_ada_kwargs",
    "config_from_init_kwargs",
    "generator_from_ada",
    "generator_from_persistent",
]

log = logging.getLogger(__name__)

# Official constructor defaults: Generator, MappingNetwork, SynthesisNetwork + SynthesisBlock +
# SynthesisLayer keyword arguments, stylegan2-ada-pytorch training/networks.py ...
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
# ... and the stylegan3 repository's training/networks_stylegan2.py, where they differ.
_SG3_MAPPING_DEFAULTS = {**_MAPPING_DEFAULTS, "w_avg_beta": 0.998}
_SG3_SYNTHESIS_DEFAULTS = {
    **_SYNTHESIS_DEFAULTS,
    "num_fp16_res": 4,  # SynthesisNetwork default
    "conv_clamp": 256,  # SynthesisBlock default (applied in float32 too)
    "fused_modconv_default": True,  # True | False | 'inference_only'
}
assert set(_SG3_SYNTHESIS_DEFAULTS) == SG3_FLAT_SYNTHESIS_KEYS
_TOP_KEYS = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")
# Positional constructor arguments, in the order of each Generator's signature.
_ADA_POSITIONAL = (*_TOP_KEYS, "mapping_kwargs", "synthesis_kwargs")
_SG3_POSITIONAL = (*_TOP_KEYS, "mapping_kwargs")

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
            f"{', '.join(map(repr, unknown))}; not a StyleGAN2 generator this loader knows"
        )
    return {**defaults, **given}


def config_from_ada_kwargs(kwargs: Mapping[str, Any], label: str) -> tuple[StyleGAN2Config, bool]:
    """(config, has_w_avg) from a stylegan2-ada-pytorch Generator's recorded `init_kwargs`."""
    config, has_w_avg, _ = config_from_init_kwargs(kwargs, NetworkFamily.STYLEGAN2_ADA, label)
    return config, has_w_avg


def config_from_init_kwargs(
    kwargs: Mapping[str, Any], family: NetworkFamily, label: str
) -> tuple[StyleGAN2Config, bool, Any]:
    """(config, has_w_avg, fused_modconv_default) from a Generator's `init_kwargs`.

    `family` picks the layout and defaults: STYLEGAN2_ADA nests `mapping_kwargs` and
    `synthesis_kwargs`; STYLEGAN2_SG3 nests `mapping_kwargs` and takes the rest flat.
    """
    sg3 = family is NetworkFamily.STYLEGAN2_SG3
    nested = ("mapping_kwargs",) if sg3 else ("mapping_kwargs", "synthesis_kwargs")
    flat = SG3_FLAT_SYNTHESIS_KEYS if sg3 else frozenset()
    missing = [k for k in _TOP_KEYS if k not in kwargs]
    unknown = sorted(set(kwargs) - {*_TOP_KEYS, *nested, *flat})
    if missing or unknown:
        what = f"lacks {', '.join(missing)}" if missing else f"has unknown {', '.join(unknown)}"
        raise CheckpointError(f"{label}: G_ema constructor arguments {what}")
    mapping_defaults = _SG3_MAPPING_DEFAULTS if sg3 else _MAPPING_DEFAULTS
    m = _merged("mapping_kwargs", kwargs.get("mapping_kwargs"), mapping_defaults, label)
    if sg3:
        s = {**_SG3_SYNTHESIS_DEFAULTS, **{k: kwargs[k] for k in flat if k in kwargs}}
    else:
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
            mapping_embed_features=_optional_int(m["embed_features"]),
            mapping_layer_features=_optional_int(m["layer_features"]),
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
    return config, m["w_avg_beta"] is not None, s.get("fused_modconv_default")


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _named_kwargs(net: PersistentObjectStub, family: NetworkFamily, label: str) -> dict[str, Any]:
    """`_init_kwargs`, with any positional `_init_args` named as the constructor names them."""
    kwargs = net.init_kwargs
    args = net.state.get("_init_args") or ()
    if not isinstance(args, (tuple, list)):
        raise CheckpointError(f"{label}: G_ema records constructor arguments of an odd kind")
    names = _SG3_POSITIONAL if family is NetworkFamily.STYLEGAN2_SG3 else _ADA_POSITIONAL
    if len(args) > len(names) or any(n in kwargs for n in names[: len(args)]):
        raise CheckpointError(f"{label}: G_ema was built with positional arguments it cannot take")
    return {**dict(zip(names[: len(args)], args, strict=True)), **kwargs}


# --- attributes the official modules recorded --------------------------------------------------


def _module_attributes(net: PersistentObjectStub) -> dict[str, set]:
    """Values of the config-bearing attributes the synthesis modules store (the ones the official
    forward pass reads), each as the set of values found."""
    seen: dict[str, set] = {k: set() for k in ("conv_clamp", "use_noise", "activation")}
    seen.update(architecture=set(), fp16_blocks=set())
    synthesis = net.submodules.get("synthesis")
    if not isinstance(synthesis, PersistentObjectStub):
        return seen
    fp16, has_fp16_flags = 0, False
    for name, block in synthesis.submodules.items():
        if not (isinstance(block, PersistentObjectStub) and re.fullmatch(r"b\d+", name)):
            continue
        if "architecture" in block.state:
            seen["architecture"].add(block.state["architecture"])
        if "use_fp16" in block.state:
            has_fp16_flags = True
            fp16 += bool(block.state["use_fp16"])
        for layer_name, layer in block.submodules.items():
            if not isinstance(layer, PersistentObjectStub):
                continue
            for key in ("conv_clamp", "use_noise", "activation"):
                if key in layer.state and layer_name in ("conv0", "conv1"):
                    seen[key].add(layer.state[key])
            if layer_name == "torgb" and "conv_clamp" in layer.state:
                seen["conv_clamp"].add(layer.state["conv_clamp"])
    if has_fp16_flags:
        seen["fp16_blocks"].add(fp16)
    return seen


def _check_attributes(net: PersistentObjectStub, config: StyleGAN2Config, label: str) -> None:
    """The config read from the constructor arguments must be the one the modules were built
    with: a disagreement means a file this reader misreads, so refuse it by name."""
    seen = _module_attributes(net)
    fp16_blocks = sum(
        1
        for i in range(2, config.img_resolution.bit_length())
        if 2**i >= max(2 ** (config.img_resolution.bit_length() - config.num_fp16_res), 8)
    )
    expected = {
        "conv_clamp": config.conv_clamp,
        "use_noise": config.use_noise,
        "activation": config.activation,
        "architecture": config.architecture,
        "fp16_blocks": fp16_blocks,
    }
    for key, value in expected.items():
        found = seen[key]
        if key == "conv_clamp":
            found = {None if v is None else float(v) for v in found}
        if found and found != {value}:
            shown = ", ".join(sorted(map(repr, found)))
            raise CheckpointError(
                f"{label}: G_ema's layers were built with {key} {shown}, but its constructor "
                f"arguments say {value!r}; a modified network this loader does not know"
            )


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


def generator_from_persistent(
    net: PersistentObjectStub, family: NetworkFamily, label: str
) -> StyleGAN2Generator:
    """A pickled StyleGAN2 `Generator` (STYLEGAN2_ADA or STYLEGAN2_SG3) as a StyleGAN2Generator."""
    if family not in (NetworkFamily.STYLEGAN2_ADA, NetworkFamily.STYLEGAN2_SG3):
        raise ValueError(f"not a StyleGAN2 family: {family}")
    kwargs = _named_kwargs(net, family, label)
    config, has_w_avg, fused_default = config_from_init_kwargs(kwargs, family, label)
    _check_attributes(net, config, label)
    tensors = net.named_tensors()
    _check_filters(tensors, config, label)
    targets = planned_shapes(lambda: StyleGAN2Generator(config), label)
    rules = ADA_RULES
    if not has_w_avg:  # w_avg_beta=None: the official network keeps no mean latent
        targets.pop("w_avg")
        rules = ADA_RULES[1:]
        log.warning("%s: G_ema tracks no w_avg (w_avg_beta=None); truncation uses w_avg = 0", label)
    state = convert_state(targets, tensors, rules, label, ignore=[_FILTER_KEYS])
    state.setdefault("w_avg", torch.zeros(config.w_dim))
    G = StyleGAN2Generator(config)  # built once every tensor is known to be in the file
    G.load_state_dict(state, strict=True)
    if family is NetworkFamily.STYLEGAN2_SG3:
        # networks_stylegan2.py: fused_modconv = fused_modconv_default ('inference_only' = fused
        # outside training), whatever the dtype; ADA's rule (None) also looks at the dtype.
        # Recorded for replays; G.fused_modconv stays None (the fastest path for the device).
        G.official_fused_modconv = fused_default is not False
    return G


def generator_from_ada(data: Mapping[str, Any], label: str) -> StyleGAN2Generator:
    """The `G_ema` of a stylegan2-ada-pytorch / stylegan3-repo StyleGAN2 pickle dict."""
    net = data.get("G_ema")
    family = identify_network(net)
    if not isinstance(net, PersistentObjectStub) or family not in (
        NetworkFamily.STYLEGAN2_ADA,
        NetworkFamily.STYLEGAN2_SG3,
    ):
        reader_for(family, "G_ema", label)  # raises, naming the family
        raise CheckpointError(f"{label}: G_ema is {family.description}, not a StyleGAN2 network")
    return generator_from_persistent(net, family, label)
