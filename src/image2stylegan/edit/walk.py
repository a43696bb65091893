"""Random walk from an embedded latent towards the mean latent w̄ (the paper's supplementary videos:
"the random walk results ... from the embedded image towards the mean face image").

The walk is the straight path w_start -> w_end (w_end = w̄, or part of the way there with `end`)
plus an optional random excursion that starts and ends at zero (a Brownian bridge), so the first
frame is the embedded code and the last the mean code, bit for bit, whatever the perturbation.
All randomness comes from the `generator` argument.
"""

from __future__ import annotations

import torch

from ._shapes import as_code

__all__ = ["random_walk"]


def random_walk(
    w_start: torch.Tensor,  # [num_ws, w_dim] or [1, num_ws, w_dim]: the embedded code
    w_avg: torch.Tensor,  # [w_dim] (G.w_avg) or [num_ws, w_dim]: where the walk heads
    num_frames: int,  # frames including both ends (>= 2)
    perturbation: float = 0.0,  # σ of the random excursion, in W units per element (0 = straight)
    end: float = 1.0,  # how far towards w_avg the walk goes: 1 = all the way, 0.5 = halfway
    per_layer: bool = False,  # False: one W-space excursion shared by all layers; True: per layer
    generator: torch.Generator | None = None,  # required when perturbation > 0
) -> torch.Tensor:
    """Frames of the walk: [num_frames, num_ws, w_dim]; frame 0 == w_start.

    Perturbation: increments ε_k ~ N(0, σ²/(K − 1)) per element are summed into a random walk
    n_k (n_0 = 0), and the bridge b_k = n_k − t_k·n_{K−1} (t_k = k/(K − 1)) is added to the
    straight path, so σ is the per-element spread the unbridged walk would reach at the end,
    independent of the frame count, and b_0 = b_{K−1} = 0.
    """
    start = as_code(w_start, "w_start")
    num_ws, w_dim = start.shape
    if w_avg.ndim == 1:
        w_avg = w_avg.reshape(1, -1).expand(num_ws, -1)
    if w_avg.shape != start.shape:
        raise ValueError(f"w_avg must be [{w_dim}] or [{num_ws}, {w_dim}], got {list(w_avg.shape)}")
    if num_frames < 2:
        raise ValueError(f"num_frames must be at least 2 (both ends), got {num_frames}")
    if perturbation < 0:
        raise ValueError(f"perturbation must be >= 0, got {perturbation}")
    if perturbation > 0 and generator is None:
        raise ValueError("a perturbed walk needs generator=torch.Generator().manual_seed(...)")

    w_end = start if end == 0 else torch.lerp(start, w_avg.to(start), float(end))  # [num_ws, w_dim]
    t = torch.linspace(0.0, 1.0, num_frames, dtype=start.dtype, device=start.device)  # [K]
    ws = torch.lerp(start.unsqueeze(0), w_end.unsqueeze(0), t[:, None, None])  # [K, num_ws, w_dim]
    if perturbation > 0:
        shape = (num_frames - 1, num_ws if per_layer else 1, w_dim)
        eps = torch.randn(shape, generator=generator, dtype=torch.float64)  # CPU, reproducible
        walk = torch.cat([torch.zeros_like(eps[:1]), eps.cumsum(0)]) * (
            perturbation / (num_frames - 1) ** 0.5
        )  # [K, 1 or num_ws, w_dim]
        t64 = t.to(torch.float64).cpu()[:, None, None]
        bridge = walk - t64 * walk[-1:]
        bridge[0] = 0
        bridge[-1] = 0
        ws = ws + bridge.to(ws)
    ws[0] = start
    ws[-1] = w_end
    return ws
