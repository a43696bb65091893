"""StyleGAN3 (alias-free) generator in plain PyTorch, configs T and R.

Karras et al., "Alias-Free Generative Adversarial Networks" (NeurIPS 2021), with the layer
semantics of NVIDIA's code (NVlabs/stylegan3 @ c233a919a6faee6e36a316ddd4eddababad1adf9,
`training/networks_stylegan3.py`), which every official StyleGAN3 pickle was made with. No custom
CUDA op: `filtered_lrelu` (bias, upsample, leaky ReLU, clamp, downsample) is written with standard
torch convolutions, and float32 results agree with the official code to float rounding
(tests/test_stylegan3_reference.py).

The network (Sec. 3 and Appendix F of the paper):
- mapping: z -> w, 2 layers; W+ = num_ws = num_layers + 2 copies of w (16 for the official
  14-layer networks), truncation around `w_avg` as the official mapping does it.
- `SynthesisInput` (ws[:, 0]): Fourier features at frequencies inside a disc of radius
  `first_cutoff`, rotated and translated by a learned affine of w and by the user transform
  `transform` (a 3x3 matrix, the *inverse* of the wanted image transform, as NVIDIA's
  gen_images.py stores it), followed by a learned channel mixing.
- `num_layers` `SynthesisLayer`s and a ToRGB layer (ws[:, 1:]): modulated convolution
  (kernel `conv_kernel`: 3 for T, 1 for R), then `filtered_lrelu`: upsample by `up` with a Kaiser
  low-pass filter, leaky ReLU (x sqrt 2), clamp at `conv_clamp`, low-pass (radially symmetric jinc
  filter for R) and downsample by `down`. Cutoffs rise geometrically from `first_cutoff` to the
  image Nyquist rate; the last `num_critical` layers are critically sampled. Every layer scales
  its input by 1 / sqrt(magnitude_ema), the mean input energy tracked during training.
- the ToRGB output times `output_scale`.

StyleGAN3 has no noise inputs: `noise_buffers()` is empty, `num_noise_inputs` is 0 and the
`noise_mode` argument of `synthesis` is accepted and ignored (as the official layers do).

Speed: the up-filters are separable and applied as polyphase 1-D convolutions (no zero-stuffed
intermediate image; `up` times fewer multiply-adds than the official reference path), the
down-filters as strided convolutions (1-D twice, or one 2-D convolution for the radial filters of
config R). Mixed precision: `G.fp16 = True` runs the layers the official code marks `use_fp16` in
float16 (convolutions in float16, the filters in float32 as the official CUDA kernel computes
them, outputs stored in float16), with the activations clamped at `conv_clamp` as always. The
official code does this on CUDA only; here it runs wherever float16 convolutions do.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import Generator

__all__ = [
    "LayerSpec",
    "StyleGAN3Config",
    "StyleGAN3Generator",
    "design_lowpass_filter",
    "filtered_lrelu",
    "layer_specs",
    "make_transform",
    "modulated_conv2d",
]

OFFICIAL_COMMIT = "c233a919a6faee6e36a316ddd4eddababad1adf9"  # NVlabs/stylegan3, checked against


# --------------------------------------------------------------------------------------------
# Config and the per-layer sampling plan (official SynthesisNetwork.__init__ / SynthesisLayer).


@dataclass(frozen=True)
class StyleGAN3Config:
    """Everything that fixes a StyleGAN3 generator; defaults = the official constructor defaults
    (config T at 1024 px with train.py's 2-layer mapping).

    Field names follow NVlabs/stylegan3's constructor arguments (`mapping_*` = its
    `mapping_kwargs`; the rest are its synthesis / layer keyword arguments).
    """

    z_dim: int = 512  # input latent size
    c_dim: int = 0  # conditioning label size, 0 = unconditional
    w_dim: int = 512  # intermediate latent size
    img_resolution: int = 1024  # output side in pixels
    img_channels: int = 3
    mapping_layers: int = 2  # depth of the mapping MLP (train.py: 2 for StyleGAN3)
    mapping_lr_multiplier: float = 0.01  # equalised-lr multiplier of the mapping layers
    channel_base: int = 32768  # channels of a layer: rint(min(channel_base / 2 / cutoff, max))
    channel_max: int = 512
    num_layers: int = 14  # synthesis layers, excluding the Fourier input and ToRGB
    num_critical: int = 2  # critically sampled layers at the end
    first_cutoff: float = 2.0  # cutoff frequency of the first layer, f_{c,0}
    first_stopband: float = 2**2.1  # minimum stopband of the first layer, f_{t,0}
    last_stopband_rel: float = 2**0.3  # minimum stopband of the last layer, relative to cutoff
    margin_size: int = 10  # extra pixels computed around the image
    output_scale: float = 0.25  # the ToRGB output is scaled by this
    num_fp16_res: int = 4  # layers whose sampling rate * 2**num_fp16_res > resolution: float16
    conv_kernel: int = 3  # 3 = config T, 1 = config R (the ToRGB layer is always 1x1)
    filter_size: int = 6  # low-pass filter taps per unit of the lower sampling rate
    lrelu_upsampling: int = 2  # the leaky ReLU runs at this multiple of the sampling rate
    use_radial_filters: bool = False  # R: radially symmetric down-filters (non-critical layers)
    conv_clamp: float | None = 256.0  # clamp activations to +-conv_clamp; None = no clamp
    magnitude_ema_beta: float = 0.999  # training only: decay of the input-magnitude average

    def __post_init__(self) -> None:
        ints = ("z_dim", "w_dim", "img_resolution", "img_channels", "mapping_layers", "num_layers")
        if any(getattr(self, k) < 1 for k in ints) or self.c_dim < 0:
            raise ValueError(f"{', '.join(ints)} must be >= 1 and c_dim >= 0")
        if not 0 <= self.num_critical < self.num_layers:
            raise ValueError(
                f"num_critical must be in [0, num_layers), got {self.num_critical} "
                f"with num_layers {self.num_layers}"
            )
        if self.conv_kernel < 1 or self.filter_size < 1 or self.lrelu_upsampling < 1:
            raise ValueError("conv_kernel, filter_size and lrelu_upsampling must be >= 1")
        if self.img_resolution < 4:
            raise ValueError(f"img_resolution must be >= 4, got {self.img_resolution}")
        if self.conv_clamp is not None:
            object.__setattr__(self, "conv_clamp", float(self.conv_clamp))
        layer_specs(self)  # raises ValueError for plans the official code would reject

    @property
    def num_ws(self) -> int:
        return self.num_layers + 2  # the input, the layers, ToRGB

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StyleGAN3Config:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown StyleGAN3 config keys: {', '.join(unknown)}")
        return cls(**d)


@dataclass(frozen=True)
class LayerSpec:
    """The sampling plan of one synthesis layer (index 0 = the Fourier input)."""

    name: str  # the official module name, e.g. 'L3_52_256'
    in_channels: int
    out_channels: int
    in_size: int  # input side in samples (image + margins)
    out_size: int
    in_sampling_rate: int
    out_sampling_rate: int
    in_cutoff: float
    out_cutoff: float
    in_half_width: float
    out_half_width: float
    is_torgb: bool
    is_critically_sampled: bool
    use_fp16: bool
    conv_kernel: int  # 1 for ToRGB
    up: int  # upsampling factor before the leaky ReLU
    down: int  # downsampling factor after it
    up_taps: int  # 1 = no up-filter
    down_taps: int  # 1 = no down-filter
    down_radial: bool  # a 2-D radially symmetric down-filter
    padding: tuple[int, int, int, int]  # x0, x1, y0, y1 around the upsampled image (< 0: crop)
    tmp_sampling_rate: int


@dataclass(frozen=True)
class InputSpec:
    channels: int
    size: int
    sampling_rate: float
    bandwidth: float


def _plan(c: StyleGAN3Config) -> tuple[InputSpec, list[LayerSpec]]:
    """Cutoffs, stopbands, sampling rates, sizes and channels of every layer, computed in float64
    exactly as the official `SynthesisNetwork.__init__` computes them."""
    n = c.num_layers
    last_cutoff = c.img_resolution / 2  # f_{c,N}
    last_stopband = last_cutoff * c.last_stopband_rel  # f_{t,N}
    exponents = np.minimum(np.arange(n + 1) / (n - c.num_critical), 1)
    cutoffs = c.first_cutoff * (last_cutoff / c.first_cutoff) ** exponents  # f_c[i]
    stopbands = c.first_stopband * (last_stopband / c.first_stopband) ** exponents  # f_t[i]
    rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, c.img_resolution))))  # s[i]
    half_widths = np.maximum(stopbands, rates / 2) - cutoffs  # f_h[i]
    sizes = rates + c.margin_size * 2
    sizes[-2:] = c.img_resolution
    channels = np.rint(np.minimum((c.channel_base / 2) / cutoffs, c.channel_max))
    channels[-1] = c.img_channels
    if channels.min() < 1:
        raise ValueError(f"channel_base {c.channel_base} leaves a layer without channels")

    inp = InputSpec(int(channels[0]), int(sizes[0]), float(rates[0]), float(cutoffs[0]))
    layers = []
    for i in range(n + 1):
        p = max(i - 1, 0)
        is_torgb = i == n
        in_rate, out_rate = int(rates[p]), int(rates[i])
        tmp_rate = max(in_rate, out_rate) * (1 if is_torgb else c.lrelu_upsampling)
        up, down = round(tmp_rate / in_rate), round(tmp_rate / out_rate)
        if in_rate * up != tmp_rate or out_rate * down != tmp_rate:
            raise ValueError(f"layer {i}: sampling rates {in_rate} -> {out_rate} are not integral")
        kernel = 1 if is_torgb else c.conv_kernel
        up_taps = c.filter_size * up if up > 1 and not is_torgb else 1
        down_taps = c.filter_size * down if down > 1 and not is_torgb else 1
        is_critical = i >= n - c.num_critical
        in_size, out_size = int(sizes[p]), int(sizes[i])
        # Appendix C.3: sample locations follow the symmetric interpretation.
        pad_total = (out_size - 1) * down + 1  # size wanted before downsampling
        pad_total -= (in_size + kernel - 1) * up  # size after the convolution and upsampling
        pad_total += up_taps + down_taps - 2  # shrinkage by the two filters
        pad_lo = (pad_total + up) // 2
        pad_hi = pad_total - pad_lo
        out_channels = int(channels[i])
        layers.append(
            LayerSpec(
                name=f"L{i}_{out_size}_{out_channels}",
                in_channels=int(channels[p]),
                out_channels=out_channels,
                in_size=in_size,
                out_size=out_size,
                in_sampling_rate=in_rate,
                out_sampling_rate=out_rate,
                in_cutoff=float(cutoffs[p]),
                out_cutoff=float(cutoffs[i]),
                in_half_width=float(half_widths[p]),
                out_half_width=float(half_widths[i]),
                is_torgb=is_torgb,
                is_critically_sampled=is_critical,
                use_fp16=bool(rates[i] * 2**c.num_fp16_res > c.img_resolution),
                conv_kernel=kernel,
                up=up,
                down=down,
                up_taps=up_taps,
                down_taps=down_taps,
                down_radial=c.use_radial_filters and not is_critical,
                padding=(pad_lo, pad_hi, pad_lo, pad_hi),
                tmp_sampling_rate=tmp_rate,
            )
        )
    return inp, layers


def layer_specs(config: StyleGAN3Config) -> list[LayerSpec]:
    """The sampling plan of the synthesis layers L0 .. L{num_layers} (the last is ToRGB)."""
    return _plan(config)[1]


# --------------------------------------------------------------------------------------------
# Filter design (official `SynthesisLayer.design_lowpass_filter`, without scipy).


def _kaiser_beta(num_taps: int, width: float) -> float:
    """Kaiser's window parameter for a transition band of `width` (fraction of Nyquist)."""
    atten = 2.285 * (num_taps - 1) * np.pi * width + 7.95  # dB
    if atten > 50:
        return 0.1102 * (atten - 8.7)
    if atten > 21:
        return 0.5842 * (atten - 21) ** 0.4 + 0.07886 * (atten - 21)
    return 0.0


