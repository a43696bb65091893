"""Random images from seeds, exactly as NVIDIA's generate.py draws them.

`parse_seeds('0-7,12')` reads seed lists the way generate.py does (inclusive ranges); seed s gives
z = np.random.RandomState(s).randn(1, z_dim), so seed 7 here is their seed0007.png (with the same
truncation and noise).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..errors import short_repr
from ..models.base import Generator

__all__ = ["MAX_SEED", "MAX_SEEDS", "parse_seeds", "seeds_to_ws", "seeds_to_z"]

MAX_SEED = 2**32  # np.random.RandomState takes seeds in [0, 2^32)
MAX_SEEDS = 10_000  # images of one run (their W+ codes alone: ~370 MB at 1024 px)


def parse_seeds(text: str, limit: int = MAX_SEEDS) -> list[int]:
    """'0-7,12' -> [0, 1, ..., 7, 12]: ranges inclusive, spaces ignored; seeds in [0, 2^32), at
    most `limit` of them (counted before any range is expanded).

    Raises `ValueError` saying how to write them.
    """
    ranges: list[tuple[int, int]] = []
    try:
        for part in str(text or "").replace(" ", "").split(","):
            if not part:
                continue
            if "-" in part[1:]:
                lo, hi = (int(x) for x in part.split("-", 1))
            else:
                lo = hi = int(part)
            if hi < lo or lo < 0 or hi >= MAX_SEED:
                raise ValueError
            ranges.append((lo, hi))
        if not ranges:
            raise ValueError
    except ValueError:
        short = short_repr(text)
        raise ValueError(f"{short}: expected seeds like 0-7,12 (integers in [0, 2^32))") from None
    count = sum(hi - lo + 1 for lo, hi in ranges)
    if count > limit:
        raise ValueError(f"{short_repr(text)} is {count:,} seeds; at most {limit:,} per run")
    return [s for lo, hi in ranges for s in range(lo, hi + 1)]


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
