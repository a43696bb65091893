"""Latent files (SPEC section 4): `.npz` with `w` float32 [1, num_ws, w_dim] and a JSON `metadata`.

The layout matches NVIDIA's projector output (`projected_w.npz`, key `w`), so files move freely
between their tools and ours. Files are read with `allow_pickle=False`: a latent file is data only.

Optimised noise maps (Image2StyleGAN++'s noise stage) are stored beside `w` as `noise_00`,
`noise_01`, ... float32 [1, 1, h, w], one per noise input of the generator in its layer order
(`noise_arrays` names them, `latent_noise` reads them back).
"""

from __future__ import annotations

import io
import json
import lzma
import math
import os
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from .errors import LatentError, short_repr
from .fileio import atomic_write_bytes

__all__ = [
    "LatentFile",
    "check_latent_fits",
    "check_noise_fits",
    "latent_noise",
    "load_latent",
    "noise_arrays",
    "save_latent",
]

NOISE_KEY = "noise_{:02d}"  # noise_00, noise_01, ...


@dataclass
class LatentFile:
    """A loaded latent file."""

    w: torch.Tensor  # [1, num_ws, w_dim] float32: the W+ code
    metadata: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # `z`, `w_single`, ...
    path: Path | None = None

    @property
    def num_ws(self) -> int:
        return self.w.shape[1]

    @property
    def w_dim(self) -> int:
        return self.w.shape[2]


def save_latent(
    path: str | os.PathLike,
    w: torch.Tensor | np.ndarray,
    metadata: dict[str, Any] | None = None,
    **extras: torch.Tensor | np.ndarray,
) -> Path:
    """Write `w` ([num_ws, w_dim] or [1, num_ws, w_dim]) and JSON metadata atomically.

    `extras` are further float arrays (`z=...`, `w_single=...` for the Z / W spaces).
    """
    w_np = _as_numpy(w)
    if w_np.ndim == 2:
        w_np = w_np[None]
    if w_np.ndim != 3 or w_np.shape[0] != 1:
        raise LatentError(
            f"{path}: w must be [num_ws, w_dim] or [1, num_ws, w_dim], got {w_np.shape}"
        )
    arrays: dict[str, np.ndarray] = {"w": w_np.astype(np.float32)}
    for key, value in extras.items():
        if value is not None:
            arrays[key] = _as_numpy(value).astype(np.float32)
    arrays["metadata"] = np.array(json.dumps(metadata or {}, sort_keys=True, default=str))
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=False, **arrays)  # data only
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return path


def load_latent(path: str | os.PathLike) -> LatentFile:
    """Read a latent `.npz` (ours or NVIDIA's projector's) or a bare `.npy` W+ array.

    Raises `LatentError` naming the file for missing, corrupt, pickled, oversized or malformed
    content. Every array's header (shape, dtype) is checked before its data is read, so a small
    file that declares a huge array is refused without allocating it.
    """
    path = Path(path)
    if not path.is_file():
        raise LatentError(f"{path}: no such latent file")
    arrays = _read_arrays(path)
    if "w" not in arrays:
        raise LatentError(f"{path}: has no array 'w' (found: {', '.join(arrays) or 'nothing'})")
    w = arrays.pop("w")
    if w.dtype.kind != "f":
        raise LatentError(f"{path}: 'w' must hold floats, found dtype {w.dtype}")
    if w.ndim == 2:
        w = w[None]
    if w.ndim != 3 or w.shape[0] != 1:
        raise LatentError(f"{path}: 'w' must be [1, num_ws, w_dim], found shape {list(w.shape)}")
    if not np.isfinite(w).all():
        raise LatentError(f"{path}: 'w' contains NaN or infinite values")

    metadata: dict[str, Any] = {}
    if "metadata" in arrays:
        raw = arrays.pop("metadata")
        try:
            metadata = json.loads(str(raw.item() if raw.ndim == 0 else raw))
        except (ValueError, TypeError) as e:
            raise LatentError(f"{path}: 'metadata' is not valid JSON ({e})") from None
        except RecursionError:
            raise LatentError(f"{path}: 'metadata' is nested too deeply to read") from None
        if not isinstance(metadata, dict):
            raise LatentError(f"{path}: 'metadata' must be a JSON object")
    extras = {
        k: torch.from_numpy(v.astype(np.float32)) for k, v in arrays.items() if v.dtype.kind == "f"
    }
    for k, v in extras.items():
        if not bool(torch.isfinite(v).all()):
            raise LatentError(f"{path}: {k!r} contains NaN or infinite values")
    return LatentFile(torch.from_numpy(w.astype(np.float32)), metadata, extras, path)


def check_latent_fits(
    latent: LatentFile, num_ws: int, w_dim: int, generator_name: str = ""
) -> None:
    """Raise `LatentError` unless the latent's shape matches the generator's [num_ws, w_dim]."""
    if (latent.num_ws, latent.w_dim) != (num_ws, w_dim):
        gen = f" {generator_name}" if generator_name else ""
        raise LatentError(
            f"{latent.path or 'latent'}: has {latent.num_ws} x {latent.w_dim} codes but the "
            f"generator{gen} takes {num_ws} x {w_dim}; it was made with a different generator"
        )


