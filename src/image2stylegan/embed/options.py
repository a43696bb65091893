"""How an embedding run is set up: one typed `RunOptions`, parsed and checked before anything loads.

`image2stylegan embed` and `experiment` (their options), the web UI (its form) and library users
build the same frozen object; `embed.pipeline.load_pipeline` then loads what it names. The
settings of Algorithm 1 itself live in `EmbedConfig` (config.py): `embed_config` applies the
given ones on top of a preset, as every front end does. The `parse_*` helpers read the text
forms the front ends accept and raise `ValueError` with a message that names no front end's
option, so each one turns it into its own kind of error.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import torch

from ..errors import I2SError, LatentError
from ..image import FitMode
from ..latents import load_latent
from .config import PRESETS, EmbedConfig

__all__ = [
    "CONFIG_SETTINGS",
    "MAX_SIDE",
    "InitMismatchError",
    "OptionMismatchError",
    "RunOptions",
    "check_init_fits",
    "check_run_fits",
    "embed_config",
    "parse_content_size",
    "parse_init",
    "parse_layer_weights",
    "parse_layers",
    "parse_perceptual_size",
    "read_init_latent",
]

# EmbedConfig fields the front ends set directly (CLI options / form fields of the same names)
CONFIG_SETTINGS = (
    "steps",
    "space",
    "init",
    "lr",
    "loss",
    "layers",
    "layer_weights",
    "mse_weight",
    "lpips_weight",
    "perceptual_size",
    "noise",
    "seed",
    "precision",
    "compile",
    "noise_steps",
    "noise_lr",
    "noise_loss",
    "pti_steps",
    "pti_lr",
    "pti_loss",
    "pti_locality",
    "pti_shared",
)
FIT_MODES: tuple[str, ...] = get_args(FitMode)
MAX_SIDE = 16384  # the largest side a size option may name (the largest image we read)


@dataclass(frozen=True)
class RunOptions:
    """Everything an embedding run is told besides its input images and output folder."""

    generator: str = "ffhq-1024"  # registry name, checkpoint file or random:ARCH-RES[@SEED]
    preset: str = "paper"  # the preset `config` started from (recorded in the metadata)
    config: EmbedConfig = field(default_factory=EmbedConfig)  # Algorithm 1's settings
    vgg: str = "vgg16-caffe"  # VGG-16 weights: registry name, file or "random"
    init_file: Path | None = None  # latent file to start from; set exactly when config.init="file"
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    batch_size: int = 1  # images optimised together (results do not depend on it)
    align: bool | None = None  # FFHQ face alignment first; None = the generator's default
    fit: FitMode = "crop"  # how a non-square image becomes the generator's frame
    content_size: tuple[int, int] | None = None  # valid region (w, h); None = the generator's
    video: bool = False  # also write progress.mp4 per image
    video_every: int = 25  # steps between its frames
    checkpoint_every: int = 250  # steps between resume checkpoints
    report_every: int = 25  # steps between progress reports (the only host syncs)
    overwrite: bool = False  # redo finished images, ignore checkpoints
    mask: Path | None = None  # one mask file for every input (white = embed), Image2StyleGAN++
    metrics: bool = True  # reconstruction metrics in every record and the run's metrics.csv

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}: choose {' or '.join(PRESETS)}")
        for name in ("batch_size", "video_every", "checkpoint_every", "report_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.fit not in FIT_MODES:
            raise ValueError(f"fit must be one of {', '.join(FIT_MODES)}, got {self.fit!r}")
        if (self.config.init == "file") != (self.init_file is not None):
            raise ValueError("init 'file' and init_file go together (give the latent file)")
        if self.content_size is not None and min(self.content_size) < 1:
            raise ValueError(f"content size must be positive, got {self.content_size}")

    def replace(self, **changes: Any) -> RunOptions:
        return dataclasses.replace(self, **changes)


def embed_config(preset: str = "paper", **settings: Any) -> EmbedConfig:
    """The preset's `EmbedConfig` with `settings` (fields of CONFIG_SETTINGS) applied on top.

    Raises `ValueError` for an unknown preset or setting and for invalid values.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}: choose {' or '.join(PRESETS)}")
    unknown = sorted(set(settings) - set(CONFIG_SETTINGS))
    if unknown:
        raise ValueError(f"unknown embed settings: {', '.join(unknown)}")
    try:
        return PRESETS[preset].replace(**settings)
    except TypeError as e:
        raise ValueError(str(e)) from None


