"""How an experiment embeds: its variants through the one embed pipeline, into one folder.

Layout of an experiment folder `DIR` (the embed layout of SPEC section 4 per variant):

    DIR/inputs/<variant>/<image>.png                 frames made by the experiment (transformed,
                                                     defective, re-embedded; `original` = the
                                                     prepared photo, for reference)
    DIR/embeddings/<variant>/<image>/latent.npz      + target.png, reconstruction.png, losses.csv
    DIR/embeddings/<variant>/settings.json           what the variant was embedded with
    DIR/results.csv, DIR/*.png, DIR/report.md

An input photo is prepared once (`embed.targets.prepare_target`: the embed command's recipe,
FFHQ-aligned when the run aligns, except the paper's non-face categories) and embedded as that
photo, so its latent file records what `image2stylegan embed` would. Frames the experiment makes
are embedded as they are. Re-running the same command reuses finished embeddings and resumes
unfinished ones from their checkpoints.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..embed import EmbedConfig, Embedder, content_box
from ..embed.embedder import TargetLoss
from ..embed.pipeline import EmbedPipeline
from ..embed.records import OutputPaths
from ..embed.runner import BatchProgress, EmbedJob, JobOutcome
from ..embed.targets import Target, prepare_target
from ..errors import I2SError
from ..fileio import atomic_write_text, sha256_file
from ..image import load_image, save_image
from ..latents import load_latent
from ..losses import Image2StyleGANLoss
from ..models.base import Generator
from .items import NON_FACE_CATEGORIES, ImageItem, category_of
from .measures import read_losses_csv, w_distance
from .results import Embedding

__all__ = ["ExperimentContext", "ExperimentError"]

logger = logging.getLogger(__name__)


class ExperimentError(I2SError):
    """An experiment cannot run as asked (its message says what to change)."""


@dataclass
class ExperimentContext:
    """The loaded run (generator, base `EmbedConfig`: the paper's defaults with the user's
    options applied, VGG-16) and the experiment folder. Experiments derive their variants from
    `config` with `config.replace(...)`."""

    pipeline: EmbedPipeline
    out: Path  # the experiment folder DIR
    on_report: Callable[[BatchProgress], None] | None = None  # progress of each embedding batch
    _targets: dict[Path, Target] = field(default_factory=dict, init=False, repr=False)

    # --- building blocks -----------------------------------------------------------------------

    @property
    def G(self) -> Generator:  # noqa: N802 - the paper's G
        return self.pipeline.G

    @property
    def config(self) -> EmbedConfig:
        return self.pipeline.config

    @property
    def device(self) -> torch.device:
        return self.pipeline.device

    @property
    def resolution(self) -> int:
        return self.G.img_resolution

    def loss_fn(self, config: EmbedConfig | None = None) -> Image2StyleGANLoss:
        """The per-image loss `config` describes (Eq. 1 by default), on the shared VGG-16."""
        return self.pipeline.loss_fn(config)

    def content_box(self, G: Generator | None = None) -> tuple[int, int, int, int] | None:
        return content_box((G or self.G).img_resolution, self.pipeline.content_size)

    def embedder(
        self,
        config: EmbedConfig | None = None,
        G: Generator | None = None,
        loss_fn: TargetLoss | None = None,
    ) -> Embedder:
        """An `Embedder` for `config` (default: the base config) on `G` (default: the trained
        generator); `loss_fn` replaces the loss `config` describes."""
        return self.pipeline.embedder(config, G=G, loss_fn=loss_fn)

    # --- inputs --------------------------------------------------------------------------------

    def inputs_dir(self, variant: str) -> Path:
        return self.out / "inputs" / variant

    def aligns(self, item: ImageItem) -> bool:
        """Whether `item` is FFHQ-aligned: when the run aligns, except the paper's non-face
        categories (Sec. 3.1 aligns the faces only)."""
        return self.pipeline.align and item.category not in NON_FACE_CATEGORIES

    def prepare(
        self, items: Sequence[ImageItem], size: int | None = None, landmarks: bool = False
    ) -> tuple[list[tuple[ImageItem, Target]], list[tuple[str, str]]]:
        """Every image as the frame the loss sees (`prepare_target`, at `size` px, default the
        generator's), with the 68 dlib landmarks in frame pixels when asked for.

        Returns the prepared (item, target) pairs and the failures (name, one-line reason).
        """
        size = size or self.resolution
        content = self.pipeline.content_size
        if content is not None and size != self.resolution:  # the valid region at this size
            scale = size / self.resolution
            content = (round(content[0] * scale), round(content[1] * scale))
        done, failed = [], []
        for item in items:
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    target = prepare_target(
                        item.path,
                        size,
                        align=self.aligns(item),
                        fit=self.pipeline.options.fit,
                        content_size=content,
                        landmarks=landmarks,
                    )
                for w in caught:
                    logger.warning("%s: %s", item.path.name, w.message)
            except I2SError as e:
                failed.append((item.name, str(e)))
                logger.error("%s", e)
                continue
            done.append((item, target))
        return done, failed

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

    def prepare_inputs(
        self, items: Sequence[ImageItem]
    ) -> tuple[list[ImageItem], list[tuple[str, str]]]:
        """`prepare` every photo at the generator's size (kept for `embed` and `frame`, and
        written to DIR/inputs/original/ for reference); returns the usable items and failures."""
        prepared, failed = self.prepare(items)
        for item, target in prepared:
            self._targets[item.path] = target
            self.write_input("original", item.name, target.frame)
        return [item for item, _ in prepared], failed

    def frame(self, item: ImageItem) -> Image.Image:
        """The frame the loss sees for `item`: its prepared photo, or a frame the experiment
        wrote (DIR/inputs/...)."""
        target = self._targets.get(item.path)
        return target.frame if target is not None else load_image(item.path)

    # --- embedding -----------------------------------------------------------------------------

    def embed(
        self,
        jobs: Sequence[tuple[str, ImageItem]],
        embedder: Embedder | None = None,
        metadata: dict[str, Any] | None = None,
        label: str = "",
    ) -> list[Embedding]:
        """Embed each (variant, image) with one embedder (one config, batched) into
        DIR/embeddings/<variant>/<name>/, reusing finished ones; returns them in order.
        `metadata`: notes added to the variant's latent files (e.g. a changed loss)."""
        embedder = embedder or self.embedder()
        record = self.pipeline.record(metadata)
        settings = self._settings(embedder.config, record)
        run_jobs = [self._job(variant, item) for variant, item in jobs]
        for variant in dict.fromkeys(v for v, _ in jobs):
            self._check_settings(variant, settings)
        for job in run_jobs:
            self._check_input(job)
        if label:
            logger.info("%s: %d embedding(s), %d steps each", label, len(run_jobs),
                        embedder.config.steps)  # fmt: skip
        outcomes = self.pipeline.run(run_jobs, embedder, record=metadata, on_report=self.on_report)
        w_avg = embedder.w_avg.detach().cpu()
        return [
            self._read(variant, item, outcome, w_avg)
            for (variant, item), outcome in zip(jobs, outcomes, strict=True)
        ]

    def _job(self, variant: str, item: ImageItem) -> EmbedJob:
        root = self.out / "embeddings" / variant
        paths = OutputPaths.folder(root / item.name)
        target = self._targets.get(item.path)
        if target is not None:  # a prepared photo
            return EmbedJob(item.path, paths, item.name, align=target.aligned, frame=target.frame,
                            root=root)  # fmt: skip
        # a frame the experiment made: embedded as it is
        return EmbedJob(item.path, paths, item.name, align=False, frame=load_image(item.path),
                        root=root)  # fmt: skip

    def _settings(self, config: EmbedConfig, record: dict[str, Any]) -> dict[str, Any]:
        init = self.pipeline.init
        return {
            "config": config.fingerprint(),
            "generator": str(record.get("generator_sha256") or record.get("generator", "")),
            "vgg": str(record.get("vgg", "")),
            "loss": str(record.get("loss_note", "")),
            "init_file": (
                float(init.double().sum()) if config.init == "file" and init is not None else None
            ),
        }

    def _check_settings(self, variant: str, settings: dict[str, Any]) -> None:
        folder = self.out / "embeddings" / variant
        path = folder / "settings.json"
        if path.exists() and not self.pipeline.options.overwrite:
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

    def _check_input(self, job: EmbedJob) -> None:
        """A finished embedding of a different frame (e.g. after changing --align) is stale."""
        done = job.paths.latent
        if self.pipeline.options.overwrite or not done.exists() or not job.source.exists():
            return
        try:
            meta = load_latent(done).metadata
        except I2SError:
            return
        recorded = (meta.get("image_sha256"), meta.get("aligned"), meta.get("fit"))
        ours = (sha256_file(job.source), job.align, self.pipeline.options.fit)
        if recorded[0] and recorded != ours:
            raise ExperimentError(
                f"{job.out_dir} holds the embedding of another input frame; re-run with the "
                "same options, use another --out, or pass --overwrite"
            )

    def _read(
        self, variant: str, item: ImageItem, outcome: JobOutcome, w_avg: torch.Tensor
    ) -> Embedding:
        out_dir = Path(outcome.out_dir)
        if outcome.status == "failed" or outcome.latent is None:
            return Embedding(variant, item, out_dir, "failed", error=outcome.error or "failed")
        latent = load_latent(outcome.latent)
        ws = latent.w[0]  # [num_ws, w_dim]
        losses = {k: float(v) for k, v in latent.metadata.get("final_loss", {}).items()}
        return Embedding(
            variant,
            item,
            out_dir,
            "reused" if outcome.status == "skipped" else "done",
            ws=ws,
            losses=losses,
            history=read_losses_csv(out_dir / "losses.csv"),
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
