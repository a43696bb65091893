"""The one place that converts image files / PIL images / uint8 <-> float NCHW tensors in [-1, 1].

Decoding is defensive (issue 4): every way a file can be unusable ends in one `ImageError` line
that names the file and the problem, and every odd-but-valid mode (grayscale, RGBA, 16-bit, CMYK,
palette, EXIF-rotated) becomes plain 8-bit RGB.
"""

from __future__ import annotations

import math
import os
import stat
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError
from .fileio import atomic_path

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_IMAGE_PIXELS",
    "MAX_OUTPUT_PIXELS",
    "MIN_IMAGE_SIDE",
    "fit_image",
    "frame_to_pil",
    "image_grid",
    "image_strip",
    "load_image",
    "pil_to_tensor",
    "save_image",
    "tensor_to_pil",
    "tensor_to_uint8",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
MAX_IMAGE_PIXELS = 16384 * 16384  # refuse decompression bombs before decoding a single pixel
MAX_OUTPUT_PIXELS = 8192 * 8192  # one written grid or strip (~200 MB as RGB); more: a folder
MIN_IMAGE_SIDE = 16  # smaller images carry no usable content for a 256-1024 px generator

FitMode = Literal["crop", "pad", "stretch"]


def load_image(path: str | os.PathLike) -> Image.Image:
    """Decode `path` into an 8-bit RGB PIL image (EXIF orientation applied).

    Raises `ImageError` naming the file for: missing/unreadable files, empty files, files that are
    not images, truncated data, images above `MAX_IMAGE_PIXELS`, images below `MIN_IMAGE_SIDE`.
    """
    path = Path(path)
    try:
        st = path.stat()
        size = st.st_size
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError
        if not stat.S_ISREG(st.st_mode):  # opening a pipe would wait forever, a device read on
            raise ImageError(f"{path}: not a regular file (a device, pipe or socket)")
        with open(path, "rb") as f:
            data_head = f.read(1)
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a folder, not an image") from None
    except PermissionError:
        raise ImageError(f"{path}: cannot read the file (permission denied)") from None
    except OSError as e:
        raise ImageError(f"{path}: cannot read the file ({e.strerror or e})") from None
    if size == 0 or not data_head:
        raise ImageError(f"{path}: the file is empty (0 bytes)")

    _raise_pillow_limit()
    too_big = (
        "{}: declares {} pixels, more than the {:,} allowed (a decompression bomb or a huge "
        "scan); downscale it first"
    )
    with warnings.catch_warnings():
        # Pillow warns above its limit (now ours) and raises above twice it; we check ourselves.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as im:
                w, h = im.size
                if w * h > MAX_IMAGE_PIXELS:
                    raise ImageError(too_big.format(path, f"{w}x{h}", MAX_IMAGE_PIXELS))
                im.load()
                rgb = _to_rgb8(ImageOps.exif_transpose(im))
        except ImageError:
            raise
        except UnidentifiedImageError:
            raise ImageError(f"{path}: not an image file Pillow can decode") from None
        except Image.DecompressionBombError:
            raise ImageError(
                too_big.format(path, f"over {2 * MAX_IMAGE_PIXELS:,}", MAX_IMAGE_PIXELS)
            ) from None
        except (OSError, SyntaxError, ValueError) as e:
            raise ImageError(f"{path}: corrupt or truncated image data ({e})") from None
    if min(rgb.size) < MIN_IMAGE_SIDE:
        raise ImageError(
            f"{path}: the image is only {rgb.width}x{rgb.height} px; "
            f"at least {MIN_IMAGE_SIDE} px a side is needed"
        )
    return rgb


def _raise_pillow_limit() -> None:
    """Make Pillow's decompression-bomb limit ours, so our cap and message are the ones that
    apply (Pillow's default warns at 89 MP, below the 16384 x 16384 we accept)."""
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS


def _to_rgb8(im: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB. Alpha is composited over white; 16/32-bit data is rescaled."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if im.mode.startswith("I;16") or a.max(initial=0) > 255 else 255.0
        a = np.clip(np.round(a * (255.0 / hi)), 0, 255).astype(np.uint8)
        return Image.fromarray(a, mode="L").convert("RGB")
    if im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, im).convert("RGB")
    if im.mode != "RGB":
        return im.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV
    return im  # already a loaded copy (exif_transpose): no third copy of a large photo


