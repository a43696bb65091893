"""What every experiment shares: image sets with categories, batched resumable embedding through
`embed_files`, the paper's measurements, and the result types the report is written from.

Layout of an experiment folder `DIR` (the embed layout of SPEC section 4 per variant):

    DIR/inputs/<variant>/<image>.png                 the exact frame embedded (aligned, fitted,
                                                     transformed: what the loss saw)
    DIR/embeddings/<variant>/<image>/latent.npz      + target.png, reconstruction.png, losses.csv
    DIR/embeddings/<variant>/settings.json           what the variant was embedded with
    DIR/results.csv, DIR/*.png, DIR/report.md

Re-running the same command reuses finished embeddings and resumes unfinished ones from their
checkpoints, so an interrupted experiment continues where it stopped.

Measurements (as the paper reports them):
- L: the final loss of the embedding objective (Eq. 1 unless the experiment changes it), on the
  0-255 pixel scale; tables print L / 1e5 beside the paper's "L (x10^5)".
- ||w* - w_avg||: the Frobenius norm of w* - w_avg over the whole [num_ws, w_dim] code, w_avg
  broadcast to every layer (for W / Z embeddings w* is the broadcast W+ code). For the paper's
  18 x 512 code this is sqrt(sum over the 18 layers of ||w*_i - w_avg||^2).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
import types
import typing
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..embed import EmbedConfig, Embedder, build_loss, content_box
from ..embed.runner import EmbedJob, JobOutcome, embed_files
from ..errors import I2SError
from ..fileio import atomic_write_text, sha256_file
from ..image import fit_image, load_image, pil_to_tensor, save_image
from ..latents import load_latent
from ..models.base import Generator
from .paper_numbers import CATEGORY_ORDER

__all__ = [
    "LOSS_SCALE",
    "NON_FACE_CATEGORIES",
    "Claim",
    "Embedding",
    "ExperimentContext",
    "ExperimentError",
    "ExperimentResult",
    "Figure",
    "ImageItem",
    "Table",
    "category_of",
    "category_rank",
    "category_table",
    "collect_items",
    "comparison_rows",
    "describe_params",
    "faces_or_all",
    "group_by",
    "load_frames",
    "mean",
    "name_list",
    "paired_check",
    "parse_params",
    "psnr",
    "read_losses_csv",
    "sort_items",
    "summary",
    "w_distance",
]

logger = logging.getLogger(__name__)

LOSS_SCALE = 1e5  # the paper prints losses as "L (x10^5)"
# Sec. 3.1: only the face images are aligned ("We use the code provided by StyleGAN to
# preprocess the face images"); images of these categories are only fitted to the frame.
NON_FACE_CATEGORIES = frozenset({"cat", "dog", "car", "painting"})

# File-name prefixes / folder names -> the paper's five categories (Sec. 3.1).
_CATEGORY_ALIASES = {
    "face": "face",
    "faces": "face",
    "human": "face",
    "humans": "face",
    "person": "face",
    "people": "face",
    "portrait": "face",
    "cat": "cat",
    "cats": "cat",
    "dog": "dog",
    "dogs": "dog",
    "car": "car",
    "cars": "car",
    "painting": "painting",
    "paintings": "painting",
    "art": "painting",
}


class ExperimentError(I2SError):
    """An experiment cannot run as asked (its message says what to change)."""


# ---------------------------------------------------------------------------------------------
# Image sets


@dataclass(frozen=True)
class ImageItem:
    """One image of an experiment: its file, a unique name and its category."""

    path: Path  # the image file
    name: str  # unique within the experiment (output folders are named by it)
    category: str  # "face", "cat", "dog", "car", "painting" or another word (see category_of)


def category_of(path: str | Path) -> str:
    """The image's category: its file-name prefix if that names one of the paper's categories
    (`face_01.jpg`, `cats-3.png`), else its folder's name if that does (`dogs/x.jpg`), else the
    file-name prefix as it is, else "other". Plurals and a few synonyms map to the paper's five
    (face, cat, dog, car, painting)."""
    path = Path(path)
    match = re.match(r"[A-Za-z]+", path.stem)
    prefix = match.group(0).lower() if match else ""
    if prefix in _CATEGORY_ALIASES:
        return _CATEGORY_ALIASES[prefix]
    folder = path.parent.name.lower()
    if folder in _CATEGORY_ALIASES:
        return _CATEGORY_ALIASES[folder]
    return prefix or "other"


def collect_items(paths: Iterable[str | Path]) -> list[ImageItem]:
    """ImageItems for image files in the given order; names are file stems, de-duplicated as the
    embed runner does (`photo`, `photo-2`, ...)."""
    seen: dict[str, int] = {}
    items = []
    for p in paths:
        p = Path(p)
        stem = p.stem or "image"
        seen[stem] = seen.get(stem, 0) + 1
        name = stem if seen[stem] == 1 else f"{stem}-{seen[stem]}"
        items.append(ImageItem(p, name, category_of(p)))
    return items


def category_rank(category: str) -> tuple[int, str]:
    """Sort key: the paper's category order (Fig. 17), then other categories alphabetically."""
    if category in CATEGORY_ORDER:
        return (CATEGORY_ORDER.index(category), "")
    return (len(CATEGORY_ORDER), category)


