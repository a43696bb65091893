"""Our own generator format: `.safetensors` weights + a JSON config in the header metadata.

safetensors holds tensors only (no pickle, no code), so a native file is safe to load from any
source. Header metadata (all strings, as safetensors requires):
  format = "image2stylegan-generator", format_version = "1",
  architecture = "stylegan1" | "stylegan2" | "stylegan3",
  config = JSON of `Generator.config_dict()`,
  source = where the weights came from (free text).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..errors import CheckpointError
from ..fileio import atomic_path
from ..models.base import Generator

__all__ = ["FORMAT_NAME", "architectures", "load_native", "save_native"]

FORMAT_NAME = "image2stylegan-generator"
FORMAT_VERSION = "1"


def architectures() -> dict[str, type[Generator]]:
    """architecture name -> Generator class (imported lazily: each is a separate module)."""
    from ..models.stylegan1 import StyleGAN1Generator
    from ..models.stylegan2 import StyleGAN2Generator
    from ..models.stylegan3 import StyleGAN3Generator

    classes = (StyleGAN1Generator, StyleGAN2Generator, StyleGAN3Generator)
    return {cls.architecture: cls for cls in classes}


def save_native(G: Generator, path: str | os.PathLike, source: str = "") -> Path:
    """Write `G` (weights, buffers incl. const noise and w_avg, config) atomically."""
    metadata = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "architecture": G.architecture,
        "config": json.dumps(G.config_dict(), sort_keys=True),
        "source": source or str(getattr(G, "source", "")),
    }
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in G.state_dict().items()}
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def read_native_header(path: str | os.PathLike) -> dict[str, str]:
    """The header metadata of a native file (raises `CheckpointError` if it is not one)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: corrupt or truncated .safetensors file ({e})") from None
    if metadata.get("format") != FORMAT_NAME:
        raise CheckpointError(
            f"{path}: a .safetensors file without image2stylegan generator metadata; "
            "make native files with `image2stylegan convert`"
        )
    if metadata.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: native format version {metadata.get('format_version')!r} is not supported "
            f"(this version reads {FORMAT_VERSION!r}); upgrade image2stylegan"
        )
    return metadata


def load_native(path: str | os.PathLike) -> Generator:
    """Read a native `.safetensors` generator; strict: every tensor must match the config."""
    metadata = read_native_header(path)
    arch = metadata.get("architecture", "")
    classes = architectures()
    if arch not in classes:
        raise CheckpointError(
            f"{path}: unknown architecture {arch!r} (known: {', '.join(classes)})"
        )
    try:
        config: dict[str, Any] = json.loads(metadata["config"])
        G = classes[arch].from_config(config)
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: invalid generator config in the header ({e})") from None
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: corrupt or truncated .safetensors file ({e})") from None
    expected = G.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unknown = sorted(set(tensors) - set(expected))
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        if unknown:
            parts.append(f"unknown {', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}")
        raise CheckpointError(
            f"{path}: tensors do not match the {arch} config ({'; '.join(parts)})"
        )
    for key, value in expected.items():
        if tensors[key].shape != value.shape:
            raise CheckpointError(
                f"{path}: tensor {key} has shape {list(tensors[key].shape)}, the config needs "
                f"{list(value.shape)}"
            )
    G.load_state_dict(tensors, strict=True)
    return G.to(torch.float32)
