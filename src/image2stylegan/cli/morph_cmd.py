"""`image2stylegan morph`: linear interpolation between embedded latents (Sec. 4.1)."""

from __future__ import annotations

from pathlib import Path

import click

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
    stack_codes,
    write_sequence,
)


@click.command(context_settings=CONTEXT)
@click.argument("latents", nargs=-1, required=True, metavar="A.npz B.npz [C.npz...]")
@sequence_options(default_frames=30)
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(path_type=Path),
    help="morph.mp4 (H.264), morph.gif, a folder (frame_0000.png, ...), or a .png strip.",
)
@edit_options
@failures_as_errors
def morph(
    latents: tuple[str, ...],
    frames: int,
    ping_pong: bool,
    fps: float,
    strip: Path | None,
    no_strip: bool,
    strip_frames: int,
    out: Path,
    generator: str | None,
    batch_size: int,
    device: str,
    overwrite: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Morph A -> B (-> C ...): w = (1 − t)·w_a + t·w_b, t from 0 to 1 (Sec. 4.1).

    The first frame is A and the last is B exactly. With more than two latents the path visits
    each in order, --frames per segment. With a .png --out only the strip is written.
    Latents with noise maps (embed --noise-steps) morph their noise too, with the same t
    (a latent without them contributes the generator's stored noise).

    \b
    Examples:
      image2stylegan morph a/latent.npz b/latent.npz --frames 60 --out morph.mp4
      image2stylegan morph a.npz b.npz c.npz --ping-pong --out loop.gif
    """
    from ..edit.morph import morph_path
    from ..edit.noise import morph_noise
    from ..video import default_strip_path

    if len(latents) < 2:
        raise click.UsageError("morph needs at least two latent files (A and B)")
    kind = out_kind(out, ("mp4", "gif", "folder", "image"), overwrite)
    total = (len(latents) - 1) * (frames - 1) + 1  # frames of the whole path
    check_frames(2 * total if ping_pong else total, "--frames")
    strip_path = None if no_strip or kind == "image" else (strip or default_strip_path(out))
    if strip_path is not None:
        check_strip(strip_path, out, overwrite)
    lats = load_latents(latents)
    G, source = load_generator_for(lats, generator, device)
    if kind == "image" or strip_path is not None:
        check_picture(min(strip_frames, total), G, "strip", "--strip-frames")
    ws = morph_path(stack_codes(lats), frames, loop=ping_pong)  # [K, num_ws, w_dim]
    noise = morph_noise(G, lats, frames, loop=ping_pong)  # [K, 1, h, w] each, or None
    summary = write_sequence(
        G, ws, out, kind, fps=fps, batch_size=batch_size, quiet=quiet, desc="morph",
        strip=strip_path, strip_frames=strip_frames, noise=noise,
    )  # fmt: skip
    summary = {"command": "morph", "generator": source, "inputs": list(latents), **summary}
    report(summary, as_json, quiet, f"wrote {summary['frames']} frames to {out}"
           + (f" and {strip_path}" if strip_path else ""))  # fmt: skip
