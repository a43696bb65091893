"""The Image2StyleGAN++ editing commands (Abdal, Qin, Wonka, CVPR 2020, Sec. 7): `inpaint`,
`crossover`, `local-style` and `scribble`. Each embeds through the one pipeline (every `embed`
option applies; the recipes are `embed.applications`) into OUT/<name>/ in the embed layout
(latent.npz with its noise maps, target.png, reconstruction.png, mask.png, losses.csv) plus the
application's pictures, and prints where they are."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .common import echo_json
from .embed_options import embed_options, load_run, run_options

if TYPE_CHECKING:
    from PIL import Image

    from ..embed.applications import AppOutcome
    from ..embed.pipeline import EmbedPipeline

CONTEXT = {"help_option_names": ["-h", "--help"]}


def _common(default_out: str) -> Callable[[Callable], Callable]:
    def decorate(fn: Callable) -> Callable:
        fn = click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")(fn)
        fn = embed_options(fn)
        fn = click.option(
            "--blur",
            type=click.FloatRange(min=0),
            default=None,
            help="Gaussian blur radius (px) of the mask, for seamless blending [side / 32].",
        )(fn)
        return click.option(
            "--out",
            "-o",
            type=click.Path(file_okay=False, path_type=Path),
            default=Path(default_out),
            show_default=True,
            help="Output folder; the result goes to OUT/<name>/.",
        )(fn)

    return decorate


def _setup(opts: dict[str, Any]) -> tuple[EmbedPipeline, Any]:
    """The pipeline, and the config with the paper's noise stage unless --noise-steps says."""
    from ..embed.config import PAPER_NOISE_STEPS

    options = run_options(opts)
    config = options.config
    if opts["noise_steps"] is None:  # every Sec. 7 recipe ends with masked noise optimisation
        config = config.replace(noise_steps=PAPER_NOISE_STEPS)
    pipeline = load_run(options.replace(config=config, mask=None))  # masks: per command
    return pipeline, config


def _load_mask(path: Path | None, what: str, size: tuple[int, int] | None = None) -> Image.Image:
    """--mask as an L image (required; an unreadable file is a usage error)."""
    from ..embed.masks import load_mask
    from ..errors import ImageError

    if path is None:
        raise click.UsageError(f"--mask is required: {what}")
    try:
        return load_mask(path, size)
    except ImageError as e:
        raise click.BadParameter(str(e), param_hint="--mask") from None


def _bars(quiet: bool) -> Any:
    from .progress import EmbedProgress

    return EmbedProgress(enabled=not quiet)


def _finish(done: AppOutcome, as_json: bool, quiet: bool, command: str) -> None:
    outcome, extras = done.outcome, done.pictures
    if outcome.status == "failed":
        click.echo(f"error: {outcome.error}", err=True)
        sys.exit(1)
    summary = {"command": command, **outcome.to_json(), **{k: str(v) for k, v in extras.items()}}
    if as_json:
        echo_json(summary)
    elif not quiet:
        click.echo(f"wrote {outcome.out_dir} ({', '.join(p.name for p in extras.values())})")


# --- crossover ----------------------------------------------------------------------------------


