"""Helpers shared by the commands: inputs, devices, the terminal (log lines, summaries)."""

from __future__ import annotations

import glob
import json
import logging
import math
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import click

from .. import devices
from ..devices import distributed_rank
from ..errors import one_line
from ..image import IMAGE_EXTENSIONS

__all__ = [
    "FiniteFloat",
    "distributed_rank",
    "echo_json",
    "expand_image_inputs",
    "resolve_device",
    "show_library_log",
]


class FiniteFloat(click.FloatRange):
    """A float option in a range that also refuses nan and inf (which pass a plain range)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


class FiniteFloatPair(click.ParamType):
    """Two finite floats written `X,Y` (e.g. `--translate 0.1,-0.2`), as a tuple."""

    name = "X,Y"

    def __init__(self, bound: float = 1e6) -> None:
        self.bound = bound

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        parts = str(value).split(",")
        try:
            if len(parts) != 2:
                raise ValueError
            pair = (float(parts[0]), float(parts[1]))
        except ValueError:
            self.fail(f"{value!r} is not two numbers X,Y (e.g. 0.1,-0.2)", param, ctx)
        if not all(math.isfinite(v) and abs(v) <= self.bound for v in pair):
            bound = f"{self.bound:g}"
            self.fail(f"{value!r}: both numbers must be finite and within ±{bound}", param, ctx)
        return pair


class _TerminalHandler(logging.Handler):
    """The library's log records as one line each on stderr: `error: ...`, `warning: ...`, and
    plain progress lines (the stderr of the moment, so captured output works)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = one_line(record.getMessage())
            if record.levelno >= logging.WARNING:
                text = f"{record.levelname.lower()}: {text}"
            click.echo(text, err=True)
        except Exception:  # never let a log line break the command
            self.handleError(record)


_INFO_LOGGERS: set[str] = set()  # loggers whose progress lines the running command shows


def show_library_log(quiet: bool = True, info_from: Sequence[str] = ()) -> None:
    """Send the library's logging (logger "image2stylegan") to the terminal: warnings and errors
    always, the progress lines (INFO) of the loggers in `info_from` unless `quiet`. `main` calls
    it once per command (warnings and errors only); a command may widen it. Idempotent."""
    root = logging.getLogger("image2stylegan")
    for handler in [h for h in root.handlers if isinstance(h, _TerminalHandler)]:
        root.removeHandler(handler)
    root.addHandler(_TerminalHandler())
    root.setLevel(logging.WARNING)
    for name in _INFO_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)
    _INFO_LOGGERS.clear()
    if not quiet:
        for name in info_from:
            logging.getLogger(name).setLevel(logging.INFO)
            _INFO_LOGGERS.add(name)


def expand_image_inputs(
    items: Iterable[str],
    recursive: bool = False,
    exclude: Path | None = None,  # a folder whose files a folder input never contributes (--out)
) -> list[Path]:
    """Files, folders (their images, sorted) and glob patterns -> a list of paths, in order.

    Paths that do not exist are kept, so the caller reports each as a failed input instead of
    aborting the whole run. A folder contributes its regular files with an image suffix, none
    inside `exclude` (earlier results when --out lies inside an input folder).
    """
    from ..fileio import is_inside

    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            pattern = "**/*" if recursive else "*"
            out.extend(
                sorted(
                    f
                    for f in p.glob(pattern)
                    if f.is_file()
                    and f.suffix.lower() in IMAGE_EXTENSIONS
                    and not (exclude is not None and is_inside(f, exclude))
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
