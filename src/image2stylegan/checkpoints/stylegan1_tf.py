"""Reader for NVlabs/stylegan TF pickles (e.g. karras2019stylegan-ffhq-1024x1024.pkl).

The pickle holds (G, D, Gs); we read Gs: its own variables `lod`, `dlatent_avg`, and its
components `mapping` (G_mapping) and `synthesis` (G_synthesis), each with `static_kwargs` and
`variables` (layout: shared/notes/checkpoint-formats.md). The network config comes from the
`static_kwargs` (absent keys take the official function defaults) and is checked against the
variable shapes. Loading is strict: every variable must be known and of the right shape, and
every variable the network uses must be present.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError
from ..models.stylegan1 import StyleGAN1Config, StyleGAN1Generator
from .build import planned_shapes
from .safe_pickle import TFNetworkStub

__all__ = [
    "TFVariable",
    "config_from_static_kwargs",
    "generator_from_tf",
    "generator_from_tf_variables",
    "ignored_tf_names",
    "tf_name_table",
]

# Official keyword defaults (G_style passes its **kwargs to both sub-networks).
_MAPPING_KEYS = (
    "latent_size",
    "label_size",
    "dlatent_size",
    "mapping_layers",
    "mapping_fmaps",
    "mapping_lrmul",
    "mapping_nonlinearity",
    "use_wscale",
    "normalize_latents",
)
_SYNTHESIS_KEYS = (
    "dlatent_size",
    "num_channels",
    "resolution",
    "fmap_base",
    "fmap_decay",
    "fmap_max",
    "use_styles",
    "const_input_layer",
    "use_noise",
    "nonlinearity",
    "use_wscale",
    "use_pixel_norm",
    "use_instance_norm",
    "fused_scale",
    "blur_filter",
)


@dataclass(frozen=True)
class TFVariable:
    """One row of the name table: official variable -> our parameter or buffer."""

    network: str  # 'Gs' | 'mapping' | 'synthesis'
    name: str  # the official local variable name, e.g. '8x8/Conv0_up/StyleMod/weight'
    param: str  # our state-dict key
    layout: str  # 'dense': TF [in, out] -> ours [out, in]; 'conv': [kh, kw, in, out] ->
    #              [out, in, kh, kw]; 'same': identical shape


def tf_name_table(cfg: StyleGAN1Config) -> list[TFVariable]:
    """Every official variable the network at lod 0 uses, with our name and layout."""
    rows = [TFVariable("Gs", "dlatent_avg", "w_avg", "same")]
    m = "mapping_net"
    if cfg.label_size:
        rows.append(TFVariable("mapping", "LabelConcat/weight", f"{m}.embed", "dense"))
    for i in range(cfg.mapping_layers):
        rows.append(TFVariable("mapping", f"Dense{i}/weight", f"{m}.layers.{i}.weight", "dense"))
        rows.append(TFVariable("mapping", f"Dense{i}/bias", f"{m}.layers.{i}.bias", "same"))
    s = "synthesis_net"
    if cfg.const_input_layer:
        rows.append(TFVariable("synthesis", "4x4/Const/const", f"{s}.const", "same"))
    else:
        rows.append(TFVariable("synthesis", "4x4/Dense/weight", f"{s}.input_dense.weight", "dense"))
    for k, scope in enumerate(_layer_scopes(cfg)):
        p = f"{s}.layers.{k}"
        if k > 0:
            rows.append(TFVariable("synthesis", f"{scope}/weight", f"{p}.weight", "conv"))
        if cfg.use_noise:
            rows.append(TFVariable("synthesis", f"noise{k}", f"{p}.noise_const", "same"))
            rows.append(
                TFVariable("synthesis", f"{scope}/Noise/weight", f"{p}.noise_strength", "same")
            )
        rows.append(TFVariable("synthesis", f"{scope}/bias", f"{p}.bias", "same"))
        if cfg.use_styles:
            rows.append(
                TFVariable("synthesis", f"{scope}/StyleMod/weight", f"{p}.style.weight", "dense")
            )
            rows.append(
                TFVariable("synthesis", f"{scope}/StyleMod/bias", f"{p}.style.bias", "same")
            )
    rows.append(TFVariable("synthesis", "ToRGB_lod0/weight", f"{s}.torgb_weight", "conv"))
    rows.append(TFVariable("synthesis", "ToRGB_lod0/bias", f"{s}.torgb_bias", "same"))
    return rows


def _layer_scopes(cfg: StyleGAN1Config) -> list[str]:
    """The official variable scope of each synthesis layer, in layer order."""
    scopes = ["4x4/Const" if cfg.const_input_layer else "4x4/Dense", "4x4/Conv"]
    for log2 in range(3, cfg.resolution_log2 + 1):
        r = 2**log2
        scopes += [f"{r}x{r}/Conv0_up", f"{r}x{r}/Conv1"]
    return scopes


def ignored_tf_names(cfg: StyleGAN1Config) -> dict[str, set[str]]:
    """Official variables that exist in the pickles but play no part at lod 0 (accepted, unread):
    the lower-resolution ToRGB layers of progressive growing, and the `lod` variables."""
    lods = range(1, cfg.resolution_log2 - 1)
    torgb = {f"ToRGB_lod{n}/{leaf}" for n in lods for leaf in ("weight", "bias")}
    return {"Gs": {"lod"}, "mapping": set(), "synthesis": {"lod", *torgb}}


def _to_ours(value: np.ndarray, layout: str) -> np.ndarray:
    if layout == "dense":
        return value.T
    if layout == "conv":
        return value.transpose(3, 2, 0, 1)
    return value


def _official_shape(shape: tuple[int, ...], layout: str) -> tuple[int, ...]:
    if layout == "dense":
        return (shape[1], shape[0])
    if layout == "conv":
        return (shape[2], shape[3], shape[1], shape[0])
    return tuple(shape)


def _listing(names: list[str], limit: int = 6) -> str:
    more = f" (and {len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def generator_from_tf_variables(
    cfg: StyleGAN1Config,
    variables: Mapping[str, Mapping[str, np.ndarray]],  # network -> official name -> array
    label: str,  # the file, for error messages
    what: str = "variable",  # how the file calls its entries (error messages)
    optional: Mapping[str, set[str]] | None = None,  # used names a file may omit (kept at init)
) -> StyleGAN1Generator:
    """Build the generator for `cfg` and fill it from official variables; strict on unknown,
    missing and mis-shaped entries (one `CheckpointError` naming the file and the entries)."""
    table = tf_name_table(cfg)
    ignored = ignored_tf_names(cfg)
    optional = optional or {}
    known = {(row.network, row.name) for row in table}
    unknown = [
        f"{net}/{name}"
        for net, group in variables.items()
        for name in group
        if (net, name) not in known and name not in ignored.get(net, set())
    ]
    if unknown:
        raise CheckpointError(
            f"{label}: unknown StyleGAN {what}(s) {_listing(unknown)} for a {cfg.resolution} px "
            "StyleGAN1 generator (a different architecture or a modified network?)"
        )
    missing = [
        f"{row.network}/{row.name}"
        for row in table
        if row.name not in variables.get(row.network, {})
        and row.name not in optional.get(row.network, set())
    ]
    if missing:
        raise CheckpointError(
            f"{label}: incomplete StyleGAN1 checkpoint: missing {what}(s) {_listing(missing)}"
        )
    state: dict[str, torch.Tensor] = {}
    shapes = planned_shapes(lambda: StyleGAN1Generator(cfg), label)
    for row in table:
        if row.name not in variables.get(row.network, {}):
            continue
        value = np.asarray(variables[row.network][row.name])
        target = shapes[row.param]
        expected = _official_shape(target, row.layout)
        if tuple(value.shape) != expected:
            raise CheckpointError(
                f"{label}: {what} {row.network}/{row.name} has shape {list(value.shape)}, the "
                f"{cfg.resolution} px config read from the file needs {list(expected)}"
            )
        ours = np.ascontiguousarray(_to_ours(value, row.layout), dtype=np.float32)
        state[row.param] = torch.from_numpy(ours.copy())
    G = StyleGAN1Generator(cfg)  # built once every variable is known to be in the file
    G.load_state_dict({**G.state_dict(), **state}, strict=True)
    return G


def _kwarg(kwargs: Mapping[str, Any], key: str, default: Any) -> Any:
    value = kwargs.get(key, default)
    return default if value is None and key != "blur_filter" else value


def config_from_static_kwargs(
    mapping_kwargs: Mapping[str, Any],
    synthesis_kwargs: Mapping[str, Any],
) -> StyleGAN1Config:
    """The config from the official networks' `static_kwargs` (absent = official default)."""
    defaults = StyleGAN1Config()
    values: dict[str, Any] = {}
    for key in _MAPPING_KEYS:
        values[key] = _kwarg(mapping_kwargs, key, getattr(defaults, key))
    for key in _SYNTHESIS_KEYS:
        default = getattr(defaults, key)
        if key == "blur_filter":
            default = list(default)
        values[key] = _kwarg(synthesis_kwargs, key, default)
    if bool(_kwarg(mapping_kwargs, "use_wscale", True)) != bool(values["use_wscale"]):
        raise ValueError("mapping and synthesis disagree on use_wscale")  # one flag in our config
    for key in ("use_styles", "const_input_layer", "use_noise", "use_wscale", "use_pixel_norm",
                "use_instance_norm", "normalize_latents"):  # fmt: skip
        values[key] = bool(values[key])
    for key in ("resolution", "num_channels", "latent_size", "label_size", "dlatent_size",
                "mapping_layers", "mapping_fmaps"):  # fmt: skip
        values[key] = int(values[key])
    values["mapping_lrmul"] = float(values["mapping_lrmul"])
    values["fmap_decay"] = float(values["fmap_decay"])
    if values["fused_scale"] not in ("auto",):
        values["fused_scale"] = bool(values["fused_scale"])
    blur = values["blur_filter"]
    if blur is not None:
        arr = np.asarray(blur, dtype=np.float64)
        if arr.ndim != 1:
            raise ValueError(f"only 1-D blur filters are supported, got shape {list(arr.shape)}")
        values["blur_filter"] = tuple(float(v) for v in arr) or None
    return StyleGAN1Config(**values)


