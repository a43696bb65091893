"""StyleGAN (v1), the generator the paper embeds into, in plain PyTorch.

Karras, Laine, Aila, "A Style-Based Generator Architecture for Generative Adversarial Networks"
(CVPR 2019); the Image2StyleGAN paper (Sec. 2-3) embeds into its FFHQ 1024 model: 18 x 512 W+.

This is the official TensorFlow network (NVlabs/stylegan `G_style` = `G_mapping` +
`G_synthesis`) evaluated at full resolution (lod = 0), op for op:

mapping  (Fig. 1b, "f"): z -> [label concat] -> pixel norm -> `mapping_layers` x (dense, act)
synthesis ("g"): one *layer* per entry of W+ (num_ws = 2 log2(resolution) - 2), each
    [input] -> [blur] -> + noise * noise_strength -> + bias -> act -> [pixel norm]
            -> [instance norm] -> AdaIN style: x * (y_s + 1) + y_b
    where [input] is the learned 4x4 constant (layer 0), a 3x3 conv (odd layers), or a x2
    up-sampling 3x3 conv (even layers >= 2): nearest x2 then conv below 128 px, one transposed
    conv with the "fused" 4x4 kernel at >= 128 px; the blur [1, 2, 1] follows every up-sampling.
    ToRGB (1x1 conv + bias) at the final resolution gives the image.

By default (`G.fast_path`) the nearest x2 + 3x3 conv below 128 px runs as the same transposed
conv (its 4x4 kernel flipped), exact in real arithmetic and 1.1-2x faster on the CPU; within
float32 rounding of TF's op order (`fast_path = False`), tested.

Weights are stored as the official code stores them (unscaled); the equalized learning-rate
constants (He gain / sqrt(fan_in), times the mapping's lr multiplier 0.01) are applied at run
time, as official. Truncation, W+ broadcast and noise modes live in `Generator` (models/base.py).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import short_repr
from .base import Generator, frozen
from .limits import DIM, LAYERS, RESOLUTION, Bound, check_fields, check_filter_taps

__all__ = ["StyleGAN1Config", "StyleGAN1Generator"]

_ACTIVATIONS = ("lrelu", "relu")  # official: {'relu': tf.nn.relu, 'lrelu': leaky_relu(0.2)}
_LRELU_SLOPE = 0.2
_ACT_GAIN = math.sqrt(2.0)  # He gain of both activations (used in the weight scaling only)
_EPS = 1e-8  # pixel norm and instance norm epsilon (official)


# Sane limits on every numeric field (models/limits.py): checked before any tensor is built.
_SG1_BOUNDS = {
    "resolution": RESOLUTION,
    "num_channels": Bound(1, 16),
    "latent_size": DIM,
    "label_size": Bound(0, 2**16),
    "dlatent_size": DIM,
    "mapping_layers": LAYERS,
    "mapping_fmaps": DIM,
    "mapping_lrmul": Bound(1e-6, 1e6, integer=False),
    "fmap_base": Bound(1, 2**20),
    "fmap_decay": Bound(0, 16, integer=False),
    "fmap_max": DIM,
}
_SG1_FLAGS = (
    "normalize_latents",
    "use_styles",
    "const_input_layer",
    "use_noise",
    "use_wscale",
    "use_pixel_norm",
    "use_instance_norm",
)


@dataclass(frozen=True)
class StyleGAN1Config:
    """The official `G_style` / `G_mapping` / `G_synthesis` keyword arguments that shape the
    network. Defaults are the official function defaults (= the FFHQ 1024 model)."""

    resolution: int = 1024  # output side in pixels, a power of two >= 4
    num_channels: int = 3  # image channels
    latent_size: int = 512  # z dimension
    label_size: int = 0  # conditioning label size; 0 = unconditional
    dlatent_size: int = 512  # w dimension
    mapping_layers: int = 8  # dense layers in the mapping network
    mapping_fmaps: int = 512  # width of the hidden mapping layers
    mapping_lrmul: float = 0.01  # learning-rate multiplier of the mapping layers
    mapping_nonlinearity: str = "lrelu"  # 'lrelu' | 'relu'
    normalize_latents: bool = True  # pixel-norm z before the mapping layers
    fmap_base: int = 8192  # feature maps: nf(stage) = min(fmap_base / 2^(stage * decay), max)
    fmap_decay: float = 1.0
    fmap_max: int = 512
    use_styles: bool = True  # AdaIN style inputs (False: one w, used by a dense input layer only)
    const_input_layer: bool = True  # learned 4x4 constant input (False: dense layer from w[0])
    use_noise: bool = True  # per-layer noise inputs
    nonlinearity: str = "lrelu"  # synthesis activation: 'lrelu' | 'relu'
    use_wscale: bool = True  # equalized learning rate
    use_pixel_norm: bool = False  # pixel norm in each synthesis layer
    use_instance_norm: bool = True  # instance norm in each synthesis layer
    fused_scale: bool | str = "auto"  # fused up-conv: True | False | 'auto' (= at >= 128 px)
    blur_filter: tuple[float, ...] | None = (1, 2, 1)  # 1-D low-pass after up-sampling; None = off

    def __post_init__(self) -> None:
        check_fields(self, _SG1_BOUNDS)  # before anything is derived from the numbers
        for key in _SG1_FLAGS:
            if not isinstance(getattr(self, key), bool):
                raise ValueError(
                    f"{key} must be true or false, got {short_repr(getattr(self, key))}"
                )
        for key in ("nonlinearity", "mapping_nonlinearity"):
            if getattr(self, key) not in _ACTIVATIONS:
                raise ValueError(
                    f"{key} must be one of {_ACTIVATIONS}, got {short_repr(getattr(self, key))}"
                )
        if self.fused_scale not in (True, False, "auto"):
            raise ValueError(f"fused_scale must be True, False or 'auto', got {self.fused_scale!r}")
        if self.blur_filter is not None and len(self.blur_filter) == 0:
            object.__setattr__(self, "blur_filter", None)
        if self.blur_filter is not None:
            object.__setattr__(
                self, "blur_filter", check_filter_taps("blur_filter", self.blur_filter)
            )

    # --- derived quantities (named as in the official code) -------------------------------------

    @property
    def resolution_log2(self) -> int:
        return int(self.resolution).bit_length() - 1

    @property
    def num_layers(self) -> int:
        """Synthesis layers (= noise inputs): 2 per resolution from 4x4 on."""
        return 2 * self.resolution_log2 - 2

    @property
    def num_ws(self) -> int:
        return self.num_layers if self.use_styles else 1

    def nf(self, stage: int) -> int:
        """Feature maps at `stage` (resolution 2^(stage + 1)), as official."""
        return min(int(self.fmap_base / (2.0 ** (stage * self.fmap_decay))), self.fmap_max)

    def fused_at(self, res: int) -> bool:
        """Whether the up-sampling conv producing `res` x `res` is the fused transposed conv."""
        if self.fused_scale == "auto":
            return res >= 128
        return bool(self.fused_scale)

    def layer_resolutions(self) -> list[int]:
        """Output side of each synthesis layer, in layer order."""
        return [2 ** (k // 2 + 2) for k in range(self.num_layers)]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["blur_filter"] = list(self.blur_filter) if self.blur_filter is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StyleGAN1Config:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown StyleGAN1 config keys: {', '.join(unknown)}")
        d = dict(d)
        if d.get("blur_filter") is not None:
            d["blur_filter"] = tuple(d["blur_filter"])
        return cls(**d)


# --- layers ------------------------------------------------------------------------------------


def _activation(x: torch.Tensor, kind: str) -> torch.Tensor:
    # official leaky_relu: max(x, 0.2 x); the gain sqrt(2) is folded into the weight scaling
    return F.leaky_relu(x, _LRELU_SLOPE) if kind == "lrelu" else F.relu(x)


def _pixel_norm(x: torch.Tensor) -> torch.Tensor:
    """x / sqrt(mean over channels of x^2 + 1e-8)  (dim 1)."""
    return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + _EPS)


def _instance_norm(x: torch.Tensor) -> torch.Tensor:
    """Per-sample, per-channel normalisation over H, W with eps 1e-8 (official, not torch's):
    (x - mean) / sqrt(mean((x - mean)^2) + 1e-8)."""
    var, mean = torch.var_mean(x, dim=(2, 3), correction=0, keepdim=True)
    return (x - mean) * torch.rsqrt(var + _EPS)


def _weight_gain(fan_in: int, gain: float, use_wscale: bool, lrmul: float) -> float:
    """The official `get_weight` run-time coefficient (equalized learning rate)."""
    he_std = gain / math.sqrt(fan_in)
    return he_std * lrmul if use_wscale else lrmul


def _init_std(fan_in: int, gain: float, use_wscale: bool, lrmul: float) -> float:
    """The official `get_weight` initial standard deviation of the stored weight."""
    he_std = gain / math.sqrt(fan_in)
    return 1.0 / lrmul if use_wscale else he_std / lrmul


class _Dense(nn.Module):
    """Official `dense` (+ `apply_bias`): y = x @ (W * c) + b * lrmul; W stored [out, in]."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        gain: float,  # He gain: sqrt(2) hidden layers, 1 for styles, sqrt(2)/4 for a dense input
        use_wscale: bool,
        lrmul: float = 1.0,
        bias: bool = True,  # False where the bias is added later (the synthesis dense input)
    ) -> None:
        super().__init__()
        std = _init_std(in_features, gain, use_wscale, lrmul)
        self.weight = nn.Parameter(torch.randn(out_features, in_features) * std)
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.weight_gain = _weight_gain(in_features, gain, use_wscale, lrmul)
        self.bias_gain = lrmul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.weight_gain
        b = self.bias * self.bias_gain if self.bias is not None else None
        return F.linear(x, w, b)


