"""Shape checks shared by the latent-arithmetic functions of Sec. 4."""

from __future__ import annotations

import torch

__all__ = ["as_code", "as_codes"]


def as_code(w: torch.Tensor, name: str) -> torch.Tensor:
    """[num_ws, w_dim] or [1, num_ws, w_dim] -> [num_ws, w_dim]; anything else raises ValueError."""
    if not isinstance(w, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(w).__name__}")
    if w.ndim == 3 and w.shape[0] == 1:
        w = w[0]
    if w.ndim != 2:
        raise ValueError(
            f"{name} must be [num_ws, w_dim] or [1, num_ws, w_dim], got {list(w.shape)}"
        )
    if not w.is_floating_point():
        raise ValueError(f"{name} must hold floats, got {w.dtype}")
    return w


def as_codes(ws: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """Several codes by name -> [num_ws, w_dim] each, checked to share one shape."""
    codes = [as_code(w, name) for name, w in ws.items()]
    shapes = {tuple(c.shape) for c in codes}
    if len(shapes) > 1:
        described = ", ".join(f"{n} {list(c.shape)}" for n, c in zip(ws, codes, strict=True))
        raise ValueError(f"latent codes must share one [num_ws, w_dim] shape, got {described}")
    return codes
