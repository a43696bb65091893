"""Helpers shared by the commands: inputs, devices, summaries."""

from __future__ import annotations

import glob
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from .. import devices
from ..devices import distributed_rank
from ..image import IMAGE_EXTENSIONS

__all__ = ["distributed_rank", "echo_json", "expand_image_inputs", "resolve_device"]


def expand_image_inputs(items: Iterable[str], recursive: bool = False) -> list[Path]:
    """Files, folders (their images, sorted) and glob patterns -> a list of paths, in order.

    Paths that do not exist are kept, so the caller reports each as a failed input instead of
    aborting the whole run.
    """
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            pattern = "**/*" if recursive else "*"
            out.extend(
                sorted(
                    f
                    for f in p.glob(pattern)
                    if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS
                )
            )
        elif not p.exists() and glob.has_magic(item):
            matches = sorted(
                Path(m) for m in glob.glob(item, recursive=recursive) if Path(m).is_file()
            )
            out.extend(matches or [p])
        else:
            out.append(p)
    seen: set[Path] = set()
    unique = []
    for p in out:
        key = p.resolve() if p.exists() else p
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def resolve_device(device: str) -> str:
    """`devices.resolve_device`, with an unavailable CUDA as a usage error of --device."""
    try:
        return devices.resolve_device(device)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--device") from None


def echo_json(obj: Any) -> None:
    """Print one machine-readable JSON document on stdout."""
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
    sys.stdout.flush()
