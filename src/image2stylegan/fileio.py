"""Atomic file writes: a temp file in the target folder, then rename (SPEC section 4)."""

from __future__ import annotations

import contextlib
import os
import tempfile
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "is_inside",
    "safe_name",
    "sha256_file",
]


def _file_mode() -> int:
    """The mode a plain `open(path, "w")` would give (0o666 minus the umask); mkstemp uses 0o600."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _file_mode()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it onto `path`, else delete it.

    The temporary name keeps the final suffix (or `suffix`) so writers that pick a format from the
    extension (Pillow, imageio, numpy) still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, _FILE_MODE)
    try:
        yield tmp_path
        # again: writers that replace the file they are given (safetensors) make it 0o600
        os.chmod(tmp_path, _FILE_MODE)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a regular file, read in chunks (a device or pipe: OSError, never an
    endless read)."""
    import hashlib
    import stat

    if not stat.S_ISREG(os.stat(path).st_mode):
        raise OSError(f"{path}: not a regular file")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        _copy_into(f, digest.update, chunk_size)
    return digest.hexdigest()


def _copy_into(f: IO[bytes], sink: Callable[[bytes], object], chunk_size: int) -> None:
    while chunk := f.read(chunk_size):
        sink(chunk)


# Names Windows reserves in every folder (with any extension): a results folder stays portable.
_RESERVED = {"con", "prn", "aux", "nul", *(f"{d}{i}" for d in ("com", "lpt") for i in range(1, 10))}
_FORBIDDEN = set('/\\<>:"|?*')  # separators, and what Windows file names may not hold
MAX_NAME_BYTES = 120  # UTF-8 bytes of a safe name (file systems allow 255; room for suffixes)


def safe_name(text: str, default: str = "image") -> str:
    """`text` as one plain, visible, portable file or folder name (never '', '.', '..' or hidden).

    Separators, control and format characters (newlines, right-to-left overrides, ...), undecodable
    bytes and the characters Windows forbids become '_'; leading dots and spaces and trailing dots
    and spaces go; Windows' reserved names (CON, NUL, COM1, ...) get a '_' appended; the name is
    cut to `MAX_NAME_BYTES` of UTF-8. What is left empty becomes `default`.
    """
    text = unicodedata.normalize("NFC", str(text))
    chars = [
        "_" if c in _FORBIDDEN or unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") else c
        for c in text
    ]
    name = "".join(chars).lstrip(". \t").rstrip(". ")
    encoded = name.encode("utf-8")
    if len(encoded) > MAX_NAME_BYTES:
        name = encoded[:MAX_NAME_BYTES].decode("utf-8", errors="ignore").rstrip(". ")
    if not name:
        return default
    if name.split(".")[0].lower() in _RESERVED:
        name += "_"
    return name


def is_inside(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """Whether `path`, with every symbolic link resolved, lies strictly inside folder `root`."""
    real, base = Path(os.path.realpath(path)), Path(os.path.realpath(root))
    return real != base and base in real.parents
