"""Algorithm 1 (Sec. 5): embedding images into W+ (and W / Z), as a library.

    G = i2s.load_generator("ffhq-1024")
    result = i2s.embed(G, ["face.png"])            # EmbedConfig() = the paper's settings
    i2s.save_latent("face.npz", result.ws[0])

The stage of the pipeline after the losses (image -> models -> checkpoints -> losses -> embed):
- config.py      `EmbedConfig`: Algorithm 1's settings, the paper's defaults, presets;
- embedder.py    `Embedder`: the step loop (no file I/O);
- targets.py     the frame a loss sees: decode, FFHQ-align, fit;
- generators.py  resolve / load / describe a generator source (`GeneratorInfo`);
- options.py     `RunOptions`: everything a run is told, parsed before anything loads;
- records.py     one image's record: latent metadata, losses.csv, metrics.csv, output layouts;
- masks.py       masked (local) embedding, Image2StyleGAN++ Eq. 1: MaskedLoss, RegionLoss;
- evaluation.py  the reconstruction metrics every record gets (metrics.py on 8-bit images);
- pti.py         pivotal tuning (Roich et al. 2022): tune the synthesis weights around the pivot;
- pti_runner.py  that stage inside the runner: lockstep/shared runs, resume, tuned generators;
- runner.py      the one loop over files (batches, resume, errors, events) the CLI, the web UI
                 and the experiments all run;
- pipeline.py    `EmbedPipeline`: a loaded run (generator, VGG-16, start code) over the runner.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import torch
from PIL import Image

from ..image import FitMode
from ..losses import Image2StyleGANLoss
from ..models.base import Generator
from ..models.vgg16 import VGG16Features
from .config import PAPER_LAYERS, PRESETS, EmbedConfig
from .embedder import Embedder, EmbedResult, EmbedState, StepReport, sampled_w_stats
from .generators import GeneratorInfo, describe_generator, open_generator
from .options import RunOptions, embed_config

__all__ = [
    "PAPER_LAYERS",
    "PRESETS",
    "EmbedConfig",
    "EmbedResult",
    "EmbedState",
    "Embedder",
    "GeneratorInfo",
    "RunOptions",
    "StepReport",
    "build_embedder",
    "build_loss",
    "content_box",
    "describe_generator",
    "embed",
    "embed_config",
    "open_generator",
    "sampled_w_stats",
]


def build_loss(
    config: EmbedConfig,
    vgg: str | os.PathLike | VGG16Features = "vgg16-caffe",  # name, path, "random" or loaded
    device: str | torch.device = "cpu",
) -> Image2StyleGANLoss:
    """The per-image loss `config.loss` names: Eq. 1 terms and/or LPIPS (losses.py)."""
    from ..checkpoints.vgg_weights import load_vgg16
    from ..losses import load_lpips

    terms = config.loss_terms
    vgg_module = None
    if "perceptual" in terms:
        vgg_module = vgg if isinstance(vgg, VGG16Features) else load_vgg16(vgg, device=device)
    lpips = load_lpips(device=device) if "lpips" in terms else None
    return Image2StyleGANLoss(
        vgg_module,
        layers=config.layers if "perceptual" in terms else (),
        layer_weights=config.layer_weights if "perceptual" in terms else None,
        mse_weight=config.mse_weight if "mse" in terms else 0.0,
        perceptual_size=config.perceptual_size,
        lpips=lpips,
        lpips_weight=config.lpips_weight,
    ).to(device)


def content_box(
    resolution: int, content_size: tuple[int, int] | None
) -> tuple[int, int, int, int] | None:
    """The centred valid region (x0, y0, x1, y1) of a non-square generator's square frame."""
    if content_size is None or tuple(content_size) == (resolution, resolution):
        return None
    w, h = content_size
    x0, y0 = (resolution - w) // 2, (resolution - h) // 2
    return (x0, y0, x0 + w, y0 + h)


def build_embedder(
    G: Generator,
    config: EmbedConfig = EmbedConfig(),  # noqa: B008 - frozen dataclass
    vgg: str | os.PathLike | VGG16Features = "vgg16-caffe",
    content_size: tuple[int, int] | None = None,
) -> Embedder:
    """An `Embedder` with the loss `config` asks for, on G's device."""
    loss_fn = build_loss(config, vgg, device=G.w_avg.device)
    noise_loss_fn = None
    if (
        config.noise_steps
        and config.noise_loss == "perceptual+mse"
        and config.loss != "perceptual+mse"
    ):
        noise_loss_fn = build_loss(config.replace(loss="perceptual+mse"), vgg, G.w_avg.device)
    box = content_box(G.img_resolution, content_size)
    return Embedder(G, loss_fn, config, content_box=box, noise_loss_fn=noise_loss_fn)


def embed(
    G: Generator,
    images: torch.Tensor | Sequence[str | os.PathLike | Image.Image],
    config: EmbedConfig | None = None,
    *,
    vgg: str | os.PathLike | VGG16Features = "vgg16-caffe",
    init: torch.Tensor | None = None,
    content_size: tuple[int, int] | None = None,
    fit: FitMode = "crop",
    callback: Callable[[StepReport], None] | None = None,
    report_every: int = 50,
) -> EmbedResult:
    """Algorithm 1: embed images into G's latent space (paper defaults unless `config` says).

    `images`: a tensor [N, 3, H, W] in [-1, 1] at G's resolution, or files / PIL images (decoded
    and fitted to G's frame with `fit`). Returns w* [N, num_ws, w_dim], G(w*), final loss terms
    and the per-step loss history. No file is written.
    """
    from ..image import pil_to_tensor
    from .targets import target_frame

    config = config or EmbedConfig()
    if isinstance(images, torch.Tensor):
        targets = images
    else:
        frames = [
            target_frame(item, G.img_resolution, fit=fit, content_size=content_size)
            for item in images
        ]
        targets = torch.cat([pil_to_tensor(f) for f in frames])
    if targets.ndim != 4 or targets.shape[-2:] != (G.img_resolution, G.img_resolution):
        raise ValueError(
            f"targets must be [N, 3, {G.img_resolution}, {G.img_resolution}], "
            f"got {list(targets.shape)}"
        )
    embedder = build_embedder(G, config, vgg=vgg, content_size=content_size)
    return embedder.run(targets, init=init, callback=callback, report_every=report_every)