def _check_synthesis_shapes(cfg: StyleGAN1Config, synthesis: TFNetworkStub, label: str) -> None:
    """A clearer message than a per-variable shape error when the resolution is off."""
    noise = [name for name in synthesis.variables if name.startswith("noise")]
    if cfg.use_noise and noise and len(noise) != cfg.num_layers:
        raise CheckpointError(
            f"{label}: the static_kwargs say resolution {cfg.resolution} ({cfg.num_layers} "
            f"layers) but the synthesis network has {len(noise)} noise inputs"
        )


def generator_from_tf(gs: TFNetworkStub, label: str) -> StyleGAN1Generator:
    """Gs of a NVlabs/stylegan TF pickle -> `StyleGAN1Generator` (float32, CPU)."""
    mapping = gs.components.get("mapping")
    synthesis = gs.components.get("synthesis")
    if mapping is None or synthesis is None:
        raise CheckpointError(f"{label}: TF network {gs.name!r} has no mapping/synthesis parts")
    lod = gs.variables.get("lod")
    if lod is not None and float(np.asarray(lod)) != 0.0:
        raise CheckpointError(
            f"{label}: a snapshot taken during progressive growing (lod = "
            f"{float(np.asarray(lod)):g}, not 0): its full-resolution layers are not trained "
            "yet; use a final snapshot of the training run"
        )
    mapping_kwargs = {**gs.static_kwargs, **mapping.static_kwargs}
    synthesis_kwargs = {**gs.static_kwargs, **synthesis.static_kwargs}
    try:
        cfg = config_from_static_kwargs(mapping_kwargs, synthesis_kwargs)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{label}: unsupported StyleGAN1 network settings ({e})") from None
    broadcast = mapping.static_kwargs.get("dlatent_broadcast")
    if broadcast is not None and int(broadcast) != cfg.num_ws:
        raise CheckpointError(
            f"{label}: the mapping broadcasts to {broadcast} layers but a {cfg.resolution} px "
            f"synthesis network takes {cfg.num_ws}"
        )
    _check_synthesis_shapes(cfg, synthesis, label)
    variables = {"Gs": gs.variables, "mapping": mapping.variables, "synthesis": synthesis.variables}
    return generator_from_tf_variables(cfg, variables, label)