def sort_items(items: Iterable[Any]) -> list[Any]:
    """Items (anything with `.category` and `.name`) grouped by category in the paper's order."""
    return sorted(items, key=lambda it: (category_rank(it.category), it.name))


# ---------------------------------------------------------------------------------------------
# Measurements


def w_distance(ws: torch.Tensor, w_avg: torch.Tensor) -> float:
    """||w* - w_avg||: Frobenius norm over the [num_ws, w_dim] code, w_avg [w_dim] broadcast."""
    ws = ws.detach().double().cpu().reshape(-1, ws.shape[-1])  # [num_ws, w_dim]
    return float((ws - w_avg.detach().double().cpu()).norm())


def mean(values: Iterable[float | None]) -> float | None:
    """Mean of the finite values, None if there are none."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return sum(vals) / len(vals) if vals else None


def read_losses_csv(path: str | Path) -> np.ndarray:
    """losses.csv (step, total, perceptual, mse, elapsed_s) -> [steps, 3] (total, perc., mse)."""
    rows = Path(path).read_text().strip().splitlines()[1:]
    if not rows:
        return np.zeros((0, 3))
    data = np.array([[float(x) for x in r.split(",")[1:4]] for r in rows], dtype=np.float64)
    return data.reshape(-1, 3)


@dataclass
class Embedding:
    """One embedded image of one variant, read back from its output folder."""

    variant: str  # the variant folder name ("mean", "translate_right", "round_3", ...)
    item: ImageItem  # the image (its path is the frame embedded)
    out_dir: Path  # DIR/embeddings/<variant>/<name>
    status: str  # "done" (embedded now), "reused" (finished by an earlier run), "failed"
    error: str | None = None
    ws: torch.Tensor | None = None  # [num_ws, w_dim] w* (W+ code)
    losses: dict[str, float] = field(default_factory=dict)  # final terms: total, perceptual, mse
    history: np.ndarray | None = None  # [steps, 3] (total, perceptual, mse) per step
    w_dist: float = math.nan  # ||w* - w_avg|| (see w_distance)

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
            "steps": len(self.history) if self.history is not None else None,
            **extra,
            "error": self.error or "",
        }


# ---------------------------------------------------------------------------------------------
# Results (what the report is written from)


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


# ---------------------------------------------------------------------------------------------
# Experiment parameters


def parse_params(cls: type, pairs: Sequence[str]) -> Any:
    """Build the experiment's frozen params dataclass from `KEY=VALUE` strings (the CLI's
    `--param`), converting each value to the field's type; raises ValueError naming the key."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ValueError(f"{pair!r}: expected KEY=VALUE")
        if key not in fields:
            known = ", ".join(fields) or "none"
            raise ValueError(f"unknown parameter {key!r} (this experiment takes: {known})")
        try:
            values[key] = _convert(raw.strip(), hints[key])
        except ValueError as e:
            raise ValueError(f"parameter {key}={raw!r}: {e}") from None
    try:
        return cls(**values)
    except (TypeError, ValueError) as e:
        raise ValueError(str(e)) from None