def parse_perceptual_size(value: str | int | None) -> int | None:
    """'256' -> 256, 'full' -> None (the generator's resolution); at least 16 px."""
    text = str(value if value is not None else "256").strip().lower()
    if text == "full":
        return None
    try:
        size = int(float(text))
    except ValueError:
        raise ValueError(
            f"perceptual size {value!r}: give a side length in pixels or 'full'"
        ) from None
    if not 16 <= size <= MAX_SIDE:
        raise ValueError(f"perceptual size {size}: 16 to {MAX_SIDE} px, or 'full'")
    return size


def parse_content_size(value: str) -> tuple[int, int]:
    """'512x384' -> (512, 384): the valid region (width, height) of a non-square generator."""
    try:
        w, h = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise ValueError(f"content size {value!r}: expected WIDTHxHEIGHT, e.g. 512x384") from None
    if not (1 <= w <= MAX_SIDE and 1 <= h <= MAX_SIDE):
        raise ValueError(f"content size {value!r}: both sides must be 1 to {MAX_SIDE} px")
    return w, h


def parse_layers(value: str) -> tuple[str, ...]:
    """'conv1_1, conv3_2' -> ('conv1_1', 'conv3_2')."""
    layers = tuple(s.strip() for s in value.split(",") if s.strip())
    if not layers:
        raise ValueError(f"layers {value!r}: give VGG-16 layer names separated by commas")
    return layers


def parse_layer_weights(value: str) -> tuple[float, ...]:
    """'1,0.5' -> (1.0, 0.5): one weight lambda_j per perceptual layer."""
    try:
        return tuple(float(s) for s in value.split(","))
    except ValueError:
        raise ValueError(f"layer weights {value!r}: comma separated numbers expected") from None


def parse_init(value: str) -> tuple[str, Path | None]:
    """'mean' / 'random' -> (that, None); anything else is a latent file -> ('file', path)."""
    if value in ("mean", "random"):
        return value, None
    return "file", Path(value)


class OptionMismatchError(I2SError):
    """A run option that does not fit the loaded generator: a usage error of `option` (the
    RunOptions / EmbedConfig field it names)."""

    def __init__(self, message: str, option: str) -> None:
        super().__init__(message)
        self.option = option


class InitMismatchError(OptionMismatchError, LatentError):
    """The start latent does not fit the generator (made with another one)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "init")


def check_run_fits(options: RunOptions, resolution: int) -> None:
    """Raise `OptionMismatchError` for sizes the generator's frame (`resolution` px) cannot
    take: a perceptual size above it (the term never needs more pixels than G draws, 'full';
    the default 256 is allowed on smaller generators), a content region larger than the frame."""
    size = options.config.perceptual_size
    largest = max(resolution, EmbedConfig.perceptual_size or 0)
    if size is not None and size > largest:
        raise OptionMismatchError(
            f"perceptual size {size} px is larger than the generator's {resolution} px frame; "
            f"use 'full' or a size up to {largest}",
            "perceptual_size",
        )
    box = options.content_size
    if box is not None and max(box) > resolution:
        raise OptionMismatchError(
            f"content size {box[0]}x{box[1]} does not fit the generator's "
            f"{resolution}x{resolution} frame",
            "content_size",
        )


def check_init_fits(
    init: torch.Tensor,  # read_init_latent(path, space)
    path: Path,
    space: str,
    generator: tuple[int, int, int],  # the generator's (num_ws, w_dim, z_dim)
) -> None:
    """Raise `InitMismatchError` naming the file unless `init` is one start code of the
    generator's shape; checked once a run's generator is loaded, before any image is touched."""
    num_ws, w_dim, z_dim = generator
    if space == "z":
        if init.numel() != z_dim:
            raise InitMismatchError(
                f"{path}: its z holds {init.numel()} values, the generator's z has {z_dim}; "
                "it was made with a different generator"
            )
    elif tuple(init.shape) != (1, num_ws, w_dim):
        shape = " x ".join(str(d) for d in init.shape[1:])
        raise InitMismatchError(
            f"{path}: has {shape} codes but the generator takes {num_ws} x {w_dim}; it was "
            "made with a different generator"
        )


def read_init_latent(path: Path, space: str) -> torch.Tensor:
    """The start code a latent file holds for `space`: its W+ code `w`, or `z` for space z.

    Raises `LatentError` for unreadable files and `ValueError` when a Z start has no `z` array.
    """
    latent = load_latent(path)
    if space != "z":
        return latent.w
    if "z" not in latent.extras:
        raise ValueError(f"{path}: has no 'z' array to start a Z-space embedding from")
    return latent.extras["z"]
