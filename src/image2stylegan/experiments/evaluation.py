"""`image2stylegan evaluate`: the reconstruction metrics of embedding runs as one table.

Each run folder (the `--out` of `embed`, an experiment's `embeddings/<variant>/`, or any folder
above them) is searched for latent files in the embed layout (`<image>/latent.npz` beside
`target.png` and `reconstruction.png`). An image's metrics are the ones its latent metadata
recorded (`embed.evaluation`), or, for runs made without them (or with `recompute`), measured
again from its PNG files (and `mask.png`). The table follows the protocol of the inversion
literature on CelebA-HQ: PSNR (dB, higher is better), SSIM (higher), LPIPS (VGG, lower), identity
similarity ID (cosine of dlib face descriptors, higher), and the optimisation time per image, as
mean ± sample standard deviation per category (the paper's categories from file names, as the
experiments read them) and over all images.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import I2SError
from ..latents import load_latent
from ..metrics import FaceIdentity, LPIPSMetric, reconstruction_metrics
from .items import category_of, category_rank

__all__ = [
    "COLUMNS",
    "ImageMetrics",
    "RunSummary",
    "collect_run",
    "find_records",
    "summarise",
    "summary_csv",
    "summary_markdown",
]

# (metric key, column title, better direction): the CelebA-HQ-style table of inversion papers
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("psnr", "PSNR (dB) ↑", "higher"),
    ("ssim", "SSIM ↑", "higher"),
    ("lpips", "LPIPS ↓", "lower"),
    ("id", "ID ↑", "higher"),
    ("time_s", "time / image (s)", "lower"),
)


@dataclass
class ImageMetrics:
    """One embedded image's metrics."""

    name: str  # its output folder's name
    category: str  # face, cat, dog, car, painting, or another word (items.category_of)
    metrics: dict[str, float]  # psnr, ssim, mse, lpips, id, id_distance, time_s (those known)
    recomputed: bool = False  # measured from the PNG files, not read from the metadata


@dataclass
class RunSummary:
    """The metrics of one run folder and their aggregation."""

    label: str  # how the table names the run (the folder as given)
    images: list[ImageMetrics] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # records that could not be read

    def rows(self) -> list[tuple[str, int, dict[str, tuple[float, float] | None]]]:
        """(category, images, {metric: (mean, std) or None}) per category, then "all"."""
        groups: dict[str, list[ImageMetrics]] = {}
        for im in self.images:
            groups.setdefault(im.category, []).append(im)
        order = sorted(groups, key=category_rank)
        out = [(c, len(groups[c]), _stats(groups[c])) for c in order]
        if len(order) != 1:
            out.append(("all", len(self.images), _stats(self.images)))
        return out


def _stats(images: Sequence[ImageMetrics]) -> dict[str, tuple[float, float] | None]:
    out: dict[str, tuple[float, float] | None] = {}
    for key, _, _ in COLUMNS:
        vals = [im.metrics[key] for im in images if key in im.metrics]
        vals = [v for v in vals if math.isfinite(v)] or vals  # PSNR of a perfect copy is inf
        if not vals:
            out[key] = None
            continue
        a = np.asarray(vals, dtype=np.float64)
        std = float(a.std(ddof=1)) if a.size > 1 and np.isfinite(a).all() else 0.0
        out[key] = (float(a.mean()), std)
    return out


def find_records(folder: Path) -> list[Path]:
    """The latent files of the embed layout under `folder` (itself one image's, or a run's)."""
    folder = Path(folder)
    if (folder / "latent.npz").is_file():
        return [folder / "latent.npz"]
    return sorted(p for p in folder.rglob("latent.npz") if not _hidden(p, folder))


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def collect_run(
    folder: Path,
    *,
    recompute: bool = False,  # measure from the PNGs even when the metadata has metrics
    lpips: LPIPSMetric | None = None,  # used when measuring
    identity: FaceIdentity | None = None,  # used when measuring
    label: str | None = None,
) -> RunSummary:
    """Every embedded image of a run folder with its metrics."""
    run = RunSummary(label or str(folder))
    records = find_records(folder)
    if not records:
        raise I2SError(
            f"{folder}: no embeddings found (expected <image>/latent.npz beside target.png and "
            "reconstruction.png, as `image2stylegan embed --out` writes them)"
        )
    for latent_path in records:
        try:
            run.images.append(_image_metrics(latent_path, recompute, lpips, identity))
        except (I2SError, OSError, ValueError) as e:
            run.problems.append(f"{latent_path.parent}: {e}")
    return run


