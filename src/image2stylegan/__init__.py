"""image2stylegan: embed real images into a pretrained StyleGAN's latent space and edit them there.

Implements Image2StyleGAN (Abdal, Qin, Wonka, ICCV 2019). The public API is SPEC section 2.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .checkpoints import load_generator
from .edit import expression_transfer, morph, random_walk, style_transfer
from .errors import CheckpointError, I2SError, ImageError, LatentError, WeightsError
from .latents import load_latent, save_latent

__all__ = [
    "CheckpointError",
    "I2SError",
    "ImageError",
    "LatentError",
    "WeightsError",
    "__version__",
    "expression_transfer",
    "load_generator",
    "load_latent",
    "morph",
    "random_walk",
    "save_latent",
    "style_transfer",
]
