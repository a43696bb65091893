"""Reader for the converted StyleGAN1 PyTorch state dict of lernapparat's StyleGAN notebook
(`karras2019stylegan-ffhq-1024x1024.for_g_all.pt` and files made the same way).

Layout (the notebook's conversion of the official Gs trainables): keys `g_mapping.dense{i}.*`,
optionally `truncation.avg_latent`, and `g_synthesis.*`:
  g_synthesis.blocks.4x4.const / .bias                    4x4/Const/const, 4x4/Const/bias
  g_synthesis.blocks.4x4.conv.weight / .bias              4x4/Conv/weight, 4x4/Conv/bias
  g_synthesis.blocks.{r}x{r}.conv0_up.* / .conv1.*        {r}x{r}/Conv0_up/*, {r}x{r}/Conv1/*
  ....epi1.top_epi.noise.weight, ....epi1.style_mod.lin.* Noise/weight, StyleMod/* of the first
  ....epi2.*                                              ... and of the second layer of a block
  g_synthesis.blocks.{r}x{r}.conv0_up.intermediate.kernel the [1, 2, 1] blur (a buffer)
  g_synthesis.torgb.weight / .bias                        ToRGB_lod0/*
Dense and style weights are transposed ([out, in]), conv weights are [out, in, kh, kw]; values
are the official unscaled ones (the equalized-lr constants are applied at run time there too).

What the file lacks, and how it is filled (deterministically, so loading twice gives the same
generator):
- the stored noise inputs (`noise{k}`, not trainable, so not converted): N(0, 1) drawn from
  `torch.Generator().manual_seed(NOISE_SEED)` (NOISE_SEED = 0), layer by layer in layer order,
  each [1, 1, r, r]. `noise_mode="const"` therefore differs from the official pickle's noise;
  load the TF pickle when the exact official noise matters.
- `w_avg`, when there is no `truncation.avg_latent` (the notebook's own file has none): the mean
  of w over W_AVG_SAMPLES = 10,000 z ~ N(0, I) drawn from `manual_seed(W_AVG_SEED)` (= 1), the
  estimate the official training tracks as a running average.
The config is inferred from tensor shapes; the layout only exists for the official architecture
(const input, styles, noise, instance norm, lrelu, equalized lr, mapping lr multiplier 0.01).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import CheckpointError
from ..models.stylegan1 import StyleGAN1Config, StyleGAN1Generator
from .build import planned_shapes
from .stylegan1_tf import generator_from_tf_variables, tf_name_table

__all__ = ["NOISE_SEED", "W_AVG_SAMPLES", "W_AVG_SEED", "generator_from_lernapparat"]

log = logging.getLogger(__name__)

NOISE_SEED = 0
W_AVG_SEED = 1
W_AVG_SAMPLES = 10_000


@dataclass(frozen=True)
class _Key:
    """One row of the name table: lernapparat key -> official variable."""

    key: str  # e.g. 'g_synthesis.blocks.8x8.epi1.style_mod.lin.weight'
    network: str  # 'mapping' | 'synthesis'
    name: str  # official local name, e.g. '8x8/Conv0_up/StyleMod/weight'
    layout: str  # 'dense': ours [out, in] vs TF [in, out]; 'conv': [out, in, kh, kw] vs
    #              [kh, kw, in, out]; 'same'


def lernapparat_name_table(cfg: StyleGAN1Config) -> list[_Key]:
    """Every key of the layout for `cfg` (blur kernels excluded: they are checked separately)."""
    rows: list[_Key] = []
    for i in range(cfg.mapping_layers):
        rows.append(_Key(f"g_mapping.dense{i}.weight", "mapping", f"Dense{i}/weight", "dense"))
        rows.append(_Key(f"g_mapping.dense{i}.bias", "mapping", f"Dense{i}/bias", "same"))
    for log2 in range(2, cfg.resolution_log2 + 1):
        r = 2**log2
        blk = f"g_synthesis.blocks.{r}x{r}"
        if r == 4:
            first, second = "4x4/Const", "4x4/Conv"
            rows.append(_Key(f"{blk}.const", "synthesis", "4x4/Const/const", "same"))
            rows.append(_Key(f"{blk}.bias", "synthesis", "4x4/Const/bias", "same"))
            rows.append(_Key(f"{blk}.conv.weight", "synthesis", "4x4/Conv/weight", "conv"))
            rows.append(_Key(f"{blk}.conv.bias", "synthesis", "4x4/Conv/bias", "same"))
        else:
            first, second = f"{r}x{r}/Conv0_up", f"{r}x{r}/Conv1"
            for conv, scope in (("conv0_up", first), ("conv1", second)):
                rows.append(_Key(f"{blk}.{conv}.weight", "synthesis", f"{scope}/weight", "conv"))
                rows.append(_Key(f"{blk}.{conv}.bias", "synthesis", f"{scope}/bias", "same"))
        for epi, scope in (("epi1", first), ("epi2", second)):
            rows.append(
                _Key(
                    f"{blk}.{epi}.top_epi.noise.weight",
                    "synthesis",
                    f"{scope}/Noise/weight",
                    "same",
                )
            )
            for leaf, layout in (("weight", "dense"), ("bias", "same")):
                rows.append(
                    _Key(
                        f"{blk}.{epi}.style_mod.lin.{leaf}",
                        "synthesis",
                        f"{scope}/StyleMod/{leaf}",
                        layout,
                    )
                )
    rows.append(_Key("g_synthesis.torgb.weight", "synthesis", "ToRGB_lod0/weight", "conv"))
    rows.append(_Key("g_synthesis.torgb.bias", "synthesis", "ToRGB_lod0/bias", "same"))
    return rows


def _blur_keys(cfg: StyleGAN1Config) -> list[str]:
    return [
        f"g_synthesis.blocks.{2**k}x{2**k}.conv0_up.intermediate.kernel"
        for k in range(3, cfg.resolution_log2 + 1)
    ]


def _to_official(value: np.ndarray, layout: str) -> np.ndarray:
    if layout == "dense":
        return value.T
    if layout == "conv":
        return value.transpose(2, 3, 1, 0)
    return value


def _fit_fmaps(channels: dict[int, int], label: str) -> tuple[int, int]:
    """(fmap_base, fmap_max) with fmap_decay 1 that give `channels` (stage -> feature maps)."""
    fmap_max = max(channels.values())
    candidates = [(8192, 512)]
    below = [s for s in sorted(channels) if channels[s] < fmap_max]
    if below:
        s = below[0]
        candidates.append((channels[s] * 2**s, fmap_max))
    else:
        candidates.append((fmap_max * 2 ** max(channels), fmap_max))
    for base, fmax in candidates:
        if all(min(int(base / 2.0**s), fmax) == c for s, c in channels.items()):
            return base, fmax
    raise CheckpointError(
        f"{label}: the feature-map counts {dict(sorted(channels.items()))} do not follow "
        "StyleGAN's nf(stage) = min(fmap_base / 2^stage, fmap_max)"
    )


def _shape(sd: Mapping[str, torch.Tensor], key: str, label: str) -> tuple[int, ...]:
    if key not in sd:
        raise CheckpointError(
            f"{label}: incomplete lernapparat StyleGAN1 state dict: missing {key}"
        )
    return tuple(sd[key].shape)


def config_from_shapes(sd: Mapping[str, torch.Tensor], label: str) -> StyleGAN1Config:
    """Infer the official config from the tensor shapes of a lernapparat state dict."""
    mapping_idx = sorted(
        int(m.group(1)) for k in sd if (m := re.fullmatch(r"g_mapping\.dense(\d+)\.weight", k))
    )
    if not mapping_idx or mapping_idx != list(range(len(mapping_idx))):
        raise CheckpointError(
            f"{label}: lernapparat state dict without g_mapping.dense0..N weights"
        )
    n_map = len(mapping_idx)
    first = _shape(sd, "g_mapping.dense0.weight", label)  # [fmaps, latent]
    last = _shape(sd, f"g_mapping.dense{n_map - 1}.weight", label)  # [dlatent, fmaps]
    sides = {int(m.group(1)) for k in sd if (m := re.match(r"g_synthesis\.blocks\.(\d+)x\1\.", k))}
    if 4 not in sides:
        raise CheckpointError(f"{label}: lernapparat state dict without a g_synthesis 4x4 block")
    resolution = max(sides)
    channels = {1: _shape(sd, "g_synthesis.blocks.4x4.const", label)[1]}
    for side in sorted(sides - {4}):
        stage = int(np.log2(side)) - 1
        channels[stage] = _shape(sd, f"g_synthesis.blocks.{side}x{side}.conv1.weight", label)[0]
    fmap_base, fmap_max = _fit_fmaps(channels, label)
    torgb = _shape(sd, "g_synthesis.torgb.weight", label)  # [channels, C, 1, 1]
    try:
        return StyleGAN1Config(
            resolution=resolution,
            num_channels=torgb[0],
            latent_size=first[1],
            dlatent_size=last[0],
            mapping_layers=n_map,
            mapping_fmaps=first[0] if n_map > 1 else 512,
            fmap_base=fmap_base,
            fmap_max=fmap_max,
        )
    except ValueError as e:
        raise CheckpointError(f"{label}: unsupported lernapparat StyleGAN1 layout ({e})") from None


def _avg_latent(value: torch.Tensor, w_dim: int, label: str) -> torch.Tensor:
    """`truncation.avg_latent` as [w_dim]: accepts [w_dim], [1, w_dim] or [1, num_ws, w_dim]
    with identical rows (as written by forks that broadcast the mean)."""
    if value.shape[-1:] != (w_dim,):
        raise CheckpointError(
            f"{label}: truncation.avg_latent has shape {list(value.shape)}, expected [{w_dim}]"
        )
    rows = value.reshape(-1, w_dim).float()
    if not torch.allclose(rows, rows[:1].expand_as(rows)):
        raise CheckpointError(f"{label}: truncation.avg_latent holds different per-layer means")
    return rows[0]


@torch.no_grad()
def _estimate_w_avg(G: StyleGAN1Generator) -> torch.Tensor:
    gen = torch.Generator().manual_seed(W_AVG_SEED)
    total = torch.zeros(G.w_dim, dtype=torch.float64)
    done = 0
    while done < W_AVG_SAMPLES:
        n = min(2000, W_AVG_SAMPLES - done)
        z = torch.randn(n, G.z_dim, generator=gen)
        total += G.map_z(z).double().sum(0)
        done += n
    return (total / W_AVG_SAMPLES).float()


def generator_from_lernapparat(state_dict: dict, label: str) -> StyleGAN1Generator:
    """lernapparat's converted StyleGAN1 state dict -> `StyleGAN1Generator` (float32, CPU).

    Strict: unknown keys, missing keys and wrong shapes raise `CheckpointError` naming the file
    and the key(s). Noise buffers and (when absent) `w_avg` are filled as the module docstring
    says.
    """
    sd = {str(k): v for k, v in state_dict.items()}
    bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(
            f"{label}: lernapparat state dict entries that are not tensors: {bad[:5]}"
        )
    cfg = config_from_shapes(sd, label)
    table = lernapparat_name_table(cfg)
    blur = _blur_keys(cfg)
    known = {row.key for row in table} | set(blur) | {"truncation.avg_latent"}
    unknown = sorted(set(sd) - known)
    if unknown:
        raise CheckpointError(
            f"{label}: unknown key(s) {', '.join(unknown[:6])}{' ...' if len(unknown) > 6 else ''} "
            f"for lernapparat's {cfg.resolution} px StyleGAN1 layout"
        )
    missing = [row.key for row in table if row.key not in sd] + [k for k in blur if k not in sd]
    if missing:
        raise CheckpointError(
            f"{label}: incomplete lernapparat StyleGAN1 state dict: missing "
            f"{', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}"
        )
    shapes = planned_shapes(lambda: StyleGAN1Generator(cfg), label)
    params = {(row.network, row.name): row.param for row in tf_name_table(cfg)}
    for row in table:
        expected = shapes[params[(row.network, row.name)]]  # both layouts are PyTorch's
        if tuple(sd[row.key].shape) != expected:
            raise CheckpointError(
                f"{label}: {row.key} has shape {list(sd[row.key].shape)}, the {cfg.resolution} px "
                f"config inferred from the file needs {list(expected)}"
            )
    for key in blur:
        kernel = sd[key].detach().float().cpu().numpy()
        blur_kernel = np.outer([1.0, 2.0, 1.0], [1.0, 2.0, 1.0])[None, None] / 16.0
        if kernel.shape != blur_kernel.shape or not np.allclose(kernel, blur_kernel, atol=1e-6):
            raise CheckpointError(f"{label}: {key} is not the [1, 2, 1] blur kernel StyleGAN uses")
    variables: dict[str, dict[str, np.ndarray]] = {"Gs": {}, "mapping": {}, "synthesis": {}}
    for row in table:
        value = sd[row.key].detach().cpu().float().numpy()
        variables[row.network][row.name] = _to_official(value, row.layout)
    optional = {
        "Gs": {"dlatent_avg"},
        "synthesis": {f"noise{k}" for k in range(cfg.num_layers)},
    }
    G = generator_from_tf_variables(cfg, variables, label, what="key", optional=optional)
    gen = torch.Generator().manual_seed(NOISE_SEED)
    with torch.no_grad():
        for buf in G.noise_buffers():
            buf.copy_(torch.randn(buf.shape, generator=gen))
        if "truncation.avg_latent" in sd:
            G.w_avg.copy_(_avg_latent(sd["truncation.avg_latent"], cfg.dlatent_size, label))
        else:
            log.info(
                "%s: no truncation.avg_latent; estimating w_avg from %d z", label, W_AVG_SAMPLES
            )
            G.w_avg.copy_(_estimate_w_avg(G))
    return G
