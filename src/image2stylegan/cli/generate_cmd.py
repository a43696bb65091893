"""`image2stylegan generate`: images from seeds or latent files, with optional truncation."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .common import FiniteFloat, FiniteFloatPair
from .edit_common import (
    CONTEXT,
    check_picture,
    edit_options,
    failures_as_errors,
    load_generator_for,
    load_latents,
    out_kind,
    parse_seeds,
    report,
    stack_codes,
    write_image,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import numpy as np
    import torch

    from ..models.base import Generator, NoiseMode


@click.command(context_settings=CONTEXT)
@click.argument("latent_args", nargs=-1, metavar="[LATENT.npz...]")
@click.option("--latent", "latent_opts", multiple=True, help="A latent file (repeatable).")
@click.option("--seeds", help="Random images from seeds, e.g. 0-7,12.")
@click.option(
    "--truncation-psi",
    type=FiniteFloat(min=-100, max=100),
    default=1.0,
    show_default=True,
    help="Truncation: ws = w̄ + psi·(ws − w̄) (1 = none). Applies to latent files too.",
)
@click.option(
    "--truncation-cutoff",
    type=click.IntRange(min=0),
    default=None,
    help="Truncate only the first N layers [default: all].",
)
@click.option(
    "--noise-mode",
    type=click.Choice(["const", "random", "none"]),
    default="const",
    show_default=True,
    help="Noise inputs: the stored constants, fresh N(0,1) (seeded per image), or zero.",
)
@click.option(
    "--translate",
    type=FiniteFloatPair(bound=100),
    default=None,
    help="StyleGAN3 only: shift the image by X,Y image widths, as NVIDIA's gen_images.py "
    "--translate (replaces the transform the checkpoint stores).",
)
@click.option(
    "--rotate",
    type=FiniteFloat(min=-3600, max=3600),
    default=None,
    help="StyleGAN3 only: rotate the image by DEG degrees, as NVIDIA's gen_images.py --rotate.",
)
@click.option(
    "--grid-cols",
    type=click.IntRange(min=1),
    default=None,
    help="Columns of the grid when several images go to one image file [near-square].",
)
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(path_type=Path),
    help="An image file (one image, or a grid of several) or a folder (one PNG per image: "
    "seed0007.png for seeds, frame_0000.png ... for latent files, in the order given).",
)
@edit_options
@failures_as_errors
def generate(
    latent_args: tuple[str, ...],
    latent_opts: tuple[str, ...],
    seeds: str | None,
    truncation_psi: float,
    truncation_cutoff: int | None,
    noise_mode: NoiseMode,  # a click.Choice of NoiseMode's values
    translate: tuple[float, float] | None,
    rotate: float | None,
    grid_cols: int | None,
    out: Path,
    generator: str | None,
    batch_size: int,
    device: str,
    overwrite: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Render images from --seeds or from latent files.

    \b
    Seeds become z exactly as NVIDIA's generate.py makes them:
    z = np.random.RandomState(seed).randn(1, z_dim), so seed 7 gives their seed0007.png (with
    the same truncation psi and noise mode). Latent files are rendered as stored; truncation,
    when asked, is applied around w̄ to them too. A latent file with noise maps (embed
    --noise-steps) is rendered with them (reproducing its reconstruction.png); --noise-mode
    applies to the others.

    \b
    Examples:
      image2stylegan generate --generator ffhq-1024 --seeds 0-7 --truncation-psi 0.7 --out grid.png
      image2stylegan generate embeddings/face_01/latent.npz --out face_01.png
      image2stylegan generate -g ffhq-1024-stylegan3-t --seeds 0 --translate 0.1,0 -o t.png
    """
    from ..checkpoints import load_generator
    from ..edit.noise import noise_used
    from ..edit.render import render_frames
    from ..edit.seeds import seeds_to_ws
    from ..models.base import truncate
    from .common import resolve_device

    latent_paths = [*latent_args, *latent_opts]
    latent_noise: list[list[torch.Tensor] | None] = []
    if bool(seeds) == bool(latent_paths):
        raise click.UsageError("give either --seeds or latent files (not both, not neither)")
    kind = out_kind(out, ("image", "folder"), overwrite)

    if seeds:
        seed_list = parse_seeds(seeds)
        if not generator:
            raise click.UsageError("--seeds needs --generator NAME_OR_FILE")
        G = load_generator(generator, device=resolve_device(device))
        source = generator
        ws = seeds_to_ws(G, seed_list, truncation_psi, truncation_cutoff)  # [N, num_ws, w_dim]
        names = [f"seed{s:04d}.png" for s in seed_list]
        noise_seeds = seed_list
    else:
        latents = load_latents(latent_paths)
        G, source = load_generator_for(latents, generator, device)
        ws = truncate(stack_codes(latents), G.w_avg.cpu(), truncation_psi, truncation_cutoff)
        names = [f"frame_{i:04d}.png" for i in range(len(latents))]
        noise_seeds = list(range(len(latents)))
        seed_list = []
        from ..edit.noise import noise_of

        latent_noise = [noise_of(G, lat) for lat in latents]
    if kind == "image":  # one grid image of them all
        check_picture(len(names), G, "grid")
    transform = _apply_transform(G, translate, rotate)

    from tqdm import tqdm

    from ..edit.render import frame_to_pil

    if kind == "folder":
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            from ..video import OutputError

            raise OutputError(f"{out}: cannot create the folder ({e.strerror or e})") from None
    images = []
    written = []
    size = (0, 0)
    with tqdm(total=len(ws), desc="generate", unit="img", disable=quiet) as bar:
        if seeds or all(n is None for n in latent_noise):
            frames = render_frames(
                G, ws, batch_size, noise_mode=noise_mode, noise_seeds=noise_seeds,
                on_batch=bar.update,
            )  # fmt: skip
        else:  # one latent at a time, each with its noise maps (or the noise mode)
            frames = _latent_frames(G, ws, latent_noise, noise_mode, bar.update)
        for name, frame in zip(names, frames, strict=True):
            size = (frame.shape[1], frame.shape[0])
            if kind == "folder":
                write_image(frame_to_pil(frame), out / name)
                written.append(str(out / name))
            else:
                images.append(frame_to_pil(frame))
    if kind == "image":
        from ..image import image_grid

        cols = min(grid_cols or math.ceil(math.sqrt(len(images))), len(images))
        write_image(images[0] if len(images) == 1 else image_grid(images, ncols=cols), out)
        written = [str(out)]

    summary = {
        "command": "generate",
        "generator": source,
        "outputs": written,
        "inputs": [f"seed {s}" for s in seed_list] or [str(p) for p in latent_paths],
        "truncation_psi": truncation_psi,
        "truncation_cutoff": truncation_cutoff,
        "noise_mode": noise_used(G, noise_mode),
        "transform": transform,
        "latent_noise_maps": [n is not None for n in latent_noise] if not seeds else [],
        "size": list(size),
    }
    what = f"{len(ws)} image{'s' if len(ws) != 1 else ''}"
    report(summary, as_json, quiet, f"wrote {what} to {out}")