def _convert(raw: str, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if raw.lower() in ("none", "") and len(args) < len(typing.get_args(hint)):
            return None
        return _convert(raw, args[0])
    if origin is tuple:
        (inner, *_rest) = typing.get_args(hint)
        return tuple(_convert(s.strip(), inner) for s in raw.split(",") if s.strip())
    if origin is typing.Literal:
        choices = typing.get_args(hint)
        if raw not in choices:
            raise ValueError(f"choose one of {', '.join(map(str, choices))}")
        return raw
    if hint is bool:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError("expected true or false")
    if hint is int:
        return int(raw)
    if hint is float:
        return float(raw)
    return raw


def describe_params(cls: type) -> list[tuple[str, str, Any]]:
    """(name, type, default) of each field of a params dataclass (for --list)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        out.append((f.name, _type_name(hints[f.name]), f.default))
    return out


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return "|".join(map(str, typing.get_args(hint)))
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in typing.get_args(hint) if a is not type(None)]
        return " or ".join(names) + (" or none" if type(None) in typing.get_args(hint) else "")
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


# ---------------------------------------------------------------------------------------------
# The context: one generator, one base config, one output folder


@dataclass
class ExperimentContext:
    """How an experiment embeds: the generator, the base `EmbedConfig` (the paper's defaults with
    the user's options applied), the VGG weights and the output folder. Experiments derive their
    variants from `config` with `config.replace(...)`."""

    G: Generator  # the trained generator (eval mode, frozen)
    config: EmbedConfig  # base settings of Algorithm 1
    out: Path  # the experiment folder DIR
    vgg: Any = "vgg16-caffe"  # VGG-16 source (registry name, file, "random") or a loaded module
    metadata: dict[str, Any] = field(default_factory=dict)  # recorded in every latent.npz
    align: bool = False  # FFHQ-align the inputs (not the cat/dog/car/painting ones) first
    video: bool = False  # also write each embedding's progress.mp4
    video_every: int = 25  # steps between its frames
    fit: str = "crop"  # how a non-square photo becomes the generator frame
    content_size: tuple[int, int] | None = None  # valid region of non-square generators
    init: torch.Tensor | None = None  # start code when config.init == "file"
    batch_size: int = 1  # images optimised together
    overwrite: bool = False  # redo finished embeddings
    checkpoint_every: int = 250  # steps between resume checkpoints
    progress: bool = False  # progress bars (tqdm, on stderr)
    log: Callable[[str], None] = logger.info  # one line per stage
    _vgg_module: Any = field(default=None, init=False, repr=False)

    # --- building blocks -----------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return self.G.w_avg.device

    @property
    def resolution(self) -> int:
        return self.G.img_resolution

    def vgg_module(self) -> Any:
        """The VGG-16, loaded once and shared by every variant."""
        if isinstance(self.vgg, torch.nn.Module):
            return self.vgg
        if self._vgg_module is None:
            from ..checkpoints.vgg_weights import load_vgg16

            self._vgg_module = load_vgg16(self.vgg, device=self.device)
        return self._vgg_module

    def loss_fn(self, config: EmbedConfig) -> Any:
        """The per-image loss `config` describes (Eq. 1 by default), on the shared VGG."""
        needs_vgg = "perceptual" in config.loss_terms
        return build_loss(config, self.vgg_module() if needs_vgg else "random", self.device)

    def content_box(self, G: Generator | None = None) -> tuple[int, int, int, int] | None:
        return content_box((G or self.G).img_resolution, self.content_size)

    def embedder(
        self, config: EmbedConfig | None = None, G: Generator | None = None, loss_fn: Any = None
    ) -> Embedder:
        """An `Embedder` for `config` (default: the base config) on `G` (default: the trained
        generator); `loss_fn` replaces the loss `config` describes."""
        config = config or self.config
        G = G or self.G
        return Embedder(G, loss_fn or self.loss_fn(config), config, self.content_box(G))

    # --- inputs --------------------------------------------------------------------------------

    def inputs_dir(self, variant: str) -> Path:
        return self.out / "inputs" / variant

    def prepare(
        self, items: Sequence[ImageItem], size: int | None = None, landmarks: bool = False
    ) -> tuple[list[tuple[ImageItem, Image.Image, np.ndarray | None]], list[tuple[str, str]]]:
        """Decode (+ align) + fit every image to a square frame of `size` px (default: the
        generator's); with `landmarks`, also the 68 dlib landmarks [68, 2] in frame pixels.
        With `align`, images of the paper's non-face categories (NON_FACE_CATEGORIES) are
        fitted without alignment, as in the paper.

        Returns the prepared (item, frame, landmarks) and the failures (name, one-line reason).
        """
        size = size or self.resolution
        done, failed = [], []
        for item in items:
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    frame, lm = self._prepare_one(item, size, landmarks)
                for w in caught:
                    self.log(f"warning: {w.message}")
            except I2SError as e:
                failed.append((item.name, str(e)))
                self.log(f"error: {e}")
                continue
            done.append((item, frame, lm))
        return done, failed

    def _prepare_one(
        self, item: ImageItem, size: int, landmarks: bool
    ) -> tuple[Image.Image, np.ndarray | None]:
        from .. import align as A

        img = load_image(item.path)
        name = str(item.path)
        content = None  # non-square generators: the valid region at this frame size
        if self.content_size is not None:
            if landmarks:
                raise ExperimentError(
                    f"{name}: face landmarks need a square generator frame (this one's content "
                    f"is {self.content_size[0]}x{self.content_size[1]})"
                )
            scale = size / self.resolution
            content = (round(self.content_size[0] * scale), round(self.content_size[1] * scale))
        fit = self.fit
        if self.align and item.category not in NON_FACE_CATEGORIES:
            # the embed runner's recipe: align straight to the frame (at least 64 px), then fit
            side = max(size, 64)
            face = A.select_face(A.detect_faces(img), "largest", name)
            aligned = A.apply_alignment(img, face.quad, output_size=side)
            frame = fit_image(aligned, (size, size), fit, content_size=content)  # type: ignore[arg-type]
            if not landmarks:
                return frame, None
            lm = A.source_to_aligned(face.landmarks, face.quad, side)
            return frame, (lm + 0.5) * (size / side) - 0.5
        frame = fit_image(img, (size, size), fit, content_size=content)  # type: ignore[arg-type]
        if not landmarks:
            return frame, None
        # dlib needs faces of ~40+ px: detect on a frame of at least 256 px, then scale
        side = max(size, 256)
        big = frame if side == size else fit_image(img, (side, side), self.fit)  # type: ignore[arg-type]
        face = A.select_face(A.detect_faces(big), "largest", name)
        return frame, (face.landmarks + 0.5) * (size / side) - 0.5

    def write_input(self, variant: str, name: str, image: Image.Image) -> ImageItem:
        """Save a frame to embed as DIR/inputs/<variant>/<name>.png (rewritten only if changed)."""
        path = self.inputs_dir(variant) / f"{name}.png"
        image = image.convert("RGB")
        if path.exists():
            try:
                with Image.open(path) as old:
                    if old.size == image.size and np.array_equal(
                        np.asarray(old), np.asarray(image)
                    ):
                        return ImageItem(path, name, category_of(path))
            except OSError:
                pass
        save_image(image, path)
        return ImageItem(path, name, category_of(path))

    def prepare_inputs(self, items: Sequence[ImageItem]) -> tuple[list[ImageItem], list]:
        """`prepare` every image at the generator's size into DIR/inputs/original/; returns the
        prepared items (same names and categories) and the failures."""
        prepared, failed = self.prepare(items)
        out = []
        for item, frame, _ in prepared:
            saved = self.write_input("original", item.name, frame)
            out.append(ImageItem(saved.path, item.name, item.category))
        return out, failed

    # --- embedding -----------------------------------------------------------------------------

    def embed(
        self,
        jobs: Sequence[tuple[str, ImageItem]],
        embedder: Embedder | None = None,
        metadata: dict[str, Any] | None = None,
        label: str = "",
    ) -> list[Embedding]:
        """Embed each (variant, image) with one embedder (one config, batched) into
        DIR/embeddings/<variant>/<name>/, reusing finished ones; returns them in order."""
        embedder = embedder or self.embedder()
        meta = {**self.metadata, **(metadata or {})}
        cfg = embedder.config
        settings = {
            "config": cfg.fingerprint(),
            "generator": str(meta.get("generator_sha256") or meta.get("generator", "")),
            "vgg": str(meta.get("vgg", "")),
            "loss": str(meta.get("loss_note", "")),
            "init_file": (
                float(self.init.double().sum())
                if cfg.init == "file" and self.init is not None
                else None
            ),
        }
        run_jobs = [
            EmbedJob(item.path, self.out / "embeddings" / v / item.name) for v, item in jobs
        ]
        for variant in dict.fromkeys(v for v, _ in jobs):
            self._check_settings(variant, settings)
        for (variant, _), job in zip(jobs, run_jobs, strict=True):
            self._check_input(variant, job)
        if label:
            self.log(f"{label}: {len(run_jobs)} embedding(s), {cfg.steps} steps each")
        outcomes = embed_files(
            run_jobs,
            embedder,
            metadata=meta,
            batch_size=self.batch_size,
            align=False,  # inputs are prepared frames already
            fit="crop",  # a no-op on frames of the generator's size
            content_size=None,
            init=self.init if cfg.init == "file" else None,
            overwrite=self.overwrite,
            checkpoint_every=self.checkpoint_every,
            video=self.video,
            video_every=self.video_every,
            progress=self.progress,
            log=self.log,
        )
        w_avg = embedder.w_avg.detach().cpu()
        return [
            self._read(variant, item, outcome, w_avg)
            for (variant, item), outcome in zip(jobs, outcomes, strict=True)
        ]

    def _check_settings(self, variant: str, settings: dict[str, Any]) -> None:
        folder = self.out / "embeddings" / variant
        path = folder / "settings.json"
        if path.exists() and not self.overwrite:
            try:
                old = json.loads(path.read_text())
            except ValueError:
                old = None
            if old != settings:
                raise ExperimentError(
                    f"{folder} was embedded with other settings; re-run with the same options, "
                    "use another --out, or pass --overwrite to redo it"
                )
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(settings, sort_keys=True, indent=1) + "\n")

    def _check_input(self, variant: str, job: EmbedJob) -> None:
        """A finished embedding of a different frame (e.g. after changing --align) is stale."""
        done = job.out_dir / "latent.npz"
        if self.overwrite or not done.exists() or not job.source.exists():
            return
        try:
            recorded = load_latent(done).metadata.get("image_sha256")
        except I2SError:
            return
        if recorded and recorded != sha256_file(job.source):
            raise ExperimentError(
                f"{job.out_dir} holds the embedding of another input frame; re-run with the "
                "same options, use another --out, or pass --overwrite"
            )

    def _read(
        self, variant: str, item: ImageItem, outcome: JobOutcome, w_avg: torch.Tensor
    ) -> Embedding:
        out_dir = Path(outcome.out_dir)
        if outcome.status == "failed":
            return Embedding(variant, item, out_dir, "failed", error=outcome.error)
        latent = load_latent(out_dir / "latent.npz")
        ws = latent.w[0]  # [num_ws, w_dim]
        losses = {k: float(v) for k, v in latent.metadata.get("final_loss", {}).items()}
        history = read_losses_csv(out_dir / "losses.csv")
        return Embedding(
            variant,
            item,
            out_dir,
            "reused" if outcome.status == "skipped" else "done",
            ws=ws,
            losses=losses,
            history=history,
            w_dist=w_distance(ws, w_avg),
        )

    # --- evaluation ----------------------------------------------------------------------------

    @torch.no_grad()
    def synthesize(
        self, ws: torch.Tensor, G: Generator | None = None, batch: int = 8
    ) -> torch.Tensor:
        """G(ws) with the stored constant noise: ws [N, num_ws, w_dim] -> [N, C, H, W] (CPU)."""
        G = G or self.G
        out = []
        for k in range(0, ws.shape[0], batch):
            chunk = ws[k : k + batch].to(self.device, torch.float32)
            out.append(G.synthesis(chunk, noise_mode="const").float().cpu())
        return torch.cat(out)

    @torch.no_grad()
    def evaluate(
        self,
        images: torch.Tensor,  # [N, 3, H, W] in [-1, 1]
        targets: torch.Tensor,  # [N, 3, H, W] in [-1, 1]
        config: EmbedConfig | None = None,
        batch: int = 8,
    ) -> dict[str, np.ndarray]:
        """The loss terms `config` describes (default: the base config) of images vs targets,
        on the valid region: {"total", "perceptual", "mse"} each [N] on the 0-255 scale."""
        loss = self.loss_fn(config or self.config)
        box = self.content_box()
        terms: dict[str, list[np.ndarray]] = {}
        for k in range(0, images.shape[0], batch):
            img = images[k : k + batch].to(self.device)
            tgt = targets[k : k + batch].to(self.device)
            if box is not None:
                x0, y0, x1, y1 = box
                img, tgt = img[..., y0:y1, x0:x1], tgt[..., y0:y1, x0:x1]
            for key, value in loss(img, tgt).items():
                terms.setdefault(key, []).append(value.double().cpu().numpy())
        return {k: np.concatenate(v) for k, v in terms.items()}


def load_frames(paths: Sequence[Path]) -> torch.Tensor:
    """PNG frames -> [N, 3, H, W] in [-1, 1]."""
    frames = []
    for p in paths:
        with Image.open(p) as im:
            frames.append(pil_to_tensor(im.convert("RGB")))
    return torch.cat(frames)


def group_by(embeddings: Iterable[Embedding], key: Callable[[Embedding], Any]) -> dict[Any, list]:
    """The successful embeddings grouped by `key`, groups in first-seen order."""
    groups: dict[Any, list[Embedding]] = {}
    for e in embeddings:
        if e.ok:
            groups.setdefault(key(e), []).append(e)
    return groups


def summary(embeddings: Sequence[Embedding]) -> tuple[float | None, float | None, int]:
    """(mean L / 1e5, mean ||w* - w_avg||, number of images) of successful embeddings."""
    ok = [e for e in embeddings if e.ok]
    return mean(e.loss_e5 for e in ok), mean(e.w_dist for e in ok), len(ok)


def faces_or_all(items: Sequence[ImageItem], all_images: bool) -> tuple[list[ImageItem], str]:
    """The face images (or all when asked or when there are none) and a note saying which."""
    if all_images:
        return list(items), "All images are used (all_images=true)."
    faces = [it for it in items if it.category == "face"]
    if faces:
        return faces, f"{len(faces)} face image(s) used (the paper uses faces)."
    return list(items), "No face images (file names face_*) given: all images are used instead."


def category_table(
    title: str,
    embeddings: Sequence[Embedding],
    variants: Sequence[tuple[str, str]],  # (variant, column label)
    value: Callable[[Embedding], float] = lambda e: e.loss_e5,
    unit: str = "L x1e5",
) -> Table:
    """Mean `value` per category (rows, plus "all") and variant (columns)."""
    from collections import defaultdict

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


def comparison_rows(
    embeddings: Sequence[Embedding], variants: Sequence[str]
) -> tuple[list[list[Image.Image | None]], list[str]]:
    """Grid rows per image: its target, then the reconstruction of each variant."""
    by_image = group_by(embeddings, lambda e: e.name)
    rows, labels = [], []
    for name, embs in by_image.items():
        by_v = {e.variant: e for e in embs}
        rows.append(
            [embs[0].target()] + [by_v[v].reconstruction() if v in by_v else None for v in variants]
        )
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
    from .figures import image_grid_figure

    rows, labels = comparison_rows(embeddings, variants)
    if rows:
        image_grid_figure(path, rows, column_titles, labels, title)
        result.figures.append(Figure(path, caption))


def paired_check(
    embeddings: Sequence[Embedding],
    better: str,
    worse: str,
    value: Callable[[Embedding], float] = lambda e: e.loss,
) -> tuple[int, int, list[str]]:
    """Per image, is `value` (default: the final loss) of variant `better` below that of `worse`?
    Returns (images where it is, images with both variants, names where it is not)."""
    losses: dict[str, dict[str, float]] = {}
    for e in embeddings:
        if e.ok:
            losses.setdefault(e.name, {})[e.variant] = value(e)
    both = {n: v for n, v in losses.items() if better in v and worse in v}
    fails = [n for n, v in both.items() if not v[better] < v[worse]]
    return len(both) - len(fails), len(both), fails


def psnr(mse: float | None) -> float | None:
    """PSNR in dB of an MSE on the 0-255 scale (None stays None)."""
    if mse is None or not math.isfinite(mse):
        return None
    return math.inf if mse <= 0 else 10 * math.log10(255.0**2 / mse)


def name_list(names: Sequence[str], limit: int = 6) -> str:
    """'a, b, c' with at most `limit` names ('..., +3 more')."""
    shown = ", ".join(names[:limit])
    return shown + (f", +{len(names) - limit} more" if len(names) > limit else "")
