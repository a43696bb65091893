"""`image2stylegan embed`: Algorithm 1 over files, folders and globs (SPEC sections 3-5)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import echo_json, expand_image_inputs, resolve_device

_PRESET_FIELDS = {
    # CLI option -> EmbedConfig field; given options override the preset's values
    "steps": "steps",
    "space": "space",
    "lr": "lr",
    "loss": "loss",
    "noise": "noise",
    "seed": "seed",
    "mse_weight": "mse_weight",
    "lpips_weight": "lpips_weight",
    "precision": "precision",
}


def _parse_size(value: str | None) -> int | str | None:
    if value is None:
        return "default"
    if value.lower() == "full":
        return None
    try:
        size = int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r}: give a side length in pixels or 'full'") from None
    if size < 16:
        raise click.BadParameter(f"{value!r}: at least 16 px")
    return size


def _parse_wxh(value: str | None) -> tuple[int, int] | None:
    if not value:
        return None
    try:
        w, h = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected WIDTHxHEIGHT, e.g. 512x384") from None
    return w, h


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("inputs", nargs=-1, required=True, metavar="IMAGE_OR_DIR...")
@click.option(
    "--generator",
    "-g",
    default="ffhq-1024",
    show_default=True,
    help="Registry name (see `image2stylegan weights list`) or a checkpoint file.",
)
@click.option(
    "--out",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("embeddings"),
    show_default=True,
    help="Output folder; one sub-folder per image.",
)
@click.option(
    "--preset",
    type=click.Choice(["paper", "nvidia"]),
    default="paper",
    show_default=True,
    help="paper = Algorithm 1 as published; nvidia = NVIDIA's projector loop (W, LPIPS, "
    "noise regularisation, lr ramps, 1000 steps). Options below override it.",
)
@click.option("--steps", type=click.IntRange(min=0), help="Optimisation steps [paper: 5000].")
@click.option("--space", type=click.Choice(["w+", "w", "z"]), help="Latent space [paper: w+].")
@click.option(
    "--init",
    "init",
    default=None,
    help="mean (w̄, best for faces), random (U[-1,1], better for other classes) or a "
    "latent .npz to start from [paper: mean].",
)
@click.option("--lr", type=float, help="Adam learning rate [paper: 0.01].")
@click.option("--loss", help="Terms joined by '+': perceptual, mse, lpips [paper: perceptual+mse].")
@click.option(
    "--layers",
    help="VGG-16 layers of the perceptual term, comma separated "
    "[paper: conv1_1,conv1_2,conv3_2,conv4_2].",
)
@click.option("--layer-weights", help="Comma separated weights lambda_j, one per layer [all 1].")
@click.option("--mse-weight", type=float, help="lambda_mse [1].")
@click.option("--lpips-weight", type=float, help="Weight of the LPIPS term [1].")
@click.option("--perceptual-size", help="Side in px the perceptual term sees, or 'full' [256].")
@click.option(
    "--vgg",
    default="vgg16-caffe",
    show_default=True,
    help="VGG-16 weights: vgg16-caffe (the paper's), vgg16-torchvision, a file, or "
    "random (experiments/tests only; recorded in the metadata).",
)
@click.option(
    "--noise",
    type=click.Choice(["const", "resample", "restart"]),
    help="Noise inputs: const (stored, paper), resample every step, restart with a new "
    "constant noise (Fig. 16).",
)
@click.option(
    "--batch-size",
    "-b",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Images optimised together (results do not depend on it).",
)
@click.option(
    "--align/--no-align",
    default=None,
    help="FFHQ face alignment first [default: on for face generators (ffhq-*), else off].",
)
@click.option(
    "--fit",
    type=click.Choice(["crop", "pad", "stretch"]),
    default="crop",
    show_default=True,
    help="How a non-square image becomes the generator's frame.",
)
@click.option(
    "--content-size",
    help="Valid region WxH of a non-square generator (e.g. 512x384) [from the registry].",
)
@click.option("--video", is_flag=True, help="Also write progress.mp4 of the optimisation.")
@click.option(
    "--video-every",
    type=click.IntRange(min=1),
    default=25,
    show_default=True,
    help="Steps between video frames.",
)
@click.option(
    "--checkpoint-every",
    type=click.IntRange(min=1),
    default=250,
    show_default=True,
    help="Steps between resume checkpoints.",
)
@click.option("--overwrite", is_flag=True, help="Redo finished images and ignore checkpoints.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option(
    "--precision",
    type=click.Choice(["fp32", "bf16", "fp16"]),
    help="Autocast dtype on CUDA [fp32, exact].",
)
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the step (CUDA speed-up).")
@click.option("--seed", type=int, help="Seed for random init / noise [0].")
@click.option("--recursive", is_flag=True, help="Also take images in sub-folders of folder inputs.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
def embed(**opts) -> None:
    """Embed images into the generator's latent space (Algorithm 1 of Image2StyleGAN).

    Writes OUT/<image>/latent.npz, target.png, reconstruction.png and losses.csv per image.
    Re-running the same command resumes unfinished images and skips finished ones.

    \b
    Example (the paper's setting, downloads ffhq-1024 and the VGG-16 weights once):
      image2stylegan embed photo.jpg --out embeddings/
    Non-face images start better from a random code (Sec. 5.1):
      image2stylegan embed cat.jpg --init random --no-align
    """
    from ..embed import build_embedder, generator_metadata
    from ..embed.config import PRESETS
    from ..embed.runner import embed_files, plan_jobs
    from ..latents import load_latent

    quiet = opts["quiet"]
    device = resolve_device(opts["device"])
    config = PRESETS[opts["preset"]]
    changes = {field: opts[opt] for opt, field in _PRESET_FIELDS.items() if opts[opt] is not None}
    if opts["compile_"]:
        changes["compile"] = True
    init_tensor = None
    if opts["init"] is not None:
        if opts["init"] in ("mean", "random"):
            changes["init"] = opts["init"]
        else:
            latent = load_latent(opts["init"])
            init_tensor = latent.w
            if changes.get("space", config.space) == "z":
                if "z" not in latent.extras:
                    raise click.BadParameter(
                        f"{opts['init']}: has no 'z' array to start a Z-space embedding from",
                        param_hint="--init",
                    )
                init_tensor = latent.extras["z"]
            changes["init"] = "file"
    if opts["layers"]:
        changes["layers"] = tuple(s.strip() for s in opts["layers"].split(",") if s.strip())
    if opts["layer_weights"]:
        try:
            changes["layer_weights"] = tuple(float(s) for s in opts["layer_weights"].split(","))
        except ValueError:
            raise click.BadParameter(
                "comma separated numbers expected", param_hint="--layer-weights"
            ) from None
    size = _parse_size(opts["perceptual_size"])
    if size != "default":
        changes["perceptual_size"] = size
    try:
        config = config.replace(**changes)
    except ValueError as e:
        raise click.UsageError(str(e)) from None

    G, meta = generator_metadata(opts["generator"], device=device)
    content_size = _parse_wxh(opts["content_size"]) or meta.pop("content_size", None)
    align = opts["align"] if opts["align"] is not None else bool(meta.pop("default_align", False))
    meta.pop("default_align", None)
    embedder = build_embedder(G, config, vgg=opts["vgg"], content_size=content_size)
    meta.update(preset=opts["preset"], vgg=opts["vgg"], device=device, precision=config.precision)
    if opts["init"] not in (None, "mean", "random"):
        meta["init_file"] = str(opts["init"])

    sources = expand_image_inputs(opts["inputs"], recursive=opts["recursive"])
    if not sources:
        raise click.UsageError("no input images found")
    jobs = plan_jobs(sources, opts["out"])

    def log(msg):
        return click.echo(msg, err=True)

    outcomes = embed_files(
        jobs,
        embedder,
        metadata=meta,
        batch_size=opts["batch_size"],
        align=align,
        fit=opts["fit"],
        content_size=content_size,
        init=init_tensor,
        overwrite=opts["overwrite"],
        checkpoint_every=opts["checkpoint_every"],
        video=opts["video"],
        video_every=opts["video_every"],
        progress=not quiet,
        log=log,
    )
    failed = [o for o in outcomes if o.status == "failed"]
    if opts["as_json"]:
        echo_json({"outputs": [o.__dict__ for o in outcomes], "failed": len(failed)})
    elif not quiet:
        for o in outcomes:
            if o.status == "done":
                loss = o.losses.get("total", float("nan"))
                click.echo(
                    f"done     {o.out_dir}  (loss {loss:.4g}, {o.steps} steps, "
                    f"{o.elapsed_s:.1f} s)",
                    err=True,
                )
            elif o.status == "skipped":
                click.echo(
                    f"skipped  {o.out_dir}  (already embedded; --overwrite to redo)", err=True
                )
    if failed:
        click.echo(
            f"{len(failed)} of {len(outcomes)} inputs failed (see the messages above)", err=True
        )
        sys.exit(1)
