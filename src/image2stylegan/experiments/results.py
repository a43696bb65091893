"""What an experiment measures and reports: embeddings read back, tables, the paper's claims
checked, figures. The report (report.py) is written from an `ExperimentResult` only.

Measurements (as the paper reports them):
- L: the final loss of the embedding objective (Eq. 1 unless the experiment changes it), on the
  0-255 pixel scale; tables print L / 1e5 beside the paper's "L (x10^5)".
- ||w* - w_avg||: the Frobenius norm of w* - w_avg over the whole [num_ws, w_dim] code (see
  measures.w_distance).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from .items import ImageItem

__all__ = ["LOSS_SCALE", "Claim", "Embedding", "ExperimentResult", "Figure", "Table"]

LOSS_SCALE = 1e5  # the paper prints losses as "L (x10^5)"


def _no_code() -> torch.Tensor:
    return torch.empty(0)


def _no_history() -> np.ndarray:
    return np.zeros((0, 3))


@dataclass
class Embedding:
    """One embedded image of one variant, read back from its output folder."""

    variant: str  # the variant folder name ("mean", "translate_right", "round_3", ...)
    item: ImageItem  # the image (its path is the file embedded)
    out_dir: Path  # DIR/embeddings/<variant>/<name>
    status: Literal["done", "reused", "failed"]  # embedded now, by an earlier run, or failed
    error: str | None = None
    ws: torch.Tensor = field(default_factory=_no_code)  # [num_ws, w_dim] w*; empty if failed
    losses: dict[str, float] = field(default_factory=dict)  # final terms: total, perceptual, mse
    history: np.ndarray = field(default_factory=_no_history)  # [steps, 3] per step
    w_dist: float = math.nan  # ||w* - w_avg|| (see measures.w_distance)

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    @property
    def name(self) -> str:
        return self.item.name

    @property
    def category(self) -> str:
        return self.item.category

    @property
    def loss(self) -> float:
        return float(self.losses.get("total", math.nan))

    @property
    def loss_e5(self) -> float:
        return self.loss / LOSS_SCALE

    def target(self) -> Image.Image:
        """The frame the loss saw (target.png)."""
        with Image.open(self.out_dir / "target.png") as im:
            return im.convert("RGB")

    def reconstruction(self) -> Image.Image:
        """G(w*) as the embedding wrote it (reconstruction.png)."""
        with Image.open(self.out_dir / "reconstruction.png") as im:
            return im.convert("RGB")

    def row(self, **extra: Any) -> dict[str, Any]:
        """The results.csv row of this embedding."""
        return {
            "variant": self.variant,
            "image": self.name,
            "category": self.category,
            "status": self.status,
            "loss": self.loss if self.ok else None,
            "loss_e5": self.loss_e5 if self.ok else None,
            "perceptual": self.losses.get("perceptual") if self.ok else None,
            "mse": self.losses.get("mse") if self.ok else None,
            "w_dist": self.w_dist if self.ok else None,
            "steps": len(self.history) if self.ok else None,
            **extra,
            "error": self.error or "",
        }


@dataclass
class Table:
    """A table of the report: rows of values (numbers stay numbers; the report formats them)."""

    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def get(self, row_key: Any, column: str) -> Any:
        """The cell in the row whose first cell is `row_key`."""
        j = self.columns.index(column)
        for row in self.rows:
            if row[0] == row_key:
                return row[j]
        raise KeyError(row_key)


@dataclass
class Claim:
    """One of the paper's observations and what this run found."""

    source: str  # where the paper says it ("Sec. 5.3, Fig. 10")
    paper: str  # the observation, in the paper's words where possible
    measured: str  # what this run measured (computed, with the numbers)
    holds: bool | None  # True / False, or None when this run cannot decide


@dataclass
class Figure:
    """A PNG written under DIR and its caption."""

    path: Path
    caption: str


@dataclass
class ExperimentResult:
    """Everything an experiment produced; the CLI writes results.csv and report.md from it."""

    rows: list[dict[str, Any]] = field(default_factory=list)  # results.csv, one dict per row
    tables: list[Table] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (what, one-line reason)
    extra: dict[str, Any] = field(default_factory=dict)  # analysis by-products for the figures

    def add_failures(self, embeddings: Iterable[Embedding]) -> None:
        for e in embeddings:
            if not e.ok:
                self.failures.append((f"{e.variant}/{e.name}", e.error or "failed"))
