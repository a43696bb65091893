"""image2stylegan: embed real images into a pretrained StyleGAN's latent space and edit them there.

Implements Image2StyleGAN (Abdal, Qin, Wonka, ICCV 2019). The public API is SPEC section 2.

The package follows the work: image -> models -> checkpoints -> losses -> embed -> edit ->
experiments -> web / cli (see the README's "Code layout"); no stage imports a later one, and
nothing below imports this module.
"""

from __future__ import annotations

from ._version import __version__
from .align import align_face
from .checkpoints import load_generator
from .checkpoints.vgg_weights import load_vgg16
from .edit import expression_transfer, morph, random_walk, style_transfer
from .embed import EmbedConfig, Embedder, EmbedResult, embed
from .errors import CheckpointError, I2SError, ImageError, LatentError, WeightsError
from .latents import load_latent, save_latent
from .losses import LPIPS, Image2StyleGANLoss, load_lpips

__all__ = [
    "LPIPS",
    "CheckpointError",
    "EmbedConfig",
    "EmbedResult",
    "Embedder",
    "I2SError",
    "Image2StyleGANLoss",
    "ImageError",
    "LatentError",
    "WeightsError",
    "__version__",
    "align_face",
    "embed",
    "expression_transfer",
    "load_generator",
    "load_latent",
    "load_lpips",
    "load_vgg16",
    "morph",
    "random_walk",
    "save_latent",
    "style_transfer",
]
