"""Latent files (SPEC section 4): `.npz` with `w` float32 [1, num_ws, w_dim] and a JSON `metadata`.

The layout matches NVIDIA's projector output (`projected_w.npz`, key `w`), so files move freely
between their tools and ours. Files are read with `allow_pickle=False`: a latent file is data only.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import LatentError
from .fileio import atomic_write_bytes

__all__ = ["LatentFile", "check_latent_fits", "load_latent", "save_latent"]


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

    Raises `LatentError` naming the file for missing, corrupt, pickled or malformed content.
    """
    path = Path(path)
    if not path.is_file():
        raise LatentError(f"{path}: no such latent file")
    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.ndarray):
            arrays = {"w": data}
        else:
            with data:  # reading each array is where pickled content is refused
                arrays = {key: data[key] for key in data.files}
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise LatentError(
                f"{path}: contains pickled Python objects; latent files must be plain arrays "
                "(refused for safety)"
            ) from None
        raise LatentError(f"{path}: not a readable .npz/.npy latent file ({e})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise LatentError(f"{path}: not a readable .npz/.npy latent file ({e})") from None

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
        if not isinstance(metadata, dict):
            raise LatentError(f"{path}: 'metadata' must be a JSON object")
    extras = {
        k: torch.from_numpy(v.astype(np.float32)) for k, v in arrays.items() if v.dtype.kind == "f"
    }
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


def _as_numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().float().numpy()
    return np.asarray(x)
