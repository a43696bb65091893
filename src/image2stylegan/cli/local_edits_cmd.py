"""The Image2StyleGAN++ editing commands (Abdal, Qin, Wonka, CVPR 2020, Sec. 7): `inpaint`,
`crossover`, `local-style` and `scribble`. Each embeds through the one pipeline (every `embed`
option applies; the recipes are `embed.applications`) into OUT/<name>/ in the embed layout
(latent.npz with its noise maps, target.png, reconstruction.png, mask.png, losses.csv) plus the
application's pictures, and prints where they are."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .common import echo_json
from .embed_options import embed_options, load_run, run_options

if TYPE_CHECKING:
    from PIL import Image

    from ..embed.pipeline import EmbedPipeline
    from ..embed.runner import JobOutcome

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
    pipeline = load_run(options.replace(config=config))
    return pipeline, config


def _frame(pipeline: EmbedPipeline, path: Path) -> Image.Image:
    """The generator-sized frame of an input photo (decoded, aligned, fitted like `embed`)."""
    from ..embed.targets import prepare_target

    return prepare_target(
        path,
        pipeline.G.img_resolution,
        align=pipeline.align,
        fit=pipeline.options.fit,
        content_size=pipeline.content_size,
    ).frame


def _load_mask(path: Path | None, size: int, what: str) -> Image.Image:
    from ..embed.applications import frame_mask
    from ..embed.masks import load_mask

    if path is None:
        raise click.UsageError(f"--mask is required: {what}")
    return frame_mask(load_mask(path), size)


def _finish(
    outcome: JobOutcome, extras: dict[str, Path], as_json: bool, quiet: bool, command: str
) -> None:
    if outcome.status == "failed":
        click.echo(f"error: {outcome.error}", err=True)
        sys.exit(1)
    summary = {"command": command, **outcome.to_json(), **{k: str(v) for k, v in extras.items()}}
    if as_json:
        echo_json(summary)
    elif not quiet:
        click.echo(f"wrote {outcome.out_dir} ({', '.join(p.name for p in extras.values())})")


def _run(
    pipeline: EmbedPipeline,
    config: Any,
    job: Any,
    recipe: Any,  # an embed.applications.LocalRecipe, or None for the masked Eq. 1
    record: dict,
    quiet: bool,
    init: Any = None,  # a start code for config.init "file"
) -> JobOutcome:
    from ..embed.applications import run_one
    from .progress import EmbedProgress

    bars = EmbedProgress(enabled=not quiet)
    try:
        return run_one(
            pipeline, job, config, loss_fn=recipe.loss_fn if recipe else None,
            noise_loss_fn=recipe.noise_loss_fn if recipe else None, init=init, record=record,
            on_report=bars,
        )  # fmt: skip
    finally:
        bars.close()


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
    from ..embed.applications import crossover_recipe, default_blur
    from ..embed.records import OutputPaths
    from ..embed.runner import EmbedJob
    from ..image import image_strip, load_image, save_image

    pipeline, config = _setup(opts)
    res = pipeline.G.img_resolution
    mask = _load_mask(opts["mask"], res, "white = take from A, black = from B")
    fa, fb = _frame(pipeline, a), _frame(pipeline, b)
    blur = opts["blur"] if opts["blur"] is not None else default_blur(res)
    recipe = crossover_recipe(
        pipeline.loss_fn(config), pipeline.loss_fn(config), fa, fb, mask, blur, pipeline.device
    )
    name = f"{a.stem}_x_{b.stem}"
    job = EmbedJob(a, OutputPaths.folder(opts["out"] / name), name, align=pipeline.align,
                   frame=recipe.frame, fingerprint=recipe.fingerprint)  # fmt: skip
    record = {"application": "crossover (Image2StyleGAN++ Sec. 7.2)", "image_b": b.name,
              "mask_file": str(opts["mask"]), "blur_px": blur}  # fmt: skip
    outcome = _run(pipeline, config, job, recipe, record, opts["quiet"])
    extras: dict[str, Path] = {}
    if outcome.status != "failed":
        result = load_image(job.paths.reconstruction)
        extras["crossover"] = save_image(
            image_strip([fa, fb, mask.convert("RGB"), recipe.frame, result]),
            job.out_dir / "crossover.png",
        )
    _finish(outcome, extras, opts["as_json"], opts["quiet"], "crossover")


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
    from PIL import Image, ImageOps

    from ..embed.applications import composite, default_blur, inpaint_split
    from ..embed.masks import blur_mask, load_mask
    from ..embed.records import OutputPaths
    from ..embed.runner import EmbedJob
    from ..errors import ImageError
    from ..image import load_image, save_image
    from ..latents import load_latent

    if opts["mask"] is None:
        raise click.UsageError("--mask is required: white = known pixels, black = the hole")
    pipeline, config = _setup(opts)
    G = pipeline.G
    try:
        mask = load_mask(opts["mask"])
    except ImageError as e:
        raise click.BadParameter(str(e), param_hint="--mask") from None
    if invert:
        mask = ImageOps.invert(mask)
    tmp_mask = opts["out"] / f".{image.stem}.mask.png"
    save_image(mask, tmp_mask)
    split = split_layer or inpaint_split(G.num_ws)
    if split >= G.num_ws:
        raise click.BadParameter(
            f"the generator has {G.num_ws} W+ rows", param_hint="--split-layer"
        )
    steps = config.steps
    out_dir = opts["out"] / image.stem
    record = {"application": "inpainting (Image2StyleGAN++ Sec. 7.3)", "split_layer": split}
    # stage 1: the early rows, from the run's start (w̄ by default)
    early = config.replace(steps=steps - steps // 2, noise_steps=0, w_rows=(0, split))
    stage1 = OutputPaths.folder(out_dir / ".early_rows")  # hidden: not a result of its own
    stage1 = dataclasses.replace(stage1, run_metrics=stage1.latent.parent / "metrics.csv")
    job1 = EmbedJob(image, stage1, image.stem, mask_source=tmp_mask)
    first = _run(pipeline, early, job1, None, {**record, "stage": "early rows"}, opts["quiet"])
    if first.status == "failed":
        _finish(first, {}, opts["as_json"], opts["quiet"], "inpaint")
        return
    w1 = load_latent(job1.paths.latent).w
    # stage 2: the later rows from stage 1's code, then the noise stage
    late = config.replace(steps=steps // 2, w_rows=(split, G.num_ws), init="file")
    job2 = EmbedJob(image, OutputPaths.folder(out_dir), image.stem, mask_source=tmp_mask,
                    fingerprint=f"stage1={float(w1.double().sum()):.9g}")  # fmt: skip
    record2 = {**record, "stage": "later rows + noise"}
    outcome = _run(pipeline, late, job2, None, record2, opts["quiet"], init=w1)
    extras: dict[str, Path] = {}
    if outcome.status != "failed":
        fill = load_image(job2.paths.reconstruction)
        target = load_image(job2.paths.target)
        known = Image.open(job2.paths.mask).convert("L")
        blur = opts["blur"] if opts["blur"] is not None else default_blur(G.img_resolution)
        blended = ImageOps.invert(blur_mask(ImageOps.invert(known), blur))  # hole grows soft
        extras["fill"] = save_image(fill, out_dir / "fill.png")
        extras["composite"] = save_image(
            composite(target, fill, blended), out_dir / "composite.png"
        )
    tmp_mask.unlink(missing_ok=True)
    _finish(outcome, extras, opts["as_json"], opts["quiet"], "inpaint")


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
    from ..embed.applications import (
        STYLE_WEIGHT,
        GramStyleLoss,
        default_blur,
        local_style_recipe,
    )
    from ..embed.records import OutputPaths
    from ..embed.runner import EmbedJob
    from ..image import image_strip, load_image, save_image

    pipeline, config = _setup(opts)
    res = pipeline.G.img_resolution
    mask = _load_mask(opts["mask"], res, "white = where the style goes")
    fc, fs = _frame(pipeline, content), _frame(pipeline, style)
    blur = opts["blur"] if opts["blur"] is not None else default_blur(res)
    weight = style_weight if style_weight is not None else STYLE_WEIGHT
    style_loss = GramStyleLoss(pipeline.vgg(), weight=weight, size=config.perceptual_size)
    recipe = local_style_recipe(
        pipeline.loss_fn(config), style_loss, fc, fs, mask, blur, pipeline.device
    )
    name = f"{content.stem}_in_{style.stem}"
    job = EmbedJob(content, OutputPaths.folder(opts["out"] / name), name, align=pipeline.align,
                   frame=recipe.frame, mask_frame=recipe.mask, mask_in_loss=False,
                   fingerprint=recipe.fingerprint)  # fmt: skip
    record = {"application": "local style transfer (Image2StyleGAN++ Sec. 7.5)",
              "style_image": style.name, "mask_file": str(opts["mask"]), "blur_px": blur,
              "style_weight": weight, "style_layers": list(style_loss.layers)}  # fmt: skip
    outcome = _run(pipeline, config, job, recipe, record, opts["quiet"])
    extras: dict[str, Path] = {}
    if outcome.status != "failed":
        result = load_image(job.paths.reconstruction)
        extras["local_style"] = save_image(
            image_strip([fc, fs, mask.convert("RGB"), result]), job.out_dir / "local_style.png"
        )
    _finish(outcome, extras, opts["as_json"], opts["quiet"], "local-style")


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
    from ..embed.applications import default_blur, scribble_mask, scribble_recipe
    from ..embed.masks import load_mask
    from ..embed.records import OutputPaths
    from ..embed.runner import EmbedJob
    from ..embed.targets import prepare_target
    from ..errors import ImageError
    from ..image import image_strip, load_image, save_image
    from ..losses import Image2StyleGANLoss

    pipeline, config = _setup(opts)
    res = pipeline.G.img_resolution
    src_photo, src_edited = load_image(photo), load_image(edited)
    try:
        if opts["mask"] is not None:
            strokes = load_mask(opts["mask"], src_photo.size)
        else:
            strokes = scribble_mask(src_photo, src_edited, threshold)
    except (ValueError, ImageError) as e:
        raise click.UsageError(str(e)) from None
    target = prepare_target(src_edited, res, align=pipeline.align, fit=pipeline.options.fit,
                            content_size=pipeline.content_size, mask=strokes,
                            blackout=False, name=str(edited))  # fmt: skip
    assert target.mask is not None
    blur = opts["blur"] if opts["blur"] is not None else default_blur(res) / 4
    perceptual = Image2StyleGANLoss(
        pipeline.vgg(), layers=config.layers, layer_weights=config.layer_weights,
        mse_weight=0.0, perceptual_size=config.perceptual_size,
    ).to(pipeline.device)  # fmt: skip
    recipe = scribble_recipe(perceptual, target.frame, target.mask, blur, pipeline.device)
    job = EmbedJob(edited, OutputPaths.folder(opts["out"] / edited.stem), edited.stem,
                   align=target.aligned, frame=recipe.frame, mask_frame=recipe.mask,
                   mask_in_loss=False, fingerprint=recipe.fingerprint)  # fmt: skip
    record = {"application": "scribble editing (Image2StyleGAN++ Sec. 7.4)",
              "photo": photo.name, "blur_px": blur}  # fmt: skip
    outcome = _run(pipeline, config, job, recipe, record, opts["quiet"])
    extras: dict[str, Path] = {}
    if outcome.status != "failed":
        photo_frame = prepare_target(src_photo, res, align=pipeline.align,
                                     fit=pipeline.options.fit,
                                     content_size=pipeline.content_size).frame  # fmt: skip
        result = load_image(job.paths.reconstruction)
        extras["scribble"] = save_image(
            image_strip([photo_frame, target.frame, target.mask.convert("RGB"), result]),
            job.out_dir / "scribble.png",
        )
    _finish(outcome, extras, opts["as_json"], opts["quiet"], "scribble")
