"""StyleGAN2 generator (config-f and the ADA variants) in plain PyTorch.

Karras et al., "Analyzing and Improving the Image Quality of StyleGAN" (CVPR 2020), with the
layer semantics of NVIDIA's stylegan2-ada-pytorch (`training/networks.py`), the PyTorch code
that loads every official StyleGAN2 checkpoint. No custom CUDA op: the FIR resampling
(`upfirdn2d`) and the fused bias + activation (`bias_act`) are written with standard torch ops
in the order the official reference implementations compute them, so float32 results agree with
the official code to float rounding (tests/test_stylegan2_reference.py).

The Image2StyleGAN paper embeds into StyleGAN1's W+; the same algorithm runs on this generator's
W+ (`num_ws` = 2 log2(resolution) - 2 codes of size `w_dim`, 18 x 512 at 1024 px).

Two ways to run it (`G.fused_modconv`): True / False replay the official arithmetic op for op
(the grouped convolution of per-sample weights, as `G_ema` runs at inference, or the modulated
activations of the official training loop), bit-equal to the official code on the same machine;
None (the default) takes the fastest path measured for the device: on the CPU the fast path below
(within float32 rounding of the replay: <= 1e-5 of the output range, tested), elsewhere the
official choice.

Mixed precision: official configs mark the top `num_fp16_res` blocks for float16. By default
everything runs in float32 (the exact reference, as the official code does with
`force_fp32=True`); set `G.fp16 = True` to mirror the official per-block float16 path
(float16 activations, input pre-normalisation, `conv_clamp`), meant for CUDA. On CPU it runs too
(torch has float16 CPU kernels), slowly, and matches the official code run on CPU.
`conv_clamp` clamps activations in float32 as well, exactly as the official code does.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import short_repr
from .base import Generator, frozen
from .limits import DIM, LAYERS, RESOLUTION, Bound, check_fields, check_filter_taps

__all__ = [
    "ACTIVATIONS",
    "StyleGAN2Config",
    "StyleGAN2Generator",
    "bias_act",
    "conv2d_resample",
    "modulated_conv2d",
    "setup_filter",
    "upfirdn2d",
    "upsample2d",
]

# --------------------------------------------------------------------------------------------
# Element-wise ops: bias + activation + gain + clamp (the official `bias_act`, reference path).


@dataclass(frozen=True)
class Activation:
    func: Callable[[torch.Tensor, float], torch.Tensor]  # f(x, alpha)
    alpha: float  # default slope (lrelu)
    gain: float  # default gain keeping the signal magnitude (sqrt 2 after a rectifier)


ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation(lambda x, a: x, 0.0, 1.0),
    "relu": Activation(lambda x, a: F.relu(x), 0.0, math.sqrt(2)),
    "lrelu": Activation(lambda x, a: F.leaky_relu(x, a), 0.2, math.sqrt(2)),
    "tanh": Activation(lambda x, a: torch.tanh(x), 0.0, 1.0),
    "sigmoid": Activation(lambda x, a: torch.sigmoid(x), 0.0, 1.0),
    "elu": Activation(lambda x, a: F.elu(x), 0.0, 1.0),
    "selu": Activation(lambda x, a: F.selu(x), 0.0, 1.0),
    "softplus": Activation(lambda x, a: F.softplus(x), 0.0, 1.0),
    "swish": Activation(lambda x, a: torch.sigmoid(x) * x, 0.0, math.sqrt(2)),
}


def bias_act(
    x: torch.Tensor,  # [N, C, ...]
    b: torch.Tensor | None = None,  # [C] bias, added along dim 1
    act: str = "linear",
    gain: float | None = None,  # None = the activation's default gain
    clamp: float | None = None,  # clamp the result to [-clamp, clamp]; None = no clamp
) -> torch.Tensor:
    """y = clamp(act(x + b) * gain): the official `bias_act` reference implementation."""
    spec = ACTIVATIONS[act]
    gain = spec.gain if gain is None else float(gain)
    if b is not None:
        x = x + b.reshape([-1 if i == 1 else 1 for i in range(x.ndim)])
    x = spec.func(x, spec.alpha)
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


# --------------------------------------------------------------------------------------------
# FIR resampling: upfirdn2d (pad, upsample, filter, downsample) with standard torch ops.


def setup_filter(taps: Sequence[float]) -> torch.Tensor:
    """1-D taps -> the normalised float32 FIR filter: [k, k] (outer product) below 8 taps,
    else kept separable [k], as the official `setup_filter` chooses."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    if f.ndim != 1 or f.numel() == 0:
        raise ValueError(f"resample filter must be a non-empty 1-D list of taps, got {taps!r}")
    if f.numel() < 8:
        f = torch.outer(f, f)
    return f / f.sum()


