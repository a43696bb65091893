"""Helpers of the editing commands (generate, morph, style-transfer, expression, walk).

Options shared by these commands (SPEC section 3): `--generator` (default: the generator recorded
in the latents' metadata), `--batch-size`, `--device`, `--quiet`, `--json`, `--out`,
`--overwrite`. Frames are rendered with noise_mode="const", or with a latent's own noise maps when
it holds them (the Image2StyleGAN++ noise stage; what each edit does with them: `edit/noise.py`),
and streamed to the output writer.

Outputs are checked before anything is loaded or rendered: an --out (or strip) that exists is
refused unless --overwrite (as `convert` does; `embed` and `align` skip finished outputs
instead), sequences hold at most `MAX_FRAMES` frames, and one-image outputs (grids, strips) at
most `image.MAX_OUTPUT_PIXELS`; larger requests are usage errors that suggest a folder --out.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import I2SError, short_repr
from .common import FiniteFloat

if TYPE_CHECKING:
    import torch

    from ..latents import LatentFile
    from ..models.base import Generator

__all__ = [
    "CONTEXT",
    "MAX_FRAMES",
    "check_frames",
    "check_picture",
    "check_strip",
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
MAX_FRAMES = 10_000  # frames of one sequence (5.5 minutes at 30 fps; their codes ~370 MB)


def edit_options(fn: Callable) -> Callable:
    """--generator, --batch-size, --device, --overwrite, --quiet, --json: options of every
    editing command."""
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
        click.option(
            "--overwrite",
            is_flag=True,
            help="Replace --out (and the strip) if it exists [default: refuse].",
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
                type=click.IntRange(min=2, max=MAX_FRAMES),
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
                type=FiniteFloat(min=0.01, max=1000),
                default=30.0,
                show_default=True,
                help="Frame rate of .mp4/.gif outputs.",
            ),
            click.option(
                "--strip",
                "strip",
                type=click.Path(dir_okay=False, path_type=Path),
                default=None,
                help="Where to write the one-row image (.png/.jpg/.webp) of selected frames "
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
            if count > MAX_FRAMES:
                raise click.BadParameter(
                    f"{short_repr(text)} asks for {count:,} values; at most {MAX_FRAMES:,}",
                    param_hint=param,
                )
            values = (
                [start]
                if count == 1
                else [start + (stop - start) * k / (count - 1) for k in range(count)]
            )
        else:
            values = [float(v) for v in text.split(",") if v.strip()] or _fail()
            if len(values) > MAX_FRAMES:
                raise click.BadParameter(
                    f"{len(values):,} values; at most {MAX_FRAMES:,}", param_hint=param
                )
        if not all(math.isfinite(v) for v in values):
            raise ValueError
        return values
    except ValueError:
        raise click.BadParameter(
            f"{short_repr(text)}: expected start:stop:count (e.g. -1.5:1.5:7) or a "
            "comma-separated list; "
            f"write negative starts as {param}=-1.5:1.5:7",
            param_hint=param,
        ) from None


def _fail() -> list[float]:
    raise ValueError


def parse_seeds(text: str) -> list[int]:
    """`edit.seeds.parse_seeds` with a bad list as a usage error of --seeds."""
    from ..edit.seeds import parse_seeds as parse

    try:
        return parse(text)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--seeds") from None


def out_kind(out: Path, allowed: Sequence[str], overwrite: bool = False) -> str:
    """The kind of output `out` asks for, as a usage error when this command cannot write it or
    when it exists (a file, or a folder with files in it) and `overwrite` is not given."""
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
    _check_new(out, overwrite, "--out")
    check_writable(out)
    return kind


def _check_new(path: Path, overwrite: bool, param: str) -> None:
    """A usage error when `path` exists (a file, a link, a folder holding anything) unless
    `overwrite`: no command replaces a named output silently."""
    if overwrite:
        return
    if path.is_dir() and not path.is_symlink():
        if next(path.iterdir(), None) is None:
            return  # an empty folder: nothing is replaced
        raise click.BadParameter(
            f"{str(path)!r} is a folder that holds files; pass --overwrite to replace its "
            "frames, or choose a new folder",
            param_hint=param,
        )
    if path.exists() or path.is_symlink():
        raise click.BadParameter(
            f"{str(path)!r} exists; pass --overwrite to replace it", param_hint=param
        )


def check_strip(strip: Path, out: Path, overwrite: bool) -> None:
    """The strip beside a video/folder output: an image file (.png/.jpg/.webp), not --out
    itself, new unless `overwrite`, in a writable place: checked before any rendering."""
    from ..video import IMAGE_SUFFIXES, check_writable

    same = strip.absolute() == out.absolute()
    if same or (strip.exists() and out.exists() and strip.samefile(out)):
        raise click.BadParameter(
            f"{str(strip)!r} is the --out file itself; choose another name", param_hint="--strip"
        )
    if strip.suffix.lower() not in IMAGE_SUFFIXES:
        raise click.BadParameter(
            f"{str(strip)!r}: the strip is an image; give a .png, .jpg or .webp file",
            param_hint="--strip",
        )
    _check_new(strip, overwrite, "--strip")
    check_writable(strip)


def check_frames(count: int, param: str) -> None:
    """A usage error for sequences longer than `MAX_FRAMES` (checked before building them)."""
    if count > MAX_FRAMES:
        raise click.BadParameter(
            f"{count:,} frames in all; at most {MAX_FRAMES:,} per sequence", param_hint=param
        )


def check_picture(count: int, G: Generator, what: str, param: str = "--out") -> None:
    """A usage error when `count` frames of G's size make one image (grid, strip) larger than
    `image.MAX_OUTPUT_PIXELS`, checked before rendering; a folder output takes any number."""
    from ..image import MAX_OUTPUT_PIXELS

    pixels = count * G.img_resolution * G.img_resolution
    if pixels > MAX_OUTPUT_PIXELS:
        raise click.BadParameter(
            f"a {what} of {count:,} images of {G.img_resolution} px would be {pixels:,} pixels, "
            f"more than {MAX_OUTPUT_PIXELS:,}; use fewer, or a folder --out (one PNG each)",
            param_hint=param,
        )


# --- latents and the generator ----------------------------------------------------------------


def load_latents(paths: Sequence[str | Path]) -> list[LatentFile]:
    """Read latent files (each error is one LatentError line naming the file)."""
    from ..latents import load_latent

    return [load_latent(p) for p in paths]


def generator_source(latents: Sequence[LatentFile], explicit: str | None) -> str:
    """--generator if given, else the one generator all latents record (usage error otherwise)."""
    from ..edit.sources import common_generator

    if explicit:
        return explicit
    try:
        return common_generator(latents)
    except ValueError as e:
        raise click.UsageError(f"{e}; pass --generator NAME_OR_FILE") from None


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


def _noise_used(G: Generator, noise: Sequence[torch.Tensor] | None) -> str:
    """What a rendered sequence used as noise inputs, for the --json summary."""
    from ..edit.noise import noise_used

    return noise_used(G, "latent noise maps" if noise is not None else "stored constants")


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
    noise: Sequence[torch.Tensor] | None = None,  # [K or 1, 1, h, w] per input; None = stored
) -> dict[str, Any]:
    """Render `ws` to `out` with a progress bar (`edit.sequence`); returns the --json summary.

    - mp4/gif/folder: every frame, streamed; plus the strip at `strip` (if given);
    - image: one row of `strip_frames` evenly spaced frames (all when None), the only ones rendered.
    """
    from tqdm import tqdm

    from ..edit import sequence
    from ..video import strip_indices

    num = ws.shape[0]
    if kind == "image":
        total = len(strip_indices(num, strip_frames or num))
        with tqdm(total=total, desc=desc, unit="img", disable=quiet, file=sys.stderr) as bar:
            done = sequence.write_strip(
                G, ws, out, strip_frames=strip_frames, batch_size=batch_size,
                on_frames=bar.update, noise=noise,
            )  # fmt: skip
        return {
            "out": str(out),
            "frames": done.frames,
            "frame_indices": done.strip_indices,
            "size": list(done.size),
            "noise": _noise_used(G, noise),
        }
    with tqdm(total=num, desc=desc, unit="frame", disable=quiet, file=sys.stderr) as bar:
        done = sequence.write_sequence(
            G, ws, [out], fps=fps, batch_size=batch_size, strip=strip,
            strip_frames=strip_frames or num, on_frames=bar.update, noise=noise,
        )  # fmt: skip
    summary: dict[str, Any] = {
        "out": str(out),
        "frames": num,
        "size": list(done.size),
        "noise": _noise_used(G, noise),
    }
    if strip is not None:
        summary["strip"] = str(strip)
        summary["strip_frame_indices"] = done.strip_indices
    return summary


def write_image(image: Any, out: Path) -> None:
    """Write one PIL image atomically; an unwritable location is one OutputError line."""
    from ..image import save_image
    from ..video import OutputError

    try:
        save_image(image, out)
    except OSError as e:
        raise OutputError(f"{out}: cannot write ({e.strerror or e})") from None


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
