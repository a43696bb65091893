"""Our own generator format: `.safetensors` weights + a JSON config in the header metadata.

safetensors holds tensors only (no pickle, no code), so a native file is safe to load from any
source. Header metadata (all strings, as safetensors requires):
  format = "image2stylegan-generator", format_version = "1",
  architecture = "stylegan1" | "stylegan2" | "stylegan3",
  config = JSON of `Generator.config_dict()`,
  source = where the weights came from: JSON of `source_record` (a registry name or `random:`
  source as given; for a file only its name and sha256, never its path: a file made on one
  machine should not carry that machine's folder names).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..errors import CheckpointError, short_repr
from ..fileio import atomic_path
from ..models.base import Generator
from .build import build_checked

__all__ = ["FORMAT_NAME", "architectures", "load_native", "save_native", "source_record"]

FORMAT_NAME = "image2stylegan-generator"
FORMAT_VERSION = "1"


def architectures() -> dict[str, type[Generator]]:
    """architecture name -> Generator class (imported lazily: each is a separate module)."""
    from ..models.stylegan1 import StyleGAN1Generator
    from ..models.stylegan2 import StyleGAN2Generator
    from ..models.stylegan3 import StyleGAN3Generator

    classes = (StyleGAN1Generator, StyleGAN2Generator, StyleGAN3Generator)
    return {cls.architecture: cls for cls in classes}


def source_record(source: str, file: str | os.PathLike | None = None) -> dict[str, Any]:
    """What a native file records about where its weights came from.

    `source` is what the user named (a registry name, a `random:` source or a path) and `file` the
    checkpoint file that was read, if any. A path is never recorded, only the file's name and
    sha256; registry names and `random:` sources are kept as given.
    """
    from ..fileio import sha256_file
    from .random_generators import is_random_source
    from .registry import is_registry_name

    record: dict[str, Any] = {}
    if is_random_source(source) or (is_registry_name(source) and not Path(source).exists()):
        record["source"] = source
    if file is None and not record and source and Path(source).is_file():
        file = source
    if file is not None:
        record["file"] = Path(file).name
        record["sha256"] = sha256_file(file)
    else:
        record["sha256"] = None
    return record


def save_native(G: Generator, path: str | os.PathLike, source: str = "") -> Path:
    """Write `G` (weights, buffers incl. const noise and w_avg, config) atomically. `source`
    (free text) defaults to `source_record(G.source)` as JSON: never a path."""
    if not source:
        source = json.dumps(source_record(str(getattr(G, "source", ""))), sort_keys=True)
    metadata = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "architecture": G.architecture,
        "config": json.dumps(G.config_dict(), sort_keys=True),
        "source": source,
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
    """Read a native `.safetensors` generator; strict: every tensor must match the config, and
    the config and tensor shapes are checked before anything is allocated."""
    metadata = read_native_header(path)
    arch = metadata.get("architecture", "")
    classes = architectures()
    if arch not in classes:
        raise CheckpointError(
            f"{path}: unknown architecture {short_repr(arch)} (known: {', '.join(classes)})"
        )
    try:
        config: dict[str, Any] = json.loads(metadata["config"])
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: invalid generator config in the header ({e})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: invalid generator config in the header (not an object)")
    try:
        with safe_open(str(path), framework="pt") as f:
            file_shapes = {key: f.get_slice(key).get_shape() for key in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: corrupt or truncated .safetensors file ({e})") from None
    cls = classes[arch]
    G = build_checked(lambda: cls.from_config(config), str(path), file_shapes, f"{arch} config")
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: corrupt or truncated .safetensors file ({e})") from None
    G.load_state_dict(tensors, strict=True)
    return G.to(torch.float32)
