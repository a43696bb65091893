"""Rendering many codes through a generator in batches, frame by frame (SPEC section 3).

`render_frames` yields one uint8 image at a time so callers can stream frames to a video
writer: at most one batch of images is in memory, however long the sequence.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..devices import is_out_of_memory
from ..image import frame_to_pil, image_strip, tensor_to_uint8
from ..models.base import Generator, NoiseMode

__all__ = ["bordered_grid", "frame_to_pil", "image_strip", "render_frames", "render_images"]

logger = logging.getLogger(__name__)


def render_frames(
    G: Generator,
    ws: torch.Tensor,  # [K, num_ws, w_dim]
    batch_size: int = 8,  # codes per synthesis call
    noise_mode: NoiseMode = "const",  # SPEC: the editing commands render with the stored noise
    noise_seeds: Sequence[int] | None = None,  # per-code seeds for noise_mode="random"
    on_batch: Callable[[int], object] | None = None,  # called with the number of frames rendered
    noise: Sequence[torch.Tensor] | None = None,  # per noise input [K or 1, 1, h, w]: overrides
    # noise_mode (a latent's optimised noise maps, edit/noise.py)
) -> Iterator[np.ndarray]:
    """Yield K uint8 images [H, W, C] in order, rendering `batch_size` codes per forward pass.

    With noise_mode="random", code k gets noise from `torch.Generator().manual_seed(noise_seeds[k])`
    (default seed k), so a frame does not depend on the batch it was rendered in. `noise` gives
    the maps explicitly: one set for all codes ([1, 1, h, w]) or one per code ([K, 1, h, w]).
    """
    if ws.ndim != 3:
        raise ValueError(f"ws must be [K, num_ws, w_dim], got {list(ws.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if noise_seeds is not None and len(noise_seeds) != ws.shape[0]:
        raise ValueError(f"need one noise seed per code: {ws.shape[0]}, got {len(noise_seeds)}")
    if noise is not None and any(t.shape[0] not in (1, ws.shape[0]) for t in noise):
        raise ValueError(f"noise maps must have 1 or {ws.shape[0]} rows, one per code")
    device = G.w_avg.device
    start = 0
    while start < ws.shape[0]:
        batch = ws[start : start + batch_size].to(device=device, dtype=torch.float32)
        maps = None
        if noise is not None:
            maps = [
                (t if t.shape[0] == 1 else t[start : start + len(batch)]).to(device, torch.float32)
                for t in noise
            ]
        elif noise_mode == "random":
            seeds = noise_seeds or range(ws.shape[0])
            per_code = [_cpu_noise(G, int(seeds[k])) for k in range(start, start + len(batch))]
            maps = [torch.cat(parts).to(device) for parts in zip(*per_code, strict=True)]
        try:
            with torch.no_grad():
                img = G.synthesis(batch, noise_mode=noise_mode, noise=maps)  # [B, C, H, W]
        except (RuntimeError, MemoryError) as e:  # frames do not depend on the batch: halve it
            if len(batch) == 1 or not is_out_of_memory(e):
                raise
            batch_size = len(batch) // 2
            logger.warning("out of memory at %d codes per batch; rendering %d", len(batch),
                           batch_size)  # fmt: skip
            continue
        frames = tensor_to_uint8(img)  # [B, H, W, C]
        start += frames.shape[0]
        yield from frames
        if on_batch is not None:
            on_batch(frames.shape[0])


def _cpu_noise(G: Generator, seed: int) -> list[torch.Tensor]:
    """Random noise drawn on the CPU (same numbers on every device), one tensor per input."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn((1, 1, *b.shape[2:]), generator=g) for b in G.noise_buffers()]


def render_images(
    G: Generator, ws: torch.Tensor, batch_size: int = 8, **kw: Any
) -> list[Image.Image]:
    """Render a few codes [K, num_ws, w_dim] to PIL images (for grids and strips)."""
    return [frame_to_pil(f) for f in render_frames(G, ws, batch_size, **kw)]


def bordered_grid(
    top: Sequence[Image.Image],  # C images along the top border (the content sources)
    left: Sequence[Image.Image],  # R images down the left border (the style sources)
    cells: Sequence[Sequence[Image.Image]],  # R rows of C images: cells[r][c]
    gap: int | None = None,  # white gap between the borders and the cells (None: size / 32)
) -> Image.Image:
    """The Fig. 8/23 table: blank corner, sources on the top row and left column, results inside."""
    if not top or not left or len(cells) != len(left) or any(len(r) != len(top) for r in cells):
        raise ValueError("cells must be len(left) rows of len(top) images")
    w, h = top[0].size
    gap = max(2, w // 32) if gap is None else gap
    grid = Image.new("RGB", ((len(top) + 1) * w + gap, (len(left) + 1) * h + gap), "white")
    for c, im in enumerate(top):
        grid.paste(im.convert("RGB"), (w + gap + c * w, 0))
    for r, im in enumerate(left):
        grid.paste(im.convert("RGB"), (0, h + gap + r * h))
        for c, cell in enumerate(cells[r]):
            grid.paste(cell.convert("RGB"), (w + gap + c * w, h + gap + r * h))
    return grid