class _Blur(nn.Module):
    """Official `blur2d`: depthwise correlation with the normalised outer product of `taps`,
    TF 'SAME' padding (for even lengths the extra pixel goes after)."""

    kernel: torch.Tensor  # [k, k] buffer

    def __init__(self, taps: Sequence[float]) -> None:
        super().__init__()
        f = torch.tensor(list(taps), dtype=torch.float64)
        f = f[:, None] * f[None, :]
        self.register_buffer("kernel", (f / f.sum()).to(torch.float32), persistent=False)
        k = len(taps)
        before = (k - 1) // 2
        self.padding = (before, k - 1 - before, before, k - 1 - before)  # left, right, top, bottom

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        C = x.shape[1]
        kernel = self.kernel.to(x.dtype)[None, None].expand(C, 1, -1, -1)  # [C, 1, k, k]
        left, right = self.padding[:2]
        if left == right:  # odd length: symmetric padding inside the conv (no padded copy)
            return F.conv2d(x, kernel, padding=left, groups=C)
        return F.conv2d(F.pad(x, self.padding), kernel, groups=C)


class _SynthesisLayer(nn.Module):
    """One layer of `G_synthesis` (one w of W+, one noise input): [conv] then `layer_epilogue`."""

    noise_const: torch.Tensor  # [1, 1, r, r] buffer

    def __init__(
        self,
        cfg: StyleGAN1Config,
        in_channels: int,  # channels entering the layer's conv (ignored for the input layer)
        out_channels: int,
        resolution: int,  # output side of this layer
        conv: str,  # 'none' (input layer), 'same' (3x3 conv), 'up' (x2 up-sampling 3x3 conv)
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.conv = conv
        self.resolution = resolution
        self.fused = conv == "up" and cfg.fused_at(resolution)
        if conv != "none":
            # [out, in, 3, 3]; official [3, 3, in, out]
            std = _init_std(in_channels * 9, _ACT_GAIN, cfg.use_wscale, 1.0)
            self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3) * std)
            self.weight_gain = _weight_gain(in_channels * 9, _ACT_GAIN, cfg.use_wscale, 1.0)
        self.blur = _Blur(cfg.blur_filter) if conv == "up" and cfg.blur_filter else None
        if cfg.use_noise:
            self.noise_strength = nn.Parameter(torch.zeros(out_channels))  # "Noise/weight"
            self.register_buffer("noise_const", torch.randn(1, 1, resolution, resolution))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        if cfg.use_styles:
            # "StyleMod": w -> [y_s (first C), y_b (last C)], gain 1, no lr multiplier
            self.style = _Dense(cfg.dlatent_size, 2 * out_channels, 1.0, cfg.use_wscale)

    def _convolve(self, x: torch.Tensor, fast: bool, layout: torch.memory_format) -> torch.Tensor:
        weight = self.weight
        if self.conv == "same":
            w = frozen(self, f"same{layout}", lambda: self._scaled(layout), weight)  # [O, I, 3, 3]
            return F.conv2d(x, w, padding=1)
        if not self.fused and not fast:  # TF's op order
            x = x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # nearest x2
            return F.conv2d(x, self._scaled(layout), padding=1)
        # Fused: conv2d_transpose with the 3x3 kernel padded to 5x5 and summed over its four
        # 2x2 shifts (a 4x4 kernel), stride 2, TF 'SAME' output size 2H (padding 1). Nearest x2
        # then the 3x3 conv is that transposed conv with the 4x4 kernel flipped (exact in real
        # arithmetic, 2.25x fewer multiplies): the fast path's up-sampling below 128 px.
        flip = not self.fused
        w = frozen(self, f"up{layout}", lambda: self._fused_kernel(flip, layout), weight)
        return F.conv_transpose2d(x, w, stride=2, padding=1)

    def _scaled(self, layout: torch.memory_format) -> torch.Tensor:
        return (self.weight * self.weight_gain).contiguous(memory_format=layout)

    def _fused_kernel(self, flip: bool, layout: torch.memory_format) -> torch.Tensor:
        w = (self.weight * self.weight_gain).transpose(0, 1)  # [in, out, 3, 3] (transposed conv)
        w = F.pad(w, (1, 1, 1, 1))
        w = w[:, :, 1:, 1:] + w[:, :, :-1, 1:] + w[:, :, 1:, :-1] + w[:, :, :-1, :-1]
        return (w.flip([2, 3]) if flip else w).contiguous(memory_format=layout)  # [in, out, 4, 4]

    def forward(
        self,
        x: torch.Tensor,  # [N, in, h, w] (input layer: [N, out, 4, 4])
        w: torch.Tensor | None,  # [N, w_dim] this layer's style, None without styles
        noise: torch.Tensor | None,  # broadcastable to [N, 1, H, W]; None without noise inputs
        fast: bool = False,  # the CPU fast path (see StyleGAN1Generator.fast_path)
        layout: torch.memory_format = torch.contiguous_format,  # of the activations
    ) -> torch.Tensor:
        if self.conv != "none":
            x = self._convolve(x, fast, layout)  # [N, out, H, W]
        if self.blur is not None:
            x = self.blur(x)
        # layer_epilogue
        if noise is not None:
            x = torch.addcmul(x, noise.to(x.dtype), self.noise_strength.view(1, -1, 1, 1))
        x = x + self.bias.view(1, -1, 1, 1)
        x = _activation(x, self.cfg.nonlinearity)
        if self.cfg.use_pixel_norm:
            x = _pixel_norm(x)
        if self.cfg.use_instance_norm:
            x = _instance_norm(x)
        if w is not None:
            style = self.style(w)  # [N, 2C]
            C = x.shape[1]
            y_s, y_b = style[:, :C, None, None], style[:, C:, None, None]
            x = torch.addcmul(y_b, x, y_s + 1)  # AdaIN, x * (y_s + 1) + y_b (official: style + 1)
        return x