def design_lowpass_filter(
    num_taps: int,
    cutoff: float,  # cutoff frequency
    width: float,  # transition band width
    fs: float,  # sampling rate
    radial: bool = False,  # radially symmetric jinc filter (2-D) instead of separable (1-D)
) -> torch.Tensor | None:
    """A windowed-sinc (Kaiser) low-pass: [num_taps] float32 taps summing to 1; radial: a
    [num_taps, num_taps] Kaiser-windowed jinc. None for a single tap (the identity).

    The separable filter is the Kaiser-window FIR design with DC gain 1 (scipy's `firwin` with a
    `width`), computed in float64 like the official code and then rounded to float32.
    """
    if num_taps < 1:
        raise ValueError(f"num_taps must be >= 1, got {num_taps}")
    if num_taps == 1:
        return None
    nyquist = fs / 2
    beta = _kaiser_beta(num_taps, width / nyquist)
    window = np.kaiser(num_taps, beta)
    if not radial:
        m = np.arange(num_taps) - (num_taps - 1) / 2
        f = (cutoff / nyquist) * np.sinc((cutoff / nyquist) * m) * window
        return torch.as_tensor(f / f.sum(), dtype=torch.float32)
    x = (np.arange(num_taps) - (num_taps - 1) / 2) / fs
    r = torch.as_tensor(
        np.hypot(*np.meshgrid(x, x)), dtype=torch.float64, device="cpu"
    )  # also under a meta-device build
    f = (torch.special.bessel_j1(2 * cutoff * (np.pi * r)) / (np.pi * r)).numpy()
    f = f * np.outer(window, window)
    return torch.as_tensor(f / np.sum(f), dtype=torch.float32)


