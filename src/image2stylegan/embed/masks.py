"""Masked (local) embedding, Image2StyleGAN++ Sec. 4.1 (Eq. 1 with the spatial masks M_p, M_m).

A mask says which pixels of a target are defined: 1 (white) = embed these pixels, 0 (black) =
undefined, values between weight the pixel. Following Eq. 1 of the sequel, the mask multiplies
the images *before* both loss terms, the perceptual term L_percept(M ⊙ G(w), M ⊙ x) and the pixel
term ||M ⊙ (G(w) - x)||^2 / N, on the 0-255 scale (a masked-out pixel is black, 0, in both
images). Where the mask is 0 both images are replaced by the same constant, so the target's pixels
there have no influence at all: two targets that differ only where the mask is 0 give
bit-identical embeddings (tests/test_masks.py).

A mask file is transformed exactly like its image (`embed.targets.prepare_target`): the same FFHQ
alignment warp (what the warp invents outside the photo, the image's reflected padding, is
undefined: 0) and the same fit to the generator's frame (letterbox bars and the area outside a
non-square generator's content are 0). The image's undefined pixels are blacked out before any
of that (face detection, warp, resampling filters), so they cannot leak into defined frame
pixels either: two photos that differ only where their mask is 0 give the same frame.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image, ImageFilter

from ..errors import ImageError
from ..image import load_image

if TYPE_CHECKING:
    from .embedder import TargetLoss

__all__ = [
    "MaskedLoss",
    "RegionLoss",
    "apply_mask",
    "blur_mask",
    "load_mask",
    "mask_to_tensor",
]


def load_mask(path: str | os.PathLike, size: tuple[int, int] | None = None) -> Image.Image:
    """A mask file as an 8-bit grayscale image (L; white = embed, black = undefined).

    Decoded like every image (EXIF orientation applied), then its luminance; `size` (width,
    height): the image it belongs to, checked. Raises `ImageError` naming the file.
    """
    mask = load_image(path).convert("L")  # ImageError for unreadable files
    if size is not None and mask.size != tuple(size):
        raise ImageError(
            f"{path}: the mask is {mask.width}x{mask.height} px but its image is "
            f"{size[0]}x{size[1]}; a mask must have the size of the image it masks"
        )
    if np.asarray(mask).max() == 0:
        raise ImageError(f"{path}: the mask is black everywhere (nothing to embed)")
    return mask


def mask_to_tensor(mask: Image.Image) -> torch.Tensor:
    """L image -> [1, 1, H, W] float32 in [0, 1]."""
    a = np.asarray(mask.convert("L"), dtype=np.float32) / 255.0
    return torch.from_numpy(a)[None, None]


def blur_mask(mask: Image.Image, radius: float) -> Image.Image:
    """The mask with a Gaussian blur of `radius` px (the paper's M_blur for seamless blending)."""
    return mask.filter(ImageFilter.GaussianBlur(radius)) if radius > 0 else mask


def apply_mask(img: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """M ⊙ I on the 0-255 scale, for images in [-1, 1]: ((x + 1) * m) - 1, exactly -1 (black)
    where m == 0 whatever x is. img [N, C, H, W], mask [N or 1, 1, H, W]."""
    m = mask.to(img.device, img.dtype)
    return torch.where(m > 0, (img + 1) * m - 1, torch.full_like(img, -1.0))


class MaskedLoss:
    """A per-image loss (`TargetLoss`) on masked images: loss(M ⊙ G(w), M ⊙ x) (Eq. 1, Sec. 4.1)."""

    def __init__(
        self,
        inner: TargetLoss,  # the unmasked loss (Eq. 1 of Image2StyleGAN, MSE only, ...)
        mask: torch.Tensor,  # [N or 1, 1, H, W] in [0, 1], the region the loss sees
    ) -> None:
        if mask.ndim != 4 or mask.shape[1] != 1:
            raise ValueError(f"mask must be [N, 1, H, W], got {list(mask.shape)}")
        self.inner = inner
        self.mask = mask

    def set_target(self, target: torch.Tensor) -> None:
        self._check(target)
        self.inner.set_target(apply_mask(target, self.mask))

    def __call__(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        self._check(img)
        return self.inner(apply_mask(img, self.mask))

    def _check(self, x: torch.Tensor) -> None:
        if x.shape[-2:] != self.mask.shape[-2:] or self.mask.shape[0] not in (1, x.shape[0]):
            raise ValueError(
                f"mask {list(self.mask.shape)} does not fit images {list(x.shape)} (same H, W)"
            )


class RegionLoss:
    """A sum of losses, each against its own target on its own region (Image2StyleGAN++ Eq. 1
    with several terms: e.g. crossover = L(M ⊙ G, M ⊙ x) + L((1 - M) ⊙ G, (1 - M) ⊙ y)).

    `set_target` is called with the runner's target (the frame it records); each region keeps
    the target it was built with (None: the runner's). Terms are summed key by key ("total",
    "perceptual", "mse", "style", ...), each [N].
    """

    def __init__(
        self,
        regions: Sequence[tuple[TargetLoss, torch.Tensor | None, torch.Tensor | None]],
        # (loss, mask [N or 1, 1, H, W] or None = everywhere, own target [N, 3, H, W] or None)
    ) -> None:
        if not regions:
            raise ValueError("a RegionLoss needs at least one region")
        self.regions = [
            (MaskedLoss(loss, mask) if mask is not None else loss, target)
            for loss, mask, target in regions
        ]

    def set_target(self, target: torch.Tensor) -> None:
        for loss, own in self.regions:
            loss.set_target(target if own is None else own.to(target.device))

    def __call__(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        total: dict[str, torch.Tensor] = {}
        for loss, _ in self.regions:
            total = _add(total, loss(img))
        return total


def _add(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = dict(a)
    for k, v in b.items():
        out[k] = out[k] + v if k in out else v
    return out