class _Mapping(nn.Module):
    """Official `G_mapping` without the broadcast: z [N, latent] -> w [N, dlatent]."""

    def __init__(self, cfg: StyleGAN1Config) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.label_size:
            # "LabelConcat/weight" (plain matmul, no scaling); stored [latent, label]
            self.embed = nn.Parameter(torch.randn(cfg.latent_size, cfg.label_size))
        in_features = cfg.latent_size * (2 if cfg.label_size else 1)
        self.layers = nn.ModuleList()
        for i in range(cfg.mapping_layers):
            out_features = cfg.dlatent_size if i == cfg.mapping_layers - 1 else cfg.mapping_fmaps
            self.layers.append(
                _Dense(in_features, out_features, _ACT_GAIN, cfg.use_wscale, cfg.mapping_lrmul)
            )
            in_features = out_features

    def forward(self, z: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        x = z
        if self.cfg.label_size:
            if c is None:
                raise ValueError(
                    f"a conditional generator: give labels c [N, {self.cfg.label_size}]"
                )
            x = torch.cat([x, F.linear(c.to(x.dtype), self.embed)], dim=1)  # [N, 2 * latent]
        if self.cfg.normalize_latents:
            x = _pixel_norm(x)
        for layer in self.layers:
            x = _activation(layer(x), self.cfg.mapping_nonlinearity)
        return x  # [N, dlatent]


class _Synthesis(nn.Module):
    """Official `G_synthesis` at lod 0: ws [N, num_ws, w_dim] + noise -> image."""

    def __init__(self, cfg: StyleGAN1Config) -> None:
        super().__init__()
        self.cfg = cfg
        c4 = cfg.nf(1)
        if cfg.const_input_layer:
            self.const = nn.Parameter(torch.ones(1, c4, 4, 4))  # "4x4/Const/const"
        else:
            # "4x4/Dense/weight": w[0] -> [N, nf(1) * 16] -> [N, nf(1), 4, 4]; gain sqrt(2)/4
            self.input_dense = _Dense(
                cfg.dlatent_size, c4 * 16, _ACT_GAIN / 4, cfg.use_wscale, bias=False
            )
        layers = []
        for k, res in enumerate(cfg.layer_resolutions()):
            stage = int(math.log2(res)) - 1
            out_ch = cfg.nf(stage)
            if k == 0:
                layers.append(_SynthesisLayer(cfg, out_ch, out_ch, res, "none"))
            elif k == 1:
                layers.append(_SynthesisLayer(cfg, out_ch, out_ch, res, "same"))
            elif k % 2 == 0:
                layers.append(_SynthesisLayer(cfg, cfg.nf(stage - 1), out_ch, res, "up"))
            else:
                layers.append(_SynthesisLayer(cfg, out_ch, out_ch, res, "same"))
        self.layers = nn.ModuleList(layers)
        c_out = cfg.nf(cfg.resolution_log2 - 1)
        # "ToRGB_lod0": 1x1 conv, gain 1, + bias; stored [channels, C, 1, 1]
        std = _init_std(c_out, 1.0, cfg.use_wscale, 1.0)
        self.torgb_weight = nn.Parameter(torch.randn(cfg.num_channels, c_out, 1, 1) * std)
        self.torgb_bias = nn.Parameter(torch.zeros(cfg.num_channels))
        self.torgb_gain = _weight_gain(c_out, 1.0, cfg.use_wscale, 1.0)

    def noise_layers(self) -> list[_SynthesisLayer]:
        """The layers in order (each has one noise input)."""
        return [layer for layer in self.layers if isinstance(layer, _SynthesisLayer)]

    def forward(
        self, ws: torch.Tensor, noise: Sequence[torch.Tensor], fast: bool = False
    ) -> torch.Tensor:
        N = ws.shape[0]
        # Channels-last activations (faster convolutions on the CPU) are not used: they change
        # the rounding of the instance norm's reductions, and the W+ gradient of a trained
        # network amplifies that past TF's numbers (1.5e-2 vs <= 1e-4, tests/test_official_files).
        layout = torch.contiguous_format
        if self.cfg.const_input_layer:
            x = self.const.to(ws.dtype).expand(N, -1, -1, -1)  # [N, nf(1), 4, 4]
        else:
            x = self.input_dense(ws[:, 0]).reshape(N, -1, 4, 4)
        for k, layer in enumerate(self.layers):
            w = ws[:, k] if self.cfg.use_styles else None
            x = layer(x, w, noise[k] if self.cfg.use_noise else None, fast, layout)
        w_rgb = (self.torgb_weight * self.torgb_gain).contiguous(memory_format=layout)
        return F.conv2d(x, w_rgb, self.torgb_bias).contiguous()  # [N, num_channels, H, W]


class StyleGAN1Generator(Generator):
    """The StyleGAN (v1) generator, numerically equal to NVlabs/stylegan's `G_style` at lod 0.

    Parameter names (stored unscaled, as in the TF pickles; the table from the official variable
    names is `tf_name_table` in checkpoints/stylegan1_tf.py):
      mapping_net.embed                        [latent, label]      LabelConcat (conditional)
      mapping_net.layers.{i}.weight / .bias    [out, in] / [out]    Dense{i}
      synthesis_net.const                      [1, nf(1), 4, 4]     4x4/Const/const
      synthesis_net.input_dense.weight         [nf(1)*16, w_dim]    4x4/Dense/weight (no const)
      synthesis_net.layers.{k}.weight          [out, in, 3, 3]      the conv of layer k >= 1
      synthesis_net.layers.{k}.noise_strength  [C]                  Noise/weight
      synthesis_net.layers.{k}.noise_const     [1, 1, r, r]         noise{k} (buffer)
      synthesis_net.layers.{k}.bias            [C]                  bias
      synthesis_net.layers.{k}.style.weight    [2C, w_dim]          StyleMod/weight (+ .bias)
      synthesis_net.torgb_weight / torgb_bias  [ch, C, 1, 1] / [ch] ToRGB_lod0
      w_avg                                    [w_dim]              Gs dlatent_avg (buffer)
    Layer k's official scope: 4x4/Const (or 4x4/Dense), 4x4/Conv, then {r}x{r}/Conv0_up
    (k = 2 log2 r - 4) and {r}x{r}/Conv1 (k = 2 log2 r - 3).
    """

    architecture = "stylegan1"

    def __init__(self, config: StyleGAN1Config | None = None) -> None:
        cfg = config if config is not None else StyleGAN1Config()
        super().__init__(
            z_dim=cfg.latent_size,
            w_dim=cfg.dlatent_size,
            num_ws=cfg.num_ws,
            img_resolution=cfg.resolution,
            img_channels=cfg.num_channels,
            c_dim=cfg.label_size,
        )
        self.config = cfg
        # True: up-sampling below 128 px as one transposed conv (= nearest x2 + 3x3 conv, exact
        # in real arithmetic), channels-last activations on the CPU; float32 rounding of TF's
        # op order (False), tested within 1e-5 of the range.
        self.fast_path = True
        # (`mapping` / `synthesis` are the public methods of `Generator`)
        self.mapping_net = _Mapping(cfg)
        self.synthesis_net = _Synthesis(cfg)

    def map_z(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if self.c_dim:
            if c is None or c.shape != (z.shape[0], self.c_dim):
                got = None if c is None else list(c.shape)
                raise ValueError(
                    f"this generator is conditional: c must be [N, {self.c_dim}], got {got}"
                )
        elif c is not None and c.numel() > 0:
            raise ValueError("this generator is unconditional: pass no labels (c=None)")
        return self.mapping_net(z, c)

    def synthesize(self, ws: torch.Tensor, noise: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.synthesis_net(ws, noise, fast=self.fast_path)

    def noise_buffers(self) -> list[torch.Tensor]:
        if not self.config.use_noise:
            return []
        return [layer.noise_const for layer in self.synthesis_net.noise_layers()]

    def config_dict(self) -> dict[str, Any]:
        return self.config.to_dict()

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> StyleGAN1Generator:
        return cls(StyleGAN1Config.from_dict(config))
