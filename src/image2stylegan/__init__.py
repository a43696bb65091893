"""image2stylegan: embed real images into a pretrained StyleGAN's latent space and edit them there.

Implements Image2StyleGAN (Abdal, Qin, Wonka, ICCV 2019). The public API is SPEC section 2.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .checkpoints import load_generator
from .errors import CheckpointError, I2SError, ImageError, LatentError, WeightsError
from .latents import load_latent, save_latent

__all__ = [
    "CheckpointError",
    "I2SError",
    "ImageError",
    "LatentError",
    "WeightsError",
    "__version__",
    "load_generator",
    "load_latent",
    "save_latent",
]
