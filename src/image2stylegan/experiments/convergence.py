"""Fig. 10 (Sec. 5.3): the loss as a function of the number of optimisation steps, per category.

The paper: faces converge at around 1000 steps; cats, dogs and cars at around 3000; paintings
around 5000. Convergence step (our definition, the paper gives none): the first step from which
the running minimum of the loss stays within `tolerance` (relative) of its final value, i.e. the
first s with min_{t <= s} L(t) <= (1 + tolerance) * min_t L(t).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .context import ExperimentContext
from .figures import line_plot
from .items import ImageItem, category_rank
from .measures import group_by, mean
from .paper_numbers import FIG10_CONVERGENCE_STEPS, PAPER_SETTINGS
from .results import LOSS_SCALE, Claim, Embedding, ExperimentResult, Figure, Table

__all__ = ["DESCRIPTION", "TITLE", "VARIES", "Params", "analyse", "convergence_step", "run"]

VARIES: tuple[str, ...] = ()  # EmbedConfig fields set by the variants
TITLE = "Fig. 10 — loss vs optimisation steps per category"
DESCRIPTION = """
How many steps does the embedding need (Sec. 5.3)? Every image is embedded once, its loss
recorded at every step; the plot shows the mean loss per category on a log scale (Fig. 10) and
the table the step at which each category converges beside the paper's.
"""


@dataclass(frozen=True)
class Params:
    tolerance: float = 0.05  # converged = running-min loss within this fraction of its final value

    def __post_init__(self) -> None:
        if not self.tolerance > 0:
            raise ValueError(f"tolerance must be > 0, got {self.tolerance}")


def convergence_step(losses: np.ndarray, tolerance: float = 0.05) -> int | None:
    """First step (1-based) s with min(L[:s]) <= (1 + tolerance) * min(L); None if empty."""
    losses = np.asarray(losses, dtype=np.float64)
    if losses.size == 0:
        return None
    running = np.minimum.accumulate(losses)
    return int(np.argmax(running <= running[-1] * (1 + tolerance))) + 1


def analyse(embeddings: list[Embedding], params: Params, steps: int) -> ExperimentResult:
    """Convergence per image and per category (of the category's mean curve)."""
    result = ExperimentResult()
    result.add_failures(embeddings)
    for e in embeddings:
        step = convergence_step(e.history[:, 0], params.tolerance) if e.ok else None
        result.rows.append(e.row(convergence_step=step))
    groups = group_by(embeddings, lambda e: e.category)
    categories = sorted(groups, key=category_rank)
    curves: dict[str, np.ndarray] = {}
    table = Table(
        f"Convergence step per class (running-min loss within {params.tolerance:.0%} of final)",
        ["class", "steps (ours, mean curve)", "steps (ours, per image)", "steps (paper, ~)",
         "final L x1e5", "images"],
    )  # fmt: skip
    measured: dict[str, int | None] = {}
    for c in categories:
        embs = [e for e in groups[c] if len(e.history)]
        if not embs:
            continue
        n = min(len(e.history) for e in embs)
        curve = np.mean([e.history[:n, 0] for e in embs], axis=0)
        curves[c] = curve
        measured[c] = convergence_step(curve, params.tolerance)
        per_image = mean(convergence_step(e.history[:, 0], params.tolerance) for e in embs)
        table.rows.append(
            [c, measured[c], per_image, FIG10_CONVERGENCE_STEPS.get(c),
             mean(e.loss_e5 for e in embs), len(embs)]
        )  # fmt: skip
    paper_steps = PAPER_SETTINGS["steps"]
    if steps < paper_steps:
        table.notes.append(
            f"This run stopped at {steps} steps (paper: {paper_steps}): a category can only "
            "'converge' within the steps run, so the steps are not comparable with the paper's."
        )
    result.tables.append(table)
    result.extra["curves"] = curves

    known = {c: s for c, s in measured.items() if s is not None}
    if "face" in known and len(known) > 1:
        others = {c: s for c, s in known.items() if c != "face"}
        result.claims.append(
            Claim(
                "Sec. 5.3, Fig. 10",
                "the face image's loss drops the quickest (converges at ~1000 steps)",
                f"face converges at step {known['face']}; other classes at "
                + ", ".join(f"{c} {s}" for c, s in others.items()),
                all(known["face"] <= s for s in others.values()),
            )
        )
    if "painting" in known and len(known) > 1:
        others = {c: s for c, s in known.items() if c != "painting"}
        result.claims.append(
            Claim(
                "Sec. 5.3, Fig. 10",
                "the painting curve is the slowest (converges around 5000 steps)",
                f"painting converges at step {known['painting']}; the slowest other class at "
                f"{max(others.values())}",
                all(known["painting"] >= s for s in others.values()),
            )
        )
    mid = [c for c in ("cat", "dog", "car") if c in known]
    if mid and ("face" in known or "painting" in known):
        lo = known.get("face", 0)
        hi = known.get("painting", max(known.values()))
        between = [c for c in mid if lo <= known[c] <= hi]
        result.claims.append(
            Claim(
                "Sec. 5.3, Fig. 10",
                "cat, dog and car converge slower than faces and faster than paintings (~3000)",
                f"{len(between)} of {len(mid)} ({', '.join(f'{c} {known[c]}' for c in mid)}) lie "
                f"between face ({known.get('face', '—')}) and painting "
                f"({known.get('painting', '—')})",
                len(between) == len(mid),
            )
        )
    if steps < paper_steps:
        result.claims.append(
            Claim(
                "Sec. 5.3",
                f"{paper_steps} steps are enough for every class",
                f"not checkable with {steps} steps",
                None,
            )
        )
    return result


def run(ctx: ExperimentContext, items: list[ImageItem], params: Params) -> ExperimentResult:
    originals, failed = ctx.prepare_inputs(items)
    embeddings = ctx.embed([("main", it) for it in originals], label="convergence")
    result = analyse(embeddings, params, ctx.config.steps)
    result.failures[:0] = [(f"original/{n}", why) for n, why in failed]
    curves: dict[str, np.ndarray] = result.extra["curves"]
    if curves:
        series = [(c, np.arange(1, len(y) + 1), y / LOSS_SCALE) for c, y in curves.items()]
        background = [
            (np.arange(1, len(e.history) + 1), e.history[:, 0] / LOSS_SCALE)
            for e in embeddings
            if e.ok and len(e.history)
        ]
        markers = []
        for row in result.tables[0].rows:
            c, step = row[0], row[1]
            if step is not None and c in curves:
                markers.append(
                    (f"{c}: {step}", float(step), float(curves[c][step - 1] / LOSS_SCALE))
                )
        path = line_plot(
            ctx.out / "convergence.png",
            series,
            "Fig. 10: loss vs optimisation steps (lines: class means; grey: images)",
            "step",
            "L (x1e5)",
            log_y=True,
            markers=markers,
            background=background,
        )
        result.figures.append(
            Figure(path, "Loss per step (log scale): class means and each image; dots = converged")
        )
    result.notes.append(
        f"Convergence step: first step s with min(L[1..s]) <= (1 + {params.tolerance:g}) x "
        "min(L), on the class's mean curve (and averaged per image)."
    )
    return result
