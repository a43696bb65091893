"""Morphing by linear interpolation in W+ (Sec. 4.1, Fig. 4/15/19).

The paper writes w = λ·w1 + (1 − λ)·w2, λ ∈ (0, 1); SPEC section 2 fixes the frame order: frame k
is (1 − t)·w_a + t·w_b with t = k / (num_frames − 1), so A comes first and B last. Frames are
computed with `torch.lerp`, whose result at t = 0 is exactly w_a and at t = 1 exactly w_b; the end
frames are additionally copied from the inputs, so they are the inputs bit for bit.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch

from ._shapes import as_codes

__all__ = ["morph", "morph_path", "ping_pong"]


def morph(
    w_a: torch.Tensor,  # [num_ws, w_dim] or [1, num_ws, w_dim]: the first frame
    w_b: torch.Tensor,  # same shape: the last frame
    num_frames: int,  # frames including both ends (>= 2)
) -> torch.Tensor:
    """Linear interpolation A -> B: [num_frames, num_ws, w_dim], frame 0 == w_a, last == w_b."""
    a, b = as_codes({"w_a": w_a, "w_b": w_b})
    if num_frames < 2:
        raise ValueError(f"num_frames must be at least 2 (both ends), got {num_frames}")
    t = torch.linspace(0.0, 1.0, num_frames, dtype=a.dtype, device=a.device)  # [K]
    ws = torch.lerp(a.unsqueeze(0), b.to(a).unsqueeze(0), t[:, None, None])  # [K, num_ws, w_dim]
    ws[0] = a
    ws[-1] = b
    return ws


def morph_path(
    keyframes: Sequence[torch.Tensor] | torch.Tensor,  # M codes [num_ws, w_dim] (or [M, ...])
    frames_per_segment: int,  # frames of each A -> B segment, both ends included (>= 2)
    loop: bool = False,  # ping-pong: go back along the path so the sequence loops seamlessly
) -> torch.Tensor:
    """Piecewise-linear path A -> B -> C ...: [(M − 1)·(frames_per_segment − 1) + 1, num_ws, w_dim].

    Every keyframe appears exactly (bit for bit) at frame i·(frames_per_segment − 1); the shared
    frame between two segments appears once. With `loop`, `ping_pong` is applied.
    """
    if isinstance(keyframes, torch.Tensor):
        keyframes = list(keyframes) if keyframes.ndim == 3 else [keyframes]
    if len(keyframes) < 2:
        raise ValueError(f"a morph path needs at least 2 keyframes, got {len(keyframes)}")
    codes = as_codes({f"keyframe {i}": w for i, w in enumerate(keyframes)})
    segments = [morph(codes[0], codes[1], frames_per_segment)]
    for a, b in itertools.pairwise(codes[1:]):
        segments.append(morph(a, b, frames_per_segment)[1:])
    ws = torch.cat(segments)
    return ping_pong(ws) if loop else ws


def ping_pong(ws: torch.Tensor) -> torch.Tensor:
    """[K, ...] -> [2K − 2, ...]: forward, then back without repeating either end, so that playing
    it in a loop never shows the same frame twice in a row."""
    if ws.ndim != 3:
        raise ValueError(f"ws must be [K, num_ws, w_dim], got {list(ws.shape)}")
    if ws.shape[0] < 3:
        return ws
    return torch.cat([ws, ws[1:-1].flip(0)])
