"""`image2stylegan embed`: Algorithm 1 over files, folders and globs (SPEC sections 3-5)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from .common import distributed_rank, echo_json, expand_image_inputs
from .embed_options import embed_options, load_run, run_options


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("inputs", nargs=-1, required=True, metavar="IMAGE_OR_DIR...")
@click.option(
    "--out",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("embeddings"),
    show_default=True,
    help="Output folder; one sub-folder per image.",
)
@embed_options
@click.option("--recursive", is_flag=True, help="Also take images in sub-folders of folder inputs.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
def embed(**opts: Any) -> None:
    """Embed images into the generator's latent space (Algorithm 1 of Image2StyleGAN).

    Writes OUT/<image>/latent.npz, target.png, reconstruction.png and losses.csv per image.
    Re-running the same command resumes unfinished images and skips finished ones.
    With --pti-steps N, pivotal tuning follows: OUT/<image>/generator.safetensors is a
    generator tuned so that the latent draws the photo (see docs/pti.md); latent.npz records
    it, and generate/morph/style-transfer/... render with it.
    Under torchrun (`torchrun --nproc-per-node 8 -m image2stylegan embed ...`) each process
    embeds its share of the images on its own GPU.

    \b
    Example (the paper's setting, downloads ffhq-1024 and the VGG-16 weights once):
      image2stylegan embed photo.jpg --out embeddings/
    Non-face images start better from a random code (Sec. 5.1):
      image2stylegan embed cat.jpg --init random --no-align
    Near-perfect reconstruction that stays editable (PTI, 350 tuning steps):
      image2stylegan embed photo.jpg --out embeddings/ --steps 1000 --pti-steps 350
    """
    from ..embed.runner import plan_jobs
    from .progress import EmbedProgress

    quiet = opts["quiet"]
    options = run_options(opts)  # every option checked before anything is loaded
    sources = expand_image_inputs(opts["inputs"], recursive=opts["recursive"], exclude=opts["out"])
    if not sources:
        raise click.UsageError("no input images found")
    jobs = plan_jobs(sources, opts["out"])
    rank, world = distributed_rank()
    if world > 1:  # torchrun: every process takes every world-th image (outputs never overlap)
        if options.config.pti_shared:
            raise click.UsageError(
                "--pti-shared tunes one generator on every image, so it cannot be split over "
                f"{world} torchrun processes; run it in one process (per-image tuning splits)"
            )
        jobs = jobs[rank::world]

    pipeline = load_run(options)
    bars = EmbedProgress(enabled=not quiet)
    try:
        outcomes = pipeline.run(jobs, on_report=bars)
    finally:
        bars.close()
    failed = [o for o in outcomes if o.status == "failed"]
    if opts["as_json"]:
        echo_json({"outputs": [o.to_json() for o in outcomes], "failed": len(failed)})
    elif not quiet:
        for o in outcomes:
            if o.status == "done":
                loss = o.losses.get("total", float("nan"))
                tuned = ", tuned generator" if o.tuned_generator else ""
                click.echo(
                    f"done     {o.out_dir}  (loss {loss:.4g}, {o.steps} steps{tuned}, "
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
