"""The `embed` options (SPEC section 3), shared by `embed` and `experiment`.

`embed_options` adds them to a click command; `run_options` parses the values into the
library's `RunOptions` (usage errors exit 2) before anything is loaded; `load_run` then loads
the generator and the start code (`embed.pipeline.load_pipeline`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..embed.options import (
    OptionMismatchError,
    RunOptions,
    embed_config,
    parse_content_size,
    parse_init,
    parse_layer_weights,
    parse_layers,
    parse_perceptual_size,
    read_init_latent,
)
from ..embed.pipeline import EmbedPipeline, load_pipeline
from .common import resolve_device

__all__ = ["embed_options", "load_run", "run_options"]

_OPTIONS: list[Callable[[Callable], Callable]] = [
    click.option(
        "--generator",
        "-g",
        default="ffhq-1024",
        show_default=True,
        help="Registry name (see `image2stylegan weights list`) or a checkpoint file.",
    ),
    click.option(
        "--preset",
        type=click.Choice(["paper", "nvidia"]),
        default="paper",
        show_default=True,
        help="paper = Algorithm 1 as published; nvidia = NVIDIA's projector loop (W, LPIPS, "
        "noise regularisation, lr ramps, 1000 steps). Options below override it.",
    ),
    click.option("--steps", type=click.IntRange(min=0), help="Optimisation steps [paper: 5000]."),
    click.option("--space", type=click.Choice(["w+", "w", "z"]), help="Latent space [paper: w+]."),
    click.option(
        "--init",
        "init",
        default=None,
        help="mean (w̄, best for faces), random (U[-1,1], better for other classes) or a "
        "latent .npz to start from [paper: mean].",
    ),
    click.option("--lr", type=float, help="Adam learning rate [paper: 0.01]."),
    click.option(
        "--loss", help="Terms joined by '+': perceptual, mse, lpips [paper: perceptual+mse]."
    ),
    click.option(
        "--layers",
        help="VGG-16 layers of the perceptual term, comma separated "
        "[paper: conv1_1,conv1_2,conv3_2,conv4_2].",
    ),
    click.option(
        "--layer-weights", help="Comma separated weights lambda_j, one per layer [all 1]."
    ),
    click.option("--mse-weight", type=float, help="lambda_mse [1]."),
    click.option("--lpips-weight", type=float, help="Weight of the LPIPS term [1]."),
    click.option("--perceptual-size", help="Side in px the perceptual term sees, or 'full' [256]."),
    click.option(
        "--vgg",
        default="vgg16-caffe",
        show_default=True,
        help="VGG-16 weights: vgg16-caffe (the paper's), vgg16-torchvision, a file, or "
        "random (experiments/tests only; recorded in the metadata).",
    ),
    click.option(
        "--noise",
        type=click.Choice(["const", "resample", "restart"]),
        help="Noise inputs: const (stored, paper), resample every step, restart with a new "
        "constant noise (Fig. 16).",
    ),
    click.option(
        "--batch-size",
        "-b",
        type=click.IntRange(min=1),
        default=1,
        show_default=True,
        help="Images optimised together (results do not depend on it).",
    ),
    click.option(
        "--align/--no-align",
        default=None,
        help="FFHQ face alignment first [default: on for face generators (ffhq-*), else off].",
    ),
    click.option(
        "--fit",
        type=click.Choice(["crop", "pad", "stretch"]),
        default="crop",
        show_default=True,
        help="How a non-square image becomes the generator's frame.",
    ),
    click.option(
        "--content-size",
        help="Valid region WxH of a non-square generator (e.g. 512x384) [from the registry].",
    ),
    click.option("--video", is_flag=True, help="Also write progress.mp4 of the optimisation."),
    click.option(
        "--video-every",
        type=click.IntRange(min=1),
        default=25,
        show_default=True,
        help="Steps between video frames.",
    ),
    click.option(
        "--checkpoint-every",
        type=click.IntRange(min=1),
        default=250,
        show_default=True,
        help="Steps between resume checkpoints.",
    ),
    click.option("--overwrite", is_flag=True, help="Redo finished images and ignore checkpoints."),
    click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."),
    click.option(
        "--precision",
        type=click.Choice(["fp32", "bf16", "fp16"]),
        help="Autocast dtype on CUDA [fp32, exact].",
    ),
    click.option(
        "--compile", "compile_", is_flag=True, help="torch.compile the step (CUDA speed-up)."
    ),
    click.option("--seed", type=int, help="Seed for random init / noise [0]."),
    # --- Image2StyleGAN++ (Abdal, Qin, Wonka, CVPR 2020) -------------------------------------
    click.option(
        "--noise-steps",
        type=click.IntRange(min=0),
        help="Image2StyleGAN++ noise stage: after the W+ steps, this many steps optimise only "
        "the generator's noise maps with W+ frozen (sequential, Sec. 4.2); the paper uses 3000 "
        "after 5000 W+ steps [0 = off]. latent.npz then holds the noise maps. Needs a generator "
        "with noise inputs (StyleGAN1/2; StyleGAN3 has none).",
    ),
    click.option(
        "--noise-lr", type=float, help="Adam learning rate of the noise stage [paper: 5]."
    ),
    click.option(
        "--noise-loss",
        type=click.Choice(["mse", "perceptual+mse"]),
        help="Loss of the noise stage: mse (the paper's Mk_n, Sec. 6.2) or perceptual+mse "
        "(Eq. 1) [mse].",
    ),
    # --- Pivotal tuning (Roich et al., ACM TOG 2022) -----------------------------------------
    click.option(
        "--pti-steps",
        type=click.IntRange(min=0),
        help="Pivotal tuning: after the latent stages, this many steps tune the generator's "
        "synthesis weights with the embedded code fixed, so it reproduces the photo (PTI "
        "uses 350) [0 = off]. Writes OUT/<stem>/generator.safetensors; the latent file records "
        "it and the editing commands render with it.",
    ),
    click.option("--pti-lr", type=float, help="Adam learning rate of the tuning [paper: 3e-4]."),
    click.option(
        "--pti-loss",
        type=click.Choice(["auto", "lpips+mse", "perceptual+mse"]),
        help="Tuning loss: lpips+mse (the paper's LPIPS + L2), perceptual+mse (Eq. 1 on the "
        "run's VGG-16), or auto: lpips+mse when its weights are cached [auto].",
    ),
    click.option(
        "--pti-locality",
        type=float,
        help="Weight of the locality regulariser that keeps codes 30 away from the pivot "
        "rendering as before (keeps the tuned generator editable) [paper: 0.1; 0 = off].",
    ),
    click.option(
        "--pti-shared",
        is_flag=True,
        help="Tune one generator for all the images of the run (multi-image PTI) instead of "
        "one per image; written to OUT/generator.safetensors.",
    ),
    click.option(
        "--mask",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Mask image of the input's size: white = embed these pixels, black = undefined "
        "(Image2StyleGAN++ local embedding). Aligned and fitted exactly like the image; the "
        "loss and the metrics see only its white pixels. One mask for every input.",
    ),
    click.option(
        "--metrics/--no-metrics",
        default=True,
        show_default=True,
        help="Reconstruction metrics (PSNR, SSIM, MSE; LPIPS and face ID when their models are "
        "installed) in each latent's metadata and OUT/metrics.csv.",
    ),
    click.option("--quiet", "-q", is_flag=True, help="No progress bars."),
]


def embed_options(fn: Callable) -> Callable:
    """Decorate a click command with every `embed` option (in `--help` order)."""
    for option in reversed(_OPTIONS):
        fn = option(fn)
    return fn


def _parsed(param: str, parse: Callable[[str], Any], value: str) -> Any:
    try:
        return parse(value)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint=param) from None


def run_options(opts: dict[str, Any]) -> RunOptions:
    """Parse the `embed` options into `RunOptions`: every value is checked here, before the
    generator is loaded (or downloaded); bad values are usage errors naming their option."""
    settings: dict[str, Any] = {
        key: opts[key]
        for key in ("steps", "space", "lr", "loss", "noise", "seed", "mse_weight",
                    "lpips_weight", "precision", "noise_steps", "noise_lr", "noise_loss",
                    "pti_steps", "pti_lr", "pti_loss", "pti_locality")
        if opts[key] is not None
    }  # fmt: skip
    if opts["compile_"]:
        settings["compile"] = True
    if opts["pti_shared"]:
        settings["pti_shared"] = True
    init_file = None
    if opts["init"] is not None:
        settings["init"], init_file = parse_init(opts["init"])
    if opts["layers"]:
        settings["layers"] = _parsed("--layers", parse_layers, opts["layers"])
    if opts["layer_weights"]:
        settings["layer_weights"] = _parsed(
            "--layer-weights", parse_layer_weights, opts["layer_weights"]
        )
    if opts["perceptual_size"] is not None:
        settings["perceptual_size"] = _parsed(
            "--perceptual-size", parse_perceptual_size, opts["perceptual_size"]
        )
    content_size = None
    if opts["content_size"]:
        content_size = _parsed("--content-size", parse_content_size, opts["content_size"])
    try:
        config = embed_config(opts["preset"], **settings)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    if init_file is not None:  # a readable latent with the code this space starts from
        try:
            read_init_latent(init_file, config.space)  # an unreadable file: LatentError, exit 1
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--init") from None
    return RunOptions(
        generator=opts["generator"],
        preset=opts["preset"],
        config=config,
        vgg=opts["vgg"],
        init_file=init_file,
        device=resolve_device(opts["device"]),
        batch_size=opts["batch_size"],
        align=opts["align"],
        fit=opts["fit"],
        content_size=content_size,
        video=opts["video"],
        video_every=opts["video_every"],
        checkpoint_every=opts["checkpoint_every"],
        overwrite=opts["overwrite"],
        mask=_mask_file(opts["mask"]),
        metrics=opts["metrics"],
    )


def _mask_file(path: Path | None) -> Path | None:
    """--mask, checked to be readable before anything loads (a usage error otherwise)."""
    if path is None:
        return None
    from ..embed.masks import load_mask
    from ..errors import ImageError

    try:
        load_mask(path)
    except ImageError as e:
        raise click.BadParameter(str(e), param_hint="--mask") from None
    return path


def load_run(options: RunOptions) -> EmbedPipeline:
    """Load the generator (downloading a registry file once, with a progress bar) and the start
    code; library errors reach the user as one line, an option the generator cannot take (a
    start code made for another generator, a perceptual size above its resolution) as a usage
    error of that option, before any image is touched."""
    try:
        return load_pipeline(options)
    except OptionMismatchError as e:
        option = "--" + e.option.replace("_", "-")
        raise click.BadParameter(str(e), param_hint=option) from None
