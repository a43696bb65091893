"""Helpers of the editing commands (generate, morph, style-transfer, expression, walk).

Options shared by these commands (SPEC section 3): `--generator` (default: the generator recorded
in the latents' metadata), `--batch-size`, `--device`, `--quiet`, `--json`, `--out`. Frames are
rendered with noise_mode="const" and streamed to the output writer.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import I2SError

if TYPE_CHECKING:
    import torch

    from ..latents import LatentFile
    from ..models.base import Generator

__all__ = [
    "CONTEXT",
    "edit_options",
    "failures_as_errors",
    "generator_source",
    "load_generator_for",
    "load_latents",
    "out_kind",
    "parse_range",
    "parse_seeds",
    "report",
    "sequence_options",
    "stack_codes",
    "write_image",
    "write_sequence",
]

CONTEXT = {"help_option_names": ["-h", "--help"]}


def edit_options(fn: Callable) -> Callable:
    """--generator, --batch-size, --device, --quiet, --json: options of every editing command."""
    options = [
        click.option(
            "--generator",
            "-g",
            default=None,
            help="Registry name or checkpoint file [default: the generator recorded in the "
            "latent file's metadata].",
        ),
        click.option(
            "--batch-size",
            "-b",
            type=click.IntRange(min=1),
            default=8,
            show_default=True,
            help="Images rendered per forward pass.",
        ),
        click.option(
            "--device",
            default="auto",
            show_default=True,
            help="auto (CUDA when available), cpu, cuda, cuda:1, ...",
        ),
        click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary."),
        click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def sequence_options(default_frames: int) -> Callable[[Callable], Callable]:
    """Options of commands that write a frame sequence (morph, walk)."""

    def decorate(fn: Callable) -> Callable:
        options = [
            click.option(
                "--frames",
                type=click.IntRange(min=2),
                default=default_frames,
                show_default=True,
                help="Frames per segment, both ends included.",
            ),
            click.option(
                "--ping-pong",
                is_flag=True,
                help="Go back to the start too, so the video loops seamlessly.",
            ),
            click.option(
                "--fps",
                type=click.FloatRange(min=0, min_open=True),
                default=30.0,
                show_default=True,
                help="Frame rate of .mp4/.gif outputs.",
            ),
            click.option(
                "--strip",
                "strip",
                type=click.Path(dir_okay=False, path_type=Path),
                default=None,
                help="Where to write the one-row PNG of selected frames "
                "[default: <out>_strip.png beside a video or folder output].",
            ),
            click.option("--no-strip", is_flag=True, help="Do not write the strip."),
            click.option(
                "--strip-frames",
                type=click.IntRange(min=1),
                default=8,
                show_default=True,
                help="Frames shown in the strip (evenly spaced, first and last included).",
            ),
        ]
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


# --- option parsing ---------------------------------------------------------------------------


def parse_range(text: str, param: str) -> list[float]:
    """'start:stop:count' (both ends included, like numpy.linspace), 'a,b,c', or one number."""
    text = text.strip()
    try:
        if ":" in text:
            parts = text.split(":")
            if len(parts) != 3:
                raise ValueError
            start, stop, count = float(parts[0]), float(parts[1]), int(parts[2])
            if count < 1:
                raise ValueError
            values = (
                [start]
                if count == 1
                else [start + (stop - start) * k / (count - 1) for k in range(count)]
            )
        else:
            values = [float(v) for v in text.split(",") if v.strip()] or _fail()
        if not all(math.isfinite(v) for v in values):
            raise ValueError
        return values
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: expected start:stop:count (e.g. -1.5:1.5:7) or a comma-separated list; "
            f"write negative starts as {param}=-1.5:1.5:7",
            param_hint=param,
        ) from None


def _fail() -> list[float]:
    raise ValueError


def parse_seeds(text: str) -> list[int]:
    """'0-7,12' -> [0, 1, ..., 7, 12] (ranges inclusive, as NVIDIA's generate.py reads them)."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            if "-" in part[1:]:
                lo, hi = part.split("-", 1)
                a, b = int(lo), int(hi)
                if b < a:
                    raise ValueError
                seeds.extend(range(a, b + 1))
            else:
                seeds.append(int(part))
        if not seeds or any(not 0 <= s < 2**32 for s in seeds):
            raise ValueError
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: expected seeds like 0-7,12 (integers in [0, 2^32))", param_hint="--seeds"
        ) from None
    return seeds


def out_kind(out: Path, allowed: Sequence[str]) -> str:
    """The kind of output `out` asks for, as a usage error when this command cannot write it."""
    from ..video import check_writable, output_kind

    try:
        kind = output_kind(out)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--out") from None
    if kind not in allowed:
        names = {"mp4": ".mp4", "gif": ".gif", "image": "a .png/.jpg image", "folder": "a folder"}
        raise click.BadParameter(
            f"{str(out)!r}: this command writes {', '.join(names[k] for k in allowed)}",
            param_hint="--out",
        )
    check_writable(out)
    return kind


# --- latents and the generator ----------------------------------------------------------------


def load_latents(paths: Sequence[str | Path]) -> list[LatentFile]:
    """Read latent files (each error is one LatentError line naming the file)."""
    from ..latents import load_latent

    return [load_latent(p) for p in paths]