def noise_arrays(noise: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """{"noise_00": [1, 1, h, w], ...} for `save_latent(**extras)` (noise of one image)."""
    return {NOISE_KEY.format(k): t.reshape(1, 1, *t.shape[-2:]) for k, t in enumerate(noise)}


def latent_noise(latent: LatentFile) -> list[torch.Tensor] | None:
    """The noise maps a latent file holds ([1, 1, h, w] each, in layer order), or None.

    Raises `LatentError` when the `noise_NN` arrays are not numbered 00, 01, ... without gaps or
    are not [1, 1, h, w]."""
    keys = sorted(k for k in latent.extras if k.startswith("noise_"))
    if not keys:
        return None
    expected = [NOISE_KEY.format(k) for k in range(len(keys))]
    if keys != expected:
        raise LatentError(
            f"{latent.path or 'latent'}: noise maps must be named {expected[0]} .. "
            f"{expected[-1]} without gaps, found {', '.join(keys)}"
        )
    maps = [latent.extras[k] for k in keys]
    for k, t in zip(keys, maps, strict=True):
        if t.ndim != 4 or t.shape[:2] != (1, 1):
            raise LatentError(
                f"{latent.path or 'latent'}: '{k}' must be [1, 1, h, w], found {list(t.shape)}"
            )
        if not torch.isfinite(t).all():
            raise LatentError(f"{latent.path or 'latent'}: '{k}' contains NaN or infinite values")
    return maps


def check_noise_fits(
    noise: list[torch.Tensor], buffers: list[torch.Tensor], label: str = "latent"
) -> None:
    """Raise `LatentError` unless the noise maps have the generator's noise shapes."""
    want = [tuple(b.shape[-2:]) for b in buffers]
    have = [tuple(t.shape[-2:]) for t in noise]
    if want != have:
        raise LatentError(
            f"{label}: holds {len(have)} noise maps {have} but the generator takes {len(want)} "
            f"{want}; it was made with a different generator"
            + (" (this one has no noise inputs)" if not want else "")
        )


def _as_numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().float().numpy()
    return np.asarray(x)


# Bounds on what a latent file may declare (checked from the .npy headers, before reading):
# the largest real content is a 1024 px generator's noise maps (~2.8 M floats in all).
MAX_ARRAYS = 256  # arrays in one .npz
MAX_ARRAY_BYTES = 2**28  # one array (256 MiB)
MAX_TOTAL_BYTES = 2**29  # all arrays together
MAX_NUM_WS = 64  # rows of `w` (StyleGAN at 16384 px has 26)
MAX_W_DIM = 2**13  # columns of `w` (official generators: 512)
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """name -> array of a `.npz` (or {'w': array} of a `.npy`), refusing pickled, oversized or
    malformed members from their headers before any data is read."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if head.startswith(_NPY_MAGIC):
                f.seek(0)
                return {"w": _read_npy(f, path, "w")}
        if not head.startswith(_ZIP_MAGIC):
            raise LatentError(f"{path}: not a .npz/.npy latent file ({_what_is(head)})")
        with zipfile.ZipFile(path) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            if len(members) > MAX_ARRAYS:
                raise LatentError(
                    f"{path}: holds {len(members)} entries, more than the {MAX_ARRAYS} a latent "
                    "file may have"
                )
            arrays: dict[str, np.ndarray] = {}
            total = 0
            for member in members:
                name = member.filename.removesuffix(".npy")
                with zf.open(member) as f:
                    arrays[name] = _read_npy(f, path, name, budget=MAX_TOTAL_BYTES - total)
                total += arrays[name].nbytes
            return arrays
    except LatentError:
        raise
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zipfile.LargeZipFile) as e:
        raise LatentError(f"{path}: not a readable .npz/.npy latent file ({e})") from None
    except (zlib.error, lzma.LZMAError, NotImplementedError, RuntimeError) as e:
        # damaged compressed data, an unknown compression method, an encrypted member
        raise LatentError(f"{path}: damaged or unsupported .npz archive ({e})") from None


def _read_npy(f: IO[bytes], path: Path, name: str, budget: int = MAX_TOTAL_BYTES) -> np.ndarray:
    """One `.npy` stream: header first (shape, dtype, size checked), then exactly its data."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy warns about Python 2 headers
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy version {version}")
    except (zlib.error, lzma.LZMAError, OSError, EOFError):
        raise
    except Exception as e:  # numpy parses the header as Python literals: any error is malformed
        raise LatentError(
            f"{path}: array '{name}' has a malformed .npy header ({short_repr(e)})"
        ) from None
    if dtype.hasobject:
        raise LatentError(
            f"{path}: array '{name}' holds pickled Python objects; latent files must be plain "
            "arrays (refused for safety)"
        )
    nbytes = math.prod(shape) * dtype.itemsize
    if name == "w" and len(shape) in (2, 3) and (shape[-2] > MAX_NUM_WS or shape[-1] > MAX_W_DIM):
        raise LatentError(
            f"{path}: 'w' declares {shape[-2]} x {shape[-1]} codes, more than any generator takes "
            f"(at most {MAX_NUM_WS} x {MAX_W_DIM})"
        )
    if nbytes > min(MAX_ARRAY_BYTES, budget):
        raise LatentError(
            f"{path}: array '{name}' declares shape {list(shape)} ({nbytes:,} bytes), more than "
            "a latent file may hold; refused"
        )
    data = f.read(nbytes)
    if len(data) != nbytes:
        raise LatentError(f"{path}: array '{name}' ends early (truncated file?)")
    flat = np.frombuffer(data, dtype=dtype)
    return (flat.reshape(shape, order="F") if fortran else flat.reshape(shape)).copy()


def _what_is(head: bytes) -> str:
    if head[:1] == b"\x80":
        return "a pickle of Python objects; latent files must be plain arrays (refused for safety)"
    if not head:
        return "the file is empty"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return f"unknown binary content, first bytes {head!r}"
    return "it is a text file"
