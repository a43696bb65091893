"""The experiments' figures, drawn with matplotlib's object API on the Agg canvas (no pyplot
global state, no display) and written atomically as PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ..fileio import atomic_path
from .measures import group_by
from .results import Embedding, ExperimentResult, Figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure as MplFigure

__all__ = [
    "add_comparison_grid",
    "bar_chart",
    "comparison_rows",
    "heat_map",
    "image_grid_figure",
    "line_plot",
]

_CELL_INCHES = 1.5  # side of one image cell in a grid figure
_DPI = 100


def _new_figure(width: float, height: float) -> MplFigure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: MplFigure, path: Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=_DPI, bbox_inches="tight", facecolor="white")
    return path


def image_grid_figure(
    path: Path,
    rows: Sequence[Sequence[Image.Image | None]],  # rows of images (None = empty cell)
    col_labels: Sequence[str] = (),
    row_labels: Sequence[str] = (),
    title: str = "",
) -> Path:
    """A grid of images with column titles and row labels (the layout of Figs. 2, 3, 5, 9, 11).

    The cells are tiled into one mosaic (white gaps) and drawn as a single image, so a grid of
    hundreds of cells stays fast; labels sit on the axis ticks."""
    nrows = max(len(rows), 1)
    ncols = max((len(r) for r in rows), default=1)
    sizes = [im.size for r in rows for im in r if im is not None]
    cw = max((w for w, _ in sizes), default=1)
    ch = max((h for _, h in sizes), default=1)
    gap = max(2, cw // 16)
    mosaic = Image.new("RGB", (ncols * (cw + gap) - gap, nrows * (ch + gap) - gap), "white")
    for i, r in enumerate(rows):
        for j, im in enumerate(r):
            if im is not None:
                mosaic.paste(im.convert("RGB"), (j * (cw + gap), i * (ch + gap)))
    inches = min(_CELL_INCHES, 24.0 / ncols)  # keep very wide grids within ~24 in
    fig = _new_figure(inches * ncols + 1.2, inches * nrows + (0.8 if title else 0.5))
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.imshow(np.asarray(mosaic), interpolation="nearest")
    ax.set_xticks([j * (cw + gap) + cw / 2 for j in range(min(ncols, len(col_labels)))])
    ax.set_xticklabels(list(col_labels)[:ncols], fontsize=8)
    ax.xaxis.tick_top()
    ax.set_yticks([i * (ch + gap) + ch / 2 for i in range(min(nrows, len(row_labels)))])
    ax.set_yticklabels(list(row_labels)[:nrows], fontsize=8)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title, fontsize=10, pad=22)
    return _save(fig, path)


def _positive(y: np.ndarray, log_y: bool) -> np.ndarray:
    """float64 values; on a log axis non-positive ones become gaps (NaN)."""
    v = np.asarray(y, dtype=np.float64)
    return np.where(v > 0, v, np.nan) if log_y else v


def line_plot(
    path: Path,
    series: Sequence[tuple[str, np.ndarray, np.ndarray]],  # (label, x, y)
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    log_y: bool = False,
    markers: Sequence[tuple[str, float, float]] = (),  # (label, x, y) points to mark
    background: Sequence[tuple[np.ndarray, np.ndarray]] = (),  # thin grey curves, no legend
) -> Path:
    """Curves (Fig. 10's loss vs steps), optionally on a log y axis."""
    fig = _new_figure(6.4, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    for x, y in background:
        ax.plot(np.asarray(x), _positive(y, log_y), color="0.75", linewidth=0.6)
    for label, x, y in series:
        ax.plot(np.asarray(x), _positive(y, log_y), label=label, linewidth=1.8)
    for text, px, py in markers:
        ax.plot([px], [py], marker="o", markersize=4, color="black")
        ax.annotate(text, (px, py), textcoords="offset points", xytext=(4, 4), fontsize=7)
    if log_y:
        ax.set_yscale("log")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    if series:
        ax.legend(fontsize=8)
    return _save(fig, path)


def bar_chart(
    path: Path,
    labels: Sequence[str],  # one group per label
    groups: Sequence[tuple[str, Sequence[float | None]]],  # (legend, value per label)
    title: str = "",
    ylabel: str = "",
) -> Path:
    """Grouped bars: e.g. ours beside the paper's per table row."""
    fig = _new_figure(max(5.0, 0.9 * len(labels) + 2), 3.8)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(labels))
    width = 0.8 / max(len(groups), 1)
    for k, (legend, values) in enumerate(groups):
        heights = [np.nan if v is None else float(v) for v in values]
        ax.bar(x + (k - (len(groups) - 1) / 2) * width, heights, width, label=legend)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def heat_map(
    path: Path,
    matrix: np.ndarray,  # [N, N]
    labels: Sequence[str],  # one per row/column
    groups: Sequence[tuple[str, int, int]] = (),  # (name, first, end) index ranges to outline
    title: str = "",
    colorbar_label: str = "",
) -> Path:
    """A matrix as a heat map with its groups outlined (Fig. 20)."""
    n = len(labels)
    side = max(4.0, 0.32 * n + 2.0)
    fig = _new_figure(side + 1.2, side)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(np.asarray(matrix, dtype=np.float64), cmap="viridis", interpolation="nearest")
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels(labels, rotation=90, fontsize=7)
    ax.set_yticklabels(labels, fontsize=7)
    from matplotlib.patches import Rectangle

    for name, first, end in groups:
        ax.add_patch(
            Rectangle(
                (first - 0.5, first - 0.5), end - first, end - first, fill=False, edgecolor="white"
            )
        )
        ax.text((first + end - 1) / 2, first - 0.7, name, ha="center", va="bottom", fontsize=7)
    cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cbar.set_label(colorbar_label)
    ax.set_title(title, fontsize=10, pad=14)
    return _save(fig, path)


def comparison_rows(
    embeddings: Sequence[Embedding], variants: Sequence[str]
) -> tuple[list[list[Image.Image | None]], list[str]]:
    """Grid rows per image: its target, then the reconstruction of each variant."""
    by_image = group_by(embeddings, lambda e: e.name)
    rows: list[list[Image.Image | None]] = []
    labels: list[str] = []
    for name, embs in by_image.items():
        by_v = {e.variant: e for e in embs}
        row: list[Image.Image | None] = [embs[0].target()]
        rows.append(row + [by_v[v].reconstruction() if v in by_v else None for v in variants])
        labels.append(f"{name}\n({embs[0].category})")
    return rows, labels


def add_comparison_grid(
    result: ExperimentResult,
    embeddings: Sequence[Embedding],
    variants: Sequence[str],
    path: Path,
    column_titles: Sequence[str],  # the original's column, then one per variant
    title: str,
    caption: str,
) -> None:
    """The side-by-side figure most experiments end with (Figs. 5, 9, 12, 16 layout): per image
    its target, then each variant's reconstruction. Nothing is drawn when no image succeeded."""
    rows, labels = comparison_rows(embeddings, variants)
    if rows:
        image_grid_figure(path, rows, column_titles, labels, title)
        result.figures.append(Figure(path, caption))
