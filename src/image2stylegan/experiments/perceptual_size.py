"""Fig. 12 (supplement): the perceptual loss on 256 x 256 resized images vs at full resolution.

Every image is embedded twice with Eq. 1: the perceptual term on both images resized to the
perceptual size (the paper's "resizing trick", 256 px) and on the full-resolution images. The
two objectives differ, so they are compared on the pixel MSE at full resolution (the same
term in both) and on the loss each reached.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .context import ExperimentContext
from .figures import add_comparison_grid
from .items import ImageItem
from .measures import group_by, mean, name_list, paired_check, psnr
from .results import Claim, Embedding, ExperimentResult, Table

__all__ = ["DESCRIPTION", "TITLE", "VARIES", "Params", "analyse", "run"]

VARIES: tuple[str, ...] = ("perceptual_size",)  # EmbedConfig fields set by the variants
TITLE = "Fig. 12 — perceptual loss at 256 px vs full resolution"
DESCRIPTION = """
Should VGG-16 see the images at 256 × 256 or at the generator's resolution (supplement, Fig. 12)?
Each image is embedded both ways; the paper finds the resized version better (VGG-16 was trained
at 224 px). The table compares the full-resolution pixel MSE, which both objectives contain.
"""


@dataclass(frozen=True)
class Params:
    size: int | None = None  # the resized variant's side (None: --perceptual-size, else 256)


def analyse(embeddings: list[Embedding], size: int, resolution: int) -> ExperimentResult:
    result = ExperimentResult()
    result.add_failures(embeddings)
    for e in embeddings:
        mse = e.losses.get("mse")
        result.rows.append(
            e.row(
                perceptual_size=size if e.variant == "resized" else resolution,
                psnr=psnr(mse),
            )
        )
    groups = group_by(embeddings, lambda e: e.variant)
    table = Table(
        "Mean final terms per perceptual size",
        ["perceptual term on", "L x1e5 (own objective)", "perceptual", "MSE (full res, 0-255)",
         "PSNR (dB)", "images"],
    )  # fmt: skip
    for v, label in (("resized", f"{size} x {size} (resized)"),
                     ("full", f"{resolution} x {resolution} (full)")):  # fmt: skip
        embs = groups.get(v, [])
        table.rows.append(
            [label, mean(e.loss_e5 for e in embs), mean(e.losses.get("perceptual") for e in embs),
             mean(e.losses.get("mse") for e in embs),
             mean(psnr(e.losses.get("mse")) for e in embs), len(embs)]
        )  # fmt: skip
    table.notes.append("The paper shows Fig. 12 as images only.")
    if size >= resolution:
        table.notes.append(
            f"This generator's frames are {resolution} px, not larger than {size} px: the "
            "'resized' variant does not shrink the images here."
        )
    result.tables.append(table)
    holds, total, fails = paired_check(
        embeddings, "resized", "full", value=lambda e: e.losses.get("mse", math.nan)
    )
    if total:
        result.claims.append(
            Claim(
                "supplement, Fig. 12",
                "embeddings with the resizing trick outperform the ones at the original resolution",
                f"lower full-resolution MSE with the resized perceptual term in {holds} of "
                f"{total} images (MSE as the measure of quality)"
                + (f"; not for {name_list(fails)}" if fails else ""),
                holds == total,
            )
        )
    return result


def run(ctx: ExperimentContext, items: list[ImageItem], params: Params) -> ExperimentResult:
    originals, failed = ctx.prepare_inputs(items)
    size = params.size or ctx.config.perceptual_size or 256
    embeddings: list[Embedding] = []
    for variant, ps in (("resized", size), ("full", None)):
        embedder = ctx.embedder(ctx.config.replace(perceptual_size=ps))
        embeddings += ctx.embed([(variant, it) for it in originals], embedder, label=variant)
    result = analyse(embeddings, size, ctx.resolution)
    result.failures[:0] = [(f"original/{n}", why) for n, why in failed]
    add_comparison_grid(
        result,
        embeddings,
        ["resized", "full"],
        ctx.out / "perceptual_size_grid.png",
        ["original", f"perceptual at {size} px", f"perceptual at {ctx.resolution} px"],
        "Fig. 12: perceptual loss on resized vs full-resolution images",
        "Original, resized perceptual term, full resolution",
    )
    return result
