"""The image a loss compares against: decode (+ FFHQ-align) + fit to the generator's frame.

One recipe for the library (`embed`), the embed runner (CLI, web UI) and the experiments, so all
of them see the same target for the same file and options. `prepare_target` can also locate the
68 face landmarks in the frame (the defects experiment cuts features out along them), and
transforms a mask exactly like its image (Image2StyleGAN++ local embedding, embed/masks.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..errors import ImageError
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
    mask: Image.Image | None = None  # L [size x size]: the mask in the frame (255 = embed)


def prepare_target(
    image: str | os.PathLike | Image.Image,  # a file (decoded defensively) or a PIL image
    size: int,  # the square frame's side (the generator's resolution, or a working size)
    *,
    align: bool = False,  # FFHQ face alignment first (needs the [align] extra)
    fit: FitMode = "crop",  # how a non-square image becomes the frame
    content_size: tuple[int, int] | None = None,  # valid region of non-square generators
    name: str | None = None,  # how messages name the image
    landmarks: bool = False,  # also locate the 68 face landmarks in the frame
    mask: str | os.PathLike | Image.Image | None = None,  # white = embed; the image's size
    blackout: bool = True,  # black out the image where the mask is 0 (undefined pixels)
) -> Target:
    """The frame the loss sees; errors are `ImageError`s (`AlignError` when there is no face).

    `mask` goes through the same alignment warp and fit as the image (`Target.mask`); what the
    warp invents outside the photo and the fit's letterbox bars are 0 (undefined) in it. The
    image's pixels where the mask is 0 are set to black first, before face detection, warp and
    resampling, so that they cannot reach the frame through a resampling filter or move the
    alignment: undefined pixels have no influence at all (`blackout=False` keeps them, for masks
    that only select what one loss term sees, as scribble editing's)."""
    if isinstance(image, Image.Image):
        img = image.convert("RGB")
        name = name or "the image"
    else:
        img = load_image(image)
        name = name or str(image)
    source_mask = None
    if mask is not None:
        from .masks import load_mask

        if isinstance(mask, Image.Image):
            source_mask = mask.convert("L")
            if source_mask.size != img.size:
                raise ImageError(
                    f"{name}: the mask is {source_mask.width}x{source_mask.height} px but the "
                    f"image is {img.width}x{img.height}"
                )
        else:
            source_mask = load_mask(mask, img.size)
        if blackout:
            defined = source_mask.point(lambda v: 255 if v > 0 else 0)
            img = Image.composite(img, Image.new("RGB", img.size), defined)
    return _prepare(img, size, align, fit, content_size, name, landmarks, source_mask)


def _fit_mask(
    mask: Image.Image, size: int, fit: FitMode, content_size: tuple[int, int] | None
) -> Image.Image:
    """The fit of the image, applied to its mask (outside the fitted image: 0)."""
    return fit_image(mask.convert("RGB"), (size, size), fit, content_size=content_size).convert("L")


def _prepare(
    img: Image.Image,
    size: int,
    align: bool,
    fit: FitMode,
    content_size: tuple[int, int] | None,
    name: str,
    landmarks: bool,
    mask: Image.Image | None,
) -> Target:
    if landmarks and content_size is not None and tuple(content_size) != (size, size):
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
        frame_mask = None
        if mask is not None:  # the same warp; what it invents outside the photo is undefined
            warped = apply_alignment(mask.convert("RGB"), face.quad, side, enable_padding=False)
            frame_mask = _fit_mask(warped, size, fit, content_size)
        if not landmarks:
            return Target(frame, True, mask=frame_mask)
        points = source_to_aligned(face.landmarks, face.quad, side)
        return Target(frame, True, (points + 0.5) * (size / side) - 0.5, frame_mask)
    frame = fit_image(img, (size, size), fit, content_size=content_size)
    frame_mask = None if mask is None else _fit_mask(mask, size, fit, content_size)
    if not landmarks:
        return Target(frame, False, mask=frame_mask)
    from ..align import detect_faces, select_face

    side = max(size, LANDMARKS_MIN_SIDE)
    big = frame if side == size else fit_image(img, (side, side), fit)
    face = select_face(detect_faces(big), "largest", name)
    return Target(frame, False, (face.landmarks + 0.5) * (size / side) - 0.5, frame_mask)


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
