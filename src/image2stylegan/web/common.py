"""Helpers of the web UI's callbacks: user-facing errors, sessions, the latent library, plots.

Errors: every callback is wrapped by `user_errors`, so whatever goes wrong reaches the browser as
one `gradio.Error` line (a toast), never a traceback, and the server keeps running. Library errors
(`I2SError`) and bad values (`ValueError`) carry their own message; anything else is logged with
its traceback on the server console and shown as one line naming the exception.

The latent library is a per-session list of `[label, path]` pairs (a `gr.State`): the latents
embedded or generated in this session and the ones uploaded. The edit tabs' dropdowns offer its
labels and hand the callbacks the paths.
"""

from __future__ import annotations

import functools
import inspect
import io
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import gradio as gr
import torch
from PIL import Image

from ..errors import I2SError

__all__ = [
    "UserError",
    "add_to_library",
    "file_paths",
    "loss_curve",
    "session_id",
    "user_errors",
    "user_errors_stream",
    "user_message",
]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

log = logging.getLogger(__name__)

Library = list[list[str]]  # [[label, path], ...] in the order added


class UserError(I2SError):
    """Something the user can fix (a missing input, an unusable value)."""


def user_message(e: BaseException) -> str:
    """One line for the browser."""
    if isinstance(e, torch.cuda.OutOfMemoryError):
        return (
            "out of GPU memory: lower the batch size or the perceptual size, or start the server "
            "with --device cpu"
        )
    if isinstance(e, (I2SError, ValueError)):
        text = str(e).strip() or type(e).__name__
    elif isinstance(e, FileNotFoundError):
        text = f"{e.filename or e}: no such file"
    else:
        text = f"unexpected {type(e).__name__}: {e} (details are in the server's console)"
    return text.splitlines()[0] if text else type(e).__name__


def _as_gradio_error(e: BaseException) -> gr.Error:
    if isinstance(e, gr.Error):
        return e
    if not isinstance(e, (I2SError, ValueError, FileNotFoundError)):
        log.exception("web UI callback failed")
    return gr.Error(user_message(e), print_exception=False)


def user_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap a callback: exceptions become one `gr.Error` line (generators: `user_errors_stream`)."""
    if inspect.isgeneratorfunction(fn):
        raise TypeError(f"{fn.__name__} is a generator callback: use user_errors_stream")

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            raise _as_gradio_error(e) from None

    return wrapper


def user_errors_stream(fn: Callable[P, Iterator[T]]) -> Callable[P, Iterator[T]]:
    """`user_errors` for generator callbacks (gradio streams what they yield)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Iterator[T]:
        try:
            yield from fn(*args, **kwargs)
        except Exception as e:
            raise _as_gradio_error(e) from None

    return wrapper


def session_id(request: Any) -> str:
    """The browser session a request comes from ("local" when called directly, e.g. in tests)."""
    return str(getattr(request, "session_hash", None) or "local")


def file_paths(files: Any) -> list[Path]:
    """gr.File values (a path, a list of paths, or file objects with `.name`) -> paths."""
    if files is None:
        return []
    if not isinstance(files, (list, tuple)):
        files = [files]
    out = []
    for f in files:
        if f is None:
            continue
        path = f if isinstance(f, (str, Path)) else getattr(f, "path", None) or f.name
        out.append(Path(path))
    return out


def add_to_library(library: Library | None, items: Sequence[tuple[str, str | Path]]) -> Library:
    """A new library with `items` ([label, path]) appended; a label already taken gets " (2)"."""
    new = [list(entry) for entry in (library or [])]
    taken = {label for label, _ in new}
    for label, path in items:
        unique, k = label, 2
        while unique in taken:
            unique, k = f"{label} ({k})", k + 1
        taken.add(unique)
        new.append([unique, str(path)])
    return new


def loss_curve(
    steps: torch.Tensor,  # [T] step numbers
    totals: torch.Tensor,  # [T, N] total loss per image (Eq. 1, 0-255 pixel scale)
    names: Sequence[str],  # N labels
    title: str = "loss (Eq. 1)",
) -> Image.Image:
    """A small log-scale plot of the total loss per image (matplotlib, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(5.2, 3.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    x = steps.float().numpy()
    y = totals.float().numpy()
    positive = y[y > 0]
    for j, name in enumerate(names):
        ax.plot(x, y[:, j], label=name, linewidth=1.4)
    if positive.size and math.isfinite(float(positive.max())):
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("step")
    ax.set_ylabel("total loss")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if 1 < len(names) <= 8:
        ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    buf.seek(0)
    return Image.open(buf).convert("RGB")
