"""Style transfer by crossover (Sec. 4.2, Fig. 6/8/23).

The paper keeps the embedded content image's codes for the first 9 of 18 layers (the 4²–64²
synthesis resolutions) and takes the last 9 (64²–1024²) from the embedded style image. Here the
split is `from_layer`: rows [0, from_layer) come from the content code, rows [from_layer, num_ws)
from the style code, copied (not recomputed), so each row equals its source bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ._shapes import as_codes

__all__ = ["PAPER_FROM_LAYER", "style_transfer", "style_transfer_grid"]

PAPER_FROM_LAYER = 9  # Fig. 8: 9 content layers (4²–64²) + 9 style layers (64²–1024²) of 18


def style_transfer(
    w_content: torch.Tensor,  # [num_ws, w_dim] or [1, num_ws, w_dim]: gives the coarse layers
    w_style: torch.Tensor,  # same shape: gives the fine layers
    from_layer: int = PAPER_FROM_LAYER,  # first layer taken from the style code
) -> torch.Tensor:
    """Crossover of two W+ codes: [1, num_ws, w_dim].

    `from_layer` may be 0 (all style) up to num_ws (all content).
    """
    content, style = as_codes({"w_content": w_content, "w_style": w_style})
    num_ws = content.shape[0]
    if not 0 <= from_layer <= num_ws:
        raise ValueError(f"from_layer must be in [0, {num_ws}] for {num_ws} ws, got {from_layer}")
    mixed = torch.cat([content[:from_layer], style[from_layer:].to(content)])  # [num_ws, w_dim]
    return mixed.unsqueeze(0)


def style_transfer_grid(
    contents: Sequence[torch.Tensor] | torch.Tensor,  # C codes [num_ws, w_dim]: the grid's columns
    styles: Sequence[torch.Tensor] | torch.Tensor,  # S codes [num_ws, w_dim]: the grid's rows
    from_layer: int = PAPER_FROM_LAYER,
) -> torch.Tensor:
    """All crossovers as in Fig. 8/23: [S, C, num_ws, w_dim], entry [s, c] = content c + style s."""
    contents = _listed(contents)
    styles = _listed(styles)
    if not contents or not styles:
        raise ValueError("a style-transfer grid needs at least one content and one style code")
    rows = [
        torch.cat([style_transfer(c, s, from_layer) for c in contents])  # [C, num_ws, w_dim]
        for s in styles
    ]
    return torch.stack(rows)


def _listed(ws: Sequence[torch.Tensor] | torch.Tensor) -> list[torch.Tensor]:
    if isinstance(ws, torch.Tensor) and ws.ndim == 3:
        return list(ws)
    if isinstance(ws, torch.Tensor):
        return [ws]
    return list(ws)
