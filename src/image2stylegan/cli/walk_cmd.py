"""`image2stylegan walk`: from an embedded latent towards the mean latent w̄ (supplement)."""

from __future__ import annotations

from pathlib import Path

import click

from .common import FiniteFloat
from .edit_common import (
    CONTEXT,
    check_frames,
    check_picture,
    check_strip,
    edit_options,
    failures_as_errors,
    load_generator_for,
    load_latents,
    out_kind,
    report,
    sequence_options,
    write_sequence,
)


@click.command(context_settings=CONTEXT)
@click.argument("latent", metavar="LATENT.npz")
@sequence_options(default_frames=60)
@click.option(
    "--perturbation",
    type=FiniteFloat(min=0, max=100),
    default=0.0,
    show_default=True,
    help="σ of the random excursion around the straight path, per element in W units "
    "(0 = a straight walk). The path still starts at the latent and ends at w̄.",
)
@click.option(
    "--seed",
    type=click.IntRange(0, 2**63 - 1),
    default=0,
    show_default=True,
    help="Seed of the perturbation.",
)
@click.option(
    "--end",
    type=FiniteFloat(min=0, max=100),
    default=1.0,
    show_default=True,
    help="How far towards w̄ to go: 1 = the mean face, 0.5 = halfway.",
)
@click.option(
    "--per-layer",
    is_flag=True,
    help="Perturb every layer's code independently (default: one W excursion for all layers).",
)
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(path_type=Path),
    help="walk.mp4, walk.gif, a folder (frame_0000.png, ...), or a .png strip.",
)
@edit_options
@failures_as_errors
def walk(
    latent: str,
    frames: int,
    ping_pong: bool,
    fps: float,
    strip: Path | None,
    no_strip: bool,
    strip_frames: int,
    perturbation: float,
    seed: int,
    end: float,
    per_layer: bool,
    out: Path,
    generator: str | None,
    batch_size: int,
    device: str,
    overwrite: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Walk from an embedded image towards the mean face w̄, optionally with a random excursion.

    A latent with noise maps (embed --noise-steps) keeps them for every frame.

    \b
    Example:
      image2stylegan walk face/latent.npz --frames 90 --perturbation 0.5 --seed 1 --out walk.mp4
    """
    import torch

    from ..edit.morph import ping_pong as ping_pong_fn
    from ..edit.noise import noise_of
    from ..edit.walk import random_walk
    from ..video import default_strip_path

    kind = out_kind(out, ("mp4", "gif", "folder", "image"), overwrite)
    check_frames(2 * frames if ping_pong else frames, "--frames")
    strip_path = None if no_strip or kind == "image" else (strip or default_strip_path(out))
    if strip_path is not None:
        check_strip(strip_path, out, overwrite)
    lats = load_latents([latent])
    G, source = load_generator_for(lats, generator, device)
    if kind == "image" or strip_path is not None:
        check_picture(min(strip_frames, frames), G, "strip", "--strip-frames")
    ws = random_walk(
        lats[0].w.float(),
        G.w_avg.detach().cpu().float(),
        frames,
        perturbation=perturbation,
        end=end,
        per_layer=per_layer,
        generator=torch.Generator().manual_seed(seed),
    )  # [K, num_ws, w_dim]
    if ping_pong:
        ws = ping_pong_fn(ws)
    summary = write_sequence(
        G, ws, out, kind, fps=fps, batch_size=batch_size, quiet=quiet, desc="walk",
        strip=strip_path, strip_frames=strip_frames, noise=noise_of(G, lats[0]),
    )  # fmt: skip
    summary = {
        "command": "walk",
        "generator": source,
        "input": latent,
        "perturbation": perturbation,
        "seed": seed,
        "end": end,
        **summary,
    }
    report(summary, as_json, quiet, f"wrote {summary['frames']} frames to {out}"
           + (f" and {strip_path}" if strip_path else ""))  # fmt: skip
