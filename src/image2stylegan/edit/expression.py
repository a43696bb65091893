"""Expression transfer (Sec. 4.3, Fig. 7/25): w = w_target + λ·d̂, d̂ from a neutral/expressive pair.

The paper: d = w3 − w2 (expressive minus neutral embedding of the same person); "channels" of d
whose L2 norm is below a threshold (1 in the paper) are replaced by zero vectors to remove noise;
the result is normalised "to control the intensity of an expression in a particular direction".

Which "channel"? A W+ code is num_ws × w_dim (18 × 512). Two readings:

- ``channel="feature"`` (default): a channel is one feature dimension across all layers,
  the column d[:, j] (an 18-vector). This is the convolutional sense of "channel" (w_dim is the
  feature axis the affine style layers read).
- ``channel="layer"``: a channel is one layer's code, the row d[i, :] (a 512-vector).

Why "feature" is the default: with threshold 1 it is the only reading that zeroes a meaningful,
graded share of d on embedded latents. A vector of n elements of typical size σ has L2 norm
≈ σ·√n, and for large n that norm is sharply concentrated (relative spread ≈ 1/√(2n)). A 512-vector
falls below 1 only when its elements are ≲ 1/√512 ≈ 0.044, so the layer reading is an
all-or-nothing switch per layer: for i.i.d. differences of size σ it zeroes 100 % of the rows at
σ = 0.04 and 0 % at σ = 0.05. The W components of the FFHQ StyleGAN mostly lie in about
[−0.25, 1.5], and W+ embeddings drift further, so two embeddings of one face with different
expressions are expected to differ by a few tenths per element: the layer reading at threshold 1
leaves such a d untouched. An 18-vector falls below 1 when its elements are ≲ 1/√18 ≈ 0.24,
right inside that range; its norm spreads ±17 %, so the threshold selects channels gradually (for
i.i.d. differences: 88 % zeroed at σ = 0.2, 41 % at 0.25, 11 % at 0.3, 0.5 % at 0.4; with
heavy-tailed per-feature scales, a 17–60 % share over σ = 0.2–0.5). That is the paper's stated
purpose: drop the many small, noisy feature channels and keep the few that carry the expression.

Normalisation (``normalize``): after thresholding, d′ is rescaled ("we normalize the resultant
vectors to control the intensity"), so that λ, not the size of the source pair's change, sets
the intensity. All L2 norms; ‖·‖_F is the norm of the whole num_ws × w_dim code.

- ``"channel"`` (default): unit L2 norm per kept channel, in the root-mean-square sense:
  d̂ = d′ · √n / ‖d′‖_F with n the number of kept channels, so the mean of ‖d̂_c‖² over the kept
  channels c is 1 and d̂ points exactly along d′. λ is then the L2 distance each kept channel
  moves, on average: the same scale as the threshold (a channel shorter than 1 counts as noise,
  a kept channel moves by about |λ|). The source's own change is λ = the RMS norm of its kept
  channels, at least the threshold 1 and, for differences of a few tenths per element over 18
  layers, about σ·√18 ≈ 1–2; so SPEC's example range λ ∈ [−1.5, 1.5] spans about the source's
  change in both directions, whatever the code size. Scaling every kept channel to exactly
  norm 1 instead was rejected: it would boost the channels just above the threshold (the
  borderline noise) to the size of the strongest expression channels.
- ``"code"``: d̂ = d′ / ‖d′‖_F (unit norm of the whole code); |λ| is then exactly the W+
  distance between output and target. Visible changes need |λ| of the order of ‖d′‖_F (expected
  to be tens for 18 × 512 codes differing by a few tenths per element), which the CLI prints.
- ``"layer"``: each non-zero row d′[i] to unit norm (λ is the W distance moved by every layer).
- ``"none"``: d̂ = d′ (λ = 1 reproduces the thresholded source change).

`ExpressionDirection.source_strength` is the λ at which λ·d̂ = d′ (the source's own change).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from ._shapes import as_codes

__all__ = [
    "ChannelReading",
    "ExpressionDirection",
    "Normalization",
    "channel_norms",
    "expression_direction",
    "expression_transfer",
]

ChannelReading = Literal["feature", "layer"]
Normalization = Literal["channel", "code", "layer", "none"]

PAPER_THRESHOLD = 1.0  # Sec. 4.3: "the selected value of the threshold is 1"


@dataclass(frozen=True)
class ExpressionDirection:
    """The normalised expression direction and what thresholding did to it."""

    d_hat: torch.Tensor  # [num_ws, w_dim]: the direction added with strength λ
    kept: torch.Tensor  # bool [w_dim] ("feature") or [num_ws] ("layer"): channels kept
    norm_d: float  # ‖d‖_F before thresholding
    norm_kept: float  # ‖d′‖_F after thresholding
    source_strength: float | None  # λ with λ·d̂ = d′ (None for "layer": d̂ is not parallel to d′)

    @property
    def zeroed_fraction(self) -> float:
        """Share of channels set to zero by the threshold."""
        return 1.0 - self.kept.float().mean().item()


def channel_norms(d: torch.Tensor, channel: ChannelReading = "feature") -> torch.Tensor:
    """L2 norm of every channel of d [num_ws, w_dim]: [w_dim] ("feature") or [num_ws] ("layer")."""
    if channel == "feature":
        return d.norm(dim=0)  # one 18-vector per feature dimension
    if channel == "layer":
        return d.norm(dim=1)  # one 512-vector per layer
    raise ValueError(f"channel must be 'feature' or 'layer', got {channel!r}")


def expression_direction(
    w_neutral: torch.Tensor,  # [num_ws, w_dim] or [1, num_ws, w_dim]: w2, the neutral source
    w_expressive: torch.Tensor,  # same shape: w3, the same face with the expression
    threshold: float = PAPER_THRESHOLD,  # channels of d with L2 norm < threshold become 0
    channel: ChannelReading = "feature",  # which reading of "channel" (see the module doc)
    normalize: Normalization = "channel",  # the scope of the unit L2 norm (see the module doc)
) -> ExpressionDirection:
    """d = w_expressive − w_neutral, thresholded per channel and normalised (Sec. 4.3)."""
    neutral, expressive = as_codes({"w_neutral": w_neutral, "w_expressive": w_expressive})
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    d = expressive - neutral.to(expressive)  # [num_ws, w_dim]
    norms = channel_norms(d, channel)
    kept = norms >= threshold  # [w_dim] or [num_ws]
    mask = kept[None, :] if channel == "feature" else kept[:, None]  # broadcast to [num_ws, w_dim]
    d_kept = torch.where(mask, d, torch.zeros_like(d))  # d′
    norm_kept = d_kept.norm().item()
    if norm_kept == 0.0:
        largest = norms.max().item() if norms.numel() else 0.0
        raise ValueError(
            f"every {channel} channel of the expression difference is below the threshold "
            f"{threshold:g} (the largest has L2 norm {largest:.4g}); lower the threshold"
        )
    source_strength: float | None
    if normalize == "channel":
        source_strength = norm_kept / int(kept.sum()) ** 0.5  # RMS norm of the kept channels
        d_hat = d_kept / source_strength
    elif normalize == "code":
        source_strength = norm_kept
        d_hat = d_kept / norm_kept
    elif normalize == "layer":
        source_strength = None
        row_norms = d_kept.norm(dim=1, keepdim=True)  # [num_ws, 1]
        d_hat = torch.where(row_norms > 0, d_kept / row_norms.clamp_min(1e-30), d_kept)
    elif normalize == "none":
        source_strength = 1.0
        d_hat = d_kept
    else:
        raise ValueError(
            f"normalize must be 'channel', 'code', 'layer' or 'none', got {normalize!r}"
        )
    return ExpressionDirection(d_hat, kept, d.norm().item(), norm_kept, source_strength)


def expression_transfer(
    w_target: torch.Tensor,  # [num_ws, w_dim] or [1, num_ws, w_dim]: w1, the face to edit
    w_neutral: torch.Tensor,  # w2: neutral expression of the source face
    w_expressive: torch.Tensor,  # w3: the source face with the expression to transfer
    strengths: Sequence[float] | torch.Tensor,  # λ values; negative = the opposite direction
    threshold: float = PAPER_THRESHOLD,
    channel: ChannelReading = "feature",
    normalize: Normalization = "channel",
) -> torch.Tensor:
    """One code per strength: [K, num_ws, w_dim], output k = w_target + strengths[k]·d̂.

    λ = 0 returns w_target exactly. See the module docstring for `channel` and `normalize`.
    """
    (target,) = as_codes({"w_target": w_target})
    direction = expression_direction(w_neutral, w_expressive, threshold, channel, normalize)
    if direction.d_hat.shape != target.shape:
        raise ValueError(
            f"w_target {list(target.shape)} and the source codes {list(direction.d_hat.shape)} "
            "must share one [num_ws, w_dim] shape"
        )
    lam = torch.as_tensor(strengths, dtype=target.dtype, device=target.device).reshape(-1)  # [K]
    if lam.numel() == 0:
        raise ValueError("strengths must hold at least one value")
    d_hat = direction.d_hat.to(target)
    return target.unsqueeze(0) + lam[:, None, None] * d_hat.unsqueeze(0)  # [K, num_ws, w_dim]
