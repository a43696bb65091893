"""The noise maps an edit renders with (Image2StyleGAN++ noise stage, embed/records.py).

A latent file made with a noise stage holds its optimised noise maps (`noise_00` ...); rendering
its code with the generator's stored noise would lose the detail they restore. Every command that
renders latents therefore uses a latent's own noise maps when it has them, and the stored
constants otherwise. When several latents are mixed:

- morph (Sec. 4.1) interpolates the noise maps with the same t as the codes, segment by segment:
  frame 0 is A with A's noise, the last frame B with B's (a latent without maps contributes the
  stored constants), so both ends reproduce the reconstructions;
- style transfer (Sec. 4.2) renders with the CONTENT latent's noise (the noise maps are spatial
  detail of the content's layout);
- expression transfer (Sec. 4.3) with the TARGET latent's noise;
- the random walk with the starting latent's noise for every frame.

When no latent of an edit has noise maps, rendering is unchanged: noise_mode="const".
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..latents import LatentFile, check_noise_fits, latent_noise
from ..models.base import Generator
from .morph import morph_path

__all__ = [
    "NO_NOISE_INPUTS",
    "latent_noise_for",
    "morph_noise",
    "noise_of",
    "noise_used",
    "stack_noise",
]

NO_NOISE_INPUTS = "none (StyleGAN3 has no noise inputs)"  # what a summary says on StyleGAN3


def noise_used(G: Generator, used: str) -> str:
    """What a render used as noise inputs, for summaries and status lines: `used` (a noise mode,
    "stored constants", ...), or NO_NOISE_INPUTS when G has none (StyleGAN3)."""
    return used if G.num_noise_inputs else NO_NOISE_INPUTS


def latent_noise_for(G: Generator, latent: LatentFile) -> list[torch.Tensor] | None:
    """The latent's noise maps ([1, 1, h, w] each, checked against G's noise inputs) or None."""
    noise = latent_noise(latent)
    if noise is None:
        return None
    check_noise_fits(noise, G.noise_buffers(), str(latent.path or "latent"))
    return [t.float() for t in noise]


def noise_of(G: Generator, latent: LatentFile) -> list[torch.Tensor] | None:
    """The noise to render `latent` with: its own maps, or None (the stored constants)."""
    return latent_noise_for(G, latent)


def _or_stored(G: Generator, noise: list[torch.Tensor] | None) -> list[torch.Tensor]:
    return noise if noise is not None else [b.detach().float().cpu() for b in G.noise_buffers()]


def stack_noise(G: Generator, latents: Sequence[LatentFile]) -> list[torch.Tensor] | None:
    """One noise set per latent, stacked: [M, 1, h, w] per noise input (latents without maps take
    the stored constants), or None when no latent has noise maps."""
    per = [latent_noise_for(G, lat) for lat in latents]
    if all(n is None for n in per):
        return None
    sets = [_or_stored(G, n) for n in per]
    return [torch.cat(maps) for maps in zip(*sets, strict=True)]


def morph_noise(
    G: Generator,
    latents: Sequence[LatentFile],
    frames_per_segment: int,
    loop: bool = False,
) -> list[torch.Tensor] | None:
    """The noise of `morph_path` over the latents: per noise input [K, 1, h, w], interpolated
    with the codes' t (None when no latent has noise maps)."""
    stacked = stack_noise(G, latents)
    if stacked is None:
        return None
    out = []
    for maps in stacked:  # [M, 1, h, w]
        path = morph_path(list(maps[:, 0]), frames_per_segment, loop=loop)  # [K, h, w]
        out.append(path.unsqueeze(1))
    return out
