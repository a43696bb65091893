"""Figs. 5 (b)(e) and 14 (Sec. 3.3): how much do the learned weights matter?

The user's generator architecture is rebuilt with freshly initialised weights (its constructor's
official initialisation, from `--seed`; w̄ re-estimated as the mean of mapped z samples, as
`checkpoints.random_generators` does for `random:` sources) and every image is embedded into it
and into the trained generator, in W and in W+, with the base init.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..checkpoints.random_generators import mean_w
from ..models.base import Generator
from .context import ExperimentContext
from .figures import add_comparison_grid
from .items import ImageItem
from .measures import category_table, name_list, paired_check
from .results import Claim, Embedding, ExperimentResult

__all__ = ["DESCRIPTION", "TITLE", "VARIANTS", "VARIES", "Params", "analyse", "reinitialise", "run"]

VARIES: tuple[str, ...] = ("space",)  # EmbedConfig fields set by the variants
TITLE = "Figs. 5 (b)(e), 14 — embedding into a randomly initialised generator"
DESCRIPTION = """
Are the learned weights what makes the embedding work (Sec. 3.3)? The same architecture with
random weights is embedded into, in W (Fig. 5 (b)) and W+ (Fig. 5 (e)), beside the trained
generator in W (c) and W+ (f). The paper shows images only; the table prints our mean final
loss L (x1e5) per category and the check is that the trained weights embed better.
"""

# variant -> (weights, space, the figure's column label)
VARIANTS: dict[str, tuple[str, str, str]] = {
    "random_w": ("random", "w", "(b) W, random weights"),
    "trained_w": ("trained", "w", "(c) W, trained"),
    "random_wplus": ("random", "w+", "(e) W+, random weights"),
    "trained_wplus": ("trained", "w+", "(f) W+, trained"),
}


@dataclass(frozen=True)
class Params:
    weight_seed: int | None = None  # seed of the random weights (None: the embedding --seed)


def reinitialise(G: Generator, seed: int) -> Generator:
    """`G`'s architecture with its constructor's (official) initialisation drawn from `seed`,
    w̄ = mean of mapped z ~ N(0, I) samples; on G's device, eval mode, frozen."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        R = type(G).from_config(G.config_dict())
    R = R.to(G.w_avg.device)
    with torch.no_grad():
        R.w_avg.copy_(mean_w(R, generator=torch.Generator().manual_seed(seed)))
    return R.eval().requires_grad_(False)


def analyse(embeddings: list[Embedding]) -> ExperimentResult:
    result = ExperimentResult()
    result.rows = [
        e.row(weights=VARIANTS[e.variant][0], space=VARIANTS[e.variant][1]) for e in embeddings
    ]
    result.add_failures(embeddings)
    cols = [(v, label.split(" ", 1)[1]) for v, (_, _, label) in VARIANTS.items()]
    table = category_table("Mean final loss per class, weights and space", embeddings, cols)
    table.notes.append("The paper gives no numbers for Fig. 5 (b)(e) / 14 (images only).")
    result.tables.append(table)
    holds, total, fails = 0, 0, list[str]()
    for space in ("w", "wplus"):
        h, t, f = paired_check(embeddings, f"trained_{space}", f"random_{space}")
        holds, total, fails = holds + h, total + t, fails + [f"{n} ({space})" for n in f]
    if total:
        result.claims.append(
            Claim(
                "Sec. 3.3, Figs. 5, 14",
                "the learned network weights are important for good embeddings",
                f"the trained generator reaches a lower final loss than the random one in "
                f"{holds} of {total} embeddings (same space)"
                + (f"; not for {name_list(fails)}" if fails else ""),
                holds == total,
            )
        )
    return result


def run(ctx: ExperimentContext, items: list[ImageItem], params: Params) -> ExperimentResult:
    originals, failed = ctx.prepare_inputs(items)
    seed = ctx.config.seed if params.weight_seed is None else params.weight_seed
    R = reinitialise(ctx.G, seed)
    trained = ctx.pipeline.generator
    sha = trained.sha256 or ""
    random_meta = {
        "generator": f"{trained.source} (re-initialised, seed {seed})",
        "generator_sha256": f"reinit-{seed}-{sha}",
    }
    embeddings: list[Embedding] = []
    for variant, (weights, space, _) in VARIANTS.items():
        G = R if weights == "random" else ctx.G
        embedder = ctx.embedder(ctx.config.replace(space=space), G=G)
        embeddings += ctx.embed(
            [(variant, it) for it in originals],
            embedder,
            metadata=random_meta if weights == "random" else None,
            label=variant,
        )
    result = analyse(embeddings)
    result.failures[:0] = [(f"original/{n}", why) for n, why in failed]
    result.notes.append(
        f"Random weights: {type(ctx.G).__name__}.from_config(G.config_dict()) initialised from "
        f"seed {seed}; its w̄ is the mean of 10000 mapped z samples; its ‖w*−w̄‖ is measured to "
        "that w̄. Init of all variants: " + ctx.config.init + "."
    )
    add_comparison_grid(
        result,
        embeddings,
        list(VARIANTS),
        ctx.out / "random_generator_grid.png",
        ["(a) original"] + [label for _, _, label in VARIANTS.values()],
        "Fig. 5: random vs trained weights",
        "Original and embeddings (Fig. 5 (b)(c)(e)(f) layout)",
    )
    return result
