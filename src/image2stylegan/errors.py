"""Exceptions of image2stylegan. Each carries one line a user can act on."""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "I2SError",
    "ImageError",
    "LatentError",
    "OutputError",
    "WeightsError",
    "one_line",
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


class OutputError(I2SError):
    """An output file or folder cannot be written (or would be written somewhere unsafe)."""


def one_line(text: str) -> str:
    """`text` for a terminal line: newlines, other control and invisible format characters and
    undecodable bytes (in file names) written as escapes, so a message stays one honest line."""
    return "".join(c if c.isprintable() or c == " " else _escape(c) for c in text)


def _escape(c: str) -> str:
    return c.encode("unicode_escape", "backslashreplace").decode("ascii")


def short_repr(value: object, limit: int = 60) -> str:
    """`repr(value)` on one line, cut to `limit` characters: for error lines quoting untrusted
    values."""
    text = repr(value).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."
