"""The paper's measurements and the aggregations the experiments' tables are made of.

- `w_distance`: ||w* - w_avg||, the Frobenius norm of w* - w_avg over the whole [num_ws, w_dim]
  code, w_avg broadcast to every layer (for W / Z embeddings w* is the broadcast W+ code). For
  the paper's 18 x 512 code this is sqrt(sum over the 18 layers of ||w*_i - w_avg||^2).
- means skip missing (None / NaN) values; `paired_check` compares two variants image by image.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from PIL import Image

from ..image import pil_to_tensor
from .items import category_rank
from .results import Embedding, Table

__all__ = [
    "category_table",
    "group_by",
    "load_frames",
    "mean",
    "name_list",
    "paired_check",
    "psnr",
    "read_losses_csv",
    "summary",
    "w_distance",
]

K = TypeVar("K", bound=Hashable)


def w_distance(ws: torch.Tensor, w_avg: torch.Tensor) -> float:
    """||w* - w_avg||: Frobenius norm over the [num_ws, w_dim] code, w_avg [w_dim] broadcast."""
    ws = ws.detach().double().cpu().reshape(-1, ws.shape[-1])  # [num_ws, w_dim]
    return float((ws - w_avg.detach().double().cpu()).norm())


def mean(values: Iterable[float | None]) -> float | None:
    """Mean of the finite values, None if there are none."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return sum(vals) / len(vals) if vals else None


def psnr(mse: float | None) -> float | None:
    """PSNR in dB of an MSE on the 0-255 scale (None stays None)."""
    if mse is None or not math.isfinite(mse):
        return None
    return math.inf if mse <= 0 else 10 * math.log10(255.0**2 / mse)


def read_losses_csv(path: str | Path) -> np.ndarray:
    """losses.csv (step, total, perceptual, mse, elapsed_s) -> [steps, 3] (total, perc., mse)."""
    rows = Path(path).read_text().strip().splitlines()[1:]
    if not rows:
        return np.zeros((0, 3))
    data = np.array([[float(x) for x in r.split(",")[1:4]] for r in rows], dtype=np.float64)
    return data.reshape(-1, 3)


def load_frames(paths: Sequence[Path]) -> torch.Tensor:
    """PNG frames -> [N, 3, H, W] in [-1, 1]."""
    frames = []
    for p in paths:
        with Image.open(p) as im:
            frames.append(pil_to_tensor(im.convert("RGB")))
    return torch.cat(frames)


def group_by(
    embeddings: Iterable[Embedding], key: Callable[[Embedding], K]
) -> dict[K, list[Embedding]]:
    """The successful embeddings grouped by `key`, groups in first-seen order."""
    groups: dict[K, list[Embedding]] = {}
    for e in embeddings:
        if e.ok:
            groups.setdefault(key(e), []).append(e)
    return groups


def summary(embeddings: Sequence[Embedding]) -> tuple[float | None, float | None, int]:
    """(mean L / 1e5, mean ||w* - w_avg||, number of images) of successful embeddings."""
    ok = [e for e in embeddings if e.ok]
    return mean(e.loss_e5 for e in ok), mean(e.w_dist for e in ok), len(ok)


def _loss_e5(e: Embedding) -> float:
    return e.loss_e5


def _loss(e: Embedding) -> float:
    return e.loss


def category_table(
    title: str,
    embeddings: Sequence[Embedding],
    variants: Sequence[tuple[str, str]],  # (variant, column label)
    value: Callable[[Embedding], float] = _loss_e5,
    unit: str = "L x1e5",
) -> Table:
    """Mean `value` per category (rows, plus "all") and variant (columns)."""
    cells: dict[tuple[str, str], list[float]] = defaultdict(list)
    for e in embeddings:
        if e.ok:
            cells[(e.category, e.variant)].append(value(e))
            cells[("all", e.variant)].append(value(e))
    categories = [*sorted({c for c, _ in cells if c != "all"}, key=category_rank), "all"]
    table = Table(title, ["class"] + [f"{unit} {label}" for _, label in variants] + ["images"])
    for c in categories:
        n = max((len(cells.get((c, v), [])) for v, _ in variants), default=0)
        table.rows.append([c] + [mean(cells.get((c, v), [])) for v, _ in variants] + [n])
    return table


def paired_check(
    embeddings: Sequence[Embedding],
    better: str,
    worse: str,
    value: Callable[[Embedding], float] = _loss,
) -> tuple[int, int, list[str]]:
    """Per image, is `value` (default: the final loss) of variant `better` below that of `worse`?
    Returns (images where it is, images with both variants, names where it is not)."""
    values: dict[str, dict[str, float]] = {}
    for e in embeddings:
        if e.ok:
            values.setdefault(e.name, {})[e.variant] = value(e)
    both = {n: v for n, v in values.items() if better in v and worse in v}
    fails = [n for n, v in both.items() if not v[better] < v[worse]]
    return len(both) - len(fails), len(both), fails


def name_list(names: Sequence[str], limit: int = 6) -> str:
    """'a, b, c' with at most `limit` names ('..., +3 more')."""
    shown = ", ".join(names[:limit])
    return shown + (f", +{len(names) - limit} more" if len(names) > limit else "")