def _image_metrics(
    latent_path: Path,
    recompute: bool,
    lpips: LPIPSMetric | None,
    identity: FaceIdentity | None,
) -> ImageMetrics:
    folder = latent_path.parent
    meta = load_latent(latent_path).metadata
    image = str(meta.get("image") or folder.name)
    category = category_of(image)
    recorded = meta.get("metrics")
    if isinstance(recorded, dict) and recorded and not recompute:
        values = {str(k): float(v) for k, v in recorded.items()}
        return ImageMetrics(folder.name, category, values)
    target, recon = folder / "target.png", folder / "reconstruction.png"
    for p in (target, recon):
        if not p.is_file():
            raise I2SError(f"no {p.name} to measure")
    mask = folder / "mask.png"
    with Image.open(target) as t, Image.open(recon) as r:
        m = Image.open(mask).convert("L") if mask.is_file() else None
        values = reconstruction_metrics(t, r, mask=m, lpips=lpips, identity=identity)
    elapsed = meta.get("elapsed_s")
    if isinstance(recorded, dict) and "time_s" in recorded:
        values["time_s"] = float(recorded["time_s"])
    elif isinstance(elapsed, (int, float)):
        values["time_s"] = float(elapsed)
    return ImageMetrics(folder.name, category, values, recomputed=True)


def summarise(
    folders: Iterable[Path],
    *,
    recompute: bool = False,
    lpips: LPIPSMetric | None = None,
    identity: FaceIdentity | None = None,
) -> list[RunSummary]:
    """One summary per run: a folder given that holds several runs (an experiment folder, a
    folder of embed outputs) is split into its runs (the folders holding the image folders)."""
    runs = []
    for folder in map(Path, folders):
        records = find_records(folder)
        parents = sorted({p.parent.parent for p in records}) if records else [folder]
        if len(parents) <= 1:
            runs.append(collect_run(folder, recompute=recompute, lpips=lpips, identity=identity))
            continue
        for parent in parents:
            label = f"{folder}/{parent.relative_to(folder)}" if parent != folder else str(folder)
            run = RunSummary(label)
            for latent_path in (p for p in records if p.parent.parent == parent):
                try:
                    run.images.append(_image_metrics(latent_path, recompute, lpips, identity))
                except (I2SError, OSError, ValueError) as e:
                    run.problems.append(f"{latent_path.parent}: {e}")
            runs.append(run)
    return runs


def _cell(value: tuple[float, float] | None, key: str) -> str:
    if value is None:
        return "—"
    mean, std = value
    if not math.isfinite(mean):
        return "∞"
    digits = 2 if key in ("psnr", "time_s") else 4
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def summary_markdown(runs: Sequence[RunSummary]) -> str:
    """One Markdown table: a row per run and category, a column per metric (mean ± std)."""
    head = ["run", "category", "images", *(title for _, title, _ in COLUMNS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run in runs:
        for category, n, stats in run.rows():
            cells = [run.label, category, str(n), *(_cell(stats[k], k) for k, _, _ in COLUMNS)]
            lines.append("| " + " | ".join(cells) + " |")
    notes = [
        "PSNR, SSIM and MSE on the 8-bit target.png / reconstruction.png (over mask.png for "
        "masked embeddings); LPIPS (VGG) and ID (cosine similarity of dlib face descriptors) "
        "where their models were available (— otherwise); mean ± sample std over the images."
    ]
    for run in runs:
        notes += [f"{run.label}: not read: {p}" for p in run.problems]
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


def summary_csv(runs: Sequence[RunSummary]) -> str:
    """The table as CSV: mean and std in their own columns."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    header = ["run", "category", "images"]
    for key, _, _ in COLUMNS:
        header += [f"{key}_mean", f"{key}_std"]
    writer.writerow(header)
    for run in runs:
        for category, n, stats in run.rows():
            row: list[object] = [run.label, category, n]
            for key, _, _ in COLUMNS:
                v = stats[key]
                row += ["", ""] if v is None else [f"{v[0]:.6g}", f"{v[1]:.6g}"]
            writer.writerow(row)
    return out.getvalue()
