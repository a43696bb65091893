"""Experiment parameters: each experiment's frozen `Params` dataclass built from the CLI's
`--param KEY=VALUE` strings, each value converted to its field's type."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["describe_params", "parse_params"]

P = TypeVar("P", bound="DataclassInstance")


def parse_params(cls: type[P], pairs: Sequence[str]) -> P:
    """Build the experiment's frozen params dataclass from `KEY=VALUE` strings (the CLI's
    `--param`), converting each value to the field's type; raises ValueError naming the key."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ValueError(f"{pair!r}: expected KEY=VALUE")
        if key not in fields:
            known = ", ".join(fields) or "none"
            raise ValueError(f"unknown parameter {key!r} (this experiment takes: {known})")
        try:
            values[key] = _convert(raw.strip(), hints[key])
        except ValueError as e:
            raise ValueError(f"parameter {key}={raw!r}: {e}") from None
    try:
        return cls(**values)
    except (TypeError, ValueError) as e:
        raise ValueError(str(e)) from None


def _convert(raw: str, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if raw.lower() in ("none", "") and len(args) < len(typing.get_args(hint)):
            return None
        return _convert(raw, args[0])
    if origin is tuple:
        (inner, *_rest) = typing.get_args(hint)
        return tuple(_convert(s.strip(), inner) for s in raw.split(",") if s.strip())
    if origin is typing.Literal:
        choices = typing.get_args(hint)
        if raw not in choices:
            raise ValueError(f"choose one of {', '.join(map(str, choices))}")
        return raw
    if hint is bool:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError("expected true or false")
    if hint is int:
        return int(raw)
    if hint is float:
        return float(raw)
    return raw


def describe_params(cls: type[DataclassInstance]) -> list[tuple[str, str, Any]]:
    """(name, type, default) of each field of a params dataclass (for --list)."""
    hints = typing.get_type_hints(cls)
    return [(f.name, _type_name(hints[f.name]), f.default) for f in dataclasses.fields(cls)]


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return "|".join(map(str, typing.get_args(hint)))
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in typing.get_args(hint) if a is not type(None)]
        return " or ".join(names) + (" or none" if type(None) in typing.get_args(hint) else "")
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
