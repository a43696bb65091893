"""StyleGAN2 equals the official implementations, for each checkpoint format (SPEC section 7).

Each tests/data/stylegan2_ref_*.npz holds the tensors of a small official network with seeded
random, non-zero weights (biases, style biases, noise strengths, stored noise and w_avg all moved
off their initial constants), its inputs and the official outputs. The tests rebuild the
official file from those tensors with our own stub classes (tests/fixtures/stylegan2_fixtures.py),
load it with `image2stylegan.load_generator(path)` and compare, all in float32:
mapping (psi 1), truncation (psi 0.7 cutoff 8, psi 0.5, psi 0.7 cutoff 3), synthesis of a W+ code
with noise_mode 'const' and 'none', and the gradient of sum(img * R) with respect to ws (R a
fixed random tensor scaled by 0.05) — max abs difference <= 1e-4, both on the default path
(`fused_modconv=None`, the fast path on the CPU) and replaying the official fused arithmetic
(`fused_modconv=True`; measured: 0 against stylegan2-ada-pytorch run on the same CPU, whose
arithmetic it replays op for op; <= 1.5e-5 against TF and rosinality, i.e. float32 rounding of
other convolution kernels).

How the numbers were made (throwaway virtualenvs outside the repository; CPU, Python 3.11):

- stylegan2-ada-pytorch, NVlabs/stylegan2-ada-pytorch @ d72cc7d041b42ec8e806021a205ed9349f87c6a4,
  torch 2.13.0+cpu, numpy 1.26.4, its custom ops on their reference (CPU) paths, unmodified.
  `training.networks.Generator(**init_kwargs).eval()`, outputs with `force_fp32=True`:
  `ada_skip32` (skip, 4 mapping layers of width 48), `ada_resnet32c` (resnet, conditional
  c_dim 5 with embed_features 16, 3 mapping layers, z_dim 24), `ada_fp16clamp64` (skip, 8 mapping
  layers, num_fp16_res 2, conv_clamp 3 — 8% of the output pixels sit at the clamp; also the
  official float16 path with force_fp32=False for batch 1 (fused modconv) and batch 3),
  `ada_orig16` (orig, use_noise False, 1 image channel).
- NVlabs/stylegan2 (TF) @ bf0fe0baba9fc7039eae0cac575c1778be1ce3e3 under tensorflow-cpu 2.21.0
  (tf.compat.v1, numpy 1.26.4), networks built as its training loop builds them
  (`tflib.Network('G', func_name='training.networks_stylegan2.G_main', ...)`, `G.clone('Gs')`),
  variables overwritten with seeded random values, custom ops forced to impl='ref', the
  modulated convolutions run with `fused_modconv=False` and the NCHW conv2d / conv2d_transpose
  executed in NHWC layout (TF's CPU kernels lack NCHW and grouped-convolution gradients); the
  recorded variables are Gs's `__getstate__` content. `tf_skip64`, `tf_resnet32` (also converted
  with stylegan2-ada-pytorch's legacy.py `convert_tf_generator` and run there: keys `ada/*`;
  legacy+ADA vs TF differ by <= 1.5e-5) and `tf_revised16` (configs B-D synthesis,
  `G_synthesis_stylegan_revised`, which legacy.py cannot convert: TF only).
- rosinality/stylegan2-pytorch @ bef283a1c24087da704d16c30abc8e36e63efa0e, torch 2.13.0+cpu: its
  convert_weight.py `fill_statedict` applied to the `tf_skip64` variables, then its model.py
  `Generator(64, 32, 4, channel_multiplier=2)`; our copy was patched only to skip compiling its
  CUDA extensions (its CPU fallbacks run) and to shrink the channel table to {4..32: 32,
  64: 8 * channel_multiplier} so the weights stay small. Truncation via its forward
  (`truncation`, `truncation_latent=latent_avg`), noise 'none' as explicit zero noise tensors,
  and `mean_latent(4096)` after `torch.manual_seed(0)` (our w_avg when a file has no latent_avg).

The main test of each reader runs on files the official code wrote itself
(tests/test_official_files.py);
this module keeps the configurations those files do not cover (resnet, orig, conditional TF,
the configs B-D synthesis), rebuilt from recorded official tensors by our fixture writers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import image2stylegan as i2s
from image2stylegan.models.stylegan2 import StyleGAN2Generator
from tests.fixtures.stylegan2_fixtures import load_reference, write_reference_checkpoint

TOL = 1e-4

# (reference file, prefix of the official outputs): one test per official run.
CASES = [
    ("ada_skip32", "ref"),
    ("ada_resnet32c", "ref"),
    ("ada_fp16clamp64", "ref"),
    ("ada_orig16", "ref"),
    ("tf_skip64", "tf"),
    ("tf_skip64", "ada"),
    ("tf_resnet32", "tf"),
    ("tf_resnet32", "ada"),
    ("tf_revised16", "tf"),
    ("rosinality_64", "ref"),
]

_cache: dict[str, StyleGAN2Generator] = {}


def _loaded(name: str, tmp_path_factory: pytest.TempPathFactory) -> StyleGAN2Generator:
    if name not in _cache:
        path = write_reference_checkpoint(name, tmp_path_factory.mktemp(name) / f"{name}.ckpt")
        _cache[name] = i2s.load_generator(path)
    return _cache[name]


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


def _max_err(a: torch.Tensor, b: np.ndarray) -> float:
    assert tuple(a.shape) == b.shape, (tuple(a.shape), b.shape)
    return (a.detach() - _t(b)).abs().max().item()


@pytest.mark.parametrize(("name", "src"), CASES, ids=[f"{n}-{s}" for n, s in CASES])
def test_equals_official(name: str, src: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    G = _loaded(name, tmp_path_factory)
    ref = load_reference(name)
    assert isinstance(G, StyleGAN2Generator)
    z, ws, R = _t(ref["z"]), _t(ref["ws"]), _t(ref["R"])
    c = _t(ref["c"]) if "c" in ref else None
    errors: dict[str, float] = {}

    w = G.mapping(z, c=c)  # [N, num_ws, w_dim]
    mapping = ref[f"{src}/mapping"]
    errors["mapping"] = _max_err(w if mapping.ndim == 3 else w[:, 0], mapping)
    truncations = [k for k in ref if k.startswith(f"{src}/trunc_")]
    assert truncations
    for key in truncations:
        _, psi, cutoff = key.split("/")[1].split("_")
        ws_t = G.mapping(z, float(psi), None if cutoff == "None" else int(cutoff), c=c)
        errors[key] = _max_err(ws_t, ref[key])

    # None: the default (fast on the CPU) path; True: the replay of the official fused arithmetic
    for mode in (None, True):
        G.fused_modconv = mode
        with torch.no_grad():
            img_const = G.synthesis(ws, noise_mode="const")
            errors[f"img_const/{mode}"] = _max_err(img_const, ref[f"{src}/img_const"])
            img_none = G.synthesis(ws, noise_mode="none")
            errors[f"img_none/{mode}"] = _max_err(img_none, ref[f"{src}/img_none"])
        ws_var = ws.clone().requires_grad_(True)
        (G.synthesis(ws_var, noise_mode="const") * R).sum().backward()
        errors[f"grad_ws/{mode}"] = _max_err(ws_var.grad, ref[f"{src}/grad_ws"])
    G.fused_modconv = None

    bad = {k: v for k, v in errors.items() if not v <= TOL}
    assert not bad, f"{name} vs {src}: {errors}"


def test_official_float16_path_on_cpu(tmp_path_factory: pytest.TempPathFactory) -> None:
    """G.fp16 = True replays the official per-block float16 path (force_fp32=False): batch 1
    (fused modulated conv) and batch 3 (modulate activations), conv_clamp active."""
    G = _loaded("ada_fp16clamp64", tmp_path_factory)
    ref = load_reference("ada_fp16clamp64")
    ws = _t(ref["ws"])
    G.fp16 = True
    try:
        with torch.no_grad():
            one = G.synthesis(ws[:1], noise_mode="const")
            three = G.synthesis(ws, noise_mode="const")
    finally:
        G.fp16 = False
    assert one.dtype == torch.float32
    # float16 arithmetic: the kernels may round differently on other CPUs, allow a few ulps.
    assert _max_err(one, ref["ref/img_fp16_n1"]) <= 1e-2
    assert _max_err(three, ref["ref/img_fp16_n3"]) <= 1e-2
    # ... and it stays close to the exact float32 result.
    assert _max_err(three, ref["ref/img_const"]) <= 2e-2


def test_rosinality_without_latent_avg_uses_mean_latent(tmp_path: Path) -> None:
    """A train.py checkpoint has no latent_avg: w_avg = rosinality's mean_latent(4096), seed 0."""
    from tests.fixtures.stylegan2_fixtures import write_rosinality_file

    ref = load_reference("rosinality_64")
    g_ema = {k[len("g_ema/") :]: v for k, v in ref.items() if k.startswith("g_ema/")}
    G = i2s.load_generator(write_rosinality_file(tmp_path / "train.pt", g_ema, latent_avg=None))
    assert _max_err(G.w_avg, ref["ref/mean_latent_4096_seed0"]) <= 1e-5
    with_avg = i2s.load_generator(write_reference_checkpoint("rosinality_64", tmp_path / "c.pt"))
    assert _max_err(with_avg.w_avg, ref["latent_avg"]) == 0


@pytest.mark.parametrize("name", sorted({n for n, _ in CASES}))
def test_reference_attributes(name: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    G = _loaded(name, tmp_path_factory)
    ref = load_reference(name)
    _, num_ws, w_dim = ref["ws"].shape
    channels, res = ref["R"].shape[1], ref["R"].shape[-1]
    assert (G.z_dim, G.num_ws, G.w_dim) == (ref["z"].shape[1], num_ws, w_dim)
    assert (G.img_resolution, G.img_channels) == (res, channels)
    assert G.num_ws == 2 * int(np.log2(res)) - 2
    assert G.w_avg.shape == (w_dim,) and G.w_avg.abs().max() > 0
    assert not any(p.requires_grad for p in G.parameters())
