"""Build a generator from an untrusted config without letting the config exhaust memory.

The network is first built on PyTorch's `meta` device (shapes only, no storage), so its weight
count can be checked against `models.limits.MAX_PARAMETERS` and its tensor shapes against the
file's before any real memory is allocated.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import torch

from ..errors import CheckpointError
from ..models.base import Generator
from ..models.limits import check_parameter_count

__all__ = ["build_checked", "planned_shapes", "shape_mismatch"]

G_t = TypeVar("G_t", bound=Generator)


def build_checked(
    factory: Callable[[], G_t],  # builds the network (called once on 'meta', once for real)
    label: str,  # the file, for error lines
    file_shapes: Mapping[str, Sequence[int]] | None = None,  # the file's tensors, when known
    what: str = "generator config",  # how error lines name the config ("stylegan1 config")
) -> G_t:
    """`factory()` after checking its size (and, given `file_shapes`, its tensor shapes)."""
    shapes = planned_shapes(factory, label, what)
    if file_shapes is not None:
        problem = shape_mismatch(shapes, file_shapes)
        if problem:
            raise CheckpointError(f"{label}: tensors do not match the {what} ({problem})")
    return factory()


def planned_shapes(
    factory: Callable[[], Generator], label: str, what: str = "generator config"
) -> dict[str, tuple[int, ...]]:
    """The state-dict shapes `factory()` would have, from a build on the meta device; raises
    `CheckpointError` when the network would exceed `MAX_PARAMETERS` weights."""
    try:
        with torch.device("meta"):
            probe = factory()
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{label}: invalid {what} ({e})") from None
    shapes = {k: tuple(v.shape) for k, v in probe.state_dict().items()}
    try:
        check_parameter_count(sum(math.prod(s) for s in shapes.values()))
    except ValueError as e:
        raise CheckpointError(f"{label}: refused: {e}") from None
    return shapes


def shape_mismatch(
    expected: Mapping[str, Sequence[int]], found: Mapping[str, Sequence[int]]
) -> str:
    """'' when both hold the same names and shapes, else a short description of the difference."""
    missing = sorted(set(expected) - set(found))
    unknown = sorted(set(found) - set(expected))
    parts = []
    if missing:
        parts.append(f"missing {_few(missing)}")
    if unknown:
        parts.append(f"unknown {_few(unknown)}")
    if parts:
        return "; ".join(parts)
    for key, shape in expected.items():
        if tuple(found[key]) != tuple(shape):
            return f"tensor {key} has shape {list(found[key])}, the config needs {list(shape)}"
    return ""


def _few(names: list[str]) -> str:
    return ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")
