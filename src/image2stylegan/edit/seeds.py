"""Random images from seeds, exactly as NVIDIA's generate.py draws them.

`parse_seeds('0-7,12')` reads seed lists the way generate.py does (inclusive ranges); seed s gives
z = np.random.RandomState(s).randn(1, z_dim), so seed 7 here is their seed0007.png (with the same
truncation and noise).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..models.base import Generator

__all__ = ["MAX_SEED", "parse_seeds", "seeds_to_ws", "seeds_to_z"]

MAX_SEED = 2**32  # np.random.RandomState takes seeds in [0, 2^32)


def parse_seeds(text: str) -> list[int]:
    """'0-7,12' -> [0, 1, ..., 7, 12]: ranges inclusive, spaces ignored; seeds in [0, 2^32).

    Raises `ValueError` saying how to write them.
    """
    seeds: list[int] = []
    try:
        for part in str(text or "").replace(" ", "").split(","):
            if not part:
                continue
            if "-" in part[1:]:
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                seeds.extend(range(lo, hi + 1))
            else:
                seeds.append(int(part))
        if not seeds or any(not 0 <= s < MAX_SEED for s in seeds):
            raise ValueError
    except ValueError:
        raise ValueError(f"{text!r}: expected seeds like 0-7,12 (integers in [0, 2^32))") from None
    return seeds


def seeds_to_z(seeds: Sequence[int], z_dim: int) -> torch.Tensor:
    """[N, z_dim] float32: row k = np.random.RandomState(seeds[k]).randn(1, z_dim)."""
    z = np.concatenate([np.random.RandomState(s).randn(1, z_dim) for s in seeds])
    return torch.from_numpy(z).float()


@torch.no_grad()
def seeds_to_ws(
    G: Generator,
    seeds: Sequence[int],
    truncation_psi: float = 1.0,
    truncation_cutoff: int | None = None,
) -> torch.Tensor:
    """The W+ codes [N, num_ws, w_dim] (CPU) of the seeds' z, truncated around w̄."""
    z = seeds_to_z(seeds, G.z_dim).to(G.w_avg.device)
    return G.mapping(z, truncation_psi, truncation_cutoff).cpu()
