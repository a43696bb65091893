"""Table 2 / Figs. 5, 13 (Sec. 5.1): initialising w* with w̄ vs with U[-1, 1], per category.

Every image is embedded twice, from w = w̄ and from each variable drawn from U[-1, 1] (seeded by
`--seed`); the table prints the mean final loss and ||w* - w_avg|| per category and init beside
Table 2, and checks which init the paper found better for each category.
"""

from __future__ import annotations

from dataclasses import dataclass

from .context import ExperimentContext
from .figures import add_comparison_grid
from .items import ImageItem, category_rank
from .measures import group_by, summary
from .paper_numbers import TABLE2_INIT
from .results import Claim, Embedding, ExperimentResult, Table

__all__ = ["DESCRIPTION", "INITS", "TITLE", "VARIES", "Params", "analyse", "run"]

VARIES: tuple[str, ...] = ("init",)  # EmbedConfig fields set by the variants
TITLE = "Table 2 / Figs. 5, 13 — initialisation: w̄ vs random"
DESCRIPTION = """
Does the starting point matter (Sec. 5.1)? Each image is embedded from the mean latent w̄ and
from a code drawn from U[−1, 1]; per category the table prints the mean final loss L (x1e5) and
||w* − w̄|| beside Table 2. The paper finds w̄ better for faces and random better for the other
classes.
"""

INITS = ("mean", "random")
_LABEL = {"mean": "w = w̄", "random": "Random"}


@dataclass(frozen=True)
class Params:
    pass


def analyse(embeddings: list[Embedding]) -> ExperimentResult:
    """Table 2 from embeddings whose variant is the init ("mean" / "random")."""
    result = ExperimentResult()
    result.rows = [e.row(init=e.variant) for e in embeddings]
    result.add_failures(embeddings)
    groups = group_by(embeddings, lambda e: (e.category, e.variant))
    categories = sorted({c for c, _ in groups}, key=category_rank)
    table = Table(
        "Table 2: mean final loss and distance to w̄ per category and initialisation",
        ["class, init", "L x1e5 (ours)", "L x1e5 (paper)", "‖w*−w̄‖ (ours)", "‖w*−w̄‖ (paper)",
         "images"],
    )  # fmt: skip
    measured: dict[tuple[str, str], tuple[float | None, float | None]] = {}
    for c in categories:
        for init in INITS:
            loss, dist, n = summary(groups.get((c, init), []))
            measured[(c, init)] = (loss, dist)
            paper = TABLE2_INIT.get((c, init))
            table.rows.append(
                [f"{c}, {_LABEL[init]}", loss, paper.loss_e5 if paper else None, dist,
                 paper.w_dist if paper else None, n]
            )  # fmt: skip
    result.tables.append(table)

    better = Table(
        "Which initialisation reaches the lower loss",
        ["class", "lower L (ours)", "lower L (paper)", "agrees"],
    )
    for c in categories:
        ours = _lower(measured.get((c, "mean"), (None, None))[0],
                      measured.get((c, "random"), (None, None))[0])  # fmt: skip
        pm, pr = TABLE2_INIT.get((c, "mean")), TABLE2_INIT.get((c, "random"))
        paper_lower = _lower(pm.loss_e5, pr.loss_e5) if pm and pr else None
        agrees = None if ours is None or paper_lower is None else ours == paper_lower
        better.rows.append([c, ours, paper_lower, agrees])
    result.tables.append(better)

    decided = [row for row in better.rows if row[3] is not None]
    if decided:
        agree = [row[0] for row in decided if row[3]]
        result.claims.append(
            Claim(
                "Sec. 5.1, Table 2",
                "w̄ initialisation is better for faces, random initialisation for other classes",
                f"the lower-loss init agrees with the paper for {len(agree)} of {len(decided)} "
                f"categories ({', '.join(agree) or 'none'})",
                len(agree) == len(decided),
            )
        )
    fm, fr = measured.get(("face", "mean")), measured.get(("face", "random"))
    if fm and fr and fm[1] is not None and fr[1] is not None:
        result.claims.append(
            Claim(
                "Sec. 5.1, Table 2",
                "initialising faces with w̄ makes w* closer to w̄ ("
                f"{TABLE2_INIT[('face', 'mean')].w_dist} vs "
                f"{TABLE2_INIT[('face', 'random')].w_dist})",
                f"faces: ‖w*−w̄‖ {fm[1]:.4g} from w̄ vs {fr[1]:.4g} from random",
                fm[1] < fr[1],
            )
        )
    return result


def _lower(mean_loss: float | None, random_loss: float | None) -> str | None:
    if mean_loss is None or random_loss is None:
        return None
    return "w̄" if mean_loss <= random_loss else "random"


def run(ctx: ExperimentContext, items: list[ImageItem], params: Params) -> ExperimentResult:
    originals, failed = ctx.prepare_inputs(items)
    embeddings: list[Embedding] = []
    for init in INITS:
        embedder = ctx.embedder(ctx.config.replace(init=init))
        embeddings += ctx.embed([(init, it) for it in originals], embedder, label=f"init {init}")
    result = analyse(embeddings)
    result.failures[:0] = [(f"original/{n}", why) for n, why in failed]
    result.notes.append(
        f"Random init: every variable of the {ctx.G.num_ws} x {ctx.G.w_dim} code from "
        f"U[-1, 1], seed {ctx.config.seed} (one RNG per image)."
    )
    add_comparison_grid(
        result,
        embeddings,
        ["random", "mean"],
        ctx.out / "init_grid.png",
        ["original", "random init", "w̄ init"],
        "Fig. 13: embedding from a random code vs from w̄",
        "Original, random init, w̄ init (Fig. 13 layout)",
    )
    return result