def _apply_transform(
    G: Generator, translate: tuple[float, float] | None, rotate: float | None
) -> dict[str, object] | None:
    """Set a StyleGAN3 generator's input transform from --translate/--rotate (as NVIDIA's
    gen_images.py: the stored transform becomes inv(make_transform(translate, rotate))); returns
    the summary's record of it (None: the generator's own transform was used)."""
    if translate is None and rotate is None:
        return None
    from ..models.stylegan3 import StyleGAN3Generator

    if not isinstance(G, StyleGAN3Generator):
        raise click.UsageError(
            f"--translate/--rotate need a StyleGAN3 generator (this one is {G.architecture}, "
            "whose input is a learned constant that cannot be moved)"
        )
    shift = translate or (0.0, 0.0)
    angle = rotate or 0.0
    G.set_transform(shift, angle)
    return {"translate": list(shift), "rotate": angle}


def _latent_frames(
    G: Generator,
    ws: torch.Tensor,  # [N, num_ws, w_dim]
    noise: list[list[torch.Tensor] | None],  # per latent: its noise maps or None
    noise_mode: NoiseMode,
    on_batch: Callable[[int], object],
) -> Iterator[np.ndarray]:
    """Render latent k with its own noise maps, or with `noise_mode` (seed k) without them."""
    from ..edit.render import render_frames

    for k, maps in enumerate(noise):
        yield from render_frames(
            G, ws[k : k + 1], 1, noise_mode=noise_mode, noise_seeds=[k], on_batch=on_batch,
            noise=maps,
        )  # fmt: skip
