"""Figs. 5 (c)(d)(f)(g) and 14 (Sec. 3.3): which latent space to embed into, W or W+?

Every image is embedded into W (one 512-d w shared by all layers) and into W+ (one w per layer),
each from w̄ and from a U[-1, 1] code. The paper shows the results as images only; the table
prints the mean final loss and ||w* - w_avg|| per category and variant, and the check is the
paper's conclusion that W does not give reasonable results while W+ does.
"""

from __future__ import annotations

from dataclasses import dataclass

from .context import ExperimentContext
from .figures import add_comparison_grid
from .items import ImageItem
from .measures import category_table, name_list, paired_check
from .results import Claim, Embedding, ExperimentResult

__all__ = ["DESCRIPTION", "TITLE", "VARIANTS", "VARIES", "Params", "analyse", "run"]

VARIES: tuple[str, ...] = ("space", "init")  # EmbedConfig fields set by the variants
TITLE = "Figs. 5, 14 — W vs W+"
DESCRIPTION = """
Which latent space can images be embedded into (Sec. 3.3)? Each image is embedded into W and into
W+, from w̄ and from a random code (Fig. 5 (c)(d)(f)(g)). The paper shows images only: the table
prints our mean final loss L (x1e5) per category and variant; the check is the paper's finding
that embedding into W "does not give reasonable results" while W+ does.
"""

# variant -> (space, init, the figure's column label)
VARIANTS: dict[str, tuple[str, str, str]] = {
    "w_mean": ("w", "mean", "(c) W, w̄ init"),
    "w_random": ("w", "random", "(d) W, random init"),
    "wplus_mean": ("w+", "mean", "(f) W+, w̄ init"),
    "wplus_random": ("w+", "random", "(g) W+, random init"),
}


@dataclass(frozen=True)
class Params:
    pass


def analyse(embeddings: list[Embedding]) -> ExperimentResult:
    result = ExperimentResult()
    result.rows = [
        e.row(space=VARIANTS[e.variant][0], init=VARIANTS[e.variant][1]) for e in embeddings
    ]
    result.add_failures(embeddings)
    cols = [(v, label.split(" ", 1)[1]) for v, (_, _, label) in VARIANTS.items()]
    table = category_table("Mean final loss per class and latent space", embeddings, cols)
    table.notes.append("The paper gives no numbers for Fig. 5 / 14 (images only).")
    result.tables.append(table)
    result.tables.append(
        category_table(
            "Mean ‖w*−w̄‖ per class and latent space",
            embeddings,
            cols,
            value=lambda e: e.w_dist,
            unit="‖w*−w̄‖",
        )
    )
    holds, total, fails = 0, 0, list[str]()
    for init in ("mean", "random"):
        h, t, f = paired_check(embeddings, f"wplus_{init}", f"w_{init}")
        holds, total, fails = holds + h, total + t, fails + [f"{n} ({init})" for n in f]
    if total:
        result.claims.append(
            Claim(
                "Sec. 3.3, Figs. 5, 14",
                "embedding into W does not give reasonable results; W+ does",
                f"W+ reaches a lower final loss than W (same init) in {holds} of {total} "
                "embeddings" + (f"; not for {name_list(fails)}" if fails else ""),
                holds == total,
            )
        )
    return result


def run(ctx: ExperimentContext, items: list[ImageItem], params: Params) -> ExperimentResult:
    originals, failed = ctx.prepare_inputs(items)
    embeddings: list[Embedding] = []
    for variant, (space, init, _) in VARIANTS.items():
        embedder = ctx.embedder(ctx.config.replace(space=space, init=init))
        embeddings += ctx.embed([(variant, it) for it in originals], embedder, label=variant)
    result = analyse(embeddings)
    result.failures[:0] = [(f"original/{n}", why) for n, why in failed]
    result.notes.append(
        "W: one w [w_dim] optimised and broadcast to all layers (random init: U[-1, 1] per "
        "variable); W+: num_ws independent rows. ‖w*−w̄‖ is taken on the broadcast W+ code."
    )
    add_comparison_grid(
        result,
        embeddings,
        list(VARIANTS),
        ctx.out / "space_grid.png",
        ["(a) original"] + [label for _, _, label in VARIANTS.values()],
        "Fig. 5: embedding into W and W+",
        "Original and embeddings into W / W+ (Fig. 5 layout)",
    )
    return result
