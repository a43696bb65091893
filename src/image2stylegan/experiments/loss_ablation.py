"""Figs. 9 and 22 (Sec. 5.2): the choice of loss function.

Every image is embedded with six objectives (the paper's columns 2-6, plus MSE on resized images):
pixel MSE at full resolution, pixel MSE on images resized to the perceptual size, the perceptual
term on VGG-16 conv3_2 only, MSE + conv3_2, the perceptual term (Eq. 2) only, and Eq. 1.

The objectives' own final values are not comparable with each other, so every w* is also scored
with one yardstick: Eq. 1 with the paper's layers at the run's perceptual size, and its two
terms. Eq. 1 favours the variant that optimises it; the MSE column is the unbiased pixel measure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..embed import PAPER_LAYERS, EmbedConfig
from ..losses import mse_loss, resize_for_perceptual
from .context import ExperimentContext
from .figures import add_comparison_grid
from .items import ImageItem
from .measures import group_by, load_frames, mean, name_list, paired_check, psnr
from .results import LOSS_SCALE, Claim, Embedding, ExperimentResult, Table

__all__ = [
    "DESCRIPTION",
    "TITLE",
    "VARIANTS",
    "VARIES",
    "Params",
    "ResizedMSELoss",
    "analyse",
    "run",
]

VARIES: tuple[str, ...] = (
    "loss",
    "layers",
    "layer_weights",
    "mse_weight",
)  # EmbedConfig fields set by the variants
TITLE = "Figs. 9, 22 — the loss function"
DESCRIPTION = """
Which loss finds good embeddings (Sec. 5.2)? Each image is embedded with pixel MSE only (full
resolution, and on images resized to the perceptual size), VGG-16 conv3_2 only, MSE + conv3_2,
the perceptual loss (Eq. 2) only, and Eq. 1 (Fig. 9 columns 2-6). Every result is then scored
with the same yardstick (Eq. 1 and its terms), shown beside the side-by-side grid.
"""

# variant -> (loss terms, VGG layers, resized MSE?, the figure's column label)
VARIANTS: dict[str, tuple[str, tuple[str, ...], bool, str]] = {
    "mse": ("mse", (), False, "(2) MSE only"),
    "mse_resized": ("mse", (), True, "(2') MSE only, resized"),
    "conv3_2": ("perceptual", ("conv3_2",), False, "(3) conv3_2 only"),
    "mse_conv3_2": ("perceptual+mse", ("conv3_2",), False, "(4) MSE + conv3_2"),
    "perceptual": ("perceptual", PAPER_LAYERS, False, "(5) perceptual only"),
    "eq1": ("perceptual+mse", PAPER_LAYERS, False, "(6) Eq. 1 (ours)"),
}


@dataclass(frozen=True)
class Params:
    resized_mse_size: int | None = None  # side of the resized-MSE variant (None: perceptual size)


class ResizedMSELoss:
    """Pixel MSE (0-255 scale) of both images resized to `size` (antialiased bilinear), as a
    `TargetLoss` for the Embedder: terms total = mse, perceptual = 0."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._target: torch.Tensor | None = None

    def set_target(self, target: torch.Tensor) -> None:
        self._target = resize_for_perceptual(target.float(), self.size).detach()

    def __call__(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        assert self._target is not None, "set_target first"
        mse = mse_loss(resize_for_perceptual(img.float(), self.size), self._target)  # [N]
        return {"total": mse, "perceptual": torch.zeros_like(mse), "mse": mse}


def yardstick(config: EmbedConfig) -> EmbedConfig:
    """The common score: Eq. 1 with the paper's layers at the run's perceptual size."""
    return config.replace(
        loss="perceptual+mse", layers=PAPER_LAYERS, layer_weights=None, mse_weight=1.0
    )


def analyse(
    embeddings: list[Embedding], scores: dict[tuple[str, str], dict[str, float]]
) -> ExperimentResult:
    """`scores[(variant, image)]` = the yardstick's terms {total, perceptual, mse} of G(w*)."""
    result = ExperimentResult()
    result.add_failures(embeddings)
    for e in embeddings:
        s = scores.get((e.variant, e.name), {})
        result.rows.append(
            e.row(
                objective=VARIANTS[e.variant][3],
                eq1=s.get("total"),
                eq1_e5=s["total"] / LOSS_SCALE if "total" in s else None,
                eq1_perceptual=s.get("perceptual"),
                eq1_mse=s.get("mse"),
                psnr=psnr(s.get("mse")),
            )
        )
    groups = group_by(embeddings, lambda e: e.variant)
    table = Table(
        "Every embedding scored with Eq. 1 (paper layers, λ = 1); means over images",
        ["objective", "own final loss", "Eq. 1 x1e5", "perceptual (Eq. 2)", "MSE (0-255)",
         "PSNR (dB)", "images"],
    )  # fmt: skip
    means: dict[str, dict[str, float | None]] = {}
    for v, (_, _, _, label) in VARIANTS.items():
        embs = groups.get(v, [])
        scored = [scores.get((v, e.name), {}) for e in embs]
        m = {
            "total": mean(x.get("total") for x in scored),
            "perceptual": mean(x.get("perceptual") for x in scored),
            "mse": mean(x.get("mse") for x in scored),
        }
        means[v] = m
        total_e5 = None if (t := m["total"]) is None else t / LOSS_SCALE
        table.rows.append(
            [label, mean(e.loss for e in embs), total_e5, m["perceptual"], m["mse"],
             mean(psnr(x.get("mse")) for x in scored), len(embs)]
        )  # fmt: skip
    table.notes.append(
        "The paper shows Fig. 9 / 22 as images only; 'own final loss' is each objective's value "
        "(not comparable across rows)."
    )
    result.tables.append(table)

    def score(e: Embedding) -> float:
        return scores.get((e.variant, e.name), {}).get("total", math.nan)

    checks = [
        ("perceptual", "conv3_2", "Sec. 5.2, Figs. 9, 22",
         "matching features at several VGG-16 layers works better than a single layer "
         "(column 5 vs 3)"),
        ("eq1", "perceptual", "Sec. 5.2, Figs. 9, 22",
         "adding the pixel-wise MSE to the perceptual loss works better (column 6 vs 5)"),
        ("eq1", "mse", "Sec. 5.2, Fig. 9",
         "the pixel-wise MSE alone cannot find a high-quality embedding (column 6 vs 2)"),
    ]  # fmt: skip
    for better, worse, source, text in checks:
        holds, total, fails = paired_check(embeddings, better, worse, value=score)
        if total:
            result.claims.append(
                Claim(
                    source,
                    text,
                    f"lower Eq. 1 score for '{VARIANTS[better][3]}' than '{VARIANTS[worse][3]}' "
                    f"in {holds} of {total} images"
                    + (f" (not: {name_list(fails)})" if fails else ""),
                    holds == total,
                )
            )
    ranked = {v: t for v in VARIANTS if (t := means[v]["total"]) is not None}
    if ranked:
        best = min(ranked, key=ranked.__getitem__)
        result.claims.append(
            Claim(
                "Sec. 5.2, Figs. 9, 22",
                "Eq. 1 (MSE + multi-layer perceptual) achieves the best performance",
                f"lowest mean Eq. 1 score: {VARIANTS[best][3]} (Eq. 1 favours the variant that "
                "optimises it)",
                best == "eq1",
            )
        )
    return result


def run(ctx: ExperimentContext, items: list[ImageItem], params: Params) -> ExperimentResult:
    originals, failed = ctx.prepare_inputs(items)
    size = params.resized_mse_size or ctx.config.perceptual_size or 256
    embeddings: list[Embedding] = []
    for variant, (loss, layers, resized, _) in VARIANTS.items():
        config = ctx.config.replace(loss=loss, layers=layers or PAPER_LAYERS, layer_weights=None)
        loss_fn, meta = None, None
        if resized:
            config = config.replace(perceptual_size=size)
            loss_fn = ResizedMSELoss(size)
            meta = {"loss_note": f"mse on images resized to {size} px"}
        embedder = ctx.embedder(config, loss_fn=loss_fn)
        jobs = [(variant, it) for it in originals]
        embeddings += ctx.embed(jobs, embedder, metadata=meta, label=variant)

    # score every w* with the same yardstick (G(w*) with the stored noise vs its target)
    ok = [e for e in embeddings if e.ok]
    scores: dict[tuple[str, str], dict[str, float]] = {}
    if ok:
        ws = torch.stack([e.ws for e in ok])
        targets = load_frames([e.out_dir / "target.png" for e in ok])
        terms = ctx.evaluate(ctx.synthesize(ws), targets, yardstick(ctx.config))
        for k, e in enumerate(ok):
            scores[(e.variant, e.name)] = {t: float(np.asarray(v)[k]) for t, v in terms.items()}
    result = analyse(embeddings, scores)
    result.failures[:0] = [(f"original/{n}", why) for n, why in failed]
    result.notes.append(
        f"Resized MSE: both images resized to {size} px (antialiased bilinear) before the MSE. "
        f"Yardstick: Eq. 1 with {', '.join(PAPER_LAYERS)}, λ_mse = 1, perceptual size "
        f"{ctx.config.perceptual_size or 'full'}, evaluated on G(w*) with the stored noise."
    )
    add_comparison_grid(
        result,
        embeddings,
        list(VARIANTS),
        ctx.out / "loss_ablation_grid.png",
        ["(1) original"] + [label for *_, label in VARIANTS.values()],
        "Figs. 9, 22: embeddings with different losses",
        "Side-by-side embeddings per loss (Fig. 9 / 22 layout)",
    )
    return result
