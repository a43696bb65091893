"""Latent-space editing: the applications of Sec. 4 (morphing, style transfer, expression
transfer) and the random walk towards the mean face, plus batched rendering of many codes.

The arithmetic functions take codes [num_ws, w_dim] or [1, num_ws, w_dim] and return
[K, num_ws, w_dim]; they never touch files (the CLI does the I/O).
"""

from .expression import (
    ExpressionDirection,
    channel_norms,
    expression_direction,
    expression_transfer,
)
from .morph import morph, morph_path, ping_pong
from .render import bordered_grid, image_strip, render_frames, render_images
from .style_transfer import style_transfer, style_transfer_grid
from .walk import random_walk

__all__ = [
    "ExpressionDirection",
    "bordered_grid",
    "channel_norms",
    "expression_direction",
    "expression_transfer",
    "image_strip",
    "morph",
    "morph_path",
    "ping_pong",
    "random_walk",
    "render_frames",
    "render_images",
    "style_transfer",
    "style_transfer_grid",
]