# --------------------------------------------------------------------------------------------
# filtered_lrelu: bias, upsample, leaky ReLU, clamp, downsample.
#
# Two 1-D resampling primitives along one axis (dim 2 = H, dim 3 = W) of [N, C, H, W] tensors;
# `taps` [K] already carry any gain. Each is the other's adjoint (see the backward pass).
#   _up:   y[j] = sum_i x[i] taps[K - 1 - p0 + j - s i],   len = L s + p0 + p1 - K + 1
#          (zero insertion by s, pad p0/p1, convolve: the official upfirdn2d with `up`)
#   _down: y[j] = sum_t xp[s j + t] taps[K - 1 - t],        len = (L + p0 + p1 - K) // s + 1
#          (pad p0/p1, convolve, keep every s-th sample: upfirdn2d with `down`)
# Negative padding crops.


def _conv_axis(
    x: torch.Tensor,  # [N, C, H, W]
    w: torch.Tensor,  # [C * P, 1, T, 1] (dim 2) or [C * P, 1, 1, T] (dim 3)
    dim: int,
    p0: int,  # zero padding before / after along `dim` (negative = crop)
    p1: int,
    stride: int = 1,
) -> torch.Tensor:
    """Depthwise convolution along `dim` with asymmetric padding, without copying the input
    into a padded buffer: crops are views, the padding is conv2d's own (symmetric, rounded up to
    the stride grid) and the surplus outputs are cut off."""
    C = x.shape[1]
    L = x.shape[dim]
    if p0 < 0:
        x, L, p0 = x.narrow(dim, -p0, L + p0), L + p0, 0
    if p1 < 0:
        x, L, p1 = x.narrow(dim, 0, L + p1), L + p1, 0
    T = w.shape[dim]
    pad = p0 + stride * (-(-max(p1 - p0, 0) // stride))  # >= p0, p1, pad - p0 on the grid
    out_len = (L + p0 + p1 - T) // stride + 1
    padding = (pad, 0) if dim == 2 else (0, pad)
    strides = (stride, 1) if dim == 2 else (1, stride)
    y = F.conv2d(x, w, stride=strides, padding=padding, groups=C)
    return y.narrow(dim, (pad - p0) // stride, out_len)


def _depthwise(taps: torch.Tensor, C: int, dim: int) -> torch.Tensor:
    """[P, T] or [T] taps -> a depthwise weight along `dim`: [C P, 1, T, 1] or [C P, 1, 1, T]."""
    taps = taps.reshape(-1, taps.shape[-1])
    P, T = taps.shape
    shape = (P, 1, T, 1) if dim == 2 else (P, 1, 1, T)
    return taps.reshape(shape).repeat(C, 1, 1, 1)


def _up(x: torch.Tensor, taps: torch.Tensor, s: int, p0: int, p1: int, dim: int) -> torch.Tensor:
    """Upsample by `s` along `dim` as `s` polyphase convolutions (no zero-stuffed image).

    Output j reads phase r = (K - 1 - p0 + j) mod s, whose taps are taps[r::s]; phase r at
    position q is sum_t xpad[q + t] w_r[t] with w_r the reversed taps[r::s] and xpad = x padded by
    T - 1 in front. A reshape interleaves the phases.
    """
    N, C = x.shape[:2]
    L, K = x.shape[dim], taps.shape[0]
    T = -(-K // s)  # taps per phase (the filter is zero-padded to T s taps)
    taps = F.pad(taps.to(x.dtype), [0, T * s - K])
    w = taps.reshape(T, s).flip(0).t()  # [s, T]: w_r[t] = taps[s (T - 1 - t) + r]
    offset = K - 1 - p0  # output j is the full transposed convolution at j + offset
    out_len = L * s + p0 + p1 - K + 1
    q0, q1 = offset // s, (offset + out_len - 1) // s  # polyphase positions needed
    lo, hi = T - 1 - q0, q1 - (L - 1)
    start = offset - q0 * s
    if s == 1:
        y = _conv_axis(x, _depthwise(w, C, dim), dim, lo, hi)
    elif dim == 3:  # one conv for all phases, then interleave along W
        y = _conv_axis(x, _depthwise(w, C, dim), dim, lo, hi)  # [N, C * s, H, Q]
        H, Q = y.shape[2:]
        y = y.reshape(N, C, s, H, Q).permute(0, 1, 3, 4, 2).reshape(N, C, H, Q * s)
    else:  # along H: each phase written into its rows (faster than one conv + permute on CPU)
        Q, W = q1 - q0 + 1, x.shape[3]
        y = x.new_empty(N, C, Q, s, W)
        for r in range(s):
            y[:, :, :, r] = _conv_axis(x, _depthwise(w[r], C, dim), dim, lo, hi)
        y = y.reshape(N, C, Q * s, W)
    return y.narrow(dim, start, out_len)


def _down(x: torch.Tensor, taps: torch.Tensor, s: int, p0: int, p1: int, dim: int) -> torch.Tensor:
    """Filter and keep every `s`-th sample along `dim`: a strided depthwise convolution."""
    w = _depthwise(taps.to(x.dtype).flip(0), x.shape[1], dim)
    return _conv_axis(x, w, dim, p0, p1, stride=s)


def _up_adjoint(
    dy: torch.Tensor, taps: torch.Tensor, s: int, p0: int, p1: int, dim: int, in_len: int
) -> torch.Tensor:
    """The adjoint of `_up(x, taps, s, p0, p1, dim)` for inputs of length `in_len`."""
    K, out_len = taps.shape[0], dy.shape[dim]
    q0 = K - 1 - p0
    return _down(dy, taps.flip(0), s, q0, s * (in_len - 1) + K - out_len - q0, dim)


def _down_adjoint(
    dy: torch.Tensor, taps: torch.Tensor, s: int, p0: int, p1: int, dim: int, in_len: int
) -> torch.Tensor:
    """The adjoint of `_down(x, taps, s, p0, p1, dim)` for inputs of length `in_len`."""
    K, out_len = taps.shape[0], dy.shape[dim]
    return _up(dy, taps.flip(0), s, K - 1 - p0, in_len + p0 - out_len * s, dim)


def _down_2d(x: torch.Tensor, f: torch.Tensor, s: int) -> torch.Tensor:
    """Convolve with a non-separable [K, K] filter and keep every `s`-th sample (no padding)."""
    C, K = x.shape[1], f.shape[0]
    w = f.to(x.dtype).flip([0, 1]).reshape(1, 1, K, K).repeat(C, 1, 1, 1)
    return F.conv2d(x, w, stride=s, groups=C)


def _down_2d_adjoint(
    dy: torch.Tensor, f: torch.Tensor, s: int, in_hw: Sequence[int]
) -> torch.Tensor:
    """The adjoint of `_down_2d`: a 2-D polyphase upsampling (s^2 phases, pixel shuffle)."""
    C, K = dy.shape[1], f.shape[0]
    T = -(-K // s)
    # Per axis: dx[i] = sum_j dy[j] g[i - s j] with g the reversed filter; phase r = i mod s at
    # q = i // s uses g[s m + r], m = q - j: a full convolution with that sub-filter.
    g = F.pad(f.to(dy.dtype).flip([0, 1]), [0, T * s - K, 0, T * s - K])  # [T s, T s]
    w = g.reshape(T, s, T, s).flip([0, 2]).permute(1, 3, 0, 2).reshape(s * s, 1, T, T)
    y = F.conv2d(F.pad(dy, [T - 1] * 4), w.repeat(C, 1, 1, 1), groups=C)  # [N, C s^2, Q, Q]
    y = F.pixel_shuffle(y, s)  # [N, C, Q s, Q s]
    H, W = in_hw
    y = F.pad(y, [0, max(W - y.shape[3], 0), 0, max(H - y.shape[2], 0)])
    return y[:, :, :H, :W]


@dataclass(frozen=True)
class _Geometry:
    up: int
    down: int
    padding: tuple[int, int, int, int]  # x0, x1, y0, y1
    gain: float
    slope: float
    clamp: float | None


def _resample_up(
    x: torch.Tensor, fu: torch.Tensor | None, g: _Geometry, gain: float = 1.0
) -> torch.Tensor:
    """Zero-insert by `up`, pad, filter with `fu` (DC gain up^2) and scale by `gain`; always a
    new tensor (the activation then runs in place)."""
    px0, px1, py0, py1 = g.padding
    if fu is None:
        return F.pad(x, [px0, px1, py0, py1]) * gain
    taps = fu * g.up  # DC gain `up` per axis
    x = _up(x, taps * gain, g.up, py0, py1, dim=2)  # H first: the slower pass on fewer rows
    return _up(x, taps, g.up, px0, px1, dim=3)


def _resample_up_adjoint(
    du: torch.Tensor,
    fu: torch.Tensor | None,
    g: _Geometry,
    in_hw: Sequence[int],
    gain: float = 1.0,
) -> torch.Tensor:
    px0, px1, py0, py1 = g.padding
    H, W = in_hw
    if fu is None:
        return F.pad(du, [-px0, -px1, -py0, -py1]) * gain
    taps = fu * g.up
    dv = _up_adjoint(du, taps, g.up, px0, px1, dim=3, in_len=W)
    return _up_adjoint(dv, taps * gain, g.up, py0, py1, dim=2, in_len=H)


def _resample_down(a: torch.Tensor, fd: torch.Tensor | None, g: _Geometry) -> torch.Tensor:
    if fd is None:
        return a[:, :, :: g.down, :: g.down] if g.down > 1 else a
    if fd.ndim == 2:
        return _down_2d(a, fd, g.down)
    a = _down(a, fd, g.down, 0, 0, dim=3)  # W first: the slower H pass on the smaller tensor
    return _down(a, fd, g.down, 0, 0, dim=2)


def _resample_down_adjoint(
    dy: torch.Tensor, fd: torch.Tensor | None, g: _Geometry, in_hw: Sequence[int]
) -> torch.Tensor:
    H, W = in_hw
    if fd is None:
        if g.down == 1:
            return dy
        da = dy.new_zeros(*dy.shape[:2], H, W)
        da[:, :, :: g.down, :: g.down] = dy
        return da
    if fd.ndim == 2:
        return _down_2d_adjoint(dy, fd, g.down, in_hw)
    da = _down_adjoint(dy, fd, g.down, 0, 0, dim=2, in_len=H)  # the W pass kept all H rows
    return _down_adjoint(da, fd, g.down, 0, 0, dim=3, in_len=W)


def _activate(u: torch.Tensor, g: _Geometry) -> torch.Tensor:
    """clamp(lrelu(u, slope) * gain): the official order."""
    a = F.leaky_relu(u, g.slope) if g.slope != 1 else u
    if g.gain != 1:
        a = a * g.gain
    return a.clamp(-g.clamp, g.clamp) if g.clamp is not None else a


class _FilteredLReLU(torch.autograd.Function):
    """filtered_lrelu with a hand-written backward, as the official CUDA op has: the activation
    runs in place on the upsampled tensor (the gain folded into the up-filter: lrelu and clamp
    commute with a positive scale), only that activated tensor is kept (autograd would keep
    three of that size), and the backward runs the adjoint resampling around one fused
    derivative of leaky ReLU and clamp. Twice differentiable in dy (leaky ReLU and clamp have
    zero second derivatives almost everywhere)."""

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        b: torch.Tensor | None,
        fu: torch.Tensor | None,
        fd: torch.Tensor | None,
        g: _Geometry,
    ) -> torch.Tensor:
        if b is not None:
            x = x + b.reshape(1, -1, 1, 1)
        a = _resample_up(x, fu, g, gain=g.gain)  # gain * u, a new tensor
        if g.slope != 1:
            F.leaky_relu_(a, g.slope)
        if g.clamp is not None:
            a.clamp_(-g.clamp, g.clamp)
        ctx.save_for_backward(a, fu, fd)
        ctx.geometry = g
        ctx.in_hw = x.shape[2:]
        ctx.has_bias = b is not None
        return _resample_down(a, fd, g)

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        a, fu, fd = ctx.saved_tensors
        g: _Geometry = ctx.geometry
        du = _resample_down_adjoint(dy, fd, g, a.shape[2:])
        # d act / du: 1 where a > 0, slope below, 0 where the clamp cut (the gain is in the
        # up-filter's adjoint). In place unless a graph of the backward is being built.
        inplace = (
            not torch.is_grad_enabled() and du.is_contiguous() and du.data_ptr() != dy.data_ptr()
        )
        aten = torch.ops.aten
        if g.slope != 1:
            if inplace:
                aten.leaky_relu_backward.grad_input(du, a, g.slope, True, grad_input=du)
            else:
                du = aten.leaky_relu_backward(du, a, g.slope, True)
        if g.clamp is not None:
            if inplace:
                aten.hardtanh_backward.grad_input(du, a, -g.clamp, g.clamp, grad_input=du)
            else:
                du = aten.hardtanh_backward(du, a, -g.clamp, g.clamp)
        dx = _resample_up_adjoint(du, fu, g, ctx.in_hw, gain=g.gain)
        db = dx.sum(dim=[0, 2, 3]) if ctx.has_bias and ctx.needs_input_grad[1] else None
        return dx, db, None, None, None


def filtered_lrelu(
    x: torch.Tensor,  # [N, C, H, W]
    fu: torch.Tensor | None,  # [K] separable up-filter, or None (identity)
    fd: torch.Tensor | None,  # [K] separable or [K, K] down-filter, or None (identity)
    b: torch.Tensor | None = None,  # [C] bias
    up: int = 1,
    down: int = 1,
    padding: tuple[int, int, int, int] = (0, 0, 0, 0),  # x0, x1, y0, y1 (negative = crop)
    gain: float = math.sqrt(2),
    slope: float = 0.2,
    clamp: float | None = None,
    reference: bool = False,  # True: plain autograd through the same ops (tests)
) -> torch.Tensor:
    """The official `filtered_lrelu`: add `b`, upsample by `up` (zero insertion, `padding`,
    convolve with `fu` at DC gain up^2), leaky ReLU (`slope`) times `gain`, clamp to +-`clamp`,
    convolve with `fd` and keep every `down`-th sample.

    Output side: (in * up + pad0 + pad1 - (ku - 1) - (kd - 1) + down - 1) // down.
    """
    if fu is None and up != 1:
        raise ValueError("upsampling needs an up-filter")
    if fu is not None and fu.ndim != 1:
        raise ValueError("the up-filter must be 1-D (separable)")
    if fd is not None and fd.ndim == 2 and fd.shape[0] != fd.shape[1]:
        raise ValueError("a 2-D down-filter must be square")
    px0, px1, py0, py1 = (int(p) for p in padding)
    g = _Geometry(
        up, down, (px0, px1, py0, py1), float(gain), float(slope),
        None if clamp is None else float(clamp),
    )  # fmt: skip
    if b is not None:
        b = b.to(x.dtype)
    if reference:
        if b is not None:
            x = x + b.reshape(1, -1, 1, 1)
        return _resample_down(_activate(_resample_up(x, fu, g), g), fd, g)
    return _FilteredLReLU.apply(x, b, fu, fd, g)


# --------------------------------------------------------------------------------------------
# Modulated convolution (Sec. 2.2 of StyleGAN2, with StyleGAN3's pre-normalisation).


def modulated_conv2d(
    x: torch.Tensor,  # [N, I, H, W]
    weight: torch.Tensor,  # [O, I, k, k]
    styles: torch.Tensor,  # [N, I]
    demodulate: bool = True,
    padding: int = 0,
    input_gain: torch.Tensor | None = None,  # [] scale of the input channels
    fused: bool = True,  # one grouped convolution with per-sample weights vs scaled activations
) -> torch.Tensor:
    """y = conv(x * g, weight * s * d), d = 1 / ||weight * s||: [N, O, H + 2p - k + 1, ...].

    As the official code, weights and styles are first normalised (per output channel / by the
    RMS over the whole batch), which demodulation cancels up to its epsilon.
    """
    N = x.shape[0]
    O, I, kh, kw = weight.shape
    if demodulate:
        weight = weight * weight.square().mean([1, 2, 3], keepdim=True).rsqrt()
        styles = styles * styles.square().mean().rsqrt()
    w = weight.unsqueeze(0) * styles.reshape(N, 1, I, 1, 1)  # [N, O, I, k, k]
    dcoefs = None
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [N, O]
    if not fused:
        scale = styles if input_gain is None else styles * input_gain
        x = x * scale.to(x.dtype).reshape(N, I, 1, 1)
        x = F.conv2d(x, weight.to(x.dtype), padding=padding)
        return x * dcoefs.to(x.dtype).reshape(N, O, 1, 1) if dcoefs is not None else x
    if dcoefs is not None:
        w = w * dcoefs.reshape(N, O, 1, 1, 1)
    if input_gain is not None:
        w = w * input_gain
    x = x.reshape(1, N * I, *x.shape[2:])  # the batch becomes conv groups
    x = F.conv2d(x, w.reshape(N * O, I, kh, kw).to(x.dtype), padding=padding, groups=N)
    return x.reshape(N, O, *x.shape[2:])


# --------------------------------------------------------------------------------------------
# Layers.


class FullyConnectedLayer(nn.Module):
    """Dense layer with equalised learning rate: y = act(x @ (W * lr / sqrt(in)).T + b * lr)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        lrelu: bool = False,  # leaky ReLU (slope 0.2, gain sqrt 2) instead of linear
        lr_multiplier: float = 1.0,  # 0.01 in the mapping network
        weight_init: float = 1.0,  # initial std of the effective weight (0: the input affine)
        bias_init: Sequence[float] | float = 0.0,  # initial effective bias
    ) -> None:
        super().__init__()
        self.lrelu = lrelu
        self.lr_multiplier = lr_multiplier
        self.weight_init = weight_init
        self.bias_init = bias_init
        self.weight = nn.Parameter(torch.empty(out_features, in_features))  # [out, in]
        self.bias = nn.Parameter(torch.empty(out_features))  # [out]
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        with torch.no_grad():
            self.weight.normal_(generator=generator).mul_(self.weight_init / self.lr_multiplier)
            bias = torch.as_tensor(self.bias_init, dtype=torch.float32).expand(self.bias.shape)
            self.bias.copy_(bias / self.lr_multiplier)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, in] -> [N, out]
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias.to(x.dtype)
        if self.bias_gain != 1:
            b = b * self.bias_gain
        if not self.lrelu:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return F.leaky_relu(x.matmul(w.t()) + b, 0.2) * math.sqrt(2)


def _normalize_2nd_moment(x: torch.Tensor) -> torch.Tensor:
    return x * (x.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()


class MappingNetwork(nn.Module):
    """z [N, z_dim] (+ label c [N, c_dim]) -> w [N, w_dim]: normalise, then an MLP."""

    def __init__(
        self, z_dim: int, c_dim: int, w_dim: int, num_layers: int, lr_multiplier: float
    ) -> None:
        super().__init__()
        self.c_dim, self.num_layers = c_dim, num_layers
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, w_dim)
        features = [z_dim + (w_dim if c_dim > 0 else 0)] + [w_dim] * num_layers
        for i in range(num_layers):
            layer = FullyConnectedLayer(
                features[i], features[i + 1], lrelu=True, lr_multiplier=lr_multiplier
            )
            self.add_module(f"fc{i}", layer)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        x = _normalize_2nd_moment(z.to(torch.float32))  # [N, z_dim]
        if self.c_dim > 0:
            if c is None or c.ndim != 2 or c.shape[1] != self.c_dim:
                got = None if c is None else list(c.shape)
                raise ValueError(
                    f"this generator is conditional: c must be [N, {self.c_dim}], got {got}"
                )
            y = _normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1)
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        return x  # [N, w_dim]


class SynthesisInput(nn.Module):
    """w [N, w_dim] -> Fourier features [N, C, size, size] (Sec. 3.1, Appendix F).

    Buffers: `freqs` [C, 2] and `phases` [C] (drawn at initialisation), `transform` [3, 3] (the
    user transform: maps output-image coordinates to input coordinates, i.e. the inverse of the
    wanted image transform; identity by default).
    """

    transform: torch.Tensor
    freqs: torch.Tensor
    phases: torch.Tensor

    def __init__(self, w_dim: int, spec: InputSpec) -> None:
        super().__init__()
        self.channels, self.size = spec.channels, spec.size
        self.sampling_rate, self.bandwidth = spec.sampling_rate, spec.bandwidth
        C = spec.channels
        self.weight = nn.Parameter(torch.empty(C, C))  # channel mixing, equalised lr
        self.affine = FullyConnectedLayer(w_dim, 4, weight_init=0, bias_init=[1, 0, 0, 0])
        self.register_buffer("transform", torch.eye(3))
        self.register_buffer("freqs", torch.empty(C, 2))
        self.register_buffer("phases", torch.empty(C))

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Frequencies uniform in a disc of radius `bandwidth`, phases uniform in [-1/2, 1/2)."""
        with torch.no_grad():
            freqs = torch.randn(self.channels, 2, generator=generator)
            radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
            freqs /= radii * radii.square().exp().pow(0.25)
            self.freqs.copy_(freqs * self.bandwidth)
            self.phases.copy_(torch.rand(self.channels, generator=generator) - 0.5)
            self.weight.normal_(generator=generator)
            self.transform.copy_(torch.eye(3))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        N = w.shape[0]
        # Learned rotation and translation: t = (r_c, r_s, t_x, t_y), rotation normalised.
        t = self.affine(w)  # [N, 4]
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        zero, one = torch.zeros_like(t[:, 0]), torch.ones_like(t[:, 0])
        m_r = torch.stack(
            [t[:, 0], -t[:, 1], zero, t[:, 1], t[:, 0], zero, zero, zero, one], dim=1
        ).reshape(N, 3, 3)  # inverse rotation of the image
        m_t = torch.stack(
            [one, zero, -t[:, 2], zero, one, -t[:, 3], zero, zero, one], dim=1
        ).reshape(N, 3, 3)  # inverse translation
        transforms = m_r @ m_t @ self.transform.unsqueeze(0)  # [N, 3, 3]
        freqs = self.freqs.unsqueeze(0)  # [1, C, 2]
        phases = self.phases.unsqueeze(0) + (freqs @ transforms[:, :2, 2:]).squeeze(2)  # [N, C]
        freqs = freqs @ transforms[:, :2, :2]  # [N, C, 2]
        # Fade out frequencies the user transform pushes beyond the band.
        amplitudes = (
            1 - (freqs.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)
        ).clamp(0, 1)  # [N, C]
        # Sample positions: pixel centres of a size x size grid, in units of 1 / sampling_rate.
        theta = torch.zeros(1, 2, 3, device=w.device)
        theta[0, 0, 0] = 0.5 * self.size / self.sampling_rate
        theta[0, 1, 1] = 0.5 * self.size / self.sampling_rate
        grid = F.affine_grid(theta, [1, 1, self.size, self.size], align_corners=False)
        grid = grid.reshape(1, self.size * self.size, 2)  # [1, HW, 2] (x, y)
        x = grid @ freqs.transpose(1, 2) + phases.unsqueeze(1)  # [N, HW, C]
        x = torch.sin(x * (np.pi * 2)) * amplitudes.unsqueeze(1)
        x = x @ (self.weight / np.sqrt(self.channels)).t()  # [N, HW, C]
        return x.reshape(N, self.size, self.size, self.channels).permute(0, 3, 1, 2)


class SynthesisLayer(nn.Module):
    """Modulated convolution + filtered leaky ReLU (or ToRGB: 1x1, no demodulation, linear)."""

    magnitude_ema: torch.Tensor
    up_filter: torch.Tensor | None
    down_filter: torch.Tensor | None

    def __init__(self, w_dim: int, spec: LayerSpec, config: StyleGAN3Config) -> None:
        super().__init__()
        self.spec = spec
        self.conv_clamp = config.conv_clamp
        self.affine = FullyConnectedLayer(w_dim, spec.in_channels, bias_init=1)
        k = spec.conv_kernel
        self.weight = nn.Parameter(torch.empty(spec.out_channels, spec.in_channels, k, k))
        self.bias = nn.Parameter(torch.empty(spec.out_channels))
        self.register_buffer("magnitude_ema", torch.ones([]))  # mean input energy (training EMA)
        up_filter = design_lowpass_filter(
            spec.up_taps, spec.in_cutoff, spec.in_half_width * 2, spec.tmp_sampling_rate
        )
        down_filter = design_lowpass_filter(
            spec.down_taps,
            spec.out_cutoff,
            spec.out_half_width * 2,
            spec.tmp_sampling_rate,
            radial=spec.down_radial,
        )
        self.register_buffer("up_filter", up_filter)  # [K] or None
        self.register_buffer("down_filter", down_filter)  # [K], [K, K] or None
        self.weight_gain = 1 / math.sqrt(spec.in_channels * k * k) if spec.is_torgb else 1.0

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        with torch.no_grad():
            self.weight.normal_(generator=generator)
            self.bias.zero_()
            self.magnitude_ema.fill_(1)

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, dtype: torch.dtype, fused: bool
    ) -> torch.Tensor:
        s = self.spec
        styles = self.affine(w)  # [N, in_channels]
        if s.is_torgb:
            styles = styles * self.weight_gain
        x = modulated_conv2d(
            x.to(dtype),
            self.weight,
            styles,
            demodulate=not s.is_torgb,
            padding=s.conv_kernel - 1,
            input_gain=self.magnitude_ema.rsqrt(),
            fused=fused,
        )
        # The official CUDA kernel filters float16 data in float32 and stores float16.
        y = filtered_lrelu(
            x.float(),
            self.up_filter,
            self.down_filter,
            self.bias.to(x.dtype),
            up=s.up,
            down=s.down,
            padding=s.padding,
            gain=1.0 if s.is_torgb else math.sqrt(2),
            slope=1.0 if s.is_torgb else 0.2,
            clamp=self.conv_clamp,
        )
        return y.to(dtype)

    def extra_repr(self) -> str:
        s = self.spec
        return (
            f"in={s.in_channels}x{s.in_size}, out={s.out_channels}x{s.out_size}, "
            f"rate={s.in_sampling_rate}->{s.out_sampling_rate}, up={s.up}, down={s.down}, "
            f"radial={s.down_radial}, fp16={s.use_fp16}"
        )


class SynthesisNetwork(nn.Module):
    """ws [N, num_ws, w_dim] -> image [N, img_channels, R, R]: Fourier input, layers, ToRGB."""

    def __init__(self, config: StyleGAN3Config) -> None:
        super().__init__()
        input_spec, specs = _plan(config)
        self.output_scale = config.output_scale
        self.input = SynthesisInput(config.w_dim, input_spec)
        self.layer_names = [spec.name for spec in specs]
        for spec in specs:
            self.add_module(spec.name, SynthesisLayer(config.w_dim, spec, config))

    def layers(self) -> list[SynthesisLayer]:
        return [getattr(self, name) for name in self.layer_names]

    def forward(self, ws: torch.Tensor, fp16: bool = False, fused: bool = True) -> torch.Tensor:
        w_rows = ws.to(torch.float32).unbind(dim=1)
        x = self.input(w_rows[0])
        for layer, w in zip(self.layers(), w_rows[1:], strict=True):
            dtype = torch.float16 if fp16 and layer.spec.use_fp16 else torch.float32
            x = layer(x, w, dtype, fused)
        if self.output_scale != 1:
            x = x * self.output_scale
        return x.to(torch.float32)


# --------------------------------------------------------------------------------------------
# The user transform (NVIDIA's gen_images.py `make_transform`) and the generator.


def make_transform(translate: tuple[float, float] = (0.0, 0.0), rotate: float = 0.0) -> np.ndarray:
    """The [3, 3] float64 image transform of NVIDIA's gen_images.py (`--translate X,Y
    --rotate DEG`): rotation by `rotate` degrees and translation by `translate`, in image widths
    (the image spans [-1/2, 1/2] in the Fourier input's coordinates)."""
    a = rotate / 360.0 * np.pi * 2
    s, c = np.sin(a), np.cos(a)
    m = np.eye(3)
    m[0, 0], m[0, 1], m[0, 2] = c, s, translate[0]
    m[1, 0], m[1, 1], m[1, 2] = -s, c, translate[1]
    return m


class StyleGAN3Generator(Generator):
    """StyleGAN3 generator: mapping z -> w, synthesis W+ -> image (NVlabs/stylegan3 layers).

    Parameter names: `mapping_network.*` and `synthesis_network.*` are the official `mapping.*` /
    `synthesis.*` names (layers keep their official names, e.g. `L3_52_256`); `w_avg` is the
    official `mapping.w_avg`.
    """

    architecture: ClassVar[str] = "stylegan3"

    def __init__(self, config: StyleGAN3Config | None = None) -> None:
        config = config or StyleGAN3Config()
        super().__init__(
            z_dim=config.z_dim,
            w_dim=config.w_dim,
            num_ws=config.num_ws,
            img_resolution=config.img_resolution,
            img_channels=config.img_channels,
            c_dim=config.c_dim,
        )
        self.config = config
        self.fp16 = False  # True: the official float16 path in the layers marked use_fp16
        # False: scale the activations around one shared-weight convolution (same maths, float
        # rounding apart; faster with gradients: no per-sample weight gradient). True: the
        # official grouped convolution with per-sample weights.
        self.fused_modconv = False
        self.mapping_network = MappingNetwork(
            config.z_dim,
            config.c_dim,
            config.w_dim,
            config.mapping_layers,
            config.mapping_lr_multiplier,
        )
        self.synthesis_network = SynthesisNetwork(config)
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """The official initialisation (N(0, 1) weights, zero biases, unit style biases,
        affine of the Fourier input zero with bias (1, 0, 0, 0), random frequencies and phases,
        magnitude_ema 1, identity transform, w_avg 0), drawn from `generator`."""
        for module in self.modules():
            reset = getattr(module, "reset_parameters", None)
            if module is not self and callable(reset):
                reset(generator)
        with torch.no_grad():
            self.w_avg.zero_()

    # --- the user transform (phase 2: generate --translate/--rotate) --------------------------

    @property
    def transform(self) -> torch.Tensor:
        """The stored [3, 3] input transform (the inverse of the image transform)."""
        return self.synthesis_network.input.transform

    def set_transform(
        self, translate: tuple[float, float] = (0.0, 0.0), rotate: float = 0.0
    ) -> None:
        """Translate (in image widths) and rotate (degrees) the generated image as NVIDIA's
        gen_images.py does: stores inv(make_transform(translate, rotate)) in place of the stored
        transform (it replaces, not composes with, a transform the checkpoint carried)."""
        m = np.linalg.inv(make_transform(translate, rotate))
        with torch.no_grad():
            self.transform.copy_(torch.from_numpy(m))

    # --- Generator interface -----------------------------------------------------------------

    def map_z(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return self.mapping_network(z, c)  # [N, w_dim]

    def synthesize(self, ws: torch.Tensor, noise: Sequence[torch.Tensor]) -> torch.Tensor:
        """W+ -> image; `noise` is always empty (StyleGAN3 has no noise inputs)."""
        return self.synthesis_network(ws, fp16=self.fp16, fused=self.fused_modconv)

    def noise_buffers(self) -> list[torch.Tensor]:
        return []  # no noise inputs: noise_mode is accepted and ignored

    def config_dict(self) -> dict[str, Any]:
        return self.config.to_dict()

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> StyleGAN3Generator:
        return cls(StyleGAN3Config.from_dict(config))

    def extra_repr(self) -> str:
        c = self.config
        kind = "R" if c.use_radial_filters or c.conv_kernel == 1 else "T"
        return f"{super().extra_repr()}, config={kind}, c_dim={c.c_dim}, fp16={self.fp16}"
