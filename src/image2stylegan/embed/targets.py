"""The image a loss compares against: decode (+ FFHQ-align) + fit to the generator's frame.

One recipe for the library (`embed`), the embed runner (CLI, web UI) and the experiments, so all
of them see the same target for the same file and options. `prepare_target` can also locate the
68 face landmarks in the frame (the defects experiment cuts features out along them).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..image import FitMode, fit_image, load_image

__all__ = ["Target", "prepare_target", "target_frame"]

ALIGN_MIN_SIDE = 64  # the FFHQ recipe aligns to at least this side, then resizes to the frame
LANDMARKS_MIN_SIDE = 256  # dlib needs faces of ~40+ px: unaligned frames are searched this big


@dataclass(frozen=True)
class Target:
    """A prepared frame and, when asked for, its face landmarks."""

    frame: Image.Image  # RGB [size x size]: exactly what the loss sees
    aligned: bool  # FFHQ-aligned before fitting
    landmarks: np.ndarray | None = None  # [68, 2] dlib points (x, y) in frame pixels


def prepare_target(
    image: str | os.PathLike | Image.Image,  # a file (decoded defensively) or a PIL image
    size: int,  # the square frame's side (the generator's resolution, or a working size)
    *,
    align: bool = False,  # FFHQ face alignment first (needs the [align] extra)
    fit: FitMode = "crop",  # how a non-square image becomes the frame
    content_size: tuple[int, int] | None = None,  # valid region of non-square generators
    name: str | None = None,  # how messages name the image
    landmarks: bool = False,  # also locate the 68 face landmarks in the frame
) -> Target:
    """The frame the loss sees; errors are `ImageError`s (`AlignError` when there is no face)."""
    if isinstance(image, Image.Image):
        img = image.convert("RGB")
        name = name or "the image"
    else:
        img = load_image(image)
        name = name or str(image)
    if landmarks and content_size is not None and tuple(content_size) != (size, size):
        from ..errors import ImageError

        raise ImageError(
            f"{name}: face landmarks need a square generator frame (this one's content is "
            f"{content_size[0]}x{content_size[1]})"
        )
    if align:
        from ..align import apply_alignment, detect_faces, select_face, source_to_aligned

        # the FFHQ recipe ends with a resize to the output size: align straight to the frame
        side = max(size, ALIGN_MIN_SIDE)
        face = select_face(detect_faces(img), "largest", name)
        aligned = apply_alignment(img, face.quad, output_size=side)
        frame = fit_image(aligned, (size, size), fit, content_size=content_size)
        if not landmarks:
            return Target(frame, True)
        points = source_to_aligned(face.landmarks, face.quad, side)
        return Target(frame, True, (points + 0.5) * (size / side) - 0.5)
    frame = fit_image(img, (size, size), fit, content_size=content_size)
    if not landmarks:
        return Target(frame, False)
    from ..align import detect_faces, select_face

    side = max(size, LANDMARKS_MIN_SIDE)
    big = frame if side == size else fit_image(img, (side, side), fit)
    face = select_face(detect_faces(big), "largest", name)
    return Target(frame, False, (face.landmarks + 0.5) * (size / side) - 0.5)


def target_frame(
    image: str | os.PathLike | Image.Image,
    resolution: int,
    *,
    align: bool = False,
    fit: FitMode = "crop",
    content_size: tuple[int, int] | None = None,
    name: str | None = None,
) -> Image.Image:
    """The RGB frame [resolution x resolution] the loss sees (`prepare_target(...).frame`)."""
    target = prepare_target(
        image, resolution, align=align, fit=fit, content_size=content_size, name=name
    )
    return target.frame
