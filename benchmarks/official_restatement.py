"""NVIDIA's StyleGAN2 synthesis network re-stated in plain PyTorch, for timing it beside ours.

What it mirrors: NVlabs/stylegan2-ada-pytorch @ d72cc7d041b42ec8e806021a205ed9349f87c6a4
(`training/networks.py`: SynthesisNetwork, SynthesisBlock, SynthesisLayer, ToRGBLayer,
Conv2dLayer, FullyConnectedLayer, modulated_conv2d; `torch_utils/ops`: conv2d_resample,
upfirdn2d, bias_act and fma on the reference paths that run wherever the CUDA plugins do not,
i.e. on every CPU). Written from reading that code, not copied: the same operations in the same
order on the same tensors, including the per-call work the official code does around them
(`torch.autograd.profiler.record_function` scopes of its `@profiled_function` ops, the FIR
filter repeated per call, the fused multiply-add as a Python autograd function), so its cost is
the official cost. Checked against the real code in one process (README, "Speed"): its images
equal the official ones bit for bit, and its time matches the official time within the noise.

It reads the weights of one of our `StyleGAN2Generator`s (the loader maps an official file onto
exactly these tensors), so both sides compute the same network on the same weights. float32 only
(the official `force_fp32=True`); `fused_modconv=True` is `G_ema` at inference (eval mode),
`fused_modconv=False` the training loop's path.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch.autograd.profiler import record_function

from image2stylegan.models.stylegan2 import StyleGAN2Generator, SynthesisBlock, SynthesisLayer

__all__ = ["OfficialSynthesis"]

_LRELU_GAIN = math.sqrt(2)


class _Quiet(warnings.catch_warnings):
    """The official code's scope around its int() of sizes (no tracer warnings): same cost."""

    def __enter__(self):  # type: ignore[no-untyped-def]
        super().__enter__()
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        return self


def _check(t: torch.Tensor, shape: Sequence[int | None]) -> None:
    """The official shape assertions (they run on every call)."""
    if t.ndim != len(shape):
        raise AssertionError(f"got {t.ndim} dimensions, expected {len(shape)}")
    for size, want in zip(t.shape, shape, strict=True):
        if want is not None and size != want:
            raise AssertionError(f"got size {size}, expected {want}")


def _sizes(w: torch.Tensor, f: torch.Tensor | None) -> tuple[list[int], int, int]:
    """Weight shape and filter size, read as the official helpers read them."""
    with _Quiet():
        shape = [int(s) for s in w.shape]
    _check(w, shape)
    if f is None:
        return shape, 1, 1
    with _Quiet():
        fw, fh = int(f.shape[-1]), int(f.shape[0])
    _check(f, [fh, fw][: f.ndim])
    return shape, fw, fh


class _MulAdd(torch.autograd.Function):
    """a * b + c with the official hand-written backward (sums over broadcast dimensions)."""

    @staticmethod
    def forward(ctx, a, b, c):  # type: ignore[no-untyped-def]
        ctx.save_for_backward(a, b)
        ctx.c_shape = c.shape
        return torch.addcmul(c, a, b)

    @staticmethod
    def backward(ctx, dout):  # type: ignore[no-untyped-def]
        a, b = ctx.saved_tensors
        grads = [None, None, None]
        if ctx.needs_input_grad[0]:
            grads[0] = _sum_to(dout * b, a.shape)
        if ctx.needs_input_grad[1]:
            grads[1] = _sum_to(dout * a, b.shape)
        if ctx.needs_input_grad[2]:
            grads[2] = _sum_to(dout, ctx.c_shape)
        return tuple(grads)


def _sum_to(x: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    lead = x.ndim - len(shape)
    dims = [d for d in range(x.ndim) if x.shape[d] > 1 and (d < lead or shape[d - lead] == 1)]
    if dims:
        x = x.sum(dim=dims, keepdim=True)
    if lead:
        x = x.reshape(-1, *x.shape[lead + 1 :])
    return x


def _bias_act(x, b=None, act="linear", gain=None, clamp=None):  # type: ignore[no-untyped-def]
    with record_function("_bias_act_ref"):
        gain = (_LRELU_GAIN if act == "lrelu" else 1.0) if gain is None else float(gain)
        if b is not None:
            x = x + b.reshape([-1 if d == 1 else 1 for d in range(x.ndim)])
        if act == "lrelu":
            x = F.leaky_relu(x, 0.2)
        if gain != 1:
            x = x * gain
        if clamp is not None and clamp >= 0:
            x = x.clamp(-clamp, clamp)
        return x


def _upfirdn2d(x, f, up=1, padding=(0, 0, 0, 0), gain=1):  # type: ignore[no-untyped-def]
    """Zero-insert by `up`, pad (negative = crop), correlate with the flipped filter."""
    with record_function("_upfirdn2d_ref"):
        assert x.ndim == 4 and f.ndim in (1, 2) and f.dtype == torch.float32
        assert not f.requires_grad
        n, c, h, w = x.shape
        px0, px1, py0, py1 = padding
        x = x.reshape([n, c, h, 1, w, 1])
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape([n, c, h * up, w * up])
        x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
        x = x[
            :, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)
        ]
        f = (f * (gain ** (f.ndim / 2))).to(x.dtype).flip(list(range(f.ndim)))
        f = f[None, None].repeat([c, 1] + [1] * f.ndim)
        x = F.conv2d(x, f, groups=c)
        return x[:, :, ::1, ::1]


