"""Sane bounds on generator configs, checked before a single tensor is allocated.

Configs come from untrusted files (a `.safetensors` header, a pickle's constructor arguments),
so a 744-byte file must not be able to ask for a 2^20-wide mapping network or a million layers.
The bounds are far above every published network (StyleGAN2 config-f: w_dim 512, channel_base
32768, 1024 px; StyleGAN-XL: 1024 px, c_dim 1000) and far below what would exhaust memory.
Each violation is one `ValueError` that names the field; readers turn it into a
`CheckpointError` that also names the file.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import short_repr

__all__ = [
    "DIM",
    "FILTER_TAPS",
    "LAYERS",
    "MAX_PARAMETERS",
    "RESOLUTION",
    "Bound",
    "check_fields",
    "check_filter_taps",
    "check_parameter_count",
]

# A network above this many weights (1 GiB in float32) is refused before it is built; the
# largest official generators hold ~3e7.
MAX_PARAMETERS = 2**28


@dataclass(frozen=True)
class Bound:
    """The allowed values of one numeric config field."""

    lo: float  # smallest allowed value
    hi: float  # largest allowed value
    integer: bool = True  # must be a whole number
    power_of_two: bool = False
    optional: bool = False  # None is allowed


DIM = Bound(1, 2**13)  # latent / feature widths
LAYERS = Bound(1, 64)  # layer counts
RESOLUTION = Bound(4, 2**14, power_of_two=True)  # output side in pixels
FILTER_TAPS = 16  # longest 1-D FIR filter


def check_fields(config: Any, bounds: Mapping[str, Bound]) -> None:
    """Raise `ValueError` naming the first field of `config` (a dataclass) outside its bound."""
    for name, bound in bounds.items():
        _check_value(name, getattr(config, name), bound)


def _check_value(name: str, value: Any, bound: Bound) -> None:
    if value is None and bound.optional:
        return
    kind = "an integer" if bound.integer else "a number"
    number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or (bound.integer and value != int(value)):
        raise ValueError(f"{name} must be {kind}, got {short_repr(value)}")
    if not bound.lo <= value <= bound.hi:
        raise ValueError(f"{name} = {value} is out of range (allowed: {_span(bound)})")
    if bound.power_of_two and int(value) & (int(value) - 1):
        raise ValueError(f"{name} = {value} must be a power of two")


def _span(bound: Bound) -> str:
    def fmt(v: float) -> str:
        return str(int(v)) if bound.integer else f"{v:g}"

    return f"{fmt(bound.lo)} to {fmt(bound.hi)}"


def check_filter_taps(name: str, taps: Any) -> tuple[float, ...]:
    """A short 1-D list of finite filter taps as a tuple of floats (else `ValueError`)."""
    if not isinstance(taps, (list, tuple)) or not 1 <= len(taps) <= FILTER_TAPS:
        raise ValueError(
            f"{name} must be a list of 1 to {FILTER_TAPS} numbers, got {short_repr(taps)}"
        )
    for t in taps:
        _check_value(name, t, Bound(-1e6, 1e6, integer=False))
    return tuple(float(t) for t in taps)


def check_parameter_count(count: int) -> None:
    """Raise `ValueError` when a network would hold more than `MAX_PARAMETERS` weights."""
    if count > MAX_PARAMETERS:
        raise ValueError(
            f"the config describes {count:,} weights, more than the {MAX_PARAMETERS:,} allowed"
        )
