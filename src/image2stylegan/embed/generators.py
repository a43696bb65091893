"""Which generator an embedding used: resolve a source once, load it, describe it for the record.

A source is a registry name (`ffhq-1024`: the cached official file, downloaded when missing), a
checkpoint file, or a `random:ARCH-RES[@SEED]` architecture. `open_generator` resolves it to a
file once, loads that file and hashes it; `describe_generator` does the same without loading.
The result keeps what goes into latent metadata (`GeneratorInfo.record`) apart from the
registry's hints for the embed options (`content_size`, `default_align`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..checkpoints.loader import load_generator
from ..checkpoints.random_generators import is_random_source
from ..checkpoints.registry import get_entry, is_registry_name, resolve_weights
from ..errors import CheckpointError
from ..fileio import sha256_file
from ..models.base import Generator

__all__ = ["GeneratorInfo", "default_align", "describe_generator", "open_generator"]


@dataclass(frozen=True)
class GeneratorInfo:
    """A generator source, resolved: its file, its hash and the registry's hints."""

    source: str  # as given: registry name, file path or random: source (recorded as "generator")
    path: Path | None  # the checkpoint file it resolved to; None for random: sources
    sha256: str | None  # of that file (the registry's published value when there is one)
    content_size: tuple[int, int] | None = None  # registry: valid (w, h) of a non-square frame
    default_align: bool = False  # registry: FFHQ face alignment by default (the ffhq-* models)

    def record(self, architecture: str) -> dict[str, Any]:
        """What every latent file records about its generator (SPEC section 4)."""
        return {
            "generator": self.source,
            "generator_sha256": self.sha256,
            "architecture": architecture,
        }


def default_align(src: str) -> bool:
    """Whether runs align faces by default for `src`: the registry's word (on for the ffhq-*
    face models), off for files and random: sources. Resolves nothing."""
    src = (src or "").strip()
    return is_registry_name(src) and not Path(src).exists() and bool(get_entry(src).default_align)


def _resolve(src: str, progress: bool) -> tuple[Path | None, GeneratorInfo]:
    """(file to load, description without the hash); registry files are downloaded if needed."""
    if is_random_source(src):  # weights are a function of the string: nothing to hash
        return None, GeneratorInfo(src, None, None)
    if is_registry_name(src) and not Path(src).exists():
        entry = get_entry(src)
        path = resolve_weights(src, kind="generator", progress=progress)
        return path, GeneratorInfo(
            src, path, entry.sha256, entry.content_size, bool(entry.default_align)
        )
    return Path(src), GeneratorInfo(src, Path(src), None)


def _with_hash(info: GeneratorInfo) -> GeneratorInfo:
    if info.path is None or info.sha256 is not None:
        return info
    try:
        digest = sha256_file(info.path)
    except FileNotFoundError:
        raise CheckpointError(f"{info.path}: no such file") from None
    except IsADirectoryError:
        raise CheckpointError(f"{info.path}: is a folder, not a checkpoint file") from None
    except OSError as e:
        raise CheckpointError(f"{info.path}: cannot read the file ({e.strerror or e})") from None
    return GeneratorInfo(info.source, info.path, digest, info.content_size, info.default_align)


def describe_generator(src: str, progress: bool = True) -> GeneratorInfo:
    """Resolve `src` (downloading a registry file when it is missing) and hash it; no loading."""
    _, info = _resolve(str(src), progress)
    return _with_hash(info)


def open_generator(
    src: str, device: str | torch.device = "cpu", progress: bool = True
) -> tuple[Generator, GeneratorInfo]:
    """Load the generator `src` names (resolved once) and describe it; `G.source` is `src`."""
    src = str(src)
    path, info = _resolve(src, progress)
    G = load_generator(src if path is None else path, device=device)
    G.source = src
    return G, _with_hash(info)