def _conv2d_resample(x, w, f=None, up=1, padding=0, groups=1, flip_weight=True):  # type: ignore[no-untyped-def]
    """The official paths for down = 1: plain conv; 1x1 conv then upsample; transposed conv."""
    with record_function("conv2d_resample"):
        (out_channels, in_per_group, kh, kw), fw, fh = _sizes(w, f)
        px0 = px1 = py0 = py1 = padding
        if up > 1:
            px0, py0 = px0 + (fw + up - 1) // 2, py0 + (fh + up - 1) // 2
            px1, py1 = px1 + (fw - up) // 2, py1 + (fh - up) // 2
        if kw == 1 and kh == 1 and up > 1:
            _sizes(w, None)  # the conv wrapper reads the weight shape again
            x = F.conv2d(x, w if flip_weight else w.flip([2, 3]), groups=groups)
            return _upfirdn2d(x, f, up=up, padding=(px0, px1, py0, py1), gain=up**2)
        if up > 1:
            if groups == 1:
                w = w.transpose(0, 1)
            else:
                w = w.reshape(groups, out_channels // groups, in_per_group, kh, kw).transpose(1, 2)
                w = w.reshape(groups * in_per_group, out_channels // groups, kh, kw)
            px0, px1, py0, py1 = px0 - (kw - 1), px1 - (kw - up), py0 - (kh - 1), py1 - (kh - up)
            pxt, pyt = max(min(-px0, -px1), 0), max(min(-py0, -py1), 0)
            _sizes(w, None)
            if flip_weight:  # transposed: flip_weight=False (a convolution) needs no flip
                w = w.flip([2, 3])
            x = F.conv_transpose2d(x, w, stride=up, padding=[pyt, pxt], groups=groups)
            pad = (px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt)
            return _upfirdn2d(x, f, padding=pad, gain=up**2)
        _sizes(w, None)
        return F.conv2d(x, w if flip_weight else w.flip([2, 3]), padding=[py0, px0], groups=groups)


def _modulated_conv2d(  # type: ignore[no-untyped-def]
    x, weight, styles, noise=None, up=1, padding=0, f=None, demodulate=True, flip_weight=True,
    fused_modconv=True,
):  # fmt: skip
    with record_function("modulated_conv2d"):
        n = x.shape[0]
        out_channels, in_channels, kh, kw = weight.shape
        _check(weight, [out_channels, in_channels, kh, kw])
        _check(x, [n, in_channels, None, None])
        _check(styles, [n, in_channels])
        w = dcoefs = None
        if demodulate or fused_modconv:
            w = weight.unsqueeze(0) * styles.reshape(n, 1, -1, 1, 1)  # [N, O, I, k, k]
        if demodulate:
            dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [N, O]
        if demodulate and fused_modconv:
            w = w * dcoefs.reshape(n, -1, 1, 1, 1)
        if not fused_modconv:
            x = x * styles.to(x.dtype).reshape(n, -1, 1, 1)
            x = _conv2d_resample(x, weight.to(x.dtype), f, up, padding, flip_weight=flip_weight)
            if demodulate and noise is not None:
                return _MulAdd.apply(x, dcoefs.to(x.dtype).reshape(n, -1, 1, 1), noise.to(x.dtype))
            if demodulate:
                return x * dcoefs.to(x.dtype).reshape(n, -1, 1, 1)
            return x.add_(noise.to(x.dtype)) if noise is not None else x
        with _Quiet():
            n = int(n)
        _check(x, [n, in_channels, None, None])
        x = x.reshape(1, -1, *x.shape[2:])
        w = w.reshape(-1, in_channels, kh, kw)
        x = _conv2d_resample(x, w.to(x.dtype), f, up, padding, n, flip_weight)
        x = x.reshape(n, -1, *x.shape[2:])
        return x.add_(noise) if noise is not None else x


def _dense(layer, x):  # type: ignore[no-untyped-def]
    """FullyConnectedLayer, linear (the style affines)."""
    w = layer.weight.to(x.dtype) * layer.weight_gain
    b = layer.bias.to(x.dtype)
    if layer.bias_gain != 1:
        b = b * layer.bias_gain
    return torch.addmm(b.unsqueeze(0), x, w.t())


class OfficialSynthesis:
    """`ws [N, num_ws, w_dim] -> img` as the official SynthesisNetwork computes it (float32)."""

    def __init__(self, G: StyleGAN2Generator, fused_modconv: bool) -> None:
        self.G, self.fused_modconv = G, fused_modconv
        self.f = G.synthesis_network.resample_filter  # official setup_filter([1, 3, 3, 1])

    def _layer(self, layer: SynthesisLayer, x, w, noise_mode: str, gain: float = 1.0):  # type: ignore[no-untyped-def]
        res = layer.resolution // layer.up
        _check(x, [None, layer.weight.shape[1], res, res])
        styles = _dense(layer.affine, w)
        noise = None
        if layer.use_noise and noise_mode == "const":
            noise = layer.noise_const * layer.noise_strength
        flip_weight = layer.up == 1
        x = _modulated_conv2d(
            x, layer.weight, styles, noise, layer.up, layer.padding, self.f,
            flip_weight=flip_weight, fused_modconv=self.fused_modconv,
        )  # fmt: skip
        clamp = layer.conv_clamp * gain if layer.conv_clamp is not None else None
        return _bias_act(x, layer.bias.to(x.dtype), "lrelu", _LRELU_GAIN * gain, clamp)

    def _block(self, block: SynthesisBlock, x, img, ws, noise_mode: str):  # type: ignore[no-untyped-def]
        _check(ws, [None, block.num_conv + block.num_torgb, None])
        w_iter = iter(ws.unbind(dim=1))
        with _Quiet():  # where the official block picks fused_modconv (here: given)
            pass
        if block.in_channels == 0:
            x = block.const.to(dtype=torch.float32, memory_format=torch.contiguous_format)
            x = x.unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
            x = self._layer(block.conv1, x, next(w_iter), noise_mode)
        elif block.architecture == "resnet":
            x = x.to(dtype=torch.float32, memory_format=torch.contiguous_format)
            skip = block.skip
            y = _conv2d_resample(x, skip.weight * skip.weight_gain, self.f, up=2, flip_weight=False)
            y = _bias_act(y, None, gain=math.sqrt(0.5))
            x = self._layer(block.conv0, x, next(w_iter), noise_mode)
            x = self._layer(block.conv1, x, next(w_iter), noise_mode, gain=math.sqrt(0.5))
            x = y.add_(x)
        else:
            x = x.to(dtype=torch.float32, memory_format=torch.contiguous_format)
            x = self._layer(block.conv0, x, next(w_iter), noise_mode)
            x = self._layer(block.conv1, x, next(w_iter), noise_mode)
        if img is not None:  # upsample2d: padding so that the output is exactly 2x
            fw = int(self.f.shape[-1])
            pad = ((fw + 1) // 2, (fw - 2) // 2, (fw + 1) // 2, (fw - 2) // 2)
            img = _upfirdn2d(img, self.f, up=2, padding=pad, gain=4)
        if block.is_last or block.architecture == "skip":
            rgb = block.torgb
            styles = _dense(rgb.affine, next(w_iter)) * rgb.weight_gain
            y = _modulated_conv2d(x, rgb.weight, styles, demodulate=False,
                                  fused_modconv=self.fused_modconv)  # fmt: skip
            y = _bias_act(y, rgb.bias.to(y.dtype), clamp=rgb.conv_clamp)
            y = y.to(dtype=torch.float32, memory_format=torch.contiguous_format)
            img = img.add_(y) if img is not None else y
        return x, img

    def __call__(self, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        net = self.G.synthesis_network
        blocks: Sequence[SynthesisBlock] = net.blocks()
        with record_function("split_ws"):
            ws = ws.to(torch.float32)
            block_ws, w_idx = [], 0
            for block in blocks:
                block_ws.append(ws.narrow(1, w_idx, block.num_conv + block.num_torgb))
                w_idx += block.num_conv
        x = img = None
        for block, cur_ws in zip(blocks, block_ws, strict=True):
            x, img = self._block(block, x, img, cur_ws, noise_mode)
        assert img is not None
        return img