@click.command(context_settings=CONTEXT)
@click.argument("a", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("b", type=click.Path(dir_okay=False, path_type=Path))
@_common("crossover")
def crossover(a: Path, b: Path, **opts: Any) -> None:
    """Image crossover (Image2StyleGAN++ Sec. 7.2): one latent code whose image is A inside
    --mask and B outside, blended seamlessly (Fig. 1's "two-face").

    The mask (white = from A, black = from B) is in the generator's frame: any size, resized
    to it; A and B are aligned and fitted like `embed` does. The W+ steps minimise Eq. 1 on the
    blurred mask against A plus Eq. 1 outside it against B; the noise stage (--noise-steps,
    default the paper's 3000) the same pixel terms. Writes OUT/A_x_B/ with latent.npz,
    reconstruction.png (the result), target.png (the naive copy-paste) and crossover.png
    ([A | B | mask | copy-paste | result]).

    \b
    Example:
      image2stylegan crossover face_a.jpg face_b.jpg --mask left_half.png --out crossover/
    """
    from ..embed import applications

    mask = _load_mask(opts["mask"], "white = take from A, black = from B")
    pipeline, config = _setup(opts)
    bars = _bars(opts["quiet"])
    try:
        done = applications.crossover(
            pipeline, config, a, b, mask, opts["out"], f"{a.stem}_x_{b.stem}",
            blur=opts["blur"], on_report=bars,
        )  # fmt: skip
    finally:
        bars.close()
    _finish(done, opts["as_json"], opts["quiet"], "crossover")


# --- inpaint ------------------------------------------------------------------------------------


@click.command(context_settings=CONTEXT)
@click.argument("image", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--invert",
    is_flag=True,
    help="The mask marks the hole in white (and the known pixels in black).",
)
@click.option(
    "--split-layer",
    type=click.IntRange(min=1),
    default=None,
    help="W+ rows [0, N) are optimised first (the hole's content), then [N, num_ws) "
    "(its colours) [num_ws / 2: 9 of 18].",
)
@_common("inpaint")
def inpaint(image: Path, invert: bool, split_layer: int | None, **opts: Any) -> None:
    """Inpainting (Image2StyleGAN++ Sec. 7.3): fill the undefined pixels of IMAGE.

    --mask (IMAGE's size; white = known pixels, black = the hole; --invert for the opposite)
    is aligned and fitted with the image. The known pixels are embedded with the masked Eq. 1,
    first into the early W+ rows, then into the later rows with the early ones fixed (the
    --steps split evenly), then the noise stage on the known pixels (--noise-steps, default
    3000). Writes OUT/IMAGE/ with latent.npz, fill.png (G(w*, n*), the generated image) and
    composite.png (the photo's known pixels over the fill, blended over --blur px), and the
    first stage in OUT/IMAGE/.early_rows/.

    \b
    Example:
      image2stylegan inpaint face.jpg --mask hole.png --invert --out inpainted/
    """
    from PIL import ImageOps

    from ..embed import applications

    known = _load_mask(opts["mask"], "white = known pixels, black = the hole (or --invert)")
    if invert:
        known = ImageOps.invert(known)
    pipeline, config = _setup(opts)
    bars = _bars(opts["quiet"])
    try:
        done = applications.inpaint(
            pipeline, config, image, known, opts["out"], image.stem, split=split_layer,
            blur=opts["blur"], on_report=bars,
        )  # fmt: skip
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--split-layer") from None
    finally:
        bars.close()
    _finish(done, opts["as_json"], opts["quiet"], "inpaint")


# --- local style transfer -----------------------------------------------------------------------


@click.command("local-style", context_settings=CONTEXT)
@click.argument("content", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("style", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--style-weight",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Weight of the style term against Eq. 1's [paper: 5e-7 / 1e-5 = 0.05].",
)
@_common("local-style")
def local_style(content: Path, style: Path, style_weight: float | None, **opts: Any) -> None:
    """Local style transfer (Image2StyleGAN++ Sec. 7.5): STYLE's style inside --mask, CONTENT
    everywhere else.

    --mask is in the generator's frame (any size; white = where the style goes). The W+ steps
    minimise Eq. 1 against CONTENT outside the blurred mask plus the style loss (Gram matrices
    of VGG-16 conv3_3) against STYLE inside it; the noise stage reproduces CONTENT outside.
    Writes OUT/CONTENT_in_STYLE/ with latent.npz, reconstruction.png (the result) and
    local_style.png ([content | style | mask | result]).

    \b
    Example:
      image2stylegan local-style face.jpg painting.jpg --mask hair.png --out styled/
    """
    from ..embed import applications

    mask = _load_mask(opts["mask"], "white = where the style goes")
    pipeline, config = _setup(opts)
    bars = _bars(opts["quiet"])
    try:
        done = applications.local_style(
            pipeline, config, content, style, mask, opts["out"], f"{content.stem}_in_{style.stem}",
            blur=opts["blur"], style_weight=style_weight, on_report=bars,
        )  # fmt: skip
    finally:
        bars.close()
    _finish(done, opts["as_json"], opts["quiet"], "local-style")


# --- scribble editing ---------------------------------------------------------------------------


@click.command(context_settings=CONTEXT)
@click.argument("photo", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("edited", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--threshold",
    type=click.IntRange(0, 254),
    default=8,
    show_default=True,
    help="A pixel is scribbled where EDITED differs from PHOTO by more than this (0-255).",
)
@_common("scribble")
def scribble(photo: Path, edited: Path, threshold: int, **opts: Any) -> None:
    """Local edits with scribbles (Image2StyleGAN++ Sec. 7.4): draw on a copy of PHOTO in any
    paint program (EDITED) and get a realistic image that follows the strokes.

    The strokes are where EDITED differs from PHOTO (or white in --mask, PHOTO's size). The
    perceptual term sees the whole edited image, so the strokes guide the embedding without
    being copied; the pixel term and the noise stage see only the unscribbled pixels. Start
    from the photo's embedding with --init PHOTO_LATENT.npz to change little else. Writes
    OUT/EDITED/ with latent.npz, reconstruction.png (the result) and scribble.png
    ([photo | edited | strokes | result]).

    \b
    Example:
      image2stylegan embed face.jpg --out emb/ --noise-steps 3000
      image2stylegan scribble face.jpg face_scribbled.png --init emb/face/latent.npz --out edits/
    """
    from ..embed import applications
    from ..errors import ImageError

    strokes = None
    if opts["mask"] is not None:
        strokes = _load_mask(opts["mask"], "white = scribbled pixels")
    pipeline, config = _setup(opts)
    bars = _bars(opts["quiet"])
    try:
        done = applications.scribble(
            pipeline, config, photo, edited, opts["out"], edited.stem, strokes=strokes,
            threshold=threshold, blur=opts["blur"], on_report=bars,
        )  # fmt: skip
    except (ValueError, ImageError) as e:
        raise click.UsageError(str(e)) from None
    finally:
        bars.close()
    _finish(done, opts["as_json"], opts["quiet"], "scribble")
