"""Fig. 11 (Sec. 5.3): iterative embedding, embed -> regenerate -> re-embed.

Round 0 embeds the image; round k embeds round k-1's reconstruction (the 8-bit PNG G(w*), as a
new input image), each from the base init. The paper repeats the re-embedding seven times and
sees the results slowly degenerate. Per round: the loss against that round's own target, and
the loss of G(w*_k) against the original image (Eq. 1, the base settings), which measures the
drift.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch

from ..image import pil_to_tensor
from .context import ExperimentContext
from .figures import image_grid_figure, line_plot
from .items import ImageItem
from .measures import group_by, mean
from .results import LOSS_SCALE, Claim, Embedding, ExperimentResult, Figure, Table

__all__ = ["DESCRIPTION", "TITLE", "VARIES", "Params", "analyse", "run"]

VARIES: tuple[str, ...] = ()  # EmbedConfig fields set by the variants
TITLE = "Fig. 11 — iterative embedding"
DESCRIPTION = """
Is the embedding stable when its own output is embedded again (Sec. 5.3, Fig. 11)? Each image is
embedded, its reconstruction embedded again, and so on; per round the table prints the loss
against the round's own input and against the original image.
"""


@dataclass(frozen=True)
class Params:
    rounds: int = 7  # re-embeddings after the first embedding ("repeated seven times")

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {self.rounds}")


def analyse(
    embeddings: list[Embedding], vs_original: dict[tuple[str, str], float]
) -> ExperimentResult:
    """`vs_original[(variant, image)]`: the loss of G(w*) of that round against the original."""
    result = ExperimentResult()
    result.add_failures(embeddings)
    for e in embeddings:
        loss = vs_original.get((e.variant, e.name))
        result.rows.append(
            e.row(
                round=int(e.variant.split("_")[1]),
                loss_vs_original=loss,
                loss_vs_original_e5=None if loss is None else loss / LOSS_SCALE,
            )
        )
    groups = group_by(embeddings, lambda e: e.variant)
    rounds = sorted(groups, key=lambda v: int(v.split("_")[1]))
    table = Table(
        "Loss per round (round 0 = the original image)",
        ["round", "L x1e5 vs own input", "L x1e5 vs original", "‖w*−w̄‖", "images"],
    )
    per_round: dict[int, float | None] = {}
    for v in rounds:
        embs = groups[v]
        k = int(v.split("_")[1])
        orig = mean(vs_original.get((v, e.name)) for e in embs)
        per_round[k] = orig
        table.rows.append(
            [k, mean(e.loss_e5 for e in embs), None if orig is None else orig / LOSS_SCALE,
             mean(e.w_dist for e in embs), len(embs)]
        )  # fmt: skip
    table.notes.append("The paper shows Fig. 11 as images only.")
    result.tables.append(table)
    result.extra["per_round"] = per_round
    known = {k: v for k, v in per_round.items() if v is not None}
    if len(known) >= 2:
        first, last = min(known), max(known)
        ks = sorted(known)
        ups = sum(known[b] > known[a] for a, b in itertools.pairwise(ks))
        result.claims.append(
            Claim(
                "Sec. 5.3, Fig. 11",
                "the embedding slowly degenerates (more details are lost) with each re-embedding",
                f"loss vs the original: {known[first] / LOSS_SCALE:.4g} (round {first}) -> "
                f"{known[last] / LOSS_SCALE:.4g} (round {last}) x1e5; it rose in {ups} of "
                f"{len(ks) - 1} rounds",
                known[last] > known[first],
            )
        )
    return result


def run(ctx: ExperimentContext, items: list[ImageItem], params: Params) -> ExperimentResult:
    originals, failed = ctx.prepare_inputs(items)
    embeddings: list[Embedding] = []
    last: list[Embedding] = []
    current = list(originals)
    for k in range(params.rounds + 1):
        variant = f"round_{k}"
        if k > 0:
            nxt = []
            for e in last:
                if e.ok:
                    saved = ctx.write_input(variant, e.name, e.reconstruction())
                    nxt.append(ImageItem(saved.path, e.name, e.category))
            current = nxt
        if not current:
            break
        last = ctx.embed([(variant, it) for it in current], label=f"round {k}")
        embeddings += last

    # every round's G(w*) scored against the original image (base settings)
    originals_by_name = {it.name: it for it in originals}
    ok = [e for e in embeddings if e.ok]
    vs_original: dict[tuple[str, str], float] = {}
    if ok:
        ws = torch.stack([e.ws for e in ok])
        targets = torch.cat([pil_to_tensor(ctx.frame(originals_by_name[e.name])) for e in ok])
        totals = ctx.evaluate(ctx.synthesize(ws), targets)["total"]
        vs_original = {(e.variant, e.name): float(t) for e, t in zip(ok, totals, strict=True)}
    result = analyse(embeddings, vs_original)
    result.failures[:0] = [(f"original/{n}", why) for n, why in failed]
    result.notes.append(
        f"{params.rounds} re-embeddings after the first; each round embeds the previous "
        "round's reconstruction.png from the base init."
    )

    by_image = group_by(embeddings, lambda e: e.name)
    if by_image:
        rows, labels = [], []
        for name, embs in by_image.items():
            embs = sorted(embs, key=lambda e: int(e.variant.split("_")[1]))
            rows.append([embs[0].target()] + [e.reconstruction() for e in embs])
            labels.append(name)
        cols = ["original"] + [f"round {k}" for k in range(params.rounds + 1)]
        path = image_grid_figure(
            ctx.out / "iterative_grid.png", rows, cols, labels, "Fig. 11: iterative embedding"
        )
        result.figures.append(Figure(path, "Original and the embedding of each round (Fig. 11)"))
        series = []
        for name, embs in by_image.items():
            pts = sorted(
                (int(e.variant.split("_")[1]), vs_original[(e.variant, e.name)])
                for e in embs
                if (e.variant, e.name) in vs_original
            )
            if pts:
                x, y = np.array(pts).T
                series.append((name, x, y / LOSS_SCALE))
        path = line_plot(
            ctx.out / "iterative_loss.png",
            series,
            "Loss of each round's embedding against the original image",
            "round",
            "L (x1e5) vs original",
        )
        result.figures.append(Figure(path, "Drift from the original per round"))
    return result
