"""The image a loss compares against: decode (+ FFHQ-align) + fit to the generator's frame.

One recipe for the library (`embed`), the CLI runner and the web UI, so they all see the same
target for the same file and options.
"""

from __future__ import annotations

import os

from PIL import Image

from ..image import FitMode, fit_image, load_image

__all__ = ["target_frame"]


def target_frame(
    image: str | os.PathLike | Image.Image,  # a file (decoded defensively) or a PIL image
    resolution: int,  # the generator's square frame side
    *,
    align: bool = False,  # FFHQ face alignment first (needs the [align] extra)
    fit: FitMode = "crop",  # how a non-square image becomes the frame
    content_size: tuple[int, int] | None = None,  # valid region of non-square generators
    name: str | None = None,  # how alignment messages name the image
) -> Image.Image:
    """The RGB frame [resolution x resolution] the loss sees; errors are `ImageError`s."""
    if isinstance(image, Image.Image):
        img = image.convert("RGB")
    else:
        img = load_image(image)
        name = name or str(image)
    if align:
        from ..align import align_face

        # the FFHQ recipe ends with a resize to the output size: align straight to the frame
        img = align_face(img, output_size=max(resolution, 64), name=name)
    return fit_image(img, (resolution, resolution), fit, content_size=content_size)