def _recorded_generator(latent: LatentFile) -> str | None:
    """The generator a latent file was made with, as `embed` records it in the metadata."""
    g = latent.metadata.get("generator")
    if isinstance(g, dict):  # tolerate {"name": ...} / {"path": ...} records
        g = g.get("name") or g.get("path") or g.get("source")
    if not isinstance(g, str) or not g:
        return None
    from ..checkpoints.registry import is_registry_name

    if is_registry_name(g) or Path(g).exists() or latent.path is None:
        return g
    beside = latent.path.parent / g  # a relative path recorded from another working directory
    return str(beside) if beside.exists() else g


def generator_source(latents: Sequence[LatentFile], explicit: str | None) -> str:
    """--generator if given, else the one generator all latents record (usage error otherwise)."""
    if explicit:
        return explicit
    recorded = {str(lat.path): _recorded_generator(lat) for lat in latents}
    missing = [p for p, g in recorded.items() if g is None]
    if missing:
        raise click.UsageError(
            f"{missing[0]} records no generator in its metadata; pass --generator NAME_OR_FILE"
        )
    distinct = {_same_key(g) for g in recorded.values() if g}
    if len(distinct) > 1:
        pairs = "; ".join(f"{p}: {g}" for p, g in recorded.items())
        raise click.UsageError(
            f"the latent files were made with different generators ({pairs}); pass --generator"
        )
    return next(g for g in recorded.values() if g)


def _same_key(g: str) -> str:
    p = Path(g)
    return str(p.resolve()) if p.exists() else g


def load_generator_for(
    latents: Sequence[LatentFile], explicit: str | None, device: str
) -> tuple[Generator, str]:
    """Load the generator (explicit or recorded) and check every latent fits its [num_ws, w_dim]."""
    from ..checkpoints import load_generator
    from ..latents import check_latent_fits
    from .common import resolve_device

    source = generator_source(latents, explicit)
    G = load_generator(source, device=resolve_device(device))
    for lat in latents:
        check_latent_fits(lat, G.num_ws, G.w_dim, source)
    return G, source


def stack_codes(latents: Sequence[LatentFile]) -> torch.Tensor:
    """[M, num_ws, w_dim] float32 on the CPU."""
    import torch

    return torch.cat([lat.w for lat in latents]).float()


# --- writing ----------------------------------------------------------------------------------


def write_sequence(
    G: Generator,
    ws: torch.Tensor,  # [K, num_ws, w_dim]
    out: Path,
    kind: str,  # from out_kind: mp4 | gif | folder | image
    *,
    fps: float,
    batch_size: int,
    quiet: bool,
    desc: str,
    strip: Path | None = None,  # where to put the strip of selected frames (video/folder outputs)
    strip_frames: int | None = None,  # frames in the strip / the image output (None: all)
) -> dict[str, Any]:
    """Render `ws` and write it to `out`; returns a summary for --json.

    - mp4/gif/folder: every frame, streamed; plus the strip at `strip` (if given);
    - image: one row of `strip_frames` evenly spaced frames (all when None), the only ones rendered.
    """
    from tqdm import tqdm

    from ..edit.render import render_frames
    from ..video import open_frame_writer, save_strip, strip_indices

    num = ws.shape[0]
    picks = strip_indices(num, strip_frames or num)
    if kind == "image":
        with tqdm(total=len(picks), desc=desc, unit="img", disable=quiet, file=sys.stderr) as bar:
            frames = list(render_frames(G, ws[picks], batch_size, on_batch=bar.update))
        save_strip(frames, out)
        return {
            "out": str(out),
            "frames": len(picks),
            "frame_indices": picks,
            "size": _size(frames[0]),
        }

    wanted = set(picks) if strip is not None else set()
    kept: list = []
    writer = open_frame_writer(out, fps=fps)  # fails now if `out` cannot be written
    try:
        with tqdm(total=num, desc=desc, unit="frame", disable=quiet, file=sys.stderr) as bar:
            for i, frame in enumerate(render_frames(G, ws, batch_size, on_batch=bar.update)):
                writer.append(frame)
                if i in wanted:
                    kept.append(frame)
        writer.close()
    except BaseException:
        writer.abort()  # nothing half-written: the temporary output is deleted
        raise
    if strip is not None:
        save_strip(kept, strip)
    summary: dict[str, Any] = {"out": str(out), "frames": num, "size": list(writer.size or ())}
    if strip is not None:
        summary["strip"] = str(strip)
        summary["strip_frame_indices"] = picks
    return summary


def write_image(image: Any, out: Path) -> None:
    """Write one PIL image atomically; an unwritable location is one OutputError line."""
    from ..image import save_image
    from ..video import OutputError

    try:
        save_image(image, out)
    except OSError as e:
        raise OutputError(f"{out}: cannot write ({e.strerror or e})") from None


def _size(frame: Any) -> list[int]:
    return [int(frame.shape[1]), int(frame.shape[0])]


def report(summary: dict[str, Any], as_json: bool, quiet: bool, line: str) -> None:
    """--json: the summary on stdout; else one line (unless --quiet)."""
    from .common import echo_json

    if as_json:
        echo_json(summary)
    elif not quiet:
        click.echo(line)


def failures_as_errors(fn: Callable) -> Callable:
    """Turn library ValueErrors raised on user data into one-line I2SErrors (exit code 1)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (I2SError, click.ClickException):
            raise
        except ValueError as e:
            raise I2SError(str(e)) from None

    return wrapper
