"""Writing a rendered sequence of codes (morph, walk, expression strengths): videos, GIFs, frame
folders and the strip of selected frames, from one rendering pass, streamed frame by frame."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..image import image_strip
from ..models.base import Generator
from ..video import FrameWriter, open_frame_writer, save_strip, strip_indices
from .render import render_frames

__all__ = ["SequenceOutput", "write_sequence", "write_strip"]


@dataclass
class SequenceOutput:
    """What `write_sequence` / `write_strip` wrote."""

    paths: list[Path]  # the outputs, in the order given
    frames: int  # frames rendered into each output
    size: tuple[int, int]  # (width, height) of a frame
    strip: Path | None = None  # the strip file, when asked for
    strip_image: Image.Image | None = None  # the strip itself
    strip_indices: list[int] = field(default_factory=list)  # frames the strip shows


def write_sequence(
    G: Generator,
    ws: torch.Tensor,  # [K, num_ws, w_dim]
    outputs: Sequence[str | os.PathLike],  # .mp4 / .gif / folder outputs, each gets every frame
    *,
    fps: float = 30.0,
    batch_size: int = 8,  # codes per synthesis call
    strip: str | os.PathLike | None = None,  # also write a strip of selected frames here
    strip_frames: int = 8,  # frames in the strip (evenly spaced, first and last included)
    on_frames: Callable[[int], object] | None = None,  # progress: called with frames rendered
    noise: Sequence[torch.Tensor] | None = None,  # [K or 1, 1, h, w] per input; None = stored
) -> SequenceOutput:
    """Render `ws` once (noise_mode="const", or the given noise maps) into every output;
    all-or-nothing: an error or an interrupt deletes the partial outputs."""
    num = ws.shape[0]
    picks = strip_indices(num, strip_frames) if strip is not None else []
    wanted = set(picks)
    writers: list[FrameWriter] = []
    kept: list[np.ndarray] = []
    size = (0, 0)
    try:
        for out in outputs:
            writers.append(open_frame_writer(out, fps=fps))  # fails now if `out` is unwritable
        frames = render_frames(G, ws, batch_size, on_batch=on_frames, noise=noise)
        for i, frame in enumerate(frames):
            size = (int(frame.shape[1]), int(frame.shape[0]))
            for writer in writers:
                writer.append(frame)
            if i in wanted:
                kept.append(frame)
        paths = [writer.close() for writer in writers]
    except BaseException:
        for writer in writers:
            writer.abort()  # nothing half-written: the temporary outputs are deleted
        raise
    result = SequenceOutput(paths, num, size, strip_indices=picks)
    if strip is not None:
        result.strip = save_strip(kept, strip)
        result.strip_image = image_strip(kept)
    return result


def write_strip(
    G: Generator,
    ws: torch.Tensor,  # [K, num_ws, w_dim]
    out: str | os.PathLike,  # an image file
    *,
    strip_frames: int | None = None,  # evenly spaced frames shown (None: all)
    batch_size: int = 8,
    on_frames: Callable[[int], object] | None = None,
    noise: Sequence[torch.Tensor] | None = None,  # [K or 1, 1, h, w] per input; None = stored
) -> SequenceOutput:
    """One row of `strip_frames` evenly spaced frames of the sequence; only those are rendered."""
    num = ws.shape[0]
    picks = strip_indices(num, strip_frames or num)
    if noise is not None:
        noise = [t if t.shape[0] == 1 else t[picks] for t in noise]
    frames = list(render_frames(G, ws[picks], batch_size, on_batch=on_frames, noise=noise))
    path = save_strip(frames, out)
    size = (int(frames[0].shape[1]), int(frames[0].shape[0]))
    return SequenceOutput([path], len(picks), size, path, image_strip(frames), picks)
