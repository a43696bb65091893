"""`random:` generator sources: an official architecture with freshly initialised weights.

The paper embeds images into a *randomly initialised* StyleGAN to show that the learned weights,
not the architecture alone, make the embedding meaningful (Sec. 3.3, Fig. 5 (b)(e)). These
sources give that network, and an offline demo generator, without any file:

    random:stylegan1-1024       StyleGAN (v1), the official FFHQ configuration at 1024 px
    random:stylegan2-256@3      StyleGAN2 config-f at 256 px, seed 3
    random:stylegan3-t-512      StyleGAN3 config T (alias-free, translation equivariant)
    random:stylegan3-r-1024     StyleGAN3 config R (alias-free, also rotation equivariant)

Grammar: `random:ARCH-RES[@SEED]`, ARCH `stylegan1` | `stylegan2` | `stylegan3-t` |
`stylegan3-r`, RES a power of two in [4, 4096] (StyleGAN3: [16, 4096]), SEED a non-negative
integer (default 0).

- StyleGAN1 = the official `G_style` defaults (the FFHQ model: fmap_base 8192, fmap_max 512,
  8 mapping layers, lr multiplier 0.01, fused up-conv from 128 px); StyleGAN2 = config-f
  (channel_base 32768, channel_max 512, skip architecture, float32); StyleGAN3 = the networks
  NVlabs/stylegan3's train.py builds for `--cfg=stylegan3-t` / `stylegan3-r` with its default
  `--cbase=32768 --cmax=512 --map-depth=2` and the documented `--batch=32`
  (magnitude_ema_beta = 0.5 ** (32 / 20000), num_fp16_res 4, conv_clamp 256; R: 1x1 convolutions,
  doubled channel_base / channel_max, radially symmetric down-filters). Their magnitude_ema
  (input gains) are 1, the official initial value.
- Weights as the official code initialises them (each model's constructor): stored weights
  N(0, 1/lrmul) under the equalised learning rate, zero biases and noise strengths; StyleGAN1's
  constant input is ones and its style biases zero, StyleGAN2's constant is N(0, 1) and its
  style biases one. Stored noise buffers are N(0, 1). Everything is drawn from `SEED`.
- `w_avg` is the mean of `W_AVG_SAMPLES` mapped z ~ N(0, I) (also drawn from `SEED`), so the
  truncation trick and the paper's mean initialisation behave as with a trained model (the
  official code starts `w_avg` at zero and tracks it during training).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from ..errors import CheckpointError
from ..models.base import Generator

__all__ = [
    "RANDOM_PREFIX",
    "STYLEGAN3_MAGNITUDE_EMA_BETA",
    "W_AVG_SAMPLES",
    "RandomSource",
    "is_random_source",
    "mean_w",
    "parse_random_source",
    "random_generator",
]

RANDOM_PREFIX = "random:"
W_AVG_SAMPLES = 10_000  # z samples averaged for w_avg (as NVIDIA's projector estimates w̄)
MAX_RESOLUTION = 4096
_W_AVG_STREAM = 0x5EED_A7E5  # xor-ed into SEED for the w_avg samples' RNG
_ARCHITECTURES = ("stylegan1", "stylegan2", "stylegan3-t", "stylegan3-r")
_MIN_RESOLUTION = {"stylegan3-t": 16, "stylegan3-r": 16}  # others: 4
_PATTERN = re.compile(r"(?P<arch>[a-z0-9]+(?:-[a-z])?)-(?P<res>\d+)(?:@(?P<seed>\d+))?")
_FORM = (
    "random:ARCH-RES[@SEED], e.g. random:stylegan1-1024, random:stylegan2-256@3 or "
    "random:stylegan3-t-512"
)
# NVlabs/stylegan3 train.py: magnitude_ema_beta = 0.5 ** (batch / (20 * 1e3)), batch 32 as in
# every configuration docs/configs.md lists for the published models.
STYLEGAN3_MAGNITUDE_EMA_BETA = 0.5 ** (32 / (20 * 1e3))


@dataclass(frozen=True)
class RandomSource:
    """A parsed `random:` source string."""

    architecture: str  # "stylegan1" | "stylegan2" | "stylegan3-t" | "stylegan3-r"
    resolution: int  # output side in pixels, a power of two
    seed: int  # every weight, noise buffer and the w_avg samples are drawn from it

    def __str__(self) -> str:
        return f"{RANDOM_PREFIX}{self.architecture}-{self.resolution}@{self.seed}"


def is_random_source(src: object) -> bool:
    """True for strings that start with `random:` (whether or not the rest is valid)."""
    return isinstance(src, str) and src.startswith(RANDOM_PREFIX)


def parse_random_source(src: str) -> RandomSource:
    """'random:stylegan1-256@3' -> RandomSource('stylegan1', 256, 3); a bad string raises
    `CheckpointError` saying what is wrong and the accepted form."""
    if not is_random_source(src):
        raise CheckpointError(f"{src!r}: not a random generator source (expected {_FORM})")
    match = _PATTERN.fullmatch(src[len(RANDOM_PREFIX) :])
    if match is None:
        raise CheckpointError(f"{src!r}: not a valid random generator source; expected {_FORM}")
    arch, res = match["arch"], int(match["res"])
    if arch not in _ARCHITECTURES:
        raise CheckpointError(
            f"{src!r}: unknown architecture {arch!r} (known: {', '.join(_ARCHITECTURES)})"
        )
    low = _MIN_RESOLUTION.get(arch, 4)
    if res < low or res > MAX_RESOLUTION or res & (res - 1):
        raise CheckpointError(
            f"{src!r}: resolution {res} is not a power of two between {low} and {MAX_RESOLUTION}"
        )
    seed = int(match["seed"]) if match["seed"] is not None else 0
    if seed >= 2**63:
        raise CheckpointError(f"{src!r}: seed {seed} is too large (at most 2**63 - 1)")
    return RandomSource(arch, res, seed)


def _build(spec: RandomSource) -> Generator:
    """The official architecture, initialised by its constructor from the seeded global RNG
    (forked, so the caller's RNG state is untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        if spec.architecture == "stylegan1":
            from ..models.stylegan1 import StyleGAN1Config, StyleGAN1Generator

            return StyleGAN1Generator(StyleGAN1Config(resolution=spec.resolution))
        if spec.architecture == "stylegan2":
            from ..models.stylegan2 import StyleGAN2Config, StyleGAN2Generator

            return StyleGAN2Generator(StyleGAN2Config(img_resolution=spec.resolution))
        from ..models.stylegan3 import StyleGAN3Config, StyleGAN3Generator

        r = spec.architecture == "stylegan3-r"
        config = StyleGAN3Config(
            img_resolution=spec.resolution,
            mapping_layers=2,
            channel_base=32768 * (2 if r else 1),
            channel_max=512 * (2 if r else 1),
            conv_kernel=1 if r else 3,
            use_radial_filters=r,
            magnitude_ema_beta=STYLEGAN3_MAGNITUDE_EMA_BETA,
        )
        return StyleGAN3Generator(config)


@torch.no_grad()
def mean_w(
    G: Generator,
    num_samples: int = W_AVG_SAMPLES,
    generator: torch.Generator | None = None,
    chunk: int = 2_000,
) -> torch.Tensor:
    """w̄ = mean of map_z(z) over `num_samples` z ~ N(0, I): [w_dim] (summed in float64)."""
    device = G.w_avg.device
    total = torch.zeros(G.w_dim, dtype=torch.float64, device=device)
    for start in range(0, num_samples, chunk):
        n = min(chunk, num_samples - start)
        z = torch.randn(n, G.z_dim, generator=generator).to(device)  # [n, z_dim]
        total += G.map_z(z).to(torch.float64).sum(dim=0)
    return (total / num_samples).to(torch.float32)


def random_generator(src: str | RandomSource) -> Generator:
    """Build the generator a `random:` source names (CPU, float32, train mode like a fresh
    module; `load_generator` puts it in eval mode and freezes it)."""
    spec = src if isinstance(src, RandomSource) else parse_random_source(src)
    G = _build(spec)
    # A stream of its own for the w_avg samples (not the one the weights came from).
    samples = torch.Generator().manual_seed(spec.seed ^ _W_AVG_STREAM)
    G.w_avg.copy_(mean_w(G, generator=samples))
    return G