def upfirdn2d(
    x: torch.Tensor,  # [N, C, H, W]
    f: torch.Tensor,  # [k, k] or [k] (separable), float32
    up: int = 1,
    down: int = 1,
    padding: tuple[int, int, int, int] = (0, 0, 0, 0),  # x0, x1, y0, y1 (negative = crop)
    gain: float = 1.0,
) -> torch.Tensor:
    """Upsample by zero insertion, pad, convolve with `f` (per channel), keep every `down`-th."""
    N, C, H, W = x.shape
    px0, px1, py0, py1 = padding
    if up > 1:  # zero insertion: each pixel followed by up-1 zeros
        x = x.reshape(N, C, H, 1, W, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(N, C, H * up, W * up)
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)]
    # conv2d correlates: flip the filter to convolve.
    f = (f * gain ** (f.ndim / 2)).to(x.dtype).flip(list(range(f.ndim)))
    f = f[None, None].repeat([C, 1] + [1] * f.ndim)  # [C, 1, k, k] or [C, 1, k]
    if f.ndim == 4:
        x = F.conv2d(x, f, groups=C)
    else:
        x = F.conv2d(x, f.unsqueeze(2), groups=C)
        x = F.conv2d(x, f.unsqueeze(3), groups=C)
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def _filter_size(f: torch.Tensor) -> tuple[int, int]:
    return int(f.shape[-1]), int(f.shape[0])  # fw, fh


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, H*up, W*up], low-pass filtered with `f` (DC gain kept)."""
    fw, fh = _filter_size(f)
    padding = ((fw + up - 1) // 2, (fw - up) // 2, (fh + up - 1) // 2, (fh - up) // 2)
    return upfirdn2d(x, f, up=up, padding=padding, gain=up * up)


def conv2d_resample(
    x: torch.Tensor,  # [N, C_in, H, W]
    w: torch.Tensor,  # [C_out, C_in // groups, kh, kw]
    f: torch.Tensor | None = None,  # FIR filter for up > 1
    up: int = 1,
    padding: int = 0,
    groups: int = 1,
) -> torch.Tensor:
    """Convolution (correlation, as F.conv2d) with optional FIR-filtered upsampling.

    up == 1: plain conv2d. up > 1, 1x1 kernel: convolve, then upsample. up > 1 otherwise:
    strided transposed convolution, then the FIR filter (the official fast paths; the weights
    are used as stored, which is what the official generator layers do: they pass
    flip_weight = (up == 1)).
    """
    out_channels, in_per_group, kh, kw = w.shape
    if up == 1:
        return F.conv2d(x, w, padding=padding, groups=groups)
    assert f is not None
    fw, fh = _filter_size(f)
    px0 = padding + (fw + up - 1) // 2
    px1 = padding + (fw - up) // 2
    py0 = padding + (fh + up - 1) // 2
    py1 = padding + (fh - up) // 2
    if kw == 1 and kh == 1:
        x = F.conv2d(x, w, groups=groups)
        return upfirdn2d(x, f, up=up, padding=(px0, px1, py0, py1), gain=up * up)
    if groups == 1:
        w = w.transpose(0, 1)
    else:  # [G * O_g, I_g, k, k] -> [G * I_g, O_g, k, k]
        w = w.reshape(groups, out_channels // groups, in_per_group, kh, kw).transpose(1, 2)
        w = w.reshape(groups * in_per_group, out_channels // groups, kh, kw)
    px0 -= kw - 1
    px1 -= kw - up
    py0 -= kh - 1
    py1 -= kh - up
    pxt = max(min(-px0, -px1), 0)
    pyt = max(min(-py0, -py1), 0)
    x = F.conv_transpose2d(x, w, stride=up, padding=[pyt, pxt], groups=groups)
    return upfirdn2d(x, f, padding=(px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt), gain=up * up)


# --------------------------------------------------------------------------------------------
# Modulated convolution (StyleGAN2 Sec. 2.2: modulation, convolution, demodulation).


def modulated_conv2d(
    x: torch.Tensor,  # [N, I, H, W]
    weight: torch.Tensor,  # [O, I, k, k]
    styles: torch.Tensor,  # [N, I] modulation coefficients
    noise: torch.Tensor | None = None,  # added to the output, broadcastable to [N, O, H', W']
    up: int = 1,
    padding: int = 0,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
    fused: bool = True,  # one grouped convolution (per-sample weights) vs scaled activations
) -> torch.Tensor:
    """y = conv(x, weight * s) * d + noise, d = 1 / ||weight * s||: [N, O, H*up, W*up]."""
    N = x.shape[0]
    _, in_channels, kh, kw = weight.shape

    if x.dtype == torch.float16 and demodulate:  # pre-normalise to avoid float16 overflow
        weight = weight * (
            1
            / math.sqrt(in_channels * kh * kw)
            / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True)
        )
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)

    w = dcoefs = None
    if demodulate or fused:
        w = weight.unsqueeze(0) * styles.reshape(N, 1, -1, 1, 1)  # [N, O, I, k, k]
    if w is not None and demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [N, O]
        if fused:
            w = w * dcoefs.reshape(N, -1, 1, 1, 1)

    if w is None or not fused:  # (fused always has w)
        x = x * styles.to(x.dtype).reshape(N, -1, 1, 1)
        x = conv2d_resample(x, weight.to(x.dtype), resample_filter, up=up, padding=padding)
        if dcoefs is not None and noise is not None:
            return torch.addcmul(noise.to(x.dtype), x, dcoefs.to(x.dtype).reshape(N, -1, 1, 1))
        if dcoefs is not None:
            return x * dcoefs.to(x.dtype).reshape(N, -1, 1, 1)
        if noise is not None:
            return x.add_(noise.to(x.dtype))
        return x

    x = x.reshape(1, -1, *x.shape[2:])  # [1, N*I, H, W]: the batch becomes conv groups
    w = w.reshape(-1, in_channels, kh, kw)  # [N*O, I, k, k]
    x = conv2d_resample(x, w.to(x.dtype), resample_filter, up=up, padding=padding, groups=N)
    x = x.reshape(N, -1, *x.shape[2:])  # [N, O, H', W']
    if noise is not None:
        x = x.add_(noise)  # in place: keeps x's dtype, as the official code does
    return x


# --------------------------------------------------------------------------------------------
# The fast path (fused_modconv=None on the devices in FAST_PATH_DEVICES): the same network,
# re-associated for speed. Exact in real arithmetic, within float32 rounding of the official
# arithmetic (tests/test_stylegan2.py::test_fast_path_matches_the_official_replay):
# - modulate the activations, one shared-weight convolution, demodulate after (the official
#   training path; on the CPU 1.4-1.7x faster than the grouped convolution of per-sample weights);
# - demodulation coefficients as one matrix product, sum_i s_i^2 sum_k w_oik^2, instead of
#   building the [N, O, I, k, k] per-sample weights;
# - demodulation, noise, bias and the activation gain in one addcmul (lrelu(z) g = lrelu(z g) for
#   g > 0), then the activation in place;
# - 2x FIR upsampling as one strided transposed depthwise convolution (no zero insertion) and
#   the FIR after a transposed convolution as one padded depthwise convolution;
# - ToRGB (1x1, 3 outputs) as a batched matrix product with per-sample weights;
# - channels-last activations on the CPU, where oneDNN's convolutions are faster in that layout
#   (a strided transposed convolution 2-5x).

FAST_PATH_DEVICES = frozenset({"cpu"})  # measured (benchmarks/generator_speed.py); GPUs: not yet
_HOMOGENEOUS = ("linear", "relu", "lrelu")  # act(z) * g == act(z * g) for g > 0


class FastKernels:
    """Per-call cache of the depthwise FIR kernels, one per channel count and use."""

    def __init__(self, f: torch.Tensor, memory_format: torch.memory_format) -> None:
        self.f = f if f.ndim == 2 else torch.outer(f, f)  # [fh, fw]
        self.memory_format = memory_format
        self._cache: dict[tuple[str, int, float], torch.Tensor] = {}

    def depthwise(self, kind: str, channels: int, gain: float) -> torch.Tensor:
        """[C, 1, fh, fw]: the filter (flipped for a correlation when kind == 'conv')."""
        key = (kind, channels, gain)
        k = self._cache.get(key)
        if k is None:
            f = self.f.flip([0, 1]) if kind == "conv" else self.f
            k = (f * gain)[None, None].expand(channels, 1, *f.shape).contiguous()
            self._cache[key] = k
        return k

    def upsample2d(self, x: torch.Tensor) -> torch.Tensor:
        """= upsample2d(x, f): zero insertion, padding and filter as one transposed convolution
        (out[o] = sum_i x[i] f[o + q - 2i], q = fw - 1 - padding before)."""
        fh, fw = self.f.shape
        p0x, p1x, p0y, p1y = (fw + 1) // 2, (fw - 2) // 2, (fh + 1) // 2, (fh - 2) // 2
        qx, qy = fw - 1 - p0x, fh - 1 - p0y
        if min(qx, qy) < 0 or p0x - p1x != 1 or p0y - p1y != 1:  # odd filters: the reference
            return upsample2d(x, self.f)
        k = self.depthwise("transpose", x.shape[1], 4.0)
        return F.conv_transpose2d(x, k, stride=2, padding=[qy, qx], groups=x.shape[1])

    def filter2d(
        self, x: torch.Tensor, padding: tuple[int, int, int, int], gain: float
    ) -> torch.Tensor:
        """= upfirdn2d(x, f, padding=padding, gain=gain) for up = down = 1."""
        px0, px1, py0, py1 = padding
        if px0 != px1 or py0 != py1 or min(px0, py0) < 0:
            return upfirdn2d(x, self.f, padding=padding, gain=gain)
        k = self.depthwise("conv", x.shape[1], gain)
        return F.conv2d(x, k, padding=[py0, px0], groups=x.shape[1])


def fast_upconv2d(
    x: torch.Tensor,  # [N, I, H, W], already modulated
    weight_t: torch.Tensor,  # [I, O, k, k]: the weight transposed, in the activations' layout
    kernels: FastKernels,
    padding: int,
) -> torch.Tensor:
    """= conv2d_resample(x, weight, f, up=2, padding): strided transposed convolution, then the
    FIR (gain 4) as one depthwise convolution: [N, O, 2H, 2W]."""
    _, _, kh, kw = weight_t.shape
    fh, fw = kernels.f.shape
    px0, px1 = padding + (fw + 1) // 2 - (kw - 1), padding + (fw - 2) // 2 - (kw - 2)
    py0, py1 = padding + (fh + 1) // 2 - (kh - 1), padding + (fh - 2) // 2 - (kh - 2)
    pxt, pyt = max(min(-px0, -px1), 0), max(min(-py0, -py1), 0)
    x = F.conv_transpose2d(x, weight_t, stride=2, padding=[pyt, pxt])
    return kernels.filter2d(x, (px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt), 4.0)


# --------------------------------------------------------------------------------------------
# Layers.


class FullyConnectedLayer(nn.Module):
    """Dense layer with equalised learning rate: y = act(x @ (W * lr / sqrt(in)).T + b * lr)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        activation: str = "linear",  # a key of ACTIVATIONS
        lr_multiplier: float = 1.0,  # 0.01 in the mapping network
        bias_init: float = 0.0,  # 1 for the style affines (styles start at 1)
    ) -> None:
        super().__init__()
        self.activation = activation
        self.lr_multiplier = lr_multiplier
        self.bias_init = bias_init
        self.weight = nn.Parameter(torch.empty(out_features, in_features))  # [out, in]
        self.bias = nn.Parameter(torch.empty(out_features))  # [out]
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        with torch.no_grad():
            self.weight.normal_(generator=generator).div_(self.lr_multiplier)
            self.bias.fill_(self.bias_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, in] -> [N, out]
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias.to(x.dtype)
        if self.bias_gain != 1:
            b = b * self.bias_gain
        if self.activation == "linear":
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, act=self.activation)

    def forward_fast(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        """`forward(x) * gain` in float32, the scaled weights computed once while frozen."""
        weight, bias = self.weight, self.bias
        w_t = frozen(self, f"w{gain}", lambda: (weight * (self.weight_gain * gain)).t(), weight)
        b = frozen(self, f"b{gain}", lambda: (bias * (self.bias_gain * gain)).unsqueeze(0), bias)
        if self.activation == "linear":
            return torch.addmm(b, x, w_t)
        return bias_act(x.matmul(w_t), b[0], act=self.activation)


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """x / sqrt(mean(x^2) + eps) along dim 1 (the mapping network's input normalisation)."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class MappingNetwork(nn.Module):
    """z [N, z_dim] (+ label c [N, c_dim]) -> w [N, w_dim]: normalise, then an MLP."""

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        num_layers: int,
        embed_features: int | None,  # label embedding size; None = w_dim
        layer_features: int | None,  # hidden layer size; None = w_dim
        activation: str,
        lr_multiplier: float,
    ) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.num_layers = z_dim, c_dim, num_layers
        embed_features = (w_dim if embed_features is None else embed_features) if c_dim else 0
        layer_features = w_dim if layer_features is None else layer_features
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for i in range(num_layers):
            layer = FullyConnectedLayer(
                features[i], features[i + 1], activation=activation, lr_multiplier=lr_multiplier
            )
            self.add_module(f"fc{i}", layer)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        x = normalize_2nd_moment(z.to(torch.float32))  # [N, z_dim]
        if self.c_dim > 0:
            if c is None or c.ndim != 2 or c.shape[1] != self.c_dim:
                got = None if c is None else list(c.shape)
                raise ValueError(
                    f"this generator is conditional: c must be [N, {self.c_dim}], got {got}"
                )
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1)
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        return x  # [N, w_dim]


class SynthesisLayer(nn.Module):
    """Modulated 3x3 convolution (optionally 2x upsampling) + noise + bias + lrelu."""

    noise_const: torch.Tensor  # [r, r] buffer (use_noise)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,  # output side of this layer
        up: int = 1,
        use_noise: bool = True,
        activation: str = "lrelu",
        conv_clamp: float | None = None,
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        self.resolution, self.up, self.use_noise = resolution, up, use_noise
        self.activation, self.conv_clamp = activation, conv_clamp
        self.padding = kernel_size // 2
        self.act_gain = ACTIVATIONS[activation].gain
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        if use_noise:
            self.register_buffer("noise_const", torch.empty(resolution, resolution))  # [r, r]
            self.noise_strength = nn.Parameter(torch.empty([]))
        self.bias = nn.Parameter(torch.empty(out_channels))

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        with torch.no_grad():
            self.weight.normal_(generator=generator)
            self.bias.zero_()
            if self.use_noise:
                self.noise_const.normal_(generator=generator)
                self.noise_strength.zero_()

    def forward(
        self,
        x: torch.Tensor,  # [N, I, r/up, r/up]
        w: torch.Tensor,  # [N, w_dim]
        noise: torch.Tensor | None,  # unit noise broadcastable to [N, 1, r, r]; None = none
        resample_filter: torch.Tensor,
        fused: bool,
        gain: float = 1.0,
    ) -> torch.Tensor:  # [N, O, r, r]
        styles = self.affine(w)  # [N, I]
        # unit noise [N or 1, 1, r, r] -> this layer's strength
        noise = noise * self.noise_strength if noise is not None and self.use_noise else None
        x = modulated_conv2d(
            x, self.weight, styles, noise=noise, up=self.up, padding=self.padding,
            resample_filter=resample_filter, fused=fused,
        )  # fmt: skip
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias.to(x.dtype), self.activation, gain=act_gain, clamp=act_clamp)

    def forward_fast(
        self,
        x: torch.Tensor,  # [N, I, r/up, r/up] float32
        w: torch.Tensor,  # [N, w_dim]
        noise: torch.Tensor | None,  # unit noise broadcastable to [N, 1, r, r]; None = none
        kernels: FastKernels,
        gain: float = 1.0,
    ) -> torch.Tensor:  # [N, O, r, r]
        """`forward` re-associated (the fast path above), float32."""
        N = x.shape[0]
        weight, layout = self.weight, kernels.memory_format
        styles = self.affine.forward_fast(w)  # [N, I]
        wsq = frozen(self, "wsq", lambda: weight.square().sum(dim=[2, 3]).t(), weight)  # [I, O]
        dcoefs = styles.square().matmul(wsq).add_(1e-8).rsqrt_()  # [N, O] demodulation
        x = x * styles.reshape(N, -1, 1, 1)
        if self.up == 1:
            w_conv = frozen(self, "conv", lambda: weight.contiguous(memory_format=layout), weight)
            x = F.conv2d(x, w_conv, padding=self.padding)
        else:

            def transposed() -> torch.Tensor:  # [I, O, k, k]
                return weight.transpose(0, 1).contiguous(memory_format=layout)

            x = fast_upconv2d(x, frozen(self, "conv_t", transposed, weight), kernels, self.padding)
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        noise = noise if self.use_noise else None
        if self.activation not in _HOMOGENEOUS:
            x = x * dcoefs.reshape(N, -1, 1, 1)
            x = torch.addcmul(x, noise, self.noise_strength) if noise is not None else x
            return bias_act(x, self.bias, self.activation, gain=act_gain, clamp=act_clamp)

        # act(x d + noise s + b) g = act(x (d g) + (noise (s g) + b g)): one addcmul
        def offset() -> torch.Tensor:  # [1 or N, O, 1 or r, 1 or r]
            b = (self.bias * act_gain).reshape(1, -1, 1, 1)
            if noise is None:
                return b
            b = torch.addcmul(b, noise, self.noise_strength * act_gain)
            return b.contiguous(memory_format=layout)

        deps = (self.bias,) if noise is None else (self.bias, noise, self.noise_strength)
        b = frozen(self, f"offset{gain}", offset, *deps)
        x = torch.addcmul(b, x, (dcoefs * act_gain).reshape(N, -1, 1, 1))
        if act_clamp is not None:  # hardtanh = clamp with a one-kernel backward (0 at exactly +-c)
            x = F.leaky_relu(x, ACTIVATIONS["lrelu"].alpha) if self.activation == "lrelu" else x
            x = F.relu(x) if self.activation == "relu" else x
            return F.hardtanh_(x, -act_clamp, act_clamp)
        if self.activation == "lrelu":
            return F.leaky_relu_(x, ACTIVATIONS["lrelu"].alpha)
        return F.relu_(x) if self.activation == "relu" else x


class ToRGBLayer(nn.Module):
    """Modulated 1x1 convolution to image channels (no demodulation) + bias."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, conv_clamp: float | None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.empty(out_channels))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        with torch.no_grad():
            self.weight.normal_(generator=generator)
            self.bias.zero_()

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused: bool) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain  # [N, I]
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused=fused)
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)

    def forward_fast(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """`forward` as one batched matrix product with per-sample weights (float32)."""
        N, I, H, W = x.shape
        styles = self.affine.forward_fast(w, gain=self.weight_gain)  # [N, I]
        weight = self.weight.reshape(1, -1, I) * styles.unsqueeze(1)  # [N, C, I]
        if x.is_contiguous():
            y = torch.baddbmm(self.bias.reshape(1, -1, 1), weight, x.reshape(N, I, H * W))
            y = y.reshape(N, -1, H, W)  # [N, C, H, W]
        else:  # channels last: [N, H, W, I] in memory
            pixels = x.permute(0, 2, 3, 1).reshape(N, H * W, I)
            y = torch.baddbmm(self.bias.reshape(1, 1, -1), pixels, weight.transpose(1, 2))
            y = y.reshape(N, H, W, -1).permute(0, 3, 1, 2)  # [N, C, H, W], channels last
        c = self.conv_clamp
        return y.clamp(-c, c) if c is not None else y


class SkipLayer(nn.Module):
    """Resnet shortcut: 1x1 convolution with 2x FIR upsampling, no bias (equalised lr)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, 1, 1))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        with torch.no_grad():
            self.weight.normal_(generator=generator)

    def forward(self, x: torch.Tensor, resample_filter: torch.Tensor, gain: float) -> torch.Tensor:
        w = self.weight * self.weight_gain
        x = conv2d_resample(x, w.to(x.dtype), resample_filter, up=2)
        return bias_act(x, None, "linear", gain=gain)

    def forward_fast(self, x: torch.Tensor, kernels: FastKernels, gain: float) -> torch.Tensor:
        weight, layout = self.weight, kernels.memory_format
        w = frozen(self, f"w{gain}",
                   lambda: (weight * (self.weight_gain * gain)).contiguous(memory_format=layout),
                   weight)  # fmt: skip
        return kernels.upsample2d(F.conv2d(x, w))


class SynthesisBlock(nn.Module):
    """One resolution: [const | conv0 (2x up)], conv1, ToRGB; 'skip', 'resnet' or 'orig'."""

    def __init__(
        self,
        in_channels: int,  # 0 = the first (4x4) block, which starts from a learned constant
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        is_last: bool,
        architecture: str,
        use_fp16: bool,  # this block runs in float16 when the generator's fp16 option is on
        conv_clamp: float | None,
        use_noise: bool,
        activation: str,
    ) -> None:
        super().__init__()
        self.in_channels, self.resolution, self.architecture = in_channels, resolution, architecture
        self.is_last, self.use_fp16 = is_last, use_fp16

        def layer(cin: int, cout: int, up: int = 1) -> SynthesisLayer:
            return SynthesisLayer(cin, cout, w_dim, resolution, up=up, use_noise=use_noise,
                                  activation=activation, conv_clamp=conv_clamp)  # fmt: skip

        self.num_conv = 0
        self.num_torgb = 0
        if in_channels == 0:
            self.const = nn.Parameter(torch.empty(out_channels, resolution, resolution))
        else:
            self.conv0 = layer(in_channels, out_channels, up=2)
            self.num_conv += 1
        self.conv1 = layer(out_channels, out_channels)
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp)
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = SkipLayer(in_channels, out_channels)

    def noise_layers(self) -> list[SynthesisLayer]:
        return [self.conv0, self.conv1] if self.in_channels else [self.conv1]

    def forward(
        self,
        x: torch.Tensor | None,  # [N, in_channels, r/2, r/2]; None for the first block
        img: torch.Tensor | None,  # [N, img_channels, r/2, r/2] float32, or None
        ws: torch.Tensor,  # [N, num_conv + num_torgb, w_dim]
        noise: Sequence[torch.Tensor | None],  # one per conv layer
        resample_filter: torch.Tensor,
        fp16: bool,
        fused_modconv: bool | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        dtype = torch.float16 if self.use_fp16 and fp16 else torch.float32
        if fused_modconv is None:  # the official rule
            fused_modconv = (not self.training) and (dtype == torch.float32 or ws.shape[0] == 1)
        w_iter = iter(ws.unbind(dim=1))
        if self.in_channels == 0:
            x = self.const.to(dtype).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
            x = self.conv1(x, next(w_iter), noise[0], resample_filter, fused_modconv)
        elif self.architecture == "resnet":
            assert x is not None
            x = x.to(dtype)
            y = self.skip(x, resample_filter, gain=math.sqrt(0.5))
            x = self.conv0(x, next(w_iter), noise[0], resample_filter, fused_modconv)
            x = self.conv1(x, next(w_iter), noise[1], resample_filter, fused_modconv,
                           gain=math.sqrt(0.5))  # fmt: skip
            x = y.add_(x)
        else:
            assert x is not None
            x = x.to(dtype)
            x = self.conv0(x, next(w_iter), noise[0], resample_filter, fused_modconv)
            x = self.conv1(x, next(w_iter), noise[1], resample_filter, fused_modconv)
        if img is not None:
            img = upsample2d(img, resample_filter)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w_iter), fused_modconv).to(torch.float32)
            img = img.add_(y) if img is not None else y
        return x, img

    def forward_fast(
        self,
        x: torch.Tensor | None,  # [N, in_channels, r/2, r/2] float32; None for the first block
        img: torch.Tensor | None,  # [N, img_channels, r/2, r/2] float32, or None
        ws: torch.Tensor,  # [N, num_conv + num_torgb, w_dim]
        noise: Sequence[torch.Tensor | None],  # one per conv layer
        kernels: FastKernels,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`forward` on the fast path (float32; activations in `kernels.memory_format`)."""
        w_iter = iter(ws.unbind(dim=1))
        if self.in_channels == 0:  # the styles' broadcast makes the batch: no repeat needed
            x = self.const.unsqueeze(0).contiguous(memory_format=kernels.memory_format)
            x = self.conv1.forward_fast(x.expand(ws.shape[0], -1, -1, -1), next(w_iter),
                                        noise[0], kernels)  # fmt: skip
        elif self.architecture == "resnet":
            assert x is not None
            y = self.skip.forward_fast(x, kernels, gain=math.sqrt(0.5))
            x = self.conv0.forward_fast(x, next(w_iter), noise[0], kernels)
            x = self.conv1.forward_fast(x, next(w_iter), noise[1], kernels, gain=math.sqrt(0.5))
            x = y.add_(x)
        else:
            assert x is not None
            x = self.conv0.forward_fast(x, next(w_iter), noise[0], kernels)
            x = self.conv1.forward_fast(x, next(w_iter), noise[1], kernels)
        if img is not None:
            img = kernels.upsample2d(img)
        if self.is_last or self.architecture == "skip":
            y = self.torgb.forward_fast(x, next(w_iter))
            img = img.add_(y) if img is not None else y
        return x, img


class SynthesisNetwork(nn.Module):
    """ws [N, num_ws, w_dim] -> image [N, img_channels, R, R], one block per resolution 4..R."""

    def __init__(self, config: StyleGAN2Config) -> None:
        super().__init__()
        c = config
        self.block_resolutions = [2**i for i in range(2, int(math.log2(c.img_resolution)) + 1)]
        fp16_resolution = max(2 ** (int(math.log2(c.img_resolution)) + 1 - c.num_fp16_res), 8)
        self.register_buffer("resample_filter", setup_filter(c.resample_filter), persistent=False)
        self.num_ws = 0
        for res in self.block_resolutions:
            block = SynthesisBlock(
                in_channels=c.channels(res // 2) if res > 4 else 0,
                out_channels=c.channels(res),
                w_dim=c.w_dim,
                resolution=res,
                img_channels=c.img_channels,
                is_last=res == c.img_resolution,
                architecture=c.architecture,
                use_fp16=res >= fp16_resolution,
                conv_clamp=c.conv_clamp,
                use_noise=c.use_noise,
                activation=c.activation,
            )
            self.num_ws += block.num_conv + (block.num_torgb if block.is_last else 0)
            self.add_module(f"b{res}", block)

    def blocks(self) -> list[SynthesisBlock]:
        return [getattr(self, f"b{res}") for res in self.block_resolutions]

    def noise_layers(self) -> list[SynthesisLayer]:
        return [layer for block in self.blocks() for layer in block.noise_layers()]

    def forward(
        self,
        ws: torch.Tensor,  # [N, num_ws, w_dim]
        noise: Sequence[torch.Tensor | None],  # one per conv layer, in layer order
        fp16: bool = False,
        fused_modconv: bool | None = None,  # None: fast path where measured, else `official`
        official: bool | None = None,  # the official network's choice (None: ADA's rule)
    ) -> torch.Tensor:
        ws = ws.to(torch.float32)
        kernels = None
        if fused_modconv is None and ws.device.type in FAST_PATH_DEVICES:
            layout = torch.channels_last if ws.device.type == "cpu" else torch.contiguous_format
            assert isinstance(self.resample_filter, torch.Tensor)
            kernels = FastKernels(self.resample_filter, layout)
        x = img = None
        w_idx = n_idx = 0
        for block in self.blocks():
            # Each block reads its conv ws and, for ToRGB, the next block's first w.
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            block_noise = noise[n_idx : n_idx + block.num_conv]
            if kernels is not None and not (fp16 and block.use_fp16):
                x, img = block.forward_fast(x, img, block_ws, block_noise, kernels)
            else:
                fused = official if fused_modconv is None else fused_modconv
                x, img = block(x, img, block_ws, block_noise, self.resample_filter, fp16, fused)
            w_idx += block.num_conv
            n_idx += block.num_conv
        assert img is not None
        return img.contiguous()


# --------------------------------------------------------------------------------------------
# Config and generator.


# Sane limits on every numeric field (models/limits.py): checked before any tensor is built.
_SG2_BOUNDS = {
    "z_dim": DIM,
    "c_dim": Bound(0, 2**16),
    "w_dim": DIM,
    "img_resolution": RESOLUTION,
    "img_channels": Bound(1, 16),
    "mapping_layers": LAYERS,
    "mapping_embed_features": Bound(1, 2**13, optional=True),
    "mapping_layer_features": Bound(1, 2**13, optional=True),
    "mapping_lr_multiplier": Bound(1e-6, 1e6, integer=False),
    "channel_base": Bound(1, 2**20),
    "channel_max": DIM,
    "num_fp16_res": Bound(0, 15),
    "conv_clamp": Bound(1e-6, 1e9, integer=False, optional=True),
}


@dataclass(frozen=True)
class StyleGAN2Config:
    """Everything that fixes a StyleGAN2 generator's shape; defaults = FFHQ config-f (1024 px).

    Field names follow stylegan2-ada-pytorch's constructor arguments (mapping_* = its
    `mapping_kwargs`, the rest of the synthesis fields = its `synthesis_kwargs`).
    """

    z_dim: int = 512  # input latent size
    c_dim: int = 0  # conditioning label size, 0 = unconditional
    w_dim: int = 512  # intermediate latent size
    img_resolution: int = 1024  # output side, a power of two >= 4
    img_channels: int = 3
    mapping_layers: int = 8  # depth of the mapping MLP
    mapping_embed_features: int | None = None  # label embedding size; None = w_dim
    mapping_layer_features: int | None = None  # hidden width; None = w_dim
    mapping_activation: str = "lrelu"
    mapping_lr_multiplier: float = 0.01  # equalised-lr multiplier of the mapping layers
    channel_base: int = 32768  # channels at resolution r: min(channel_base // r, channel_max)
    channel_max: int = 512
    num_fp16_res: int = 0  # the top N resolutions may run in float16 (G.fp16 = True)
    conv_clamp: float | None = None  # clamp conv outputs to +-conv_clamp (256 in ADA configs)
    architecture: str = "skip"  # 'skip' (config-e/f), 'resnet' or 'orig'
    resample_filter: tuple[float, ...] = (1, 3, 3, 1)  # FIR taps for 2x upsampling
    use_noise: bool = True  # per-layer noise inputs
    activation: str = "lrelu"  # synthesis activation

    def __post_init__(self) -> None:
        check_fields(self, _SG2_BOUNDS)  # before anything is derived from the numbers
        if not isinstance(self.use_noise, bool):
            raise ValueError(f"use_noise must be true or false, got {short_repr(self.use_noise)}")
        r = self.img_resolution
        if self.architecture not in ("skip", "resnet", "orig"):
            raise ValueError(
                f"architecture must be 'skip', 'resnet' or 'orig', got {self.architecture!r}"
            )
        for name in ("activation", "mapping_activation"):
            if getattr(self, name) not in ACTIVATIONS:
                raise ValueError(
                    f"{name} {getattr(self, name)!r} is not one of {sorted(ACTIVATIONS)}"
                )
        if (
            min(self.z_dim, self.w_dim, self.img_channels, self.mapping_layers) < 1
            or self.c_dim < 0
        ):
            raise ValueError(
                "z_dim, w_dim, img_channels and mapping_layers must be >= 1, c_dim >= 0"
            )
        if any(self.channels(2**i) < 1 for i in range(2, int(math.log2(r)) + 1)):
            raise ValueError(f"channel_base {self.channel_base} leaves a block without channels")
        object.__setattr__(
            self, "resample_filter", check_filter_taps("resample_filter", self.resample_filter)
        )

    def channels(self, res: int) -> int:
        """Feature maps of the block at resolution `res`."""
        return min(self.channel_base // res, self.channel_max)

    @property
    def num_ws(self) -> int:
        return 2 * int(math.log2(self.img_resolution)) - 2

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["resample_filter"] = list(self.resample_filter)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StyleGAN2Config:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown StyleGAN2 config keys: {', '.join(unknown)}")
        d = dict(d)
        if "resample_filter" in d:
            d["resample_filter"] = tuple(d["resample_filter"])
        return cls(**d)


class StyleGAN2Generator(Generator):
    """StyleGAN2 generator: mapping z -> w, synthesis W+ -> image (stylegan2-ada-pytorch layers).

    Parameter names: `mapping_network.*` and `synthesis_network.*` are the official
    `mapping.*` / `synthesis.*` names; `w_avg` is the official `mapping.w_avg`.
    """

    architecture: ClassVar[str] = "stylegan2"

    def __init__(self, config: StyleGAN2Config | None = None) -> None:
        config = config or StyleGAN2Config()
        super().__init__(
            z_dim=config.z_dim,
            w_dim=config.w_dim,
            num_ws=config.num_ws,
            img_resolution=config.img_resolution,
            img_channels=config.img_channels,
            c_dim=config.c_dim,
        )
        self.config = config
        self.fp16 = False  # True: the official float16 path in the top num_fp16_res blocks
        # None: the fastest path for the device (the fast path on the CPU; elsewhere the official
        # choice: fused outside training in float32); True / False: replay the official fused /
        # non-fused arithmetic bit for bit.
        self.fused_modconv: bool | None = None
        # What the official network itself does (None: stylegan2-ada-pytorch's rule above; True /
        # False: a stylegan3-repository network's fused_modconv_default), for replaying it.
        self.official_fused_modconv: bool | None = None
        self.mapping_network = MappingNetwork(
            z_dim=config.z_dim,
            c_dim=config.c_dim,
            w_dim=config.w_dim,
            num_layers=config.mapping_layers,
            embed_features=config.mapping_embed_features,
            layer_features=config.mapping_layer_features,
            activation=config.mapping_activation,
            lr_multiplier=config.mapping_lr_multiplier,
        )
        self.synthesis_network = SynthesisNetwork(config)
        assert self.synthesis_network.num_ws == self.num_ws
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """The official initialisation (N(0, 1) weights, const and noise; zero biases, noise
        strengths and w_avg; style biases 1), drawn from `generator`."""
        for module in self.modules():
            reset = getattr(module, "reset_parameters", None)
            if module is not self and callable(reset):
                reset(generator)
        with torch.no_grad():
            for block in self.synthesis_network.blocks():
                if block.in_channels == 0:
                    block.const.normal_(generator=generator)
            self.w_avg.zero_()

    # --- Generator interface ---------------------------------------------------------------

    def map_z(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return self.mapping_network(z, c)  # [N, w_dim]

    def synthesize(self, ws: torch.Tensor, noise: Sequence[torch.Tensor]) -> torch.Tensor:
        layers = self.synthesis_network.noise_layers()
        per_layer: list[torch.Tensor | None] = (
            list(noise) if self.config.use_noise else [None] * len(layers)
        )
        return self.synthesis_network(
            ws, per_layer, self.fp16, self.fused_modconv, self.official_fused_modconv
        )

    def noise_buffers(self) -> list[torch.Tensor]:
        if not self.config.use_noise:
            return []
        return [layer.noise_const[None, None] for layer in self.synthesis_network.noise_layers()]

    def config_dict(self) -> dict[str, Any]:
        return self.config.to_dict()

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> StyleGAN2Generator:
        return cls(StyleGAN2Config.from_dict(config))

    def extra_repr(self) -> str:
        c = self.config
        return f"{super().extra_repr()}, arch={c.architecture}, c_dim={c.c_dim}, fp16={self.fp16}"
