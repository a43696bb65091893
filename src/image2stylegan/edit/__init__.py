"""Latent-space editing: the applications of Sec. 4 (morphing, style transfer, expression
transfer) and the random walk towards the mean face, plus what both front ends (the editing
commands and the web UI's edit tabs) share: batched rendering, sequence writing, seeds, and the
generator a latent records.

The stage after embedding (... -> embed -> edit -> experiments -> cli / web). The arithmetic
functions take codes [num_ws, w_dim] or [1, num_ws, w_dim] and return [K, num_ws, w_dim] and
never touch files; `sequence` writes the rendered frames.
"""

from .expression import (
    ExpressionDirection,
    channel_norms,
    expression_direction,
    expression_transfer,
)
from .morph import morph, morph_path, ping_pong
from .render import bordered_grid, image_strip, render_frames, render_images
from .seeds import parse_seeds, seeds_to_ws, seeds_to_z
from .sequence import SequenceOutput, write_sequence, write_strip
from .sources import common_generator, recorded_generator
from .style_transfer import style_transfer, style_transfer_grid
from .walk import random_walk

__all__ = [
    "ExpressionDirection",
    "SequenceOutput",
    "bordered_grid",
    "channel_norms",
    "common_generator",
    "expression_direction",
    "expression_transfer",
    "image_strip",
    "morph",
    "morph_path",
    "parse_seeds",
    "ping_pong",
    "random_walk",
    "recorded_generator",
    "render_frames",
    "render_images",
    "seeds_to_ws",
    "seeds_to_z",
    "style_transfer",
    "style_transfer_grid",
    "write_sequence",
    "write_strip",
]
