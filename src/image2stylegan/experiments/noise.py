"""Fig. 16 (supplement): the noise inputs during the embedding.

Every image is embedded with the generator's stored constant noise, with `restarts` different
constant noises (fresh N(0, 1) maps drawn from seeds seed, seed + 1, ..., kept for the whole
optimisation), and with the noise resampled at every step. The paper: restarting with a
different noise leads to similar results; resampling at each step is significantly worse.

Final loss of each variant = its objective on G(w*) with the noise it was optimised with (for
"resample" the stored constant noise, as G(w*) is then rendered); the mean loss of the last 10 %
of the steps is shown too (for "resample": under the random noise of those steps).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .context import ExperimentContext, ExperimentError
from .figures import add_comparison_grid
from .items import ImageItem
from .measures import group_by, mean
from .results import Claim, Embedding, ExperimentResult, Table

__all__ = ["DESCRIPTION", "TITLE", "VARIES", "Params", "analyse", "run", "variants"]

VARIES: tuple[str, ...] = ("noise", "seed")  # EmbedConfig fields set by the variants
TITLE = "Fig. 16 — constant noise restarts vs resampled noise"
DESCRIPTION = """
How do StyleGAN's noise inputs affect the embedding (supplement, Fig. 16)? Each image is embedded
with the stored noise, with several different constant noises, and with noise resampled at every
step; the table compares the final losses and how far apart the restarts' codes end up.
"""


@dataclass(frozen=True)
class Params:
    restarts: int = 3  # different constant noises
    similar: float = 0.1  # "similar" restarts: losses within this fraction of their mean

    def __post_init__(self) -> None:
        if self.restarts < 1:
            raise ValueError(f"restarts must be >= 1, got {self.restarts}")


def variants(restarts: int) -> list[str]:
    return ["const", *(f"restart_{k}" for k in range(restarts)), "resample"]


def _tail(e: Embedding, fraction: float = 0.1) -> float | None:
    if not len(e.history):
        return None
    n = max(1, round(len(e.history) * fraction))
    return float(np.mean(e.history[-n:, 0]))


def analyse(embeddings: list[Embedding], params: Params) -> ExperimentResult:
    result = ExperimentResult()
    result.add_failures(embeddings)
    result.rows = [e.row(loss_last_10pct=_tail(e)) for e in embeddings]
    groups = group_by(embeddings, lambda e: e.variant)
    table = Table(
        "Final loss per noise handling (means over images)",
        ["noise", "L x1e5 (final)", "L x1e5 (last 10 % of steps)", "‖w*−w̄‖", "images"],
    )
    for v in variants(params.restarts):
        embs = groups.get(v, [])
        tail = mean(_tail(e) for e in embs)
        table.rows.append(
            [v, mean(e.loss_e5 for e in embs), None if tail is None else tail / 1e5,
             mean(e.w_dist for e in embs), len(embs)]
        )  # fmt: skip
    table.notes.append("The paper shows Fig. 16 as images only.")
    result.tables.append(table)

    # per image: spread of the restarts, distance between their codes, resample vs restarts
    by_image = group_by(embeddings, lambda e: e.name)
    spreads, code_dists, worse, compared = [], [], 0, 0
    spread_table = Table(
        "Restarts per image",
        ["image", "restart L spread (max−min)/mean", "mean ‖w*_a − w*_b‖ between restarts",
         "resample L / mean restart L"],
    )  # fmt: skip
    for name, embs in by_image.items():
        restarts = [e for e in embs if e.variant.startswith("restart_")]
        resample = next((e for e in embs if e.variant == "resample"), None)
        losses = [e.loss for e in restarts]
        spread = (max(losses) - min(losses)) / np.mean(losses) if len(losses) > 1 else None
        pair = [  # Frobenius distance between two restarts' codes
            float((a.ws - b.ws).double().norm())
            for i, a in enumerate(restarts)
            for b in restarts[i + 1 :]
        ]
        ratio = resample.loss / float(np.mean(losses)) if resample and losses else None
        if spread is not None:
            spreads.append(spread)
        if pair:
            code_dists.append(float(np.mean(pair)))
        if resample is not None and losses:
            compared += 1
            worse += resample.loss > max(losses)
        spread_table.rows.append([name, spread, float(np.mean(pair)) if pair else None, ratio])
    result.tables.append(spread_table)
    if spreads:
        result.claims.append(
            Claim(
                "supplement, Fig. 16",
                "restarting the embedding with a different noise leads to similar results",
                f"the restarts' final losses differ by {100 * max(spreads):.3g} % of their mean "
                f"at most (similar = within {100 * params.similar:g} %)",
                max(spreads) <= params.similar,
            )
        )
    if compared:
        result.claims.append(
            Claim(
                "supplement, Fig. 16",
                "resampling the noise at each step gives significantly worse quality",
                f"resampled noise ends with a higher loss than every restart in {worse} of "
                f"{compared} images",
                worse == compared,
            )
        )
    return result


def run(ctx: ExperimentContext, items: list[ImageItem], params: Params) -> ExperimentResult:
    if not ctx.G.num_noise_inputs:  # StyleGAN3: nothing to vary; say so before any work
        raise ExperimentError(
            "this generator has no noise inputs (a StyleGAN3 network), so constant-noise "
            "restarts vs resampled noise cannot be compared"
        )
    originals, failed = ctx.prepare_inputs(items)
    base = ctx.config.seed
    configs = {"const": ctx.config.replace(noise="const")}
    for k in range(params.restarts):
        configs[f"restart_{k}"] = ctx.config.replace(noise="restart", seed=base + k)
    configs["resample"] = ctx.config.replace(noise="resample")
    embeddings: list[Embedding] = []
    for variant, config in configs.items():
        embeddings += ctx.embed(
            [(variant, it) for it in originals], ctx.embedder(config), label=variant
        )
    result = analyse(embeddings, params)
    result.failures[:0] = [(f"original/{n}", why) for n, why in failed]
    result.notes.append(
        f"Restart k draws its constant noise maps from seed {base} + k (which also seeds a random "
        "init); 'const' uses the generator's stored noise."
    )
    add_comparison_grid(
        result,
        embeddings,
        list(configs),
        ctx.out / "noise_grid.png",
        ["original", *configs],
        "Fig. 16: embedding with different constant noises, and resampled noise",
        "Original and embeddings per noise handling",
    )
    return result
