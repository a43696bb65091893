"""`image2stylegan expression`: expression transfer w = w_target + λ·d̂ (Sec. 4.3, Fig. 7)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from .common import FiniteFloat
from .edit_common import (
    CONTEXT,
    check_picture,
    edit_options,
    failures_as_errors,
    load_generator_for,
    load_latents,
    out_kind,
    parse_range,
    report,
    write_sequence,
)

if TYPE_CHECKING:  # the command modules import the library lazily (fast --help)
    from ..edit.expression import ChannelReading, Normalization


@click.command(context_settings=CONTEXT)
@click.argument("target", metavar="TARGET.npz")
@click.argument("neutral", metavar="NEUTRAL.npz")
@click.argument("expressive", metavar="EXPRESSIVE.npz")
@click.option(
    "--strengths",
    default="-1.5:1.5:7",
    show_default=True,
    help="λ values: start:stop:count or a comma list; write negative values as "
    "--strengths=-1.5:1.5:7. The summary prints the λ that reproduces the source's change.",
)
@click.option(
    "--threshold",
    type=FiniteFloat(min=0),
    default=1.0,
    show_default=True,
    help="Channels of d = EXPRESSIVE − NEUTRAL with L2 norm below this become zero (paper: 1).",
)
@click.option(
    "--channel",
    type=click.Choice(["feature", "layer"]),
    default="feature",
    show_default=True,
    help="What a channel of the num_ws × w_dim difference is: a feature dimension across "
    "layers (an 18-vector) or one layer's code (a 512-vector). See docs/applications.md.",
)
@click.option(
    "--normalize",
    type=click.Choice(["channel", "code", "layer", "none"]),
    default="channel",
    show_default=True,
    help="Scale of d̂: kept channels of unit L2 norm on average (RMS), unit norm of the whole "
    "code (|λ| = W+ distance), of every layer, or none. See docs/applications.md.",
)
@click.option("--fps", type=FiniteFloat(min=0.01, max=1000), default=4.0,
              show_default=True,
              help="Frame rate of .mp4/.gif outputs.")  # fmt: skip
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(path_type=Path),
    help="A .png strip (one image per λ, left to right), a folder, .mp4 or .gif.",
)
@edit_options
@failures_as_errors
def expression(
    target: str,
    neutral: str,
    expressive: str,
    strengths: str,
    threshold: float,
    channel: ChannelReading,
    normalize: Normalization,
    fps: float,
    out: Path,
    generator: str | None,
    batch_size: int,
    device: str,
    overwrite: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Transfer the expression change NEUTRAL -> EXPRESSIVE onto TARGET (Sec. 4.3).

    d = EXPRESSIVE − NEUTRAL; channels of d with L2 norm < --threshold are zeroed; the rest is
    normalised to d̂ and one image is made per strength λ: w = TARGET + λ·d̂. λ = 0 is TARGET
    itself, negative λ goes the opposite way (Fig. 7). The summary prints the strength at which
    TARGET moves exactly as the source moved (λ·d̂ = d′). TARGET's noise maps, when it has
    them (embed --noise-steps), are used for every image.

    \b
    Example:
      image2stylegan expression me.npz them_neutral.npz them_smile.npz \\
          --strengths=-1.5:1.5:7 --out smile.png
    """
    from ..edit.expression import expression_direction, expression_transfer
    from ..edit.noise import noise_of

    lams = parse_range(strengths, "--strengths")
    kind = out_kind(out, ("image", "folder", "mp4", "gif"), overwrite)
    lats = load_latents([target, neutral, expressive])
    G, source = load_generator_for(lats, generator, device)
    if kind == "image":  # one strip of every strength
        check_picture(len(lams), G, "strip", "--strengths")
    w_t, w_n, w_e = (lat.w.float() for lat in lats)
    direction = expression_direction(w_n, w_e, threshold, channel, normalize)
    ws = expression_transfer(w_t, w_n, w_e, lams, threshold, channel, normalize)
    summary = write_sequence(
        G, ws, out, kind, fps=fps, batch_size=batch_size, quiet=quiet, desc="expression",
        noise=noise_of(G, lats[0]),
    )  # fmt: skip
    summary = {
        "command": "expression",
        "generator": source,
        "inputs": {"target": target, "neutral": neutral, "expressive": expressive},
        "strengths": lams,
        "threshold": threshold,
        "channel": channel,
        "normalize": normalize,
        "channels_zeroed": int((~direction.kept).sum()),
        "channels_total": int(direction.kept.numel()),
        "norm_d": direction.norm_d,
        "norm_d_thresholded": direction.norm_kept,
        "source_strength": direction.source_strength,
        **summary,
    }
    zeroed = summary["channels_zeroed"] / summary["channels_total"]
    report(
        summary,
        as_json,
        quiet,
        f"zeroed {summary['channels_zeroed']}/{summary['channels_total']} {channel} channels "
        f"({zeroed:.0%}) below {threshold:g}; ‖d‖ = {direction.norm_d:.4g}, "
        f"‖d′‖ = {direction.norm_kept:.4g}"
        + (
            f"; λ = {direction.source_strength:.4g} reproduces the source's change"
            if direction.source_strength is not None
            else ""
        )
        + f"; wrote {len(lams)} images to {out}",
    )
