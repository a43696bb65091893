"""Fig. 20 (supplement): clustering or scattering? Pairwise L2 distances of the embedded codes.

Every image is embedded once; D[i, j] = ||w*_i - w*_j|| (Frobenius norm over the num_ws x w_dim
code) is drawn as a heat map with the images grouped by category. The paper: faces are close to
each other (a cluster); other classes, paintings most, are scattered.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .context import ExperimentContext
from .figures import heat_map
from .items import ImageItem, category_rank, sort_items
from .measures import mean
from .report import write_csv
from .results import Claim, Embedding, ExperimentResult, Figure, Table

__all__ = ["DESCRIPTION", "TITLE", "VARIES", "Params", "analyse", "distance_matrix", "run"]

VARIES: tuple[str, ...] = ()  # EmbedConfig fields set by the variants
TITLE = "Fig. 20 — pairwise distances of the embedded codes"
DESCRIPTION = """
Do embedded images of one class form a cluster in W+ (supplement, Fig. 20)? The pairwise L2
distances between all embedded codes are shown as a heat map grouped by category; the table
gives the mean distance within each class and to the other classes.
"""


@dataclass(frozen=True)
class Params:
    pass


def distance_matrix(ws: torch.Tensor) -> np.ndarray:
    """[N, num_ws, w_dim] codes -> [N, N] Frobenius distances ||w_i - w_j||."""
    flat = ws.detach().double().cpu().reshape(ws.shape[0], -1)  # [N, num_ws * w_dim]
    return torch.cdist(flat, flat).numpy()


def analyse(embeddings: list[Embedding]) -> ExperimentResult:
    result = ExperimentResult()
    result.add_failures(embeddings)
    ok = sort_items([e for e in embeddings if e.ok])
    result.rows = [e.row() for e in sort_items(embeddings)]
    if not ok:
        return result
    D = distance_matrix(torch.stack([e.ws for e in ok]))
    cats = [e.category for e in ok]
    categories = sorted(set(cats), key=category_rank)
    idx = {c: [i for i, x in enumerate(cats) if x == c] for c in categories}
    intra: dict[str, float | None] = {}
    inter: dict[str, float | None] = {}
    table = Table(
        "Mean pairwise distance within and across classes",
        ["class", "within class", "to other classes", "‖w*−w̄‖", "images"],
    )
    for c in categories:
        ii = idx[c]
        intra[c] = mean(D[a, b] for k, a in enumerate(ii) for b in ii[k + 1 :])
        others = [j for j in range(len(ok)) if cats[j] != c]
        inter[c] = mean(D[a, b] for a in ii for b in others)
        table.rows.append([c, intra[c], inter[c], mean(ok[i].w_dist for i in ii), len(ii)])
    table.notes.append("The paper shows Fig. 20 as a heat map only.")
    result.tables.append(table)
    result.extra.update(matrix=D, embeddings=ok, groups=idx)

    with_intra = {c: v for c, v in intra.items() if v is not None}
    if "face" in with_intra and len(with_intra) > 1:
        other_classes = {c: v for c, v in with_intra.items() if c != "face"}
        result.claims.append(
            Claim(
                "supplement, Fig. 20",
                "the distances between faces are smaller than those within other classes "
                "(faces form a cluster)",
                f"mean distance within faces {with_intra['face']:.4g}; within "
                + ", ".join(f"{c} {v:.4g}" for c, v in other_classes.items()),
                all(with_intra["face"] < v for v in other_classes.values()),
            )
        )
    face_to_others = inter.get("face")
    if "face" in with_intra and face_to_others is not None:
        result.claims.append(
            Claim(
                "supplement, Fig. 20",
                "faces are closer to each other than to the other classes",
                f"within faces {with_intra['face']:.4g} vs faces to others {face_to_others:.4g}",
                with_intra["face"] < face_to_others,
            )
        )
    if "painting" in with_intra and len(with_intra) > 1:
        not_paintings = {c: v for c, v in with_intra.items() if c != "painting"}
        result.claims.append(
            Claim(
                "supplement, Fig. 20",
                "paintings are the most scattered (the highest pairwise distances)",
                f"within paintings {with_intra['painting']:.4g}; the largest other class "
                f"{max(not_paintings.values()):.4g}",
                all(with_intra["painting"] > v for v in not_paintings.values()),
            )
        )
    return result


def run(ctx: ExperimentContext, items: list[ImageItem], params: Params) -> ExperimentResult:
    originals, failed = ctx.prepare_inputs(items)
    embeddings = ctx.embed([("main", it) for it in originals], label="distances")
    result = analyse(embeddings)
    result.failures[:0] = [(f"original/{n}", why) for n, why in failed]
    if "matrix" in result.extra:
        D, ok, idx = result.extra["matrix"], result.extra["embeddings"], result.extra["groups"]
        names = [e.name for e in ok]
        write_csv(
            ctx.out / "distance_matrix.csv",
            [{"image": a, **{b: float(D[i, j]) for j, b in enumerate(names)}}
             for i, a in enumerate(names)],
        )  # fmt: skip
        groups = [(c, ii[0], ii[-1] + 1) for c, ii in idx.items()]
        path = heat_map(
            ctx.out / "distances_heatmap.png",
            D,
            names,
            groups,
            "Fig. 20: pairwise L2 distances of the embedded codes",
            "‖w*_i − w*_j‖",
        )
        result.figures.append(Figure(path, "Pairwise distances, grouped by class (Fig. 20)"))
        result.notes.append("The full matrix is in distance_matrix.csv.")
    return result
