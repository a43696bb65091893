"""Exceptions of image2stylegan. Each carries one line a user can act on."""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "I2SError",
    "ImageError",
    "LatentError",
    "WeightsError",
    "short_repr",
]


class I2SError(Exception):
    """Base class: an error the command line prints as one clear line (no traceback)."""


class CheckpointError(I2SError):
    """A generator or VGG checkpoint is missing, corrupt, of an unknown format, or unsafe."""


class WeightsError(I2SError):
    """A registry download failed, or a cached file does not match its published size/sha256."""


class ImageError(I2SError):
    """An input image cannot be decoded or used."""


class LatentError(I2SError):
    """A latent file is corrupt, unsafe, or does not fit the generator."""


def short_repr(value: object, limit: int = 60) -> str:
    """`repr(value)` on one line, cut to `limit` characters: for error lines quoting untrusted
    values."""
    text = repr(value).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."
