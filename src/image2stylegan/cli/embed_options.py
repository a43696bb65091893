"""The `embed` options (SPEC section 3), shared by `embed` and `experiment`.

`embed_options` adds them to a click command; `embedding_setup` turns the parsed values into a
loaded generator, an `EmbedConfig` (the preset with the given options applied on top) and the
runner's keyword arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click
import torch

from .common import resolve_device

__all__ = ["EmbeddingSetup", "embed_options", "embedding_setup"]

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
    click.option("--quiet", "-q", is_flag=True, help="No progress bars."),
]


def embed_options(fn: Callable) -> Callable:
    """Decorate a click command with every `embed` option (in `--help` order)."""
    for option in reversed(_OPTIONS):
        fn = option(fn)
    return fn


@dataclass
class EmbeddingSetup:
    """What the options describe: the generator, the config and how to run the files."""

    G: Any  # the loaded Generator
    config: Any  # EmbedConfig: the preset with the given options applied
    metadata: dict[str, Any]  # recorded in every latent.npz
    vgg: str
    content_size: tuple[int, int] | None
    init: torch.Tensor | None
    run_kwargs: dict[str, Any] = field(default_factory=dict)  # for embed_files

    def embedder(self, **config_changes: Any):
        """An `Embedder` for this setup, optionally with some config fields changed."""
        from ..embed import build_embedder

        config = self.config.replace(**config_changes) if config_changes else self.config
        return build_embedder(self.G, config, vgg=self.vgg, content_size=self.content_size)


def embedding_setup(opts: dict[str, Any]) -> EmbeddingSetup:
    """Parse the `embed` options: load the generator, build the config, collect run settings."""
    from ..embed import generator_metadata
    from ..embed.config import PRESETS
    from ..latents import load_latent

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
    default_align = bool(meta.pop("default_align", False))
    align = opts["align"] if opts["align"] is not None else default_align
    meta.update(preset=opts["preset"], vgg=opts["vgg"], device=device, precision=config.precision)
    if init_tensor is not None:
        meta["init_file"] = str(opts["init"])
    run_kwargs = dict(
        batch_size=opts["batch_size"],
        align=align,
        fit=opts["fit"],
        content_size=content_size,
        init=init_tensor,
        overwrite=opts["overwrite"],
        checkpoint_every=opts["checkpoint_every"],
        video=opts["video"],
        video_every=opts["video_every"],
        progress=not opts["quiet"],
    )
    return EmbeddingSetup(G, config, meta, opts["vgg"], content_size, init_tensor, run_kwargs)
