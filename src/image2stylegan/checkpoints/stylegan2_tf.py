"""Reader for NVlabs/stylegan2 (and stylegan2-ada TF) pickles, e.g. stylegan2-ffhq-config-f.pkl.

The pickle holds (G, D, Gs); we read Gs (`TFNetworkStub`): its own variables `dlatent_avg`,
`lod`, and the components `mapping` (G_mapping) and `synthesis` (G_synthesis_stylegan2, or
G_synthesis_stylegan_revised for configs B-D). The config comes from Gs's `static_kwargs`
(the keyword set and defaults stylegan2-ada-pytorch's legacy.py reads; width of the mapping
layers from the variable shapes when not declared); the variables map onto our
(stylegan2-ada-pytorch) parameters as legacy.py maps them:
- dense weights [in, out] are transposed; conv kernels [kh, kw, in, out] become [out, in, kh, kw];
  the kernels of the upsampling convolutions (`Conv0_up`, `Skip`) are also flipped spatially
  (TF runs them as transposed convolutions with flipped kernels);
- style biases `mod_bias` are stored minus their initial 1;
- `noise{i}` [1, 1, r, r] is the stored noise of layer i (0 = 4x4/Conv, then Conv0_up, Conv1 of
  each resolution).
Strict: unknown keyword arguments and missing, unknown or mis-shaped variables raise one
`CheckpointError`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import CheckpointError
from ..models.stylegan2 import StyleGAN2Config, StyleGAN2Generator
from .build import planned_shapes
from .name_tables import PLUS_ONE, TRANSPOSE, Rule, convert_state, leading_ones, permuted
from .safe_pickle import TFNetworkStub

__all__ = ["config_from_tf_kwargs", "generator_from_tf", "tf_rules", "tf_variables"]

# static kwarg -> default, as legacy.py reads them.
_KWARGS: dict[str, Any] = {
    "latent_size": 512,
    "label_size": 0,
    "dlatent_size": 512,
    "resolution": 1024,
    "num_channels": 3,
    "mapping_layers": 8,
    "label_fmaps": None,
    "mapping_fmaps": None,
    "mapping_nonlinearity": "lrelu",
    "mapping_lrmul": 0.01,
    "fmap_base": 16384,
    "fmap_max": 512,
    "num_fp16_res": 0,
    "conv_clamp": None,
    "architecture": "skip",
    "resample_kernel": [1, 3, 3, 1],
    "use_noise": True,
    "nonlinearity": "lrelu",
}
# Keywords that do not change the network at inference (any value)...
_IGNORED = {
    "w_avg_beta", "dlatent_avg_beta", "truncation_psi", "truncation_cutoff", "truncation_psi_val",
    "truncation_cutoff_val", "style_mixing_prob", "structure", "randomize_noise", "fused_modconv",
    "is_template_graph", "force_clean_graph",
}  # fmt: skip
# ... and keywords accepted only at the value the conversion assumes.
_FIXED: dict[str, Any] = {  # (synthesis_func: one of _SYNTHESIS_FUNCS)
    "fmap_decay": 1.0,
    "fmap_min": 1,
    "dtype": "float32",
    "normalize_latents": True,
    "mapping_func": "G_mapping",
}

_SYNTHESIS_FUNCS = ("G_synthesis_stylegan2", "G_synthesis_stylegan_revised")


def tf_variables(net: TFNetworkStub, prefix: str = "") -> dict[str, np.ndarray]:
    """All variables of a TF network and its components, named 'component/local_name'."""
    out = {prefix + name: value for name, value in net.variables.items()}
    for name, comp in net.components.items():
        out.update(tf_variables(comp, f"{prefix}{name}/"))
    return out


def config_from_tf_kwargs(
    kwargs: Mapping[str, Any], variables: Mapping[str, np.ndarray], synthesis_func: str, label: str
) -> StyleGAN2Config:
    """Our config from Gs's static kwargs (legacy.py's reading) and the mapping shapes."""
    for key in kwargs:
        if key not in _KWARGS and key not in _IGNORED and key not in {*_FIXED, "synthesis_func"}:
            raise CheckpointError(f"{label}: unknown TF network keyword {key!r}")
    for key, value in _FIXED.items():
        if key in kwargs and kwargs[key] != value:
            raise CheckpointError(f"{label}: TF keyword {key}={kwargs[key]!r} is not supported")
    sf = kwargs.get("synthesis_func", synthesis_func)
    if sf not in _SYNTHESIS_FUNCS or synthesis_func not in _SYNTHESIS_FUNCS:
        raise CheckpointError(f"{label}: TF synthesis network {sf!r} is not supported")
    k = {**_KWARGS, **{key: kwargs[key] for key in _KWARGS if key in kwargs}}
    if k["label_size"] and "mapping/LabelConcat/weight" in variables:
        raise CheckpointError(
            f"{label}: conditional TF StyleGAN2 with 'LabelConcat' labels is not supported "
            "(only the stylegan2-ada 'LabelEmbed' layout)"
        )
    layer_features = k["mapping_fmaps"]
    dense0 = variables.get("mapping/Dense0/weight")
    if (
        layer_features is None
        and k["mapping_layers"] > 1
        and dense0 is not None
        and dense0.ndim == 2
    ):
        layer_features = int(dense0.shape[1])  # TF's default is 512, legacy.py assumes w_dim
    taps = k["resample_kernel"]
    architecture = k["architecture"] if synthesis_func == "G_synthesis_stylegan2" else "orig"
    try:
        return StyleGAN2Config(
            z_dim=int(k["latent_size"]),
            c_dim=int(k["label_size"]),
            w_dim=int(k["dlatent_size"]),
            img_resolution=int(k["resolution"]),
            img_channels=int(k["num_channels"]),
            mapping_layers=int(k["mapping_layers"]),
            mapping_embed_features=k["label_fmaps"],
            mapping_layer_features=layer_features,
            mapping_activation=k["mapping_nonlinearity"],
            mapping_lr_multiplier=float(k["mapping_lrmul"]),
            channel_base=int(k["fmap_base"]) * 2,
            channel_max=int(k["fmap_max"]),
            num_fp16_res=int(k["num_fp16_res"]),
            conv_clamp=None if k["conv_clamp"] is None else float(k["conv_clamp"]),
            architecture=architecture,
            resample_filter=(1.0,) if taps is None else tuple(float(t) for t in taps),
            use_noise=bool(k["use_noise"]),
            activation=k["nonlinearity"],
        )
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{label}: unsupported TF generator configuration ({e})") from None


# --- the name table ---------------------------------------------------------------------------

TF_CONV = permuted((3, 2, 0, 1))  # [kh, kw, I, O] -> [O, I, kh, kw]
TF_CONV_FLIPPED = permuted((3, 2, 0, 1), flip=(0, 1))  # upsampling kernels: also flip kh, kw


def _conv_scope(m: re.Match[str]) -> str:
    r = int(m[1])
    if r == 4:
        return "synthesis/4x4/Conv"
    return f"synthesis/{r}x{r}/" + ("Conv0_up" if m[2] == "conv0" else "Conv1")


def _noise_name(m: re.Match[str]) -> str:
    index = 2 * int(math.log2(int(m[1]))) - (5 if m[2] == "conv0" else 4)
    return f"synthesis/noise{index}"


def tf_rules(revised: bool = False) -> list[Rule]:
    """Our key <- TF variable. `revised`: configs B-D (ToRGB only at the output, `ToRGB_lod0`)."""
    layer = r"synthesis_network\.b(\d+)\.(conv0|conv1)\."

    def torgb(m: re.Match[str]) -> str:
        r = m[1]
        return "synthesis/ToRGB_lod0/" if revised else f"synthesis/{r}x{r}/ToRGB/"

    return [
        Rule(r"w_avg", "dlatent_avg"),
        Rule(r"mapping_network\.fc(\d+)\.weight", "mapping/Dense{0}/weight", TRANSPOSE),
        Rule(r"mapping_network\.fc(\d+)\.bias", "mapping/Dense{0}/bias"),
        Rule(r"mapping_network\.embed\.weight", "mapping/LabelEmbed/weight", TRANSPOSE),
        Rule(r"mapping_network\.embed\.bias", "mapping/LabelEmbed/bias"),
        Rule(r"synthesis_network\.b4\.const", "synthesis/4x4/Const/const", leading_ones(1)),
        Rule(r"synthesis_network\.b(\d+)\.(conv0)\.weight", lambda m: _conv_scope(m) + "/weight",
             TF_CONV_FLIPPED),
        Rule(layer + r"weight", lambda m: _conv_scope(m) + "/weight", TF_CONV),
        Rule(layer + r"bias", lambda m: _conv_scope(m) + "/bias"),
        Rule(layer + r"noise_strength", lambda m: _conv_scope(m) + "/noise_strength"),
        Rule(layer + r"affine\.weight", lambda m: _conv_scope(m) + "/mod_weight", TRANSPOSE),
        Rule(layer + r"affine\.bias", lambda m: _conv_scope(m) + "/mod_bias", PLUS_ONE),
        Rule(layer + r"noise_const", _noise_name, leading_ones(2)),
        Rule(r"synthesis_network\.b(\d+)\.torgb\.weight", lambda m: torgb(m) + "weight", TF_CONV),
        Rule(r"synthesis_network\.b(\d+)\.torgb\.bias", lambda m: torgb(m) + "bias"),
        Rule(r"synthesis_network\.b(\d+)\.torgb\.affine\.weight", lambda m: torgb(m) + "mod_weight",
             TRANSPOSE),
        Rule(r"synthesis_network\.b(\d+)\.torgb\.affine\.bias", lambda m: torgb(m) + "mod_bias",
             PLUS_ONE),
        Rule(r"synthesis_network\.b(\d+)\.skip\.weight", "synthesis/{0}x{0}/Skip/weight",
             TF_CONV_FLIPPED),
    ]  # fmt: skip


def generator_from_tf(gs: TFNetworkStub, label: str) -> StyleGAN2Generator:
    """The Gs network of an official StyleGAN2 TF pickle as a `StyleGAN2Generator`."""
    if gs.version < 4:
        raise CheckpointError(
            f"{label}: TF network pickle version {gs.version} is too old (need 4+)"
        )
    synthesis = gs.components.get("synthesis")
    if synthesis is None or "mapping" not in gs.components:
        raise CheckpointError(f"{label}: TF network {gs.name!r} has no mapping/synthesis parts")
    variables = tf_variables(gs)
    config = config_from_tf_kwargs(gs.static_kwargs, variables, synthesis.build_func_name, label)
    revised = synthesis.build_func_name == "G_synthesis_stylegan_revised"
    ignore = ["lod", "synthesis/lod"]
    if revised:
        ignore.append(r"synthesis/ToRGB_lod[1-9]\d*/.*")  # unused at lod 0
        for name in ("lod", "synthesis/lod"):
            if name in variables and float(np.asarray(variables[name])) != 0:
                raise CheckpointError(
                    f"{label}: a snapshot taken during progressive growing ({name} = "
                    f"{float(np.asarray(variables[name]))}); only lod 0 is supported"
                )
    targets = planned_shapes(lambda: StyleGAN2Generator(config), label)
    state = convert_state(
        targets, variables, tf_rules(revised), label, ignore=ignore, what="variable"
    )
    G = StyleGAN2Generator(config)  # built once every variable is known to be in the file
    G.load_state_dict(state, strict=True)
    return G
