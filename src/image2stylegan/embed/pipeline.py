"""A loaded embedding run: what `RunOptions` name, loaded once, and the embed loop over it.

    options = RunOptions(generator="ffhq-1024", config=embed_config("paper", steps=1000))
    pipeline = load_pipeline(options)              # generator, start code; VGG-16 on first use
    outcomes = pipeline.run(plan_jobs(files, out)) # runner.embed_files with this run's record

The CLI (`embed`, `experiment`) loads one from its options, the web UI builds one from its
cached generator and VGG-16, and the experiments embed each variant through `run` / `iterate`
with a changed config (`embedder(config, G=..., loss_fn=...)`).
"""

from __future__ import annotations

import collections.abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..devices import resolve_device
from ..losses import Image2StyleGANLoss
from ..models.base import Generator
from ..models.vgg16 import VGG16Features
from .config import EmbedConfig
from .embedder import Embedder, TargetLoss
from .generators import GeneratorInfo, open_generator
from .options import RunOptions, check_init_fits, check_run_fits, read_init_latent
from .pti import PivotalTuner
from .records import run_record
from .runner import (
    BatchProgress,
    EmbedEvent,
    EmbedJob,
    JobOutcome,
    Metric,
    Stage,
    embed_files,
    iter_embed_files,
)

__all__ = ["EmbedPipeline", "load_pipeline"]


@dataclass
class EmbedPipeline:
    """The generator, the shared VGG-16 and the start code of one run, with its options."""

    options: RunOptions  # device resolved; align / content_size None = the generator's
    G: Generator  # frozen, on options.device
    generator: GeneratorInfo  # what the records say about G
    init: torch.Tensor | None = None  # start code from options.init_file
    vgg_module: VGG16Features | None = None  # loaded on first use unless given
    stages: list[Stage] = field(default_factory=list)  # after-optimisation steps per batch
    metrics: list[Metric] = field(default_factory=list)  # measurements per record; the
    # reconstruction metrics (PSNR, SSIM, MSE, LPIPS, ID: embed.evaluation) come first unless
    # options.metrics is off

    def __post_init__(self) -> None:
        if self.options.metrics:
            from . import content_box
            from .evaluation import ReconstructionMetric

            box = content_box(self.G.img_resolution, self.content_size)
            self.metrics.insert(0, ReconstructionMetric(box, auto=True, device=self.device))

    @property
    def config(self) -> EmbedConfig:
        return self.options.config

    @property
    def device(self) -> torch.device:
        return self.G.w_avg.device

    @property
    def align(self) -> bool:
        """--align, else the generator's default (on for the registry's face models)."""
        a = self.options.align
        return self.generator.default_align if a is None else a

    @property
    def content_size(self) -> tuple[int, int] | None:
        return self.options.content_size or self.generator.content_size

    def run_options(self) -> RunOptions:
        """The options with the generator's defaults filled in (what the runner reads)."""
        return self.options.replace(align=self.align, content_size=self.content_size)

    def vgg(self) -> VGG16Features:
        """The VGG-16 of the perceptual term, loaded once and shared by every variant."""
        if self.vgg_module is None:
            from ..checkpoints.vgg_weights import load_vgg16

            self.vgg_module = load_vgg16(self.options.vgg, device=self.device)
        return self.vgg_module

    def loss_fn(self, config: EmbedConfig | None = None) -> Image2StyleGANLoss:
        """The per-image loss `config` describes (default: the run's), on the shared VGG-16."""
        from . import build_loss

        config = config or self.config
        uses_vgg = "perceptual" in config.loss_terms
        return build_loss(config, self.vgg() if uses_vgg else self.options.vgg, self.device)

    def embedder(
        self,
        config: EmbedConfig | None = None,  # default: the run's config
        *,
        G: Generator | None = None,  # default: the run's generator
        loss_fn: TargetLoss | None = None,  # default: the loss `config` describes
        noise_loss_fn: TargetLoss | None = None,  # the noise stage's; default: config.noise_loss
    ) -> Embedder:
        from . import content_box

        config = config or self.config
        G = G or self.G
        box = content_box(G.img_resolution, self.content_size)
        if noise_loss_fn is None and _needs_eq1_noise_loss(config, loss_fn):
            noise_loss_fn = self.loss_fn(config.replace(loss="perceptual+mse"))
        return Embedder(G, loss_fn or self.loss_fn(config), config, box, noise_loss_fn)

    def tuner(self, embedder: Embedder) -> PivotalTuner | None:
        """The pivotal-tuning stage of `embedder`'s config (None when pti_steps is 0), on the
        run's VGG-16 (a shared tuning steps `batch_size` images at a time)."""
        if not embedder.config.pti_steps:
            return None
        from .pti import PivotalTuner

        return PivotalTuner(
            embedder.G,
            embedder.config,
            self.vgg,
            content_box=embedder.content_box,
            step_batch=self.options.batch_size,
        )

    def record(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """What every latent file of this run records besides its own image and result."""
        base = run_record(
            self.generator.record(self.G.architecture),
            preset=self.options.preset,
            vgg=self.options.vgg,
            device=str(self.device),
        )
        return {**base, **(extra or {})}

    def iterate(
        self,
        jobs: Sequence[EmbedJob],
        embedder: Embedder | None = None,  # default: self.embedder()
        *,
        record: Mapping[str, Any] | None = None,  # notes added to the run's record
        stop: Callable[[], bool] | None = None,
    ) -> collections.abc.Generator[EmbedEvent, None, None]:
        """`runner.iter_embed_files` over this run (events as they happen)."""
        embedder = embedder or self.embedder()
        return iter_embed_files(
            jobs, embedder, self.run_options(), record=self.record(record), init=self.init,
            stop=stop, stages=self.stages, metrics=self.metrics, tuner=self.tuner(embedder),
        )  # fmt: skip

    def run(
        self,
        jobs: Sequence[EmbedJob],
        embedder: Embedder | None = None,
        *,
        record: Mapping[str, Any] | None = None,
        on_report: Callable[[BatchProgress], None] | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> list[JobOutcome]:
        """`runner.embed_files` over this run: one outcome per job, in order."""
        embedder = embedder or self.embedder()
        return embed_files(
            jobs, embedder, self.run_options(), record=self.record(record), init=self.init,
            on_report=on_report, stop=stop, stages=self.stages, metrics=self.metrics,
            tuner=self.tuner(embedder),
        )  # fmt: skip


def _needs_eq1_noise_loss(config: EmbedConfig, loss_fn: TargetLoss | None) -> bool:
    """A perceptual+mse noise stage whose W+ loss is something else needs its own Eq. 1."""
    return (
        config.noise_steps > 0
        and config.noise_loss == "perceptual+mse"
        and (loss_fn is not None or config.loss != "perceptual+mse")
    )


def load_pipeline(options: RunOptions, progress: bool = True) -> EmbedPipeline:
    """Load what `options` name: the start code first (cheap checks before big downloads), then
    the generator on the resolved device. `progress`: download progress bars.

    Raises `OptionMismatchError` for options the generator cannot take (`InitMismatchError`, a
    `LatentError`, when the start code was made for another generator).
    """
    init = None
    if options.init_file is not None:
        init = read_init_latent(options.init_file, options.config.space)
    device = resolve_device(options.device)
    G, info = open_generator(options.generator, device=device, progress=progress)
    if init is not None and options.init_file is not None:
        check_init_fits(init, options.init_file, options.config.space, (G.num_ws, G.w_dim, G.z_dim))
    check_run_fits(options, G.img_resolution)
    return EmbedPipeline(options.replace(device=device), G, info, init)
