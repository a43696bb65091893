"""Declarative name tables: foreign checkpoint tensors -> a strict state dict (STYLE habit 6).

A table is a list of `Rule`s. Each rule matches some of OUR state-dict keys (a regex), names
the foreign tensor that fills it (a template over the regex groups) and says how the foreign
layout maps onto ours (`Layout`: the foreign shape expected for our shape, and the conversion).
`convert_state` walks every key of our model, so a missing foreign tensor, a foreign tensor no
rule consumed, and a wrong shape each become one `CheckpointError` naming the file and the key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError

__all__ = [
    "PLUS_ONE",
    "SAME",
    "TRANSPOSE",
    "Layout",
    "Rule",
    "as_tensor",
    "convert_state",
    "leading_ones",
    "permuted",
]

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Layout:
    """How a stored tensor relates to ours."""

    source_shape: Callable[[Shape], Shape]  # our shape -> the stored shape it must have
    convert: Callable[[torch.Tensor], torch.Tensor]  # stored tensor -> ours (then reshaped)


SAME = Layout(lambda s: s, lambda t: t)
TRANSPOSE = Layout(lambda s: (s[1], s[0]), lambda t: t.t())  # TF dense [in, out] -> [out, in]
PLUS_ONE = Layout(lambda s: s, lambda t: t + 1)  # TF style bias (stored minus its init 1)


def leading_ones(n: int) -> Layout:
    """Stored with n extra leading size-1 dims (e.g. TF const [1, C, 4, 4] for ours [C, 4, 4])."""
    return Layout(lambda s: (1,) * n + s, lambda t: t)


def permuted(perm: tuple[int, ...], flip: tuple[int, ...] = ()) -> Layout:
    """Ours = stored.flip(flip).permute(perm), e.g. TF conv [kh, kw, I, O] -> [O, I, kh, kw]."""
    inverse = tuple(perm.index(i) for i in range(len(perm)))

    def source_shape(s: Shape) -> Shape:
        return tuple(s[inverse[i]] for i in range(len(s))) if len(s) == len(perm) else s

    def convert(t: torch.Tensor) -> torch.Tensor:
        return (t.flip(flip) if flip else t).permute(perm)

    return Layout(source_shape, convert)


@dataclass(frozen=True)
class Rule:
    """Our keys matching `target` (full regex) come from the stored tensor named by `source`:
    a format string over the regex groups ({0}, {1}, ...) or a function of the match."""

    target: str
    source: str | Callable[[re.Match[str]], str]
    layout: Layout = SAME

    def source_name(self, match: re.Match[str]) -> str:
        if callable(self.source):
            return self.source(match)
        return self.source.format(*match.groups())


def as_tensor(value: Any) -> torch.Tensor:
    """A stored value (torch tensor or numpy array) as a float32 CPU tensor."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", torch.float32)
    return torch.from_numpy(np.array(value, dtype=np.float32))


def _describe_shape(value: Any) -> str:
    shape = getattr(value, "shape", None)
    return str(list(shape)) if shape is not None else type(value).__name__


def convert_state(
    targets: Mapping[str, torch.Size | Shape],  # our state-dict keys and shapes
    stored: Mapping[str, Any],  # the checkpoint's tensors by their own names
    rules: Iterable[Rule],
    label: str,  # the file, for messages
    ignore: Iterable[str] = (),  # regexes of stored names that are known but unused
    what: str = "tensor",  # 'tensor' | 'variable' (TF), for messages
) -> dict[str, torch.Tensor]:
    """Our state dict from `stored` via `rules`; one `CheckpointError` lists what does not fit."""
    rules = list(rules)
    ignored = [re.compile(p) for p in ignore]
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    problems: list[str] = []
    for key, shape in targets.items():
        shape = tuple(shape)
        for rule in rules:
            match = re.fullmatch(rule.target, key)
            if match:
                break
        else:  # a table bug, not a file problem
            raise AssertionError(f"no name-table rule for parameter {key!r}")
        name = rule.source_name(match)
        expected = rule.layout.source_shape(shape)
        if name not in stored:
            problems.append(f"missing {what} '{name}' (shape {list(expected)})")
            continue
        used.add(name)
        value = stored[name]
        if tuple(getattr(value, "shape", (None,))) != expected:
            problems.append(
                f"{what} '{name}' has shape {_describe_shape(value)}, expected {list(expected)}"
            )
            continue
        out[key] = rule.layout.convert(as_tensor(value)).reshape(shape).contiguous()
    for name in stored:
        if name not in used and not any(p.fullmatch(name) for p in ignored):
            problems.append(f"unknown {what} '{name}' {_describe_shape(stored[name])}")
    if problems:
        more = (
            f" (and {len(problems) - 1} more: {'; '.join(problems[1:4])}"
            if len(problems) > 1
            else ""
        )
        if len(problems) > 4:
            more += "; ..."
        if more:
            more += ")"
        raise CheckpointError(
            f"{label}: {problems[0]}{more}; the file does not match the generator its config "
            "declares (a different architecture, or a damaged file?)"
        )
    return out