def fit_image(
    img: Image.Image,
    size: tuple[int, int],
    mode: FitMode = "crop",
    content_size: tuple[int, int] | None = None,
) -> Image.Image:
    """Resize `img` to the generator frame `size` = (width, height) with Lanczos.

    - `crop`: centre-crop to the target aspect ratio, then resize (no borders, loses the edges);
    - `pad`: letterbox: resize to fit inside, pad with black (keeps everything);
    - `stretch`: resize ignoring the aspect ratio.
    `content_size` (width, height) is the valid region of non-square generators (LSUN car:
    512x384 inside 512x512, SPEC section 5): the image is fitted into that centred box and the
    rest of the frame is black, exactly as those generators draw their frames.
    """
    W, H = size
    cw, ch = content_size or size
    if mode == "stretch":
        fitted = img.resize((cw, ch), Image.Resampling.LANCZOS)
    elif mode == "crop":
        fitted = ImageOps.fit(img, (cw, ch), Image.Resampling.LANCZOS, centering=(0.5, 0.5))
    elif mode == "pad":
        scale = min(cw / img.width, ch / img.height)
        nw = max(1, round(img.width * scale))
        nh = max(1, round(img.height * scale))
        inner = img.resize((nw, nh), Image.Resampling.LANCZOS)
        fitted = Image.new("RGB", (cw, ch))
        fitted.paste(inner, ((cw - nw) // 2, (ch - nh) // 2))
    else:
        raise ValueError(f"unknown fit mode {mode!r}; expected crop, pad or stretch")
    if (cw, ch) == (W, H):
        return fitted
    frame = Image.new("RGB", (W, H))
    frame.paste(fitted, ((W - cw) // 2, (H - ch) // 2))
    return frame


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """8-bit RGB PIL image -> float32 tensor [1, 3, H, W] in [-1, 1] (x / 127.5 - 1)."""
    a = np.asarray(img.convert("RGB"), dtype=np.float32)  # [H, W, 3]
    t = torch.from_numpy(a).permute(2, 0, 1).unsqueeze(0)
    return t / 127.5 - 1.0


def tensor_to_uint8(img: torch.Tensor) -> np.ndarray:
    """[N, C, H, W] or [C, H, W] in ~[-1, 1] -> uint8 [N, H, W, C], as the official code does
    (x * 127.5 + 128, clamp to [0, 255], truncate)."""
    if img.ndim == 3:
        img = img.unsqueeze(0)
    if img.ndim != 4:
        raise ValueError(f"expected an image tensor [N, C, H, W], got shape {tuple(img.shape)}")
    x = (img.detach().float().permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    return x.cpu().numpy()


def tensor_to_pil(img: torch.Tensor) -> Image.Image:
    """One image [C, H, W] or [1, C, H, W] in ~[-1, 1] -> PIL (RGB, or L for 1 channel)."""
    a = tensor_to_uint8(img)
    if a.shape[0] != 1:
        raise ValueError(f"expected one image, got a batch of {a.shape[0]}")
    a = a[0]
    return Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a)


def image_grid(
    images: Sequence[Image.Image], ncols: int | None = None, pad: int = 0
) -> Image.Image:
    """Tile equally sized PIL images row-major into one image (ncols defaults to a near-square)."""
    if not images:
        raise ValueError("image_grid needs at least one image")
    n = len(images)
    ncols = ncols or math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    w, h = images[0].size
    grid = Image.new("RGB", (ncols * w + (ncols - 1) * pad, nrows * h + (nrows - 1) * pad), "white")
    for i, im in enumerate(images):
        r, c = divmod(i, ncols)
        grid.paste(im.convert("RGB"), (c * (w + pad), r * (h + pad)))
    return grid


def frame_to_pil(frame: np.ndarray) -> Image.Image:
    """uint8 [H, W, C] -> RGB PIL image."""
    return Image.fromarray(frame[..., 0] if frame.shape[-1] == 1 else frame).convert("RGB")


def image_strip(images: Sequence[Image.Image | np.ndarray], pad: int = 0) -> Image.Image:
    """One row of equally sized images (PIL or uint8 [H, W, C]), left to right (Fig. 4/7 layout)."""
    pil = [im if isinstance(im, Image.Image) else frame_to_pil(im) for im in images]
    if not pil:
        raise ValueError("a strip needs at least one image")
    w, h = pil[0].size
    strip = Image.new("RGB", (len(pil) * w + (len(pil) - 1) * pad, h), "white")
    for i, im in enumerate(pil):
        strip.paste(im.convert("RGB"), (i * (w + pad), 0))
    return strip


def save_image(img: Image.Image | torch.Tensor, path: str | os.PathLike) -> Path:
    """Write a PIL image or a one-image tensor atomically; the format follows the extension."""
    if isinstance(img, torch.Tensor):
        img = tensor_to_pil(img)
    path = Path(path)
    with atomic_path(path) as tmp:
        img.save(tmp)
    return path
