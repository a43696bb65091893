"""`image2stylegan evaluate`: reconstruction metrics of embedding runs in one table."""

from __future__ import annotations

from pathlib import Path

import click

from .edit_common import CONTEXT


@click.command(context_settings=CONTEXT)
@click.argument(
    "folders",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    metavar="EMBED_DIR...",
)
@click.option(
    "--out",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the table: .md (Markdown) or .csv (mean and std columns).",
)
@click.option(
    "--recompute",
    is_flag=True,
    help="Measure every image from its target.png / reconstruction.png (/ mask.png) even when "
    "its latent metadata recorded metrics.",
)
@click.option(
    "--lpips/--no-lpips",
    "use_lpips",
    default=True,
    show_default=True,
    help="Measure LPIPS (VGG) when measuring, if its weights are in the cache.",
)
@click.option(
    "--id/--no-id",
    "use_id",
    default=True,
    show_default=True,
    help="Measure face identity (dlib descriptors) when measuring, if dlib is installed.",
)
@click.option("--device", default="auto", show_default=True, help="Where LPIPS runs.")
@click.option("--json", "as_json", is_flag=True, help="Print the per-image metrics as JSON.")
def evaluate(
    folders: tuple[Path, ...],
    out: Path | None,
    recompute: bool,
    use_lpips: bool,
    use_id: bool,
    device: str,
    as_json: bool,
) -> None:
    """Tabulate PSNR, SSIM, LPIPS, ID and time per image of embedding runs (mean ± std per
    category and over all images), the protocol of inversion papers on CelebA-HQ.

    Each EMBED_DIR is an `embed --out` folder (or an experiment's embeddings/<variant>/, or any
    folder above them). Metrics come from each latent's metadata; runs made without them are
    measured from their PNG files. Categories come from the image file names (face_01.jpg).

    \b
    Examples:
      image2stylegan evaluate runs/wplus runs/wplus_noise --out table.md
      image2stylegan evaluate experiments/noise-space/embeddings/* --out noise.csv
    """
    from ..experiments.evaluation import summarise, summary_csv, summary_markdown
    from ..fileio import atomic_write_text
    from ..metrics import load_face_identity, load_lpips_metric
    from .common import echo_json, resolve_device

    if out is not None and out.suffix.lower() not in (".md", ".csv"):
        raise click.BadParameter(f"{str(out)!r}: write a .md or .csv table", param_hint="--out")
    lpips = load_lpips_metric(resolve_device(device)) if use_lpips else None
    identity = load_face_identity() if use_id else None
    runs = summarise(folders, recompute=recompute, lpips=lpips, identity=identity)
    table = summary_markdown(runs)
    if out is not None:
        text = summary_csv(runs) if out.suffix.lower() == ".csv" else table
        atomic_write_text(out, text)
    if as_json:
        echo_json(
            {
                "runs": [
                    {
                        "run": r.label,
                        "images": [
                            {"name": im.name, "category": im.category, **im.metrics,
                             "recomputed": im.recomputed}
                            for im in r.images
                        ],
                        "problems": r.problems,
                    }
                    for r in runs
                ],
                "out": str(out) if out else None,
            }
        )  # fmt: skip
    else:
        click.echo(table, nl=False)
