"""Algorithm 1 (Sec. 5): embedding images into W+ (and W / Z), as a library.

    G = i2s.load_generator("ffhq-1024")
    result = i2s.embed(G, ["face.png"])            # EmbedConfig() = the paper's settings
    i2s.save_latent("face.npz", result.ws[0])

`Embedder` is the step loop (embedder.py); `embed_files` (runner.py) adds per-image output folders,
resume checkpoints and error isolation for the CLI.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from PIL import Image

from ..models.base import Generator
from .config import PAPER_LAYERS, PRESETS, EmbedConfig
from .embedder import Embedder, EmbedResult, EmbedState, StepReport, sampled_w_stats

__all__ = [
    "PAPER_LAYERS",
    "PRESETS",
    "EmbedConfig",
    "EmbedResult",
    "EmbedState",
    "Embedder",
    "StepReport",
    "build_embedder",
    "build_loss",
    "content_box",
    "embed",
    "generator_metadata",
    "sampled_w_stats",
]


def build_loss(
    config: EmbedConfig,
    vgg: Any = "vgg16-caffe",  # registry name, path, "random", or a loaded VGG16Features
    device: str | torch.device = "cpu",
):
    """The per-image loss `config.loss` names: Eq. 1 terms and/or LPIPS (losses.py)."""
    from ..checkpoints.vgg_weights import load_lpips, load_vgg16
    from ..losses import Image2StyleGANLoss

    terms = config.loss_terms
    vgg_module = None
    if "perceptual" in terms:
        vgg_module = vgg if isinstance(vgg, torch.nn.Module) else load_vgg16(vgg, device=device)
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
    vgg: Any = "vgg16-caffe",
    content_size: tuple[int, int] | None = None,
) -> Embedder:
    """An `Embedder` with the loss `config` asks for, on G's device."""
    loss_fn = build_loss(config, vgg, device=G.w_avg.device)
    return Embedder(G, loss_fn, config, content_box=content_box(G.img_resolution, content_size))


def generator_metadata(src: str, device: str = "cpu") -> tuple[Generator, dict[str, Any]]:
    """Load a generator and describe it for latent metadata: name, sha256, architecture, plus the
    registry's `content_size` and `default_align` when `src` is a registry name."""
    from ..checkpoints.loader import load_generator
    from ..checkpoints.random_generators import is_random_source
    from ..checkpoints.registry import get_entry, is_registry_name, resolve_weights
    from ..fileio import sha256_file

    G = load_generator(src, device=device)
    meta: dict[str, Any] = {"generator": str(src), "architecture": G.architecture}
    if is_random_source(src):  # weights are a function of the string: nothing to hash
        meta["generator_sha256"] = None
    elif is_registry_name(src) and not os.path.exists(src):
        entry = get_entry(src)
        path = resolve_weights(src, kind="generator", progress=False)
        meta["generator_sha256"] = entry.sha256 or sha256_file(path)
        meta["content_size"] = entry.content_size
        meta["default_align"] = entry.default_align
    else:
        meta["generator_sha256"] = sha256_file(src)
    return G, meta


def embed(
    G: Generator,
    images: torch.Tensor | Sequence[str | os.PathLike | Image.Image],
    config: EmbedConfig | None = None,
    *,
    vgg: Any = "vgg16-caffe",
    init: torch.Tensor | None = None,
    content_size: tuple[int, int] | None = None,
    fit: str = "crop",
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
            target_frame(item, G.img_resolution, fit=fit, content_size=content_size)  # type: ignore[arg-type]
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
